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
// There is too little work per weight for a GEMM to pay off, so the fast versions are
// loops ordered with channels innermost (contiguous in NHWC: they vectorize) and split
// over threads by rows of the image.
#pragma once

#include "kernels/padding.h"

namespace fer::kernels {

void depthwise_conv2d_forward_ref(const Conv2DGeometry& g, const float* x, const float* kernel,
                                  const float* bias, float* y);
void depthwise_conv2d_forward(const Conv2DGeometry& g, const float* x, const float* kernel,
                              const float* bias, float* y);

void depthwise_conv2d_backward_input_ref(const Conv2DGeometry& g, const float* dy,
                                         const float* kernel, float* dx);
void depthwise_conv2d_backward_input(const Conv2DGeometry& g, const float* dy,
                                     const float* kernel, float* dx);

void depthwise_conv2d_backward_weights_ref(const Conv2DGeometry& g, const float* x,
                                           const float* dy, float* dkernel, float* dbias);
void depthwise_conv2d_backward_weights(const Conv2DGeometry& g, const float* x,
                                       const float* dy, float* dkernel, float* dbias);

}  // namespace fer::kernels
