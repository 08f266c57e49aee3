#include "kernels/activation.h"

#include <omp.h>

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

// --- optimized: threads over chunks, branch-free bodies the compiler vectorizes -------

namespace {
// Elementwise work is memory bound; threads only pay off on large tensors.
constexpr int64_t kParallelMin = 1 << 16;
int threads_for(int64_t n) { return n < kParallelMin ? 1 : omp_get_max_threads(); }
}  // namespace

void relu_forward(const float* x, int64_t n, float* y) {
#pragma omp parallel for simd schedule(static) num_threads(threads_for(n))
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] > 0.f ? x[i] : 0.f;
}

void relu_backward(const float* x, const float* dy, int64_t n, float* dx) {
#pragma omp parallel for simd schedule(static) num_threads(threads_for(n))
  for (int64_t i = 0; i < n; ++i) dx[i] += x[i] > 0.f ? dy[i] : 0.f;
}

void relu6_forward(const float* x, int64_t n, float* y) {
#pragma omp parallel for simd schedule(static) num_threads(threads_for(n))
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i] > 0.f ? x[i] : 0.f;
    y[i] = v < 6.f ? v : 6.f;
  }
}

void relu6_backward(const float* x, const float* dy, int64_t n, float* dx) {
#pragma omp parallel for simd schedule(static) num_threads(threads_for(n))
  for (int64_t i = 0; i < n; ++i) dx[i] += (x[i] > 0.f && x[i] < 6.f) ? dy[i] : 0.f;
}

}  // namespace fer::kernels
