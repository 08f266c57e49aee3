#include "kernels/conv2d.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>

#include "fer/tensor.h"
#include "kernels/gemm.h"

namespace fer::kernels {

// ---- Reference: the definition as direct loops --------------------------------------
//
// All three walk the same seven loops (n, oh, ow, o, kh, kw, c) and visit the same
// (input pixel, weight, output pixel) triples; they differ only in which of the three
// they write. Reading them side by side is the quickest way to see why backward looks
// the way it does.

void conv2d_forward_ref(const Conv2DGeometry& g, int oc, const float* x, const float* kernel,
                        const float* bias, float* y) {
  for (int n = 0; n < g.n; ++n)
    for (int oh = 0; oh < g.oh; ++oh)
      for (int ow = 0; ow < g.ow; ++ow)
        for (int o = 0; o < oc; ++o) {
          float acc = bias ? bias[o] : 0.f;
          for (int kh = 0; kh < g.kh; ++kh) {
            // The input row under kernel row kh; outside the image it is padding (zero).
            const int ih = oh * g.stride_h - g.pad_top + kh;
            if (ih < 0 || ih >= g.h) continue;
            for (int kw = 0; kw < g.kw; ++kw) {
              const int iw = ow * g.stride_w - g.pad_left + kw;
              if (iw < 0 || iw >= g.w) continue;
              for (int c = 0; c < g.c; ++c)
                acc += x[((int64_t(n) * g.h + ih) * g.w + iw) * g.c + c] *
                       kernel[((int64_t(kh) * g.kw + kw) * g.c + c) * oc + o];
            }
          }
          y[((int64_t(n) * g.oh + oh) * g.ow + ow) * oc + o] = acc;
        }
}

void conv2d_backward_input_ref(const Conv2DGeometry& g, int oc, const float* dy,
                               const float* kernel, float* dx) {
  for (int n = 0; n < g.n; ++n)
    for (int oh = 0; oh < g.oh; ++oh)
      for (int ow = 0; ow < g.ow; ++ow)
        for (int o = 0; o < oc; ++o) {
          const float d = dy[((int64_t(n) * g.oh + oh) * g.ow + ow) * oc + o];
          for (int kh = 0; kh < g.kh; ++kh) {
            const int ih = oh * g.stride_h - g.pad_top + kh;
            if (ih < 0 || ih >= g.h) continue;  // padding has no gradient to receive
            for (int kw = 0; kw < g.kw; ++kw) {
              const int iw = ow * g.stride_w - g.pad_left + kw;
              if (iw < 0 || iw >= g.w) continue;
              // Forward did y += x * k, so x's gradient gets dy * k.
              for (int c = 0; c < g.c; ++c)
                dx[((int64_t(n) * g.h + ih) * g.w + iw) * g.c + c] +=
                    d * kernel[((int64_t(kh) * g.kw + kw) * g.c + c) * oc + o];
            }
          }
        }
}

void conv2d_backward_weights_ref(const Conv2DGeometry& g, int oc, const float* x,
                                 const float* dy, float* dkernel, float* dbias) {
  for (int n = 0; n < g.n; ++n)
    for (int oh = 0; oh < g.oh; ++oh)
      for (int ow = 0; ow < g.ow; ++ow)
        for (int o = 0; o < oc; ++o) {
          const float d = dy[((int64_t(n) * g.oh + oh) * g.ow + ow) * oc + o];
          if (dbias) dbias[o] += d;  // the bias is added to every output pixel
          if (!dkernel) continue;
          for (int kh = 0; kh < g.kh; ++kh) {
            const int ih = oh * g.stride_h - g.pad_top + kh;
            if (ih < 0 || ih >= g.h) continue;
            for (int kw = 0; kw < g.kw; ++kw) {
              const int iw = ow * g.stride_w - g.pad_left + kw;
              if (iw < 0 || iw >= g.w) continue;
              // Forward did y += x * k, so k's gradient gets dy * x.
              for (int c = 0; c < g.c; ++c)
                dkernel[((int64_t(kh) * g.kw + kw) * g.c + c) * oc + o] +=
                    d * x[((int64_t(n) * g.h + ih) * g.w + iw) * g.c + c];
            }
          }
        }
}

// ---- Fast: im2col + GEMM ------------------------------------------------------------

namespace {

// A 1x1 kernel with stride 1 reads each pixel once and has no padding: y = x * kernel
// with x seen as an [N*H*W, C] matrix. No im2col needed.
bool is_pointwise(const Conv2DGeometry& g) {
  return g.kh == 1 && g.kw == 1 && g.stride_h == 1 && g.stride_w == 1;
}

// Columns of the im2col matrix: one receptive field, ordered (kh, kw, c) like the kernel.
int64_t patch_size(const Conv2DGeometry& g) { return int64_t(g.kh) * g.kw * g.c; }

// How many images go through one im2col + GEMM. Bigger chunks give the GEMM taller
// matrices (better for threading); the cap keeps the col buffer around 8 MB so it stays
// in (last-level) cache and the memory cost of a big batch stays bounded.
int images_per_chunk(const Conv2DGeometry& g) {
  constexpr int64_t kColBudget = int64_t(1) << 21;  // floats
  const int64_t per_image = std::max<int64_t>(1, int64_t(g.oh) * g.ow * patch_size(g));
  return static_cast<int>(std::clamp<int64_t>(kColBudget / per_image, 1, std::max(g.n, 1)));
}

// Fills col [images*OH*OW, KH*KW*C]: row (n, oh, ow) holds the receptive field of that
// output pixel, zeros where the window hangs over the padding. `x` points at the first
// image of the chunk.
void im2col(const Conv2DGeometry& g, int images, const float* x, float* col) {
  const int64_t k = patch_size(g);
  const size_t pixel_bytes = sizeof(float) * g.c;
#pragma omp parallel for collapse(2) schedule(static)
  for (int n = 0; n < images; ++n)
    for (int oh = 0; oh < g.oh; ++oh)
      for (int ow = 0; ow < g.ow; ++ow) {
        float* row = col + ((int64_t(n) * g.oh + oh) * g.ow + ow) * k;
        for (int kh = 0; kh < g.kh; ++kh) {
          const int ih = oh * g.stride_h - g.pad_top + kh;
          for (int kw = 0; kw < g.kw; ++kw) {
            const int iw = ow * g.stride_w - g.pad_left + kw;
            float* dst = row + (int64_t(kh) * g.kw + kw) * g.c;
            if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w)
              std::memset(dst, 0, pixel_bytes);
            else  // NHWC: the C channels of one pixel are contiguous, one memcpy
              std::memcpy(dst, x + ((int64_t(n) * g.h + ih) * g.w + iw) * g.c, pixel_bytes);
          }
        }
      }
}

// The adjoint of im2col: dx[pixel] += every col entry that was copied from that pixel.
// Written as a gather (each input row collects from the output rows that read it) so
// that threads own disjoint parts of dx and never race.
void col2im_add(const Conv2DGeometry& g, int images, const float* col, float* dx) {
  const int64_t k = patch_size(g);
#pragma omp parallel for collapse(2) schedule(static)
  for (int n = 0; n < images; ++n)
    for (int ih = 0; ih < g.h; ++ih)
      for (int kh = 0; kh < g.kh; ++kh) {
        // Which output row oh put kernel row kh on input row ih? oh*SH - PT + kh = ih.
        const int th = ih + g.pad_top - kh;
        if (th < 0 || th % g.stride_h != 0) continue;
        const int oh = th / g.stride_h;
        if (oh >= g.oh) continue;
        for (int kw = 0; kw < g.kw; ++kw)
          for (int iw = 0; iw < g.w; ++iw) {
            const int tw = iw + g.pad_left - kw;
            if (tw < 0 || tw % g.stride_w != 0) continue;
            const int ow = tw / g.stride_w;
            if (ow >= g.ow) continue;
            const float* src =
                col + ((int64_t(n) * g.oh + oh) * g.ow + ow) * k + (int64_t(kh) * g.kw + kw) * g.c;
            float* dst = dx + ((int64_t(n) * g.h + ih) * g.w + iw) * g.c;
            for (int c = 0; c < g.c; ++c) dst[c] += src[c];
          }
      }
}

// Uninitialized on purpose: im2col / the GEMM with beta = 0 write every element. The
// buffer comes from the tensor allocator's pool, so repeated calls reuse the same memory
// instead of mapping fresh pages each time.
AlignedBuffer col_buffer(const Conv2DGeometry& g, int images) {
  return AlignedBuffer::uninitialized(int64_t(images) * g.oh * g.ow * patch_size(g));
}

}  // namespace

