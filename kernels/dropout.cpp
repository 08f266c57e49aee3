// Reference dropout kernels: the definitions in kernels/dropout.h as plain loops.
#include "kernels/dropout.h"

namespace fer::kernels {

void dropout_forward_ref(const float* x, int64_t n, uint64_t key, float rate, float* y) {
  const uint32_t threshold = dropout_threshold(rate);
  const float scale = 1.f / (1.f - rate);
  for (int64_t i = 0; i < n; ++i) {
    const bool keep = (dropout_hash(key, static_cast<uint32_t>(i)) >> 8) >= threshold;
    y[i] = keep ? x[i] * scale : 0.f;
  }
}

void dropout_backward_ref(const float* dy, int64_t n, uint64_t key, float rate, float* dx) {
  const uint32_t threshold = dropout_threshold(rate);
  const float scale = 1.f / (1.f - rate);
  for (int64_t i = 0; i < n; ++i) {
    const bool keep = (dropout_hash(key, static_cast<uint32_t>(i)) >> 8) >= threshold;
    // "+= 0" rather than skipping the element, so that -0 becomes +0 exactly as in the
    // vector version (which adds a zeroed lane).
    dx[i] += keep ? dy[i] * scale : 0.f;
  }
}

}  // namespace fer::kernels
