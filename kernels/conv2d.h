// 2-D convolution over NHWC batches (Keras's Conv2D without its activation).
//
// Shapes (g is the geometry from kernels/padding.h, OC the number of output channels):
//   x      [N, H, W, C]        input
//   kernel [KH, KW, C, OC]     Keras's layout
//   bias   [OC]                optional (nullptr: no bias)
//   y      [N, OH, OW, OC]     output
//
// Forward, for every output pixel (n, oh, ow) and output channel o:
//   y[n,oh,ow,o] = bias[o] + sum_{kh,kw,c} x[n, oh*SH - PT + kh, ow*SW - PL + kw, c] * kernel[kh,kw,c,o]
// where input pixels outside the image (the padding) count as zero.
//
// Backward: y is linear in x and in the kernel, so each input or weight receives the
// output gradient dy times whatever it was multiplied with in the forward pass:
//   dx[n,ih,iw,c]    += sum over the (oh,ow,kh,kw) that read x[n,ih,iw,c] of dy[n,oh,ow,o] * kernel[kh,kw,c,o]
//   dkernel[kh,kw,c,o] += sum_{n,oh,ow} x[n, ih, iw, c] * dy[n,oh,ow,o]
//   dbias[o]          += sum_{n,oh,ow} dy[n,oh,ow,o]
// Backward functions ADD into dx, dkernel and dbias (gradients accumulate).
//
// The `_ref` versions are the formulas above as direct loops. The fast versions use
// im2col + GEMM: copying every receptive field of an image into one row of a matrix
// ("col", [OH*OW, KH*KW*C]) turns the convolution into col * kernel, where the kernel is
// read as a [KH*KW*C, OC] matrix -- exactly its Keras memory layout. A 1x1, stride-1
// convolution needs no copy at all: in NHWC, x already is an [N*H*W, C] matrix.
#pragma once

#include "kernels/padding.h"

namespace fer::kernels {

void conv2d_forward_ref(const Conv2DGeometry& g, int out_channels, const float* x,
                        const float* kernel, const float* bias, float* y);
void conv2d_forward(const Conv2DGeometry& g, int out_channels, const float* x,
                    const float* kernel, const float* bias, float* y);

// dx += d(loss)/dx.
void conv2d_backward_input_ref(const Conv2DGeometry& g, int out_channels, const float* dy,
                               const float* kernel, float* dx);
void conv2d_backward_input(const Conv2DGeometry& g, int out_channels, const float* dy,
                           const float* kernel, float* dx);

// dkernel += d(loss)/dkernel and dbias += d(loss)/dbias. Either may be nullptr (skipped),
// e.g. a layer without bias.
void conv2d_backward_weights_ref(const Conv2DGeometry& g, int out_channels, const float* x,
                                 const float* dy, float* dkernel, float* dbias);
void conv2d_backward_weights(const Conv2DGeometry& g, int out_channels, const float* x,
                             const float* dy, float* dkernel, float* dbias);

}  // namespace fer::kernels
