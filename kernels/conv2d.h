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
// The `_ref` versions are the formulas above as direct loops. There are two fast ways,
// both below; conv2d_forward/_backward_* pick per shape the one bench/bench_conv2d
// measured faster (kernels/conv2d.cpp says which and why).
//
// im2col + GEMM: copying every receptive field of an image into one row of a matrix
// ("col", [OH*OW, KH*KW*C]) turns the convolution into col * kernel, where the kernel is
// read as a [KH*KW*C, OC] matrix -- exactly its Keras memory layout. A 1x1, stride-1
// convolution needs no copy at all: in NHWC, x already is an [N*H*W, C] matrix.
//
// Direct (Highway): each output pixel's channels are vector lanes, accumulated in
// registers over the (kh, kw, c) sum from broadcast inputs and kernel rows; no col matrix
// is written and read back. Backward to the input at stride 1 is the same loop on dy
// with the kernel flipped (see kernels/conv2d_direct_hwy.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include "fer/tensor.h"  // AlignedBuffer
#include "kernels/padding.h"

namespace fer::kernels {

void conv2d_forward_ref(const Conv2DGeometry& g, int out_channels, const float* x,
                        const float* kernel, const float* bias, float* y);
void conv2d_forward(const Conv2DGeometry& g, int out_channels, const float* x,
                    const float* kernel, const float* bias, float* y);

// dx += d(loss)/dx. The fast versions take accumulate = false to overwrite dx instead (as
// if it held zeros; it is not read): for a gradient buffer this backward pass is the first
// to write (Tensor::grad_to_write), which then needs no zero-fill.
void conv2d_backward_input_ref(const Conv2DGeometry& g, int out_channels, const float* dy,
                               const float* kernel, float* dx);
void conv2d_backward_input(const Conv2DGeometry& g, int out_channels, const float* dy,
                           const float* kernel, float* dx, bool accumulate = true);

// dkernel += d(loss)/dkernel and dbias += d(loss)/dbias. Either may be nullptr (skipped),
// e.g. a layer without bias.
void conv2d_backward_weights_ref(const Conv2DGeometry& g, int out_channels, const float* x,
                                 const float* dy, float* dkernel, float* dbias);
void conv2d_backward_weights(const Conv2DGeometry& g, int out_channels, const float* x,
                             const float* dy, float* dkernel, float* dbias);

// The im2col + GEMM versions (kernels/conv2d.cpp), whatever the shape.
void conv2d_forward_im2col(const Conv2DGeometry& g, int out_channels, const float* x,
                           const float* kernel, const float* bias, float* y);
void conv2d_backward_input_im2col(const Conv2DGeometry& g, int out_channels, const float* dy,
                                  const float* kernel, float* dx, bool accumulate = true);
void conv2d_backward_weights_im2col(const Conv2DGeometry& g, int out_channels, const float* x,
                                    const float* dy, float* dkernel, float* dbias);

// Direct convolution in Highway (kernels/conv2d_direct_hwy.cpp): no col buffer, output
// channels in vector lanes, a register block of output pixels x channel vectors. Any
// window, stride and padding forward; backward to the input for stride 1 only
// (conv2d_direct_covers_backward_input).
void conv2d_forward_direct(const Conv2DGeometry& g, int out_channels, const float* x,
                           const float* kernel, const float* bias, float* y);
bool conv2d_direct_covers_backward_input(const Conv2DGeometry& g);
// Weight gradient: input channels x output-channel vectors in registers, summed over each
// thread's output rows into a private dk, then added into dkernel (and dbias if given).
void conv2d_backward_weights_direct(const Conv2DGeometry& g, int oc, const float* x,
                                    const float* dy, float* dkernel, float* dbias);
void conv2d_backward_input_direct(const Conv2DGeometry& g, int out_channels, const float* dy,
                                  const float* kernel, float* dx, bool accumulate = true);

// Winograd F(2x2, 3x3) (kernels/conv2d_winograd_hwy.cpp): 3x3 windows at stride 1 only
// (conv2d_winograd_covers), any padding. 16 multiply-adds per 2x2 outputs and channel
// pair instead of 36, in 16 small matrix products between an input and an output
// transform; agrees with the direct sum to float rounding (a few ulps more error).
bool conv2d_winograd_covers(const Conv2DGeometry& g);
// Whether conv2d_forward takes the Winograd path for this shape (kernels/conv2d.cpp).
bool conv2d_forward_uses_winograd(const Conv2DGeometry& g, int out_channels);
void conv2d_forward_winograd(const Conv2DGeometry& g, int out_channels, const float* x,
                             const float* kernel, const float* bias, float* y);
void conv2d_backward_input_winograd(const Conv2DGeometry& g, int out_channels, const float* dy,
                                    const float* kernel, float* dx, bool accumulate = true);

// The Winograd forward in two steps, for weights that stay the same from call to call
// (inference): conv2d_forward_winograd transforms the kernel (U = G g G^T, 16 x C x OCP
// floats) on every call, which at a few tiles -- a 12x12 map at batch 1 -- costs more
// than the products themselves. Transformed once and kept (Conv2D does, while its kernel
// is unchanged), Winograd pays at any number of tiles: bench_conv2d's fwd/winograd_kept
// rows. conv2d_forward_winograd = transform + transformed, same results bit for bit.
struct WinogradKernel {
  AlignedBuffer u;  // [16, C, OCP], zeros in the padding lanes
  int c = 0, oc = 0;
  int64_t ocp = 0;  // OC rounded up to whole 16-float vectors (any x86 target's width)
};
WinogradKernel conv2d_winograd_transform_kernel(const float* kernel, int c, int out_channels);
void conv2d_forward_winograd_transformed(const Conv2DGeometry& g, const WinogradKernel& k,
                                         const float* x, const float* bias, float* y);
// Whether a forward with the kernel already transformed beats the direct one for this
// shape (as conv2d_forward_uses_winograd, without its minimum number of tiles).
bool conv2d_winograd_transformed_pays(const Conv2DGeometry& g, int out_channels);

// For tests and benchmarks, as sgemm_hwy_* in kernels/gemm.h: the Highway targets compiled
// and supported by this CPU (best first), forcing one (0 undoes), the target the next call
// runs, and a target's name.
std::vector<int64_t> conv2d_direct_hwy_targets();
void conv2d_direct_hwy_force_target(int64_t target);
int64_t conv2d_direct_hwy_dispatched_target();
const char* conv2d_direct_hwy_target_name(int64_t target);
std::vector<int64_t> conv2d_winograd_hwy_targets();
void conv2d_winograd_hwy_force_target(int64_t target);
int64_t conv2d_winograd_hwy_dispatched_target();
const char* conv2d_winograd_hwy_target_name(int64_t target);

}  // namespace fer::kernels