void conv2d_forward_im2col(const Conv2DGeometry& g, int oc, const float* x,
                           const float* kernel, const float* bias, float* y) {
  const int64_t in_image = int64_t(g.h) * g.w * g.c;     // floats per input image
  const int64_t out_image = int64_t(g.oh) * g.ow * oc;   // floats per output image
  // With a bias, y starts as the bias and the GEMM adds onto it (beta = 1).
  const float beta = bias ? 1.f : 0.f;
  if (is_pointwise(g)) {
    const int rows = g.n * g.h * g.w;
    if (bias) broadcast_rows(rows, oc, bias, y);
    sgemm(false, false, rows, oc, g.c, 1.f, x, g.c, kernel, oc, beta, y, oc);
    return;
  }
  const int chunk = images_per_chunk(g);
  const int k = static_cast<int>(patch_size(g));
  auto col = col_buffer(g, chunk);
  for (int n0 = 0; n0 < g.n; n0 += chunk) {
    const int images = std::min(chunk, g.n - n0);
    const int rows = images * g.oh * g.ow;
    float* y_chunk = y + n0 * out_image;
    im2col(g, images, x + n0 * in_image, col.data());
    if (bias) broadcast_rows(rows, oc, bias, y_chunk);
    // y [rows, OC] (+)= col [rows, K] * kernel [K, OC]
    sgemm(false, false, rows, oc, k, 1.f, col.data(), k, kernel, oc, beta, y_chunk, oc);
  }
}

