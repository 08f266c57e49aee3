#include "kernels/depthwise_conv2d.h"

#include <omp.h>

#include <cstdint>
#include <vector>

namespace fer::kernels {

namespace {

// Flat offsets into the NHWC tensors and the [KH, KW, C] kernel.
inline int64_t at_x(const Conv2DGeometry& g, int n, int h, int w) {
  return ((int64_t(n) * g.h + h) * g.w + w) * g.c;
}
inline int64_t at_y(const Conv2DGeometry& g, int n, int h, int w) {
  return ((int64_t(n) * g.oh + h) * g.ow + w) * g.c;
}
inline int64_t at_k(const Conv2DGeometry& g, int kh, int kw) {
  return (int64_t(kh) * g.kw + kw) * g.c;
}

}  // namespace

// ---- Reference ---------------------------------------------------------------------

void depthwise_conv2d_forward_ref(const Conv2DGeometry& g, const float* x, const float* kernel,
                                  const float* bias, float* y) {
  for (int n = 0; n < g.n; ++n)
    for (int oh = 0; oh < g.oh; ++oh)
      for (int ow = 0; ow < g.ow; ++ow)
        for (int c = 0; c < g.c; ++c) {
          float acc = bias ? bias[c] : 0.f;
          for (int kh = 0; kh < g.kh; ++kh) {
            const int ih = oh * g.stride_h - g.pad_top + kh;
            if (ih < 0 || ih >= g.h) continue;  // zero padding
            for (int kw = 0; kw < g.kw; ++kw) {
              const int iw = ow * g.stride_w - g.pad_left + kw;
              if (iw < 0 || iw >= g.w) continue;
              // Channel c only ever meets channel c of the kernel.
              acc += x[at_x(g, n, ih, iw) + c] * kernel[at_k(g, kh, kw) + c];
            }
          }
          y[at_y(g, n, oh, ow) + c] = acc;
        }
}

void depthwise_conv2d_backward_input_ref(const Conv2DGeometry& g, const float* dy,
                                         const float* kernel, float* dx) {
  for (int n = 0; n < g.n; ++n)
    for (int oh = 0; oh < g.oh; ++oh)
      for (int ow = 0; ow < g.ow; ++ow)
        for (int c = 0; c < g.c; ++c) {
          const float d = dy[at_y(g, n, oh, ow) + c];
          for (int kh = 0; kh < g.kh; ++kh) {
            const int ih = oh * g.stride_h - g.pad_top + kh;
            if (ih < 0 || ih >= g.h) continue;
            for (int kw = 0; kw < g.kw; ++kw) {
              const int iw = ow * g.stride_w - g.pad_left + kw;
              if (iw < 0 || iw >= g.w) continue;
              dx[at_x(g, n, ih, iw) + c] += d * kernel[at_k(g, kh, kw) + c];
            }
          }
        }
}

void depthwise_conv2d_backward_weights_ref(const Conv2DGeometry& g, const float* x,
                                           const float* dy, float* dkernel, float* dbias) {
  for (int n = 0; n < g.n; ++n)
    for (int oh = 0; oh < g.oh; ++oh)
      for (int ow = 0; ow < g.ow; ++ow)
        for (int c = 0; c < g.c; ++c) {
          const float d = dy[at_y(g, n, oh, ow) + c];
          if (dbias) dbias[c] += d;
          if (!dkernel) continue;
          for (int kh = 0; kh < g.kh; ++kh) {
            const int ih = oh * g.stride_h - g.pad_top + kh;
            if (ih < 0 || ih >= g.h) continue;
            for (int kw = 0; kw < g.kw; ++kw) {
              const int iw = ow * g.stride_w - g.pad_left + kw;
              if (iw < 0 || iw >= g.w) continue;
              dkernel[at_k(g, kh, kw) + c] += d * x[at_x(g, n, ih, iw) + c];
            }
          }
        }
}

// ---- Loops: channels innermost, threads over output (or input) rows -----------------
// Any window and stride. The public depthwise_conv2d_* (depthwise_conv2d_hwy.cpp) use
// these for windows other than 3x3 or strides other than 1 and 2.

void depthwise_conv2d_forward_loops(const Conv2DGeometry& g, const float* x,
                                    const float* kernel, const float* bias, float* y) {
  const int C = g.c;
#pragma omp parallel for collapse(2) schedule(static)
  for (int n = 0; n < g.n; ++n)
    for (int oh = 0; oh < g.oh; ++oh)
      for (int ow = 0; ow < g.ow; ++ow) {
        // Accumulate straight into the output pixel: C independent sums, one SIMD lane each.
        float* __restrict out = y + at_y(g, n, oh, ow);
        for (int c = 0; c < C; ++c) out[c] = bias ? bias[c] : 0.f;
        for (int kh = 0; kh < g.kh; ++kh) {
          const int ih = oh * g.stride_h - g.pad_top + kh;
          if (ih < 0 || ih >= g.h) continue;
          for (int kw = 0; kw < g.kw; ++kw) {
            const int iw = ow * g.stride_w - g.pad_left + kw;
            if (iw < 0 || iw >= g.w) continue;
            const float* __restrict in = x + at_x(g, n, ih, iw);
            const float* __restrict k = kernel + at_k(g, kh, kw);
            for (int c = 0; c < C; ++c) out[c] += in[c] * k[c];
          }
        }
      }
}

void depthwise_conv2d_backward_input_loops(const Conv2DGeometry& g, const float* dy,
                                           const float* kernel, float* dx) {
  const int C = g.c;
  // A gather over input pixels: each thread owns whole rows of dx, so no two threads add
  // into the same place (a scatter over output rows would collide when windows overlap).
#pragma omp parallel for collapse(2) schedule(static)
  for (int n = 0; n < g.n; ++n)
    for (int ih = 0; ih < g.h; ++ih)
      for (int kh = 0; kh < g.kh; ++kh) {
        // The output row that placed kernel row kh on input row ih: oh*SH - PT + kh = ih.
        const int th = ih + g.pad_top - kh;
        if (th < 0 || th % g.stride_h != 0) continue;
        const int oh = th / g.stride_h;
        if (oh >= g.oh) continue;
        for (int iw = 0; iw < g.w; ++iw) {
          float* __restrict out = dx + at_x(g, n, ih, iw);
          for (int kw = 0; kw < g.kw; ++kw) {
            const int tw = iw + g.pad_left - kw;
            if (tw < 0 || tw % g.stride_w != 0) continue;
            const int ow = tw / g.stride_w;
            if (ow >= g.ow) continue;
            const float* __restrict d = dy + at_y(g, n, oh, ow);
            const float* __restrict k = kernel + at_k(g, kh, kw);
            for (int c = 0; c < C; ++c) out[c] += d[c] * k[c];
          }
        }
      }
}

void depthwise_conv2d_backward_weights_loops(const Conv2DGeometry& g, const float* x,
                                             const float* dy, float* dkernel, float* dbias) {
  if (!dkernel && !dbias) return;
  const int C = g.c;
  const int64_t kernel_size = int64_t(g.kh) * g.kw * C;
  // Every output pixel adds into the same few weights, so each thread sums into its own
  // copy ([kernel | bias]) and the copies are added up at the end, in thread order, which
  // keeps the result deterministic for a given thread count.
  const int64_t stride = kernel_size + C;
  const int threads = omp_get_max_threads();
  std::vector<float> partial(size_t(threads) * stride, 0.f);
  const int64_t rows = int64_t(g.n) * g.oh;
#pragma omp parallel num_threads(threads)
  {
    float* mine = partial.data() + int64_t(omp_get_thread_num()) * stride;
    float* __restrict my_bias = mine + kernel_size;
#pragma omp for schedule(static)
    for (int64_t row = 0; row < rows; ++row) {
      const int n = static_cast<int>(row / g.oh);
      const int oh = static_cast<int>(row % g.oh);
      for (int ow = 0; ow < g.ow; ++ow) {
        const float* __restrict d = dy + at_y(g, n, oh, ow);
        for (int c = 0; c < C; ++c) my_bias[c] += d[c];
        if (!dkernel) continue;
        for (int kh = 0; kh < g.kh; ++kh) {
          const int ih = oh * g.stride_h - g.pad_top + kh;
          if (ih < 0 || ih >= g.h) continue;
          for (int kw = 0; kw < g.kw; ++kw) {
            const int iw = ow * g.stride_w - g.pad_left + kw;
            if (iw < 0 || iw >= g.w) continue;
            const float* __restrict in = x + at_x(g, n, ih, iw);
            float* __restrict dk = mine + at_k(g, kh, kw);
            for (int c = 0; c < C; ++c) dk[c] += in[c] * d[c];
          }
        }
      }
    }
  }
  for (int t = 0; t < threads; ++t) {
    const float* p = partial.data() + int64_t(t) * stride;
    if (dkernel)
      for (int64_t i = 0; i < kernel_size; ++i) dkernel[i] += p[i];
    if (dbias)
      for (int c = 0; c < C; ++c) dbias[c] += p[kernel_size + c];
  }
}

}  // namespace fer::kernels
