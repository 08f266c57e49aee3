// Direct convolution (no col buffer) in Google Highway, compiled for every x86 SIMD level
// and dispatched at run time; the semantics are those of kernels/conv2d.h.
//
// NHWC with the output channels in vector lanes: for one output pixel, y[pixel, o..o+N) is
// a sum over (kh, kw, c) of the broadcast input value x[tap pixel, c] times one vector of
// the kernel row kernel[kh, kw, c, o..o+N) -- contiguous in Keras's layout. A register
// block of R output pixels (consecutive columns of one output row) x J channel vectors
// keeps R * J accumulators in registers for the whole sum, so each step of the inner loop
// over c loads J kernel vectors and R broadcasts for R * J FMAs, and y is written once.
// The kernel is first repacked with its output channels padded to whole vectors (zeros),
// so the inner loop never needs a mask; only the y store of the last vector does.
//
// Every loop over r < R and j < J has a compile-time bound and is unrolled
// (HWY_UNROLL(16) covers R <= 12, J <= 4; GCC 12 takes no template argument there).
//
// Padding costs no branches in the inner loop: before the loop over c, each of the R
// pixels gets a pointer to its tap's input pixel, or to a row of zeros when the tap falls
// in the padding (or the pixel is past the end of the row in the last, partial block).
// Kernel rows that lie wholly outside the image are skipped.
//
// Backward to the input with stride 1 is the same computation: dx is the convolution of
// dy (channels OC) with the kernel flipped in space and with C and OC swapped, padded by
// KH - 1 - pad_top rows above and KW - 1 - pad_left columns to the left; it adds into dx.
//
// Threads split the output rows (n, oh) into contiguous ranges.
#include "kernels/conv2d.h"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "fer/error.h"
#include "fer/tensor.h"
#include "kernels/gemm.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/conv2d_direct_hwy.cpp"
#include <hwy/foreach_target.h>  // re-includes this file once per SIMD target

#include <hwy/highway.h>
#include "kernels/conv_block-inl.h"
#include "kernels/hwy_group-inl.h"

namespace fer::kernels {
#ifndef FER_CONV2D_DIRECT_PLAN_DEFINED
#define FER_CONV2D_DIRECT_PLAN_DEFINED
// One convolution as the direct kernel sees it (forward, or backward to the input
// rewritten as a forward convolution). `kernel` is packed [KH, KW, C, OCP] with OCP = OC
// rounded up to whole vectors, zeros in the padding lanes.
struct DirectConv {
  int n, h, w, c;          // input
  int oh, ow, oc, ocp;     // output; ocp: the packed kernel's row length
  int kh, kw, sh, sw, pt, pl;
  const float* x;
  const float* kernel;
  const float* bias;       // [OC] or nullptr
  bool accumulate;         // y += conv (bias ignored) instead of y = bias + conv
  float* y;
  const float* zeros;      // at least kw * c zeros
};

// The weight gradient: dk[kh, kw, c, o] += sum over output pixels p of
// x[tap (kh, kw) of p, c] * dy[p, o]. Each thread sums its rows of output pixels into its
// own dk_local, laid out [KH, KW, C, OCP] (output channels padded to whole vectors).
struct DirectConvWeights {
  int n, h, w, c;
  int oh, ow, oc, ocp;
  int kh, kw, sh, sw, pt, pl;
  const float* x;
  const float* dy;
};
#endif
}  // namespace fer::kernels