void conv2d_backward_input_im2col(const Conv2DGeometry& g, int oc, const float* dy,
                                  const float* kernel, float* dx, bool accumulate) {
  const int64_t in_image = int64_t(g.h) * g.w * g.c;
  const int64_t out_image = int64_t(g.oh) * g.ow * oc;
  if (is_pointwise(g)) {
    // dx [NHW, C] (+)= dy [NHW, OC] * kernel^T [OC, C]  (beta 0 overwrites; k = 0 too)
    sgemm(false, true, g.n * g.h * g.w, g.c, oc, 1.f, dy, oc, kernel, oc,
          accumulate ? 1.f : 0.f, dx, g.c);
    return;
  }
  if (!accumulate) std::fill(dx, dx + int64_t(g.n) * in_image, 0.f);  // col2im adds
  const int chunk = images_per_chunk(g);
  const int k = static_cast<int>(patch_size(g));
  auto dcol = col_buffer(g, chunk);
  for (int n0 = 0; n0 < g.n; n0 += chunk) {
    const int images = std::min(chunk, g.n - n0);
    const int rows = images * g.oh * g.ow;
    // The gradient of every receptive field: dcol [rows, K] = dy [rows, OC] * kernel^T,
    // then each field's gradient goes back to the pixels it was copied from.
    sgemm(false, true, rows, k, oc, 1.f, dy + n0 * out_image, oc, kernel, oc, 0.f, dcol.data(),
          k);
    col2im_add(g, images, dcol.data(), dx + n0 * in_image);
  }
}

void conv2d_backward_weights_im2col(const Conv2DGeometry& g, int oc, const float* x,
                                    const float* dy, float* dkernel, float* dbias) {
  if (dbias) add_column_sums(g.n * g.oh * g.ow, oc, dy, dbias);
  if (!dkernel) return;
  if (is_pointwise(g)) {
    // dkernel [C, OC] += x^T [C, NHW] * dy [NHW, OC]
    const int rows = g.n * g.h * g.w;
    sgemm(true, false, g.c, oc, rows, 1.f, x, g.c, dy, oc, 1.f, dkernel, oc);
    return;
  }
  const int64_t in_image = int64_t(g.h) * g.w * g.c;
  const int64_t out_image = int64_t(g.oh) * g.ow * oc;
  const int chunk = images_per_chunk(g);
  const int k = static_cast<int>(patch_size(g));
  auto col = col_buffer(g, chunk);
  for (int n0 = 0; n0 < g.n; n0 += chunk) {
    const int images = std::min(chunk, g.n - n0);
    const int rows = images * g.oh * g.ow;
    im2col(g, images, x + n0 * in_image, col.data());
    // One GEMM over the whole chunk sums over all its pixels at once, so threads never
    // share an accumulator: dkernel [K, OC] += col^T [K, rows] * dy [rows, OC].
    sgemm(true, false, k, oc, rows, 1.f, col.data(), k, dy + n0 * out_image, oc, 1.f, dkernel,
          oc);
  }
}

