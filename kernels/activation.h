// Elementwise activations on raw buffers: ReLU and ReLU6 (MobileNetV2's bounded ReLU).
//
//   relu(x)  = max(x, 0)            relu'(x)  = 1 if x > 0 else 0
//   relu6(x) = min(max(x, 0), 6)    relu6'(x) = 1 if 0 < x < 6 else 0
//
// At the kinks (x = 0, x = 6) the derivative does not exist; like TensorFlow and PyTorch
// we use 0 there. The backward kernels read the forward INPUT x and ADD into dx
// (gradients accumulate); y may be x itself (in place).
//
// NaN and -0 follow from the comparisons as written in the `_ref` loops: relu maps NaN
// and -0 to +0 (NaN > 0 is false), relu6 passes NaN and -0 through unchanged (neither
// x < 0 nor x > 6 holds); no gradient passes where x is NaN.
//
// `_ref` versions are plain loops; the unsuffixed ones are Google Highway SIMD kernels
// (kernels/activation_hwy.cpp, dispatched at run time, OpenMP threads on large arrays)
// that return the same bits as `_ref`, NaN and -0 included.
#pragma once

#include <cstdint>
#include <vector>

namespace fer::kernels {

void relu_forward_ref(const float* x, int64_t n, float* y);
void relu_forward(const float* x, int64_t n, float* y);
void relu_backward_ref(const float* x, const float* dy, int64_t n, float* dx);
void relu_backward(const float* x, const float* dy, int64_t n, float* dx);

void relu6_forward_ref(const float* x, int64_t n, float* y);
void relu6_forward(const float* x, int64_t n, float* y);
void relu6_backward_ref(const float* x, const float* dy, int64_t n, float* dx);
void relu6_backward(const float* x, const float* dy, int64_t n, float* dx);

// For tests and benchmarks, as batchnorm_hwy_* in kernels/batchnorm.h: the Highway
// targets compiled and supported by this CPU (best first), forcing one (0 undoes), the
// target the next call runs, and a target's name.
std::vector<int64_t> activation_hwy_targets();
void activation_hwy_force_target(int64_t target);
int64_t activation_hwy_dispatched_target();
const char* activation_hwy_target_name(int64_t target);

}  // namespace fer::kernels