HWY_BEFORE_NAMESPACE();
namespace fer::kernels::HWY_NAMESPACE {
namespace conv_direct_hwy {
namespace hn = hwy::HWY_NAMESPACE;

using D = hn::ScalableTag<float>;
using V = hn::Vec<D>;
using simd::Group;
using conv_block::Accumulate;
using conv_block::kMaxJ;

// Forward blocks: kernels/conv_block-inl.h (one input pointer per pixel). The weight
// gradient walks one pointer per block, so it can keep more rows (input channels) in
// registers: kR.
template <int J> constexpr int kRPixels = conv_block::kRows<J>;
#if HWY_TARGET <= HWY_AVX3
template <int J> constexpr int kR = J == 4 ? 6 : J == 3 ? 8 : 12;
#else
template <int J> constexpr int kR = J == 2 ? 6 : 8;
#endif

// Output pixels [ow0, ow0 + count) of row `oh` of image n, channels [o0, o0 + J*N) of
// which only `last` lanes of the last vector are real (N when OC is a multiple of N).
template <int J, bool kTail>
HWY_INLINE void Block(const DirectConv& q, const float* const* xrow, int o0, float* y_px,
                      int ow0, int count, const Group<kTail>& last) {
  constexpr int R = kRPixels<J>;
  const D d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const Group<false> full{d, hn::FirstN(d, static_cast<size_t>(N)), static_cast<size_t>(N)};
  V acc[R][J];
  HWY_UNROLL(16)
  for (int r = 0; r < R; ++r) {
    HWY_UNROLL(16)
    for (int j = 0; j < J; ++j) {
      if (r >= count) {
        acc[r][j] = hn::Zero(d);
      } else if (q.accumulate) {
        const float* p = y_px + int64_t(r) * q.oc + j * N;
        acc[r][j] = (kTail && j == J - 1) ? last.Load(p) : full.Load(p);
      } else if (q.bias) {
        const float* p = q.bias + o0 + j * N;
        acc[r][j] = (kTail && j == J - 1) ? last.Load(p) : full.Load(p);
      } else {
        acc[r][j] = hn::Zero(d);
      }
    }
  }
  const int64_t C = q.c;
  // When every tap of the block's pixels lies inside the row, a pixel's KW taps are KW
  // consecutive input pixels: one contiguous run of KW * C values, multiplied by KW * C
  // consecutive kernel rows. One pointer per pixel per kernel row then, and a longer inner
  // loop (MobileNet's first conv, C = 3: 9 steps instead of 3 x 3).
  const bool inside = ow0 * q.sw - q.pl >= 0 && (ow0 + count - 1) * q.sw - q.pl + q.kw <= q.w;
  for (int kh = 0; kh < q.kh; ++kh) {
    if (!xrow[kh]) continue;  // this kernel row is in the padding for the whole row
    if (inside) {
      const float* p[R];
      HWY_UNROLL(16)
      for (int r = 0; r < R; ++r)
        p[r] = r < count ? xrow[kh] + int64_t((ow0 + r) * q.sw - q.pl) * C : q.zeros;
      Accumulate<R, J>(acc, p, q.kernel + int64_t(kh) * q.kw * C * q.ocp + o0, q.kw * C, q.ocp);
      continue;
    }
    for (int kw = 0; kw < q.kw; ++kw) {
      const float* p[R];
      HWY_UNROLL(16)
      for (int r = 0; r < R; ++r) {
        const int iw = (ow0 + r) * q.sw - q.pl + kw;
        p[r] = (r < count && iw >= 0 && iw < q.w) ? xrow[kh] + int64_t(iw) * C : q.zeros;
      }
      Accumulate<R, J>(acc, p, q.kernel + (int64_t(kh) * q.kw + kw) * C * q.ocp + o0, C,
                       q.ocp);
    }
  }
  HWY_UNROLL(16)
  for (int r = 0; r < R; ++r) {
    if (r >= count) break;
    HWY_UNROLL(16)
    for (int j = 0; j < J; ++j) {
      float* p = y_px + int64_t(r) * q.oc + j * N;
      if (kTail && j == J - 1) last.Store(acc[r][j], p);
      else full.Store(acc[r][j], p);
    }
  }
}

// Every block of one output row for channel vectors [o0, o0 + J*N).
template <int J, bool kTail>
HWY_INLINE void RowBlocks(const DirectConv& q, const float* const* xrow, float* y_row, int o0,
                          const Group<kTail>& last) {
  constexpr int R = kRPixels<J>;
  for (int ow0 = 0; ow0 < q.ow; ow0 += R)
    Block<J, kTail>(q, xrow, o0, y_row + int64_t(ow0) * q.oc + o0, ow0,
                    std::min(R, q.ow - ow0), last);
}

// Calls f(std::integral_constant<int, J>(), o0, group) for groups of J <= kMaxJ vectors
// of channels covering [0, channels), o0 the group's first channel: J is a compile-time
// constant (the register block's width) and the last group masks its last vector's tail.
template <class F>
HWY_INLINE void ForEachChannelGroup(int channels, const F& f) {
  const D d;
  const int N = static_cast<int>(hn::Lanes(d));
  const int rem = channels % N;
  const Group<false> full{d, hn::FirstN(d, static_cast<size_t>(N)), static_cast<size_t>(N)};
  const Group<true> tail{d, hn::FirstN(d, static_cast<size_t>(rem)), static_cast<size_t>(rem)};
  const int vectors = (channels + N - 1) / N;
  for (int v0 = 0; v0 < vectors; v0 += kMaxJ) {
    const int j = std::min(kMaxJ, vectors - v0);
    const auto with_width = [&](const auto& group) {
      switch (j) {
        case 1: return f(std::integral_constant<int, 1>(), v0 * N, group);
        case 2: return f(std::integral_constant<int, 2>(), v0 * N, group);
#if HWY_TARGET <= HWY_AVX3
        case 3: return f(std::integral_constant<int, 3>(), v0 * N, group);
        case 4: return f(std::integral_constant<int, 4>(), v0 * N, group);
#endif
      }
    };
    if (rem != 0 && v0 + j == vectors) with_width(tail);
    else with_width(full);
  }
}

void Rows(const DirectConv& q, int64_t row_begin, int64_t row_end) {
  std::vector<const float*> xrow(q.kh);
  for (int64_t row = row_begin; row < row_end; ++row) {
    const int n = static_cast<int>(row / q.oh), oh = static_cast<int>(row % q.oh);
    const float* x_n = q.x + int64_t(n) * q.h * q.w * q.c;
    bool any = false;
    for (int kh = 0; kh < q.kh; ++kh) {
      const int ih = oh * q.sh - q.pt + kh;
      xrow[kh] = (ih >= 0 && ih < q.h) ? x_n + int64_t(ih) * q.w * q.c : nullptr;
      any = any || xrow[kh];
    }
    float* y_row = q.y + row * q.ow * q.oc;
    if (!any && q.accumulate) continue;  // nothing to add (a fully padded row)
    ForEachChannelGroup(q.oc, [&](auto width, int o0, const auto& group) {
      RowBlocks<decltype(width)::value>(q, xrow.data(), y_row, o0, group);
    });
  }
}

// ---- Weight gradient -----------------------------------------------------------------
// For one tap (kh, kw) and a chunk of output rows, the output pixels whose tap lies inside
// the image contribute x[ih, iw, c] * dy[oh, ow, o] to dk[kh, kw, c, o]. A block of R input
// channels x J output-channel vectors stays in registers over all those pixels: per pixel,
// J loads of dy and R broadcasts of x for R * J FMAs; dk is loaded and stored once per
// chunk, which holds several rows so that short rows (12 pixels) still amortize that.
// A channel block shorter than R (kChanTail) repeats its last channel in the spare
// accumulators and does not store them.
struct TapRows {
  const float* const* x;   // per row: the input pixel under output column ow_lo, channel 0
  const float* const* dy;  // per row: dy at output column ow_lo, channel 0
  int rows;
  int pixels;              // ow_hi - ow_lo
  int channels;            // input values per pixel: C, or KW * C for fused taps
  int64_t step;            // floats from one output column's input to the next: SW * C
};

template <int J, bool kTail, bool kChanTail>
HWY_INLINE void WeightBlock(const DirectConvWeights& q, const TapRows& t, int c0, int count,
                            int o0, float* dk_tap, const Group<kTail>& last) {
  constexpr int R = kR<J>;
  const D d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const int64_t step = t.step;
  int off[R];
  HWY_UNROLL(16)
  for (int r = 0; r < R; ++r) off[r] = kChanTail ? std::min(r, count - 1) : r;
  V acc[R][J];
  HWY_UNROLL(16)
  for (int r = 0; r < R; ++r) {
    HWY_UNROLL(16)
    for (int j = 0; j < J; ++j)
      acc[r][j] = hn::LoadU(d, dk_tap + int64_t(c0 + off[r]) * q.ocp + o0 + j * N);
  }
  for (int i = 0; i < t.rows; ++i) {
    const float* xp = t.x[i] + c0;
    const float* dp = t.dy[i] + o0;
    for (int p = 0; p < t.pixels; ++p, xp += step, dp += q.oc) {
      V dv[J];
      HWY_UNROLL(16)
      for (int j = 0; j < J; ++j)
        dv[j] = (kTail && j == J - 1) ? last.Load(dp + j * N) : hn::LoadU(d, dp + j * N);
      HWY_UNROLL(16)
      for (int r = 0; r < R; ++r) {
        const V xb = hn::Set(d, xp[kChanTail ? off[r] : r]);
        HWY_UNROLL(16)
        for (int j = 0; j < J; ++j) acc[r][j] = hn::MulAdd(xb, dv[j], acc[r][j]);
      }
    }
  }
  HWY_UNROLL(16)
  for (int r = 0; r < R; ++r) {
    if (kChanTail && r >= count) break;
    HWY_UNROLL(16)
    for (int j = 0; j < J; ++j)
      hn::StoreU(acc[r][j], d, dk_tap + int64_t(c0 + r) * q.ocp + o0 + j * N);
  }
}

// All channel blocks of one tap and row chunk, output-channel vectors [o0, o0 + J*N).
template <int J, bool kTail>
HWY_INLINE void WeightTap(const DirectConvWeights& q, const TapRows& t, int o0, float* dk_tap,
                          const Group<kTail>& last) {
  constexpr int R = kR<J>;
  int c0 = 0;
  for (; c0 + R <= t.channels; c0 += R)
    WeightBlock<J, kTail, false>(q, t, c0, R, o0, dk_tap, last);
  if (c0 < t.channels)
    WeightBlock<J, kTail, true>(q, t, c0, t.channels - c0, o0, dk_tap, last);
}

// Taps fused into one when KW * C is at most this (see WeightRows).
constexpr int kFuseTapsMaxValues = 24;

void WeightRows(const DirectConvWeights& q, int64_t row_begin, int64_t row_end, float* dk) {
  // Rows per chunk: their dy and input rows together about 32 KB (L1-sized).
  const int64_t row_bytes = (int64_t(q.ow) * q.oc + int64_t(q.w) * q.c) * 4;
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(64, (32 << 10) / row_bytes));
  std::vector<const float*> row_x(chunk), tap_x(chunk), row_dy(chunk), tap_dy(chunk);
  for (int64_t r0 = row_begin; r0 < row_end; r0 += chunk) {
    const int64_t r1 = std::min(row_end, r0 + chunk);
    for (int kh = 0; kh < q.kh; ++kh) {
      // The rows of the chunk whose input row under kernel row kh is inside the image.
      int rows = 0;
      for (int64_t row = r0; row < r1; ++row) {
        const int n = static_cast<int>(row / q.oh), oh = static_cast<int>(row % q.oh);
        const int ih = oh * q.sh - q.pt + kh;
        if (ih < 0 || ih >= q.h) continue;
        row_x[rows] = q.x + (int64_t(n) * q.h + ih) * q.w * q.c;
        row_dy[rows] = q.dy + row * q.ow * q.oc;
        ++rows;
      }
      if (rows == 0) continue;
      // Output columns [lo, hi) of taps kw, input pixels iw = ow * sw - pl + kw, as one
      // TapRows over `channels` values per pixel, summed into dk rows from dk_tap on.
      const auto sum_tap = [&](int lo, int hi, int kw, int channels, float* dk_tap) {
        if (lo >= hi) return;
        for (int i = 0; i < rows; ++i) {
          tap_x[i] = row_x[i] + (int64_t(lo) * q.sw - q.pl + kw) * q.c;
          tap_dy[i] = row_dy[i] + int64_t(lo) * q.oc;
        }
        const TapRows t{tap_x.data(), tap_dy.data(), rows, hi - lo, channels,
                        int64_t(q.sw) * q.c};
        ForEachChannelGroup(q.oc, [&](auto width, int o0, const auto& group) {
          WeightTap<decltype(width)::value>(q, t, o0, dk_tap, group);
        });
      };
      // Few input channels (MobileNet's first conv: C = 3) leave most of a channel block's
      // accumulators idle. Where all KW taps of a column lie inside the row, they are KW
      // consecutive input pixels -- KW * C contiguous values -- and the kernel rows
      // (kh, 0..KW-1, c) are contiguous too: one tap of KW * C channels, [mid_lo, mid_hi).
      int mid_lo = 0, mid_hi = 0;
      if (q.kw > 1 && q.kw * q.c <= kFuseTapsMaxValues) {
        mid_lo = std::min((q.pl + q.sw - 1) / q.sw, q.ow);
        const int last = q.w - q.kw + q.pl;  // largest ow * sw allowed
        mid_hi = last < 0 ? mid_lo : std::max(mid_lo, std::min(q.ow, last / q.sw + 1));
        sum_tap(mid_lo, mid_hi, 0, q.kw * q.c, dk + int64_t(kh) * q.kw * q.c * q.ocp);
      }
      for (int kw = 0; kw < q.kw; ++kw) {
        // Output columns whose input column iw = ow * sw - pl + kw is inside [0, W).
        const int first = kw - q.pl;  // iw of ow = 0
        const int ow_lo = first >= 0 ? 0 : (-first + q.sw - 1) / q.sw;
        const int ow_hi = q.w - 1 - first < 0 ? 0 : std::min(q.ow, (q.w - 1 - first) / q.sw + 1);
        float* dk_tap = dk + (int64_t(kh) * q.kw + kw) * q.c * q.ocp;
        if (mid_lo >= mid_hi) {
          sum_tap(ow_lo, ow_hi, kw, q.c, dk_tap);
        } else {  // the columns left and right of the fused ones
          sum_tap(ow_lo, std::min(ow_hi, mid_lo), kw, q.c, dk_tap);
          sum_tap(std::max(ow_lo, mid_hi), ow_hi, kw, q.c, dk_tap);
        }
      }
    }
  }
}

}  // namespace conv_direct_hwy

