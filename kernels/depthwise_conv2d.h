// Depthwise 2-D convolution (Keras's DepthwiseConv2D with depth_multiplier 1), the
// spatial half of MobileNet's separable convolutions: every channel is filtered by its
// own KH x KW kernel and channels never mix (a 1x1 Conv2D mixes them afterwards).
//
// Shapes (g from kernels/padding.h; the output has the same C channels as the input):
//   x      [N, H, W, C]
//   kernel [KH, KW, C, 1]   Keras's layout, i.e. KH*KW*C floats, channel innermost
//   bias   [C]              optional (nullptr: no bias)
//   y      [N, OH, OW, C]
//
//   y[n,oh,ow,c] = bias[c] + sum_{kh,kw} x[n, oh*SH - PT + kh, ow*SW - PL + kw, c] * kernel[kh,kw,c]
// (padding counts as zero). Backward, as for Conv2D but without the sum over channels:
//   dx[n,ih,iw,c]   += dy[n,oh,ow,c] * kernel[kh,kw,c]   for each (oh,ow,kh,kw) that read it
//   dkernel[kh,kw,c] += sum_{n,oh,ow} x[n,ih,iw,c] * dy[n,oh,ow,c]
//   dbias[c]         += sum_{n,oh,ow} dy[n,oh,ow,c]
// Backward functions ADD into their outputs; dkernel / dbias may be nullptr (skipped).
//
// There is too little work per weight for a GEMM to pay off. The public functions are
// Highway SIMD kernels (kernels/depthwise_conv2d_hwy.cpp, dispatched at run time to the
// best of AVX-512 / AVX2 / SSE4 / SSSE3 / scalar): one vector holds consecutive channels
// (contiguous in NHWC), 3x3 windows with stride 1 or 2 have their own code, and threads
// split the image rows. Other windows and strides go to the `_loops` versions: plain
// loops with channels innermost that the compiler vectorizes (kept also as the baseline
// for bench/bench_depthwise.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/padding.h"

namespace fer::kernels {

void depthwise_conv2d_forward_ref(const Conv2DGeometry& g, const float* x, const float* kernel,
                                  const float* bias, float* y);
void depthwise_conv2d_forward(const Conv2DGeometry& g, const float* x, const float* kernel,
                              const float* bias, float* y);
void depthwise_conv2d_forward_loops(const Conv2DGeometry& g, const float* x,
                                    const float* kernel, const float* bias, float* y);

void depthwise_conv2d_backward_input_ref(const Conv2DGeometry& g, const float* dy,
                                         const float* kernel, float* dx);
// accumulate false: dx is overwritten (as if it held zeros) -- see Tensor::grad_to_write.
void depthwise_conv2d_backward_input(const Conv2DGeometry& g, const float* dy,
                                     const float* kernel, float* dx, bool accumulate = true);
void depthwise_conv2d_backward_input_loops(const Conv2DGeometry& g, const float* dy,
                                           const float* kernel, float* dx);

void depthwise_conv2d_backward_weights_ref(const Conv2DGeometry& g, const float* x,
                                           const float* dy, float* dkernel, float* dbias);
void depthwise_conv2d_backward_weights(const Conv2DGeometry& g, const float* x,
                                       const float* dy, float* dkernel, float* dbias);
void depthwise_conv2d_backward_weights_loops(const Conv2DGeometry& g, const float* x,
                                             const float* dy, float* dkernel, float* dbias);

// For tests and benchmarks, as sgemm_hwy_* in kernels/gemm.h (and without Highway's
// headers, which do not compile under -march=native here): the Highway targets compiled
// and supported by this CPU (best first), forcing one (0 undoes), the target the next call
// runs, and a target's name.
std::vector<int64_t> depthwise_hwy_targets();
void depthwise_hwy_force_target(int64_t target);
int64_t depthwise_hwy_dispatched_target();
const char* depthwise_hwy_target_name(int64_t target);

}  // namespace fer::kernels
