// Elementwise activations on raw buffers: ReLU and ReLU6 (MobileNetV2's bounded ReLU).
//
//   relu(x)  = max(x, 0)            relu'(x)  = 1 if x > 0 else 0
//   relu6(x) = min(max(x, 0), 6)    relu6'(x) = 1 if 0 < x < 6 else 0
//
// At the kinks (x = 0, x = 6) the derivative does not exist; like TensorFlow and PyTorch
// we use 0 there. The backward kernels read the forward INPUT x and ADD into dx
// (gradients accumulate). `_ref` versions are plain loops; the others are OpenMP + SIMD.
#pragma once

#include <cstdint>

namespace fer::kernels {

void relu_forward_ref(const float* x, int64_t n, float* y);
void relu_forward(const float* x, int64_t n, float* y);
void relu_backward_ref(const float* x, const float* dy, int64_t n, float* dx);
void relu_backward(const float* x, const float* dy, int64_t n, float* dx);

void relu6_forward_ref(const float* x, int64_t n, float* y);
void relu6_forward(const float* x, int64_t n, float* y);
void relu6_backward_ref(const float* x, const float* dy, int64_t n, float* dx);
void relu6_backward(const float* x, const float* dy, int64_t n, float* dx);

}  // namespace fer::kernels