void ConvDirectWeightRows(const DirectConvWeights& q, int64_t row_begin, int64_t row_end,
                          float* dk) {
  conv_direct_hwy::WeightRows(q, row_begin, row_end, dk);
}

void ConvDirectRows(const DirectConv& q, int64_t row_begin, int64_t row_end) {
  conv_direct_hwy::Rows(q, row_begin, row_end);
}
int64_t ConvDirectLanes() { return static_cast<int64_t>(hwy::HWY_NAMESPACE::Lanes(conv_direct_hwy::D())); }
int64_t ConvDirectCompiledTarget() { return HWY_TARGET; }

}  // namespace fer::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace fer::kernels {

HWY_EXPORT(ConvDirectRows);
HWY_EXPORT(ConvDirectWeightRows);
HWY_EXPORT(ConvDirectLanes);
HWY_EXPORT(ConvDirectCompiledTarget);

namespace {

// Threads as in depthwise_conv2d_hwy.cpp: one for small work or inside a parallel region.
int thread_count(int64_t rows, int64_t work_per_row) {
  if (omp_in_parallel()) return 1;
  if (rows * work_per_row < (int64_t{1} << 15)) return 1;
  return static_cast<int>(std::min<int64_t>(omp_get_max_threads(), rows));
}

void run(const DirectConv& q) {
  const int64_t rows = int64_t(q.n) * q.oh;
  const int threads = thread_count(rows, int64_t(q.ow) * q.oc * q.kh * q.kw * q.c / 16);
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), T = omp_get_num_threads();
    const int64_t begin = rows * t / T, end = rows * (t + 1) / T;
    if (begin < end) HWY_DYNAMIC_DISPATCH(ConvDirectRows)(q, begin, end);
  }
}

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

}  // namespace

