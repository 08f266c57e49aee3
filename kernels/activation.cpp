#include "kernels/activation.h"

namespace fer::kernels {

// --- reference: one element at a time ------------------------------------------------

void relu_forward_ref(const float* x, int64_t n, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] > 0.f ? x[i] : 0.f;
}

void relu_backward_ref(const float* x, const float* dy, int64_t n, float* dx) {
  // The gradient passes where the unit was active and is blocked elsewhere.
  for (int64_t i = 0; i < n; ++i)
    if (x[i] > 0.f) dx[i] += dy[i];
}

void relu6_forward_ref(const float* x, int64_t n, float* y) {
  for (int64_t i = 0; i < n; ++i) {
    float v = x[i];
    if (v < 0.f) v = 0.f;
    if (v > 6.f) v = 6.f;
    y[i] = v;
  }
}

void relu6_backward_ref(const float* x, const float* dy, int64_t n, float* dx) {
  // Flat on both sides: only inputs strictly inside (0, 6) pass a gradient.
  for (int64_t i = 0; i < n; ++i)
    if (x[i] > 0.f && x[i] < 6.f) dx[i] += dy[i];
}

// The optimized versions are in kernels/activation_hwy.cpp.

}  // namespace fer::kernels