// ---- Which one runs -----------------------------------------------------------------
// Measured with bench/bench_conv2d (2 threads, AVX-512, medians; README "k x k
// convolution: im2col or direct"): the direct kernel is 1.25-2.5x faster forward at every
// k x k shape of cnn3 and MobileNet's first conv at batch 64, and 1.1-1.9x faster backward
// to the input at stride 1, except where the input has very few channels (cnn3's first
// conv, C = 1: the channels are the direct kernel's vector lanes, so one lane in sixteen
// would do work). The weight gradient: direct 1.1-1.7x faster at most shapes with C >= 3
// (MobileNet's first conv, C = 3, too; about equal at cnn3's 12x12x128 convs, within the
// noise of a shared machine); with C = 1 it was slower (its register block holds 12 input
// channels, 11 of them idle) until it fused a row's KW taps into one tap of KW * C
// channels: now 3x faster than im2col there too (cnn3 block1_conv1, batch 64: 1.5 vs 4.4
// ms; MobileNet's conv1 3.4-4.0 -> 1.4-1.5 ms), so it takes every k x k shape. 1x1
// convolutions stay one plain GEMM.
//
// Winograd F(2x2, 3x3) takes the 3x3 stride-1 convolutions forward and backward to the
// input where both channel counts are at least 8 and the batch has at least 512 output
// tiles (2x2 pixels): bench_conv2d, 2 threads, cnn3 at batch 64, 1.3-1.6x faster than
// direct at every such conv (block1_conv2 forward 7.50 -> 5.84 ms, block3_conv2 7.41 ->
// 4.62 ms). Its kernel transform (16 x C x OC values, per call) does not pay for few tiles:
// at batch 1 the 24x24 and 12x12 convs (144 and 36 tiles) were 1.2-3.5x slower, the 48x48
// one (576 tiles) 1.15x faster. With one input channel (cnn3's first conv) the direct
// kernel is 5x faster forward.

namespace {
constexpr int kDirectBackwardMinChannels = 8;
constexpr int kWinogradMinChannels = 8;
constexpr int64_t kWinogradMinTiles = 512;
}  // namespace

bool conv2d_winograd_transformed_pays(const Conv2DGeometry& g, int oc) {
  return conv2d_winograd_covers(g) && g.c >= kWinogradMinChannels && oc >= kWinogradMinChannels;
}

namespace {
// With the kernel transformed on every call: only for enough tiles to pay for it.
bool winograd_pays(const Conv2DGeometry& g, int oc) {
  const int64_t tiles = int64_t(g.n) * ((g.oh + 1) / 2) * ((g.ow + 1) / 2);
  return conv2d_winograd_transformed_pays(g, oc) && tiles >= kWinogradMinTiles;
}
}  // namespace

bool conv2d_forward_uses_winograd(const Conv2DGeometry& g, int oc) {
  return !is_pointwise(g) && winograd_pays(g, oc);
}

void conv2d_forward(const Conv2DGeometry& g, int oc, const float* x, const float* kernel,
                    const float* bias, float* y) {
  if (is_pointwise(g)) return conv2d_forward_im2col(g, oc, x, kernel, bias, y);
  if (winograd_pays(g, oc)) return conv2d_forward_winograd(g, oc, x, kernel, bias, y);
  conv2d_forward_direct(g, oc, x, kernel, bias, y);
}

void conv2d_backward_input(const Conv2DGeometry& g, int oc, const float* dy,
                           const float* kernel, float* dx, bool accumulate) {
  if (winograd_pays(g, oc))
    return conv2d_backward_input_winograd(g, oc, dy, kernel, dx, accumulate);
  if (!is_pointwise(g) && conv2d_direct_covers_backward_input(g) &&
      g.c >= kDirectBackwardMinChannels)
    return conv2d_backward_input_direct(g, oc, dy, kernel, dx, accumulate);
  conv2d_backward_input_im2col(g, oc, dy, kernel, dx, accumulate);
}

void conv2d_backward_weights(const Conv2DGeometry& g, int oc, const float* x, const float* dy,
                             float* dkernel, float* dbias) {
  if (!is_pointwise(g))
    return conv2d_backward_weights_direct(g, oc, x, dy, dkernel, dbias);
  conv2d_backward_weights_im2col(g, oc, x, dy, dkernel, dbias);
}

}  // namespace fer::kernels