void conv2d_forward_direct(const Conv2DGeometry& g, int oc, const float* x,
                           const float* kernel, const float* bias, float* y) {
  if (g.n <= 0 || g.oh <= 0 || g.ow <= 0 || oc <= 0) return;
  const int64_t ocp = round_up(oc, HWY_DYNAMIC_DISPATCH(ConvDirectLanes)());
  const int64_t taps_c = int64_t(g.kh) * g.kw * g.c;
  // Packed [KH*KW*C, OCP]: the same rows, padded with zero lanes.
  auto packed = AlignedBuffer::uninitialized(taps_c * ocp);
  for (int64_t i = 0; i < taps_c; ++i) {
    float* dst = packed.data() + i * ocp;
    std::copy(kernel + i * oc, kernel + (i + 1) * oc, dst);
    std::fill(dst + oc, dst + ocp, 0.f);
  }
  std::vector<float> zeros(std::max(g.kw * g.c, 1), 0.f);
  DirectConv q{g.n, g.h, g.w, g.c, g.oh, g.ow, oc, static_cast<int>(ocp), g.kh, g.kw,
               g.stride_h, g.stride_w, g.pad_top, g.pad_left, x, packed.data(), bias,
               false, y, zeros.data()};
  run(q);
}

bool conv2d_direct_covers_backward_input(const Conv2DGeometry& g) {
  return g.stride_h == 1 && g.stride_w == 1;
}

void conv2d_backward_input_direct(const Conv2DGeometry& g, int oc, const float* dy,
                                  const float* kernel, float* dx, bool accumulate) {
  FER_CHECK(conv2d_direct_covers_backward_input(g),
            "conv2d_backward_input_direct: stride 1 only");
  if (g.n <= 0 || g.h <= 0 || g.w <= 0 || g.c <= 0) return;  // dx is empty
  if (g.oh <= 0 || g.ow <= 0 || oc <= 0) {  // nothing reaches dx
    if (!accumulate) std::fill(dx, dx + int64_t(g.n) * g.h * g.w * g.c, 0.f);
    return;
  }
  // dx[ih, iw, c] += sum_{kh,kw,o} dy[ih + pt - kh, iw + pl - kw, o] * k[kh, kw, c, o]:
  // with kh' = KH-1-kh, dy row ih - (KH-1-pt) + kh' -- a forward convolution of dy by
  // k'[kh', kw', o, c] = k[KH-1-kh', KW-1-kw', c, o] with padding KH-1-pt, KW-1-pl.
  const int64_t cp = round_up(g.c, HWY_DYNAMIC_DISPATCH(ConvDirectLanes)());
  auto packed = AlignedBuffer::uninitialized(int64_t(g.kh) * g.kw * oc * cp);
  for (int kh = 0; kh < g.kh; ++kh)
    for (int kw = 0; kw < g.kw; ++kw) {
      const float* src = kernel + ((int64_t(g.kh - 1 - kh) * g.kw + (g.kw - 1 - kw)) * g.c) * oc;
      float* dst = packed.data() + (int64_t(kh) * g.kw + kw) * oc * cp;
      for (int o = 0; o < oc; ++o) {
        for (int c = 0; c < g.c; ++c) dst[int64_t(o) * cp + c] = src[int64_t(c) * oc + o];
        std::fill(dst + int64_t(o) * cp + g.c, dst + int64_t(o + 1) * cp, 0.f);
      }
    }
  std::vector<float> zeros(std::max(g.kw * oc, 1), 0.f);
  DirectConv q{g.n, g.oh, g.ow, oc, g.h, g.w, g.c, static_cast<int>(cp), g.kh, g.kw,
               1, 1, g.kh - 1 - g.pad_top, g.kw - 1 - g.pad_left, dy, packed.data(), nullptr,
               accumulate, dx, zeros.data()};
  run(q);
}

void conv2d_backward_weights_direct(const Conv2DGeometry& g, int oc, const float* x,
                                    const float* dy, float* dkernel, float* dbias) {
  if (dbias) add_column_sums(g.n * g.oh * g.ow, oc, dy, dbias);
  if (!dkernel || g.n <= 0 || g.oh <= 0 || g.ow <= 0 || oc <= 0 || g.c <= 0) return;
  const int64_t ocp = round_up(oc, HWY_DYNAMIC_DISPATCH(ConvDirectLanes)());
  const int64_t taps_c = int64_t(g.kh) * g.kw * g.c;
  const int64_t rows = int64_t(g.n) * g.oh;
  const int threads = thread_count(rows, int64_t(g.ow) * oc * taps_c / 16);
  // One zeroed [KH*KW*C, OCP] sum per thread, added into dkernel at the end (fixed order:
  // the result does not depend on timing).
  auto partial = AlignedBuffer::uninitialized(threads * taps_c * ocp);
  DirectConvWeights q{g.n, g.h, g.w, g.c, g.oh, g.ow, oc, static_cast<int>(ocp), g.kh, g.kw,
                      g.stride_h, g.stride_w, g.pad_top, g.pad_left, x, dy};
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), T = omp_get_num_threads();
    float* dk = partial.data() + t * taps_c * ocp;
    std::fill(dk, dk + taps_c * ocp, 0.f);
    const int64_t begin = rows * t / T, end = rows * (t + 1) / T;
    if (begin < end) HWY_DYNAMIC_DISPATCH(ConvDirectWeightRows)(q, begin, end, dk);
  }
  for (int t = 0; t < threads; ++t) {
    const float* dk = partial.data() + t * taps_c * ocp;
    for (int64_t i = 0; i < taps_c; ++i)
      for (int o = 0; o < oc; ++o) dkernel[i * oc + o] += dk[i * ocp + o];
  }
}

std::vector<int64_t> conv2d_direct_hwy_targets() { return hwy::SupportedAndGeneratedTargets(); }

void conv2d_direct_hwy_force_target(int64_t target) { hwy::SetSupportedTargetsForTest(target); }

int64_t conv2d_direct_hwy_dispatched_target() {
  return HWY_DYNAMIC_DISPATCH(ConvDirectCompiledTarget)();
}

const char* conv2d_direct_hwy_target_name(int64_t target) { return hwy::TargetName(target); }

}  // namespace fer::kernels
#endif  // HWY_ONCE
