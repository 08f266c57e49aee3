// Depthwise 3x3 convolution (stride 1 or 2, NHWC) in Google Highway, compiled for every x86
// SIMD level and dispatched at run time; the semantics are those of depthwise_conv2d.h.
//
// One vector holds N consecutive channels of one pixel (channels are innermost in NHWC, and
// depthwise never mixes them), so every tap is one load and one FMA with no shuffles. The
// last, partial group of channels (C not a multiple of N) runs the same code with masked
// loads and stores. Work is split into rows of the image (n, row), contiguous ranges per
// thread; within a row, the loop over channel groups is outside the loop over columns, so
// the group's 9 kernel vectors (forward, backward to the input) or 9 gradient accumulators
// (backward to the weights) stay in registers for the whole row.
//
// Padding: a window row above or below the image reads a shared row of zeros instead
// (stride-1 backward to the input likewise for dy), so every row runs the same loop whose
// interior columns check nothing; only the first and last columns, whose windows leave
// the image sideways, skip taps -- chosen at compile time for the 'same'-padding cases.
//
// Loop order: at batch 1 and on small maps (cache-resident, few columns), a thread runs
// all its rows for one channel group before the next group, so the group's 9 kernel
// vectors (or 9 gradient sums) stay in registers for the whole call; otherwise row by
// row, all groups of a row together (see ForwardRowsS).
#include "kernels/depthwise_conv2d.h"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/depthwise_conv2d_hwy.cpp"
#include <hwy/foreach_target.h>  // re-includes this file once per SIMD target

#include <hwy/cache_control.h>
#include <hwy/highway.h>
#include "kernels/hwy_group-inl.h"

HWY_BEFORE_NAMESPACE();
namespace fer::kernels::HWY_NAMESPACE {
namespace dw_hwy {
namespace hn = hwy::HWY_NAMESPACE;

using D = hn::ScalableTag<float>;
using V = hn::Vec<D>;
using M = hn::Mask<D>;

// One group of channels (kernels/hwy_group-inl.h).
using simd::Group;

// The columns whose whole window lies inside the image: ow in [*lo, *hi), where
// iw0 = ow * S - pad_left >= 0 and iw0 + 2 < w.
template <int S>
HWY_INLINE void interior_columns(const Conv2DGeometry& g, int* lo, int* hi) {
  *lo = std::min((g.pad_left + S - 1) / S, g.ow);
  const int last = g.w - 3 + g.pad_left;  // largest ow * S allowed
  *hi = last < 0 ? *lo : std::max(*lo, std::min(last / S + 1, g.ow));
}

// Asks for `floats` floats from p into the cache, one request per 64-byte line. Within a
// row the channel groups are the outer loop, so each pass strides through memory C floats
// at a time; with the next row's new data requested in advance, a batch too large for the
// caches still streams from memory (without it, stride-2 layers with few columns and many
// channels ran slower than plain pixel-by-pixel loops).
HWY_INLINE void PrefetchRow(const float* p, int64_t floats) {
  for (int64_t i = 0; i < floats; i += 16) hwy::Prefetch(p + i);
}

// Whether the op's input and output together outgrow 1 MiB (one core's L2 here, half of
// two cores'), so that rows come from L3 or memory and PrefetchRow pays. When they fit (batch 1 and
// the small maps) the requests are pure overhead -- about 20% of the forward's time at
// batch 1 (perf) -- and are skipped.
HWY_INLINE bool Streams(const Conv2DGeometry& g) {
  const int64_t floats = int64_t(g.n) * g.c * (int64_t(g.h) * g.w + int64_t(g.oh) * g.ow);
  return floats * int64_t(sizeof(float)) > (int64_t{1} << 20);
}

// Whether a thread runs all its rows group by group (the kernel vectors or gradient sums
// held for the whole call) rather than row by row: when nothing streams and the rows are
// narrow, where reloading 9 kernel vectors per row costs most (1.5 extra loads per output
// vector on a 6x6 map). Wide rows stay row by row, where a row's input stays in L1 over
// its channel groups.
HWY_INLINE bool GroupByGroup(const Conv2DGeometry& g, int columns) {
  return !Streams(g) && columns <= 12;
}

// For the ops that walk output rows (forward, backward to the weights): requests the input
// rows that output row `row` + 1 adds to the window, and that row of `out` (y or dy).
template <int S>
HWY_INLINE void PrefetchNextOutputRow(const Conv2DGeometry& g, const float* x, const float* out,
                                      int64_t row) {
  const int64_t C = g.c;
  const int n = static_cast<int>(row / g.oh), oh = static_cast<int>(row % g.oh);
  const float* x_n = x + int64_t(n) * g.h * g.w * C;
  const int ih = (oh + 1) * S - g.pad_top + 3 - S;
  for (int i = std::max(ih, 0); i < std::min(ih + S, g.h); ++i)
    PrefetchRow(x_n + int64_t(i) * g.w * C, int64_t(g.w) * C);
  PrefetchRow(out + (row + 1) * g.ow * C, int64_t(g.ow) * C);
}

// ---- Forward ------------------------------------------------------------------------

// The three input rows the windows of output row `oh` of image x_n read; a row outside the
// image (padding) is `zeros`, a row of zeros as long as an image row, so that every row
// takes the same path and only the edge columns need care.
template <int S>
HWY_INLINE void WindowRowPointers(const Conv2DGeometry& g, const float* x_n, const float* zeros,
                                  int oh, const float** r) {
  const int ih0 = oh * S - g.pad_top;
  for (int kh = 0; kh < 3; ++kh) {
    const int ih = ih0 + kh;
    r[kh] = (ih >= 0 && ih < g.h) ? x_n + int64_t(ih) * g.w * g.c : zeros;
  }
}

// y for one column whose window covers only the kernel columns [KL, KH) (the rest falls in
// the padding), with the taps fixed at compile time.
template <int KL, int KH, bool kTail>
HWY_INLINE V ForwardEdgeTaps(const Group<kTail>& grp, const float* const* r, const V* k,
                             V acc, int64_t o, int64_t C) {
  HWY_UNROLL(3)
  for (int kh = 0; kh < 3; ++kh) {
    HWY_UNROLL(3)
    for (int kw = KL; kw < KH; ++kw)
      acc = hn::MulAdd(grp.Load(r[kh] + (o + kw * C)), k[kh * 3 + kw], acc);
  }
  return acc;
}

// y[ow] for an edge column (its window leaves the image on the left or right): the
// 'same'-padding cases have their own code, anything else (maps 1 or 2 pixels wide, odd
// paddings) loops over the kernel columns that exist.
template <int S, bool kTail>
HWY_INLINE V ForwardEdge(const Conv2DGeometry& g, const Group<kTail>& grp,
                         const float* const* r, const V* k, V acc, int ow) {
  const int64_t C = g.c;
  const int iw0 = ow * S - g.pad_left;
  const int kl = std::max(0, -iw0), kr = std::min(3, g.w - iw0);
  const int64_t o = int64_t(iw0) * C;  // may be negative: only taps kw >= kl are read
  if (kl == 1 && kr == 3) return ForwardEdgeTaps<1, 3>(grp, r, k, acc, o, C);
  if (kl == 0 && kr == 2) return ForwardEdgeTaps<0, 2>(grp, r, k, acc, o, C);
  if (kl == 0 && kr == 3) return ForwardEdgeTaps<0, 3>(grp, r, k, acc, o, C);
  // Unrolled with the bounds as tests, so that k is indexed by constants (an index known
  // only at run time would make the compiler keep the array in memory for the whole row).
  HWY_UNROLL(3)
  for (int kh = 0; kh < 3; ++kh) {
    HWY_UNROLL(3)
    for (int kw = 0; kw < 3; ++kw)
      if (kw >= kl && kw < kr)
        acc = hn::MulAdd(grp.Load(r[kh] + (o + kw * C)), k[kh * 3 + kw], acc);
  }
  return acc;
}

// One output row for one group of channels: r are the window rows and y_row the output
// row, offset to the group; k the group's 9 kernel vectors, b its bias; [lo, hi) the
// interior columns (interior_columns).
template <int S, bool kTail>
HWY_INLINE void ForwardRow(const Conv2DGeometry& g, const Group<kTail>& grp,
                           const float* const* r, const V* k, V b, float* y_row, int lo,
                           int hi) {
  const int64_t C = g.c;
  for (int ow = 0; ow < lo; ++ow) grp.Store(ForwardEdge<S>(g, grp, r, k, b, ow), y_row + ow * C);
  int ow = lo;
  if constexpr (S == 1) {
    // Two outputs at a time: columns ow and ow + 1 share two of their three input columns,
    // so 12 loads feed 18 FMAs instead of 18.
    for (; ow + 2 <= hi; ow += 2) {
      const int64_t o = int64_t(ow - g.pad_left) * C;
      V a0 = b, a1 = b, e0 = hn::Zero(grp.d), e1 = hn::Zero(grp.d);
      HWY_UNROLL(3)
      for (int kh = 0; kh < 3; ++kh) {
        const float* p = r[kh] + o;
        const V x0 = grp.Load(p), x1 = grp.Load(p + C), x2 = grp.Load(p + 2 * C),
                x3 = grp.Load(p + 3 * C);
        if (kh == 1) {
          e0 = hn::MulAdd(x0, k[3], e0), e1 = hn::MulAdd(x1, k[3], e1);
          e0 = hn::MulAdd(x1, k[4], e0), e1 = hn::MulAdd(x2, k[4], e1);
          e0 = hn::MulAdd(x2, k[5], e0), e1 = hn::MulAdd(x3, k[5], e1);
        } else {
          a0 = hn::MulAdd(x0, k[kh * 3], a0), a1 = hn::MulAdd(x1, k[kh * 3], a1);
          a0 = hn::MulAdd(x1, k[kh * 3 + 1], a0), a1 = hn::MulAdd(x2, k[kh * 3 + 1], a1);
          a0 = hn::MulAdd(x2, k[kh * 3 + 2], a0), a1 = hn::MulAdd(x3, k[kh * 3 + 2], a1);
        }
      }
      grp.Store(hn::Add(a0, e0), y_row + ow * C);
      grp.Store(hn::Add(a1, e1), y_row + (ow + 1) * C);
    }
  }
  for (; ow < hi; ++ow) {
    const int64_t o = int64_t(ow * S - g.pad_left) * C;
    const float* p0 = r[0] + o;
    const float* p1 = r[1] + o;
    const float* p2 = r[2] + o;
    // Two chains instead of one: 9 dependent FMAs would be 36+ cycles of latency.
    V a = hn::MulAdd(grp.Load(p0), k[0], b);
    V e = hn::Mul(grp.Load(p1), k[3]);
    a = hn::MulAdd(grp.Load(p0 + C), k[1], a);
    e = hn::MulAdd(grp.Load(p1 + C), k[4], e);
    a = hn::MulAdd(grp.Load(p0 + 2 * C), k[2], a);
    e = hn::MulAdd(grp.Load(p1 + 2 * C), k[5], e);
    a = hn::MulAdd(grp.Load(p2), k[6], a);
    e = hn::MulAdd(grp.Load(p2 + C), k[7], e);
    a = hn::MulAdd(grp.Load(p2 + 2 * C), k[8], a);
    grp.Store(hn::Add(a, e), y_row + ow * C);
  }
  for (int ow = std::max(lo, hi); ow < g.ow; ++ow)
    grp.Store(ForwardEdge<S>(g, grp, r, k, b, ow), y_row + ow * C);
}

// Output rows [row_begin, row_end) of the flattened (n, oh) rows for the channel group at
// c: the group's 9 kernel vectors and bias are loaded once, for all the rows.
template <int S, bool kTail>
HWY_INLINE void ForwardGroupRows(const Conv2DGeometry& g, const Group<kTail>& grp,
                                 const float* x, const float* kernel, const float* bias,
                                 const float* zeros, float* y, int64_t c, int64_t row_begin,
                                 int64_t row_end, int lo, int hi) {
  const int64_t C = g.c;
  V k[9];
  HWY_UNROLL(9)
  for (int i = 0; i < 9; ++i) k[i] = grp.Load(kernel + c + i * C);
  const V b = bias ? grp.Load(bias + c) : hn::Zero(grp.d);
  for (int64_t row = row_begin; row < row_end; ++row) {
    const int n = static_cast<int>(row / g.oh), oh = static_cast<int>(row % g.oh);
    const float* r[3];
    WindowRowPointers<S>(g, x + int64_t(n) * g.h * g.w * C, zeros, oh, r);
    for (auto& p : r) p += c;
    ForwardRow<S>(g, grp, r, k, b, y + row * g.ow * C + c, lo, hi);
  }
}

// Output rows [row_begin, row_end), in one of two orders:
//  - group by group, all the rows for one channel group, when the map is narrow (ow <= 12)
//    and in cache: the group's kernel vectors are loaded once per call instead of once per
//    row (on a 6x6 map those were 1.5 extra loads per output vector);
//  - otherwise row by row, all channel groups of a row before the next, so that a row's
//    input stays in L1 over its groups and, when streaming, the next row's data can be
//    requested while this one is computed.
// The loops over channel groups (full vectors, then the masked tail) are written out in
// each of the three ops' RowsS functions rather than shared through a lambda-taking
// driver: that version measured 2-27% slower at batch 1 (bench_depthwise, alternating
// runs), even with the lambdas forced inline.
template <int S>
void ForwardRowsS(const Conv2DGeometry& g, const float* x, const float* kernel,
                  const float* bias, const float* zeros, float* y, int64_t row_begin,
                  int64_t row_end) {
  const D d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const int64_t C = g.c;
  const Group<false> full{d, hn::FirstN(d, static_cast<size_t>(N)), static_cast<size_t>(N)};
  const Group<true> tail{d, hn::FirstN(d, static_cast<size_t>(C % N)), static_cast<size_t>(C % N)};
  int lo, hi;
  interior_columns<S>(g, &lo, &hi);
  const bool prefetch = Streams(g);
  if (GroupByGroup(g, g.ow)) {
    int64_t c = 0;
    for (; c + N <= C; c += N)
      ForwardGroupRows<S>(g, full, x, kernel, bias, zeros, y, c, row_begin, row_end, lo, hi);
    if (c < C)
      ForwardGroupRows<S>(g, tail, x, kernel, bias, zeros, y, c, row_begin, row_end, lo, hi);
    return;
  }
  for (int64_t row = row_begin; row < row_end; ++row) {
    if (prefetch && row + 1 < row_end) PrefetchNextOutputRow<S>(g, x, y, row);
    int64_t c = 0;
    for (; c + N <= C; c += N)
      ForwardGroupRows<S>(g, full, x, kernel, bias, zeros, y, c, row, row + 1, lo, hi);
    if (c < C) ForwardGroupRows<S>(g, tail, x, kernel, bias, zeros, y, c, row, row + 1, lo, hi);
  }
}

// ---- Backward to the input ----------------------------------------------------------
// A gather: input pixel (ih, iw) sums dy[oh, ow] * k[kh, kw] over the outputs whose window
// put tap (kh, kw) on it, oh * S - pad_top + kh = ih (likewise for columns). Each thread
// owns whole rows of dx, so threads never add into the same place.

// The taps of one input column with every tap checked.
template <int S, bool kTail>
HWY_INLINE V BackInputChecked(const Conv2DGeometry& g, const Group<kTail>& grp,
                              const float* const* r, const bool* rv, const V* k, V acc,
                              int iw) {
  HWY_UNROLL(3)
  for (int kh = 0; kh < 3; ++kh) {
    if (!rv[kh]) continue;
    HWY_UNROLL(3)
    for (int kw = 0; kw < 3; ++kw) {
      const int t = iw + g.pad_left - kw;
      if (t < 0 || t % S != 0 || t / S >= g.ow) continue;
      acc = hn::MulAdd(grp.Load(r[kh] + int64_t(t / S) * g.c), k[kh * 3 + kw], acc);
    }
  }
  return acc;
}

// The input columns [*lo, *hi) where every tap of the right parity lands on an existing
// output column, so that the loops over them check nothing.
template <int S>
HWY_INLINE void BackInputInterior(const Conv2DGeometry& g, int* lo, int* hi) {
  if constexpr (S == 1) {
    *lo = std::min(std::max(0, 2 - g.pad_left), g.w);
    *hi = std::max(*lo, std::min(g.w, g.ow - g.pad_left));
  } else {
    // Pairs (iw, iw + 1) with iw + pad_left even: iw takes kw = 0 and 2 (output columns
    // t and t - 1, t = (iw + pad_left) / 2), iw + 1 takes kw = 1 (column t). Needs
    // t >= 1, t < ow and iw + 1 < w. Rows: every valid kh has the parity of ih + pad_top.
    int l = std::max(0, 2 - g.pad_left);  // the first iw + pad_left that is even and >= 2
    if ((l + g.pad_left) & 1) ++l;
    l = std::min(l, g.w);
    int h = l;
    while (h + 1 < g.w && (h + g.pad_left) / 2 < g.ow) h += 2;  // whole pairs
    *lo = l;
    *hi = h;
  }
}

// One dx row (n, ih) for one group of channels: dy_n is image n of dy and dx_row the row,
// both offset to the group; k the group's kernel vectors. kAdd false: dx is overwritten,
// never read (a gradient buffer nobody wrote yet), and a row no window reached gets zeros.
template <int S, bool kAdd, bool kTail>
HWY_INLINE void BackInputRow(const Conv2DGeometry& g, const Group<kTail>& grp,
                             const float* dy_n, const float* zeros, const V* k, float* dx_row,
                             int ih, int lo, int hi) {
  const auto start = [&](const float* out) { return kAdd ? grp.Load(out) : hn::Zero(grp.d); };
  const int64_t C = g.c;
  // The dy rows whose kernel row kh lands on this row. With stride 2, half the kernel rows
  // land between output rows (rv false: skipped for the whole row); with stride 1 the only
  // missing rows are those past the edges, read as the row of zeros, so that every row
  // takes the unchecked interior loop.
  const float* r[3];
  bool rv[3];
  bool any = false;
  for (int kh = 0; kh < 3; ++kh) {
    const int t = ih + g.pad_top - kh;
    rv[kh] = t >= 0 && t % S == 0 && t / S < g.oh;
    any = any || rv[kh];
    r[kh] = rv[kh] ? dy_n + int64_t(t / S) * g.ow * C : zeros;
    if (S == 1) rv[kh] = true;
  }
  if (!any) {  // no window reached this input row
    if (!kAdd)
      for (int iw = 0; iw < g.w; ++iw) grp.Store(hn::Zero(grp.d), dx_row + iw * C);
    return;
  }
  for (int iw = 0; iw < lo; ++iw) {
    float* out = dx_row + iw * C;
    grp.Store(BackInputChecked<S>(g, grp, r, rv, k, start(out), iw), out);
  }
  if constexpr (S == 1) {
    for (int iw = lo; iw < hi; ++iw) {
      const int64_t o = int64_t(iw + g.pad_left) * C;  // output column for kw = 0
      const float* p0 = r[0] + o;
      const float* p1 = r[1] + o;
      const float* p2 = r[2] + o;
      float* out = dx_row + iw * C;
      V a = hn::MulAdd(grp.Load(p0), k[0], start(out));
      V e = hn::Mul(grp.Load(p1), k[3]);
      a = hn::MulAdd(grp.Load(p0 - C), k[1], a);
      e = hn::MulAdd(grp.Load(p1 - C), k[4], e);
      a = hn::MulAdd(grp.Load(p0 - 2 * C), k[2], a);
      e = hn::MulAdd(grp.Load(p1 - 2 * C), k[5], e);
      a = hn::MulAdd(grp.Load(p2), k[6], a);
      e = hn::MulAdd(grp.Load(p2 - C), k[7], e);
      a = hn::MulAdd(grp.Load(p2 - 2 * C), k[8], a);
      grp.Store(hn::Add(a, e), out);
    }
  } else {
    for (int iw = lo; iw < hi; iw += 2) {
      const int64_t o = int64_t((iw + g.pad_left) / 2) * C;  // output column t
      float* out0 = dx_row + iw * C;
      float* out1 = out0 + C;
      V a0 = start(out0), a1 = start(out1);
      HWY_UNROLL(3)
      for (int kh = 0; kh < 3; ++kh) {
        if (!rv[kh]) continue;  // the same for the whole row
        const float* p = r[kh] + o;
        const V at = grp.Load(p);
        a0 = hn::MulAdd(at, k[kh * 3 + 0], a0);
        a0 = hn::MulAdd(grp.Load(p - C), k[kh * 3 + 2], a0);
        a1 = hn::MulAdd(at, k[kh * 3 + 1], a1);
      }
      grp.Store(a0, out0);
      grp.Store(a1, out1);
    }
  }
  for (int iw = std::max(lo, hi); iw < g.w; ++iw) {
    float* out = dx_row + iw * C;
    grp.Store(BackInputChecked<S>(g, grp, r, rv, k, start(out), iw), out);
  }
}

// dx rows [row_begin, row_end) of the flattened (n, ih) rows for the channel group at c,
// with the group's kernel vectors loaded once.
template <int S, bool kAdd, bool kTail>
HWY_INLINE void BackInputGroupRows(const Conv2DGeometry& g, const Group<kTail>& grp,
                                   const float* dy, const float* kernel, const float* zeros,
                                   float* dx, int64_t c, int64_t row_begin, int64_t row_end,
                                   int lo, int hi) {
  const int64_t C = g.c;
  V k[9];
  HWY_UNROLL(9)
  for (int i = 0; i < 9; ++i) k[i] = grp.Load(kernel + c + i * C);
  for (int64_t row = row_begin; row < row_end; ++row) {
    const int n = static_cast<int>(row / g.h), ih = static_cast<int>(row % g.h);
    BackInputRow<S, kAdd>(g, grp, dy + int64_t(n) * g.oh * g.ow * C + c, zeros, k,
                          dx + row * g.w * C + c, ih, lo, hi);
  }
}

// Rows [row_begin, row_end), in the forward's two orders (ForwardRowsS).
template <int S, bool kAdd>
void BackInputRowsS(const Conv2DGeometry& g, const float* dy, const float* kernel,
                    const float* zeros, float* dx, int64_t row_begin, int64_t row_end) {
  const D d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const int64_t C = g.c;
  const Group<false> full{d, hn::FirstN(d, static_cast<size_t>(N)), static_cast<size_t>(N)};
  const Group<true> tail{d, hn::FirstN(d, static_cast<size_t>(C % N)), static_cast<size_t>(C % N)};
  int lo, hi;
  BackInputInterior<S>(g, &lo, &hi);
  const bool prefetch = Streams(g);
  if (GroupByGroup(g, g.w)) {
    int64_t c = 0;
    for (; c + N <= C; c += N)
      BackInputGroupRows<S, kAdd>(g, full, dy, kernel, zeros, dx, c, row_begin, row_end, lo, hi);
    if (c < C)
      BackInputGroupRows<S, kAdd>(g, tail, dy, kernel, zeros, dx, c, row_begin, row_end, lo, hi);
    return;
  }
  for (int64_t row = row_begin; row < row_end; ++row) {
    // The next dx row and the newest dy row it reads.
    if (prefetch && row + 1 < row_end) {
      const int n = static_cast<int>(row / g.h), ih = static_cast<int>(row % g.h);
      const int t = ih + 1 + g.pad_top;
      if (t % S == 0 && t / S < g.oh)
        PrefetchRow(dy + (int64_t(n) * g.oh + t / S) * g.ow * C, int64_t(g.ow) * C);
      PrefetchRow(dx + (row + 1) * g.w * C, int64_t(g.w) * C);
    }
    int64_t c = 0;
    for (; c + N <= C; c += N)
      BackInputGroupRows<S, kAdd>(g, full, dy, kernel, zeros, dx, c, row, row + 1, lo, hi);
    if (c < C)
      BackInputGroupRows<S, kAdd>(g, tail, dy, kernel, zeros, dx, c, row, row + 1, lo, hi);
  }
}

// ---- Backward to the weights --------------------------------------------------------
// The forward's taps again, each one accumulating x * dy instead of x * k: padding rows
// read the row of zeros (adding nothing), edge columns have compile-time taps.

// dk for one edge column whose window covers only the kernel columns [KL, KH).
template <int KL, int KH, bool kTail>
HWY_INLINE void BackWeightsEdgeTaps(const Group<kTail>& grp, const float* const* r, V dv,
                                    V* dk, int64_t o, int64_t C) {
  HWY_UNROLL(3)
  for (int kh = 0; kh < 3; ++kh) {
    HWY_UNROLL(3)
    for (int kw = KL; kw < KH; ++kw)
      dk[kh * 3 + kw] = hn::MulAdd(grp.Load(r[kh] + (o + kw * C)), dv, dk[kh * 3 + kw]);
  }
}

template <int S, bool kTail>
HWY_INLINE void BackWeightsEdge(const Conv2DGeometry& g, const Group<kTail>& grp,
                                const float* const* r, V dv, V* dk, int ow) {
  const int64_t C = g.c;
  const int iw0 = ow * S - g.pad_left;
  const int kl = std::max(0, -iw0), kr = std::min(3, g.w - iw0);
  const int64_t o = int64_t(iw0) * C;
  if (kl == 1 && kr == 3) return BackWeightsEdgeTaps<1, 3>(grp, r, dv, dk, o, C);
  if (kl == 0 && kr == 2) return BackWeightsEdgeTaps<0, 2>(grp, r, dv, dk, o, C);
  if (kl == 0 && kr == 3) return BackWeightsEdgeTaps<0, 3>(grp, r, dv, dk, o, C);
  HWY_UNROLL(3)
  for (int kh = 0; kh < 3; ++kh) {  // constant indexes into dk, as in ForwardEdge
    HWY_UNROLL(3)
    for (int kw = 0; kw < 3; ++kw)
      if (kw >= kl && kw < kr)
        dk[kh * 3 + kw] = hn::MulAdd(grp.Load(r[kh] + (o + kw * C)), dv, dk[kh * 3 + kw]);
  }
}

// Output rows [row_begin, row_end) for the channel group at c: dk[i] and db accumulate in
// registers over all the rows and are then added to the thread's partial sums `dk_part`
// (9 groups C apart) and `db_part` (either may be nullptr).
template <int S, bool kTail>
HWY_INLINE void BackWeightsGroupRows(const Conv2DGeometry& g, const Group<kTail>& grp,
                                     const float* x, const float* dy, const float* zeros,
                                     float* dk_part, float* db_part, int64_t c,
                                     int64_t row_begin, int64_t row_end, int lo, int hi) {
  const int64_t C = g.c;
  V db = hn::Zero(grp.d);
  if (!dk_part) {
    for (int64_t row = row_begin; row < row_end; ++row) {
      const float* dy_row = dy + row * g.ow * C + c;
      for (int ow = 0; ow < g.ow; ++ow) db = hn::Add(db, grp.Load(dy_row + ow * C));
    }
    grp.Store(hn::Add(grp.Load(db_part + c), db), db_part + c);
    return;
  }
  V dk[9];
  HWY_UNROLL(9)
  for (int i = 0; i < 9; ++i) dk[i] = hn::Zero(grp.d);
  for (int64_t row = row_begin; row < row_end; ++row) {
    const int n = static_cast<int>(row / g.oh), oh = static_cast<int>(row % g.oh);
    const float* r[3];
    WindowRowPointers<S>(g, x + int64_t(n) * g.h * g.w * C, zeros, oh, r);
    for (auto& p : r) p += c;
    const float* dy_row = dy + row * g.ow * C + c;
    for (int ow = 0; ow < lo; ++ow) {
      const V dv = grp.Load(dy_row + ow * C);
      db = hn::Add(db, dv);
      BackWeightsEdge<S>(g, grp, r, dv, dk, ow);
    }
    for (int ow = lo; ow < hi; ++ow) {  // interior: no checks
      const V dv = grp.Load(dy_row + ow * C);
      db = hn::Add(db, dv);
      const int64_t o = int64_t(ow * S - g.pad_left) * C;
      HWY_UNROLL(3)
      for (int kh = 0; kh < 3; ++kh) {
        const float* p = r[kh] + o;
        dk[kh * 3 + 0] = hn::MulAdd(grp.Load(p), dv, dk[kh * 3 + 0]);
        dk[kh * 3 + 1] = hn::MulAdd(grp.Load(p + C), dv, dk[kh * 3 + 1]);
        dk[kh * 3 + 2] = hn::MulAdd(grp.Load(p + 2 * C), dv, dk[kh * 3 + 2]);
      }
    }
    for (int ow = std::max(lo, hi); ow < g.ow; ++ow) {
      const V dv = grp.Load(dy_row + ow * C);
      db = hn::Add(db, dv);
      BackWeightsEdge<S>(g, grp, r, dv, dk, ow);
    }
  }
  HWY_UNROLL(9)
  for (int i = 0; i < 9; ++i) {
    float* p = dk_part + c + i * C;
    grp.Store(hn::Add(grp.Load(p), dk[i]), p);
  }
  if (db_part) grp.Store(hn::Add(grp.Load(db_part + c), db), db_part + c);
}

// Rows [row_begin, row_end), in the forward's two orders (ForwardRowsS); group by group
// also adds each group's sums to the partials once per call instead of once per row.
template <int S>
void BackWeightsRowsS(const Conv2DGeometry& g, const float* x, const float* dy,
                      const float* zeros, float* dk_part, float* db_part, int64_t row_begin,
                      int64_t row_end) {
  const D d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const int64_t C = g.c;
  const Group<false> full{d, hn::FirstN(d, static_cast<size_t>(N)), static_cast<size_t>(N)};
  const Group<true> tail{d, hn::FirstN(d, static_cast<size_t>(C % N)), static_cast<size_t>(C % N)};
  int lo, hi;
  interior_columns<S>(g, &lo, &hi);
  const bool prefetch = Streams(g);
  if (GroupByGroup(g, g.ow)) {
    int64_t c = 0;
    for (; c + N <= C; c += N)
      BackWeightsGroupRows<S>(g, full, x, dy, zeros, dk_part, db_part, c, row_begin, row_end,
                              lo, hi);
    if (c < C)
      BackWeightsGroupRows<S>(g, tail, x, dy, zeros, dk_part, db_part, c, row_begin, row_end,
                              lo, hi);
    return;
  }
  for (int64_t row = row_begin; row < row_end; ++row) {
    if (prefetch && row + 1 < row_end) PrefetchNextOutputRow<S>(g, x, dy, row);
    int64_t c = 0;
    for (; c + N <= C; c += N)
      BackWeightsGroupRows<S>(g, full, x, dy, zeros, dk_part, db_part, c, row, row + 1, lo, hi);
    if (c < C)
      BackWeightsGroupRows<S>(g, tail, x, dy, zeros, dk_part, db_part, c, row, row + 1, lo, hi);
  }
}

}  // namespace dw_hwy

// Entry points per target (stride 1 or 2; the caller checked the window is 3x3).
void DwForwardRows(const Conv2DGeometry& g, const float* x, const float* kernel,
                   const float* bias, const float* zeros, float* y, int64_t row_begin,
                   int64_t row_end) {
  if (g.stride_h == 1)
    dw_hwy::ForwardRowsS<1>(g, x, kernel, bias, zeros, y, row_begin, row_end);
  else
    dw_hwy::ForwardRowsS<2>(g, x, kernel, bias, zeros, y, row_begin, row_end);
}
void DwBackInputRows(const Conv2DGeometry& g, bool add, const float* dy, const float* kernel,
                     const float* zeros, float* dx, int64_t row_begin, int64_t row_end) {
  if (g.stride_h == 1) {
    if (add) dw_hwy::BackInputRowsS<1, true>(g, dy, kernel, zeros, dx, row_begin, row_end);
    else dw_hwy::BackInputRowsS<1, false>(g, dy, kernel, zeros, dx, row_begin, row_end);
  } else {
    if (add) dw_hwy::BackInputRowsS<2, true>(g, dy, kernel, zeros, dx, row_begin, row_end);
    else dw_hwy::BackInputRowsS<2, false>(g, dy, kernel, zeros, dx, row_begin, row_end);
  }
}
void DwBackWeightsRows(const Conv2DGeometry& g, const float* x, const float* dy,
                       const float* zeros, float* dk_part, float* db_part, int64_t row_begin,
                       int64_t row_end) {
  if (g.stride_h == 1)
    dw_hwy::BackWeightsRowsS<1>(g, x, dy, zeros, dk_part, db_part, row_begin, row_end);
  else
    dw_hwy::BackWeightsRowsS<2>(g, x, dy, zeros, dk_part, db_part, row_begin, row_end);
}
int64_t DwCompiledTarget() { return HWY_TARGET; }

}  // namespace fer::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace fer::kernels {

HWY_EXPORT(DwForwardRows);
HWY_EXPORT(DwBackInputRows);
HWY_EXPORT(DwBackWeightsRows);
HWY_EXPORT(DwCompiledTarget);

namespace {

// The Highway kernels cover 3x3 windows with the same stride 1 or 2 on both axes.
bool hwy_covers(const Conv2DGeometry& g) {
  return g.kh == 3 && g.kw == 3 && g.stride_h == g.stride_w &&
         (g.stride_h == 1 || g.stride_h == 2);
}

// Threads for `rows` rows of `pixels_per_row * c` floats: one below ~32K floats of work
// (forking costs more than it saves), never more than there are rows, and one inside an
// enclosing parallel region.
int thread_count(int64_t rows, int64_t floats_per_row) {
  if (omp_in_parallel()) return 1;
  if (rows * floats_per_row < (int64_t{1} << 15)) return 1;
  return static_cast<int>(std::min<int64_t>(omp_get_max_threads(), rows));
}

// `floats` zeros, read in place of the rows of padding above and below an image (the
// forward's window rows). One buffer per calling thread, grown when a wider row comes and
// then reused, so steady-state steps allocate nothing.
const float* zero_row(int64_t floats) {
  static thread_local std::vector<float> zeros;
  if (static_cast<int64_t>(zeros.size()) < floats) zeros.assign(static_cast<size_t>(floats), 0.f);
  return zeros.data();
}

// Contiguous share t of T of [0, rows).
void share(int64_t rows, int t, int T, int64_t* begin, int64_t* end) {
  *begin = rows * t / T;
  *end = rows * (t + 1) / T;
}

}  // namespace

void depthwise_conv2d_forward(const Conv2DGeometry& g, const float* x, const float* kernel,
                              const float* bias, float* y) {
  if (!hwy_covers(g)) return depthwise_conv2d_forward_loops(g, x, kernel, bias, y);
  const int64_t rows = int64_t(g.n) * g.oh;
  if (rows <= 0 || g.ow <= 0 || g.c <= 0) return;
  const float* zeros = zero_row(int64_t(g.w) * g.c);
  const int threads = thread_count(rows, int64_t(g.ow) * g.c);
  if (threads == 1) {  // no parallel region: at batch 1 its set-up is a visible cost
    HWY_DYNAMIC_DISPATCH(DwForwardRows)(g, x, kernel, bias, zeros, y, 0, rows);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    int64_t begin, end;
    share(rows, omp_get_thread_num(), omp_get_num_threads(), &begin, &end);
    if (begin < end)
      HWY_DYNAMIC_DISPATCH(DwForwardRows)(g, x, kernel, bias, zeros, y, begin, end);
  }
}

void depthwise_conv2d_backward_input(const Conv2DGeometry& g, const float* dy,
                                     const float* kernel, float* dx, bool accumulate) {
  const int64_t rows = int64_t(g.n) * g.h;
  if (!accumulate && (!hwy_covers(g) || g.oh <= 0 || g.ow <= 0)) {
    // Overwrite through the accumulating loops: zeros first.
    std::fill(dx, dx + std::max<int64_t>(rows, 0) * std::max(g.w, 0) * std::max(g.c, 0), 0.f);
    accumulate = true;
  }
  if (!hwy_covers(g)) return depthwise_conv2d_backward_input_loops(g, dy, kernel, dx);
  if (rows <= 0 || g.w <= 0 || g.c <= 0 || g.oh <= 0 || g.ow <= 0) return;
  const float* zeros = zero_row(int64_t(g.ow) * g.c);
  const int threads = thread_count(rows, int64_t(g.w) * g.c);
  if (threads == 1) {
    HWY_DYNAMIC_DISPATCH(DwBackInputRows)(g, accumulate, dy, kernel, zeros, dx, 0, rows);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    int64_t begin, end;
    share(rows, omp_get_thread_num(), omp_get_num_threads(), &begin, &end);
    if (begin < end)
      HWY_DYNAMIC_DISPATCH(DwBackInputRows)(g, accumulate, dy, kernel, zeros, dx, begin, end);
  }
}

void depthwise_conv2d_backward_weights(const Conv2DGeometry& g, const float* x,
                                       const float* dy, float* dkernel, float* dbias) {
  if (!dkernel && !dbias) return;
  if (!hwy_covers(g)) return depthwise_conv2d_backward_weights_loops(g, x, dy, dkernel, dbias);
  const int64_t rows = int64_t(g.n) * g.oh;
  if (rows <= 0 || g.ow <= 0 || g.c <= 0) return;
  const int64_t C = g.c;
  const float* zeros = zero_row(int64_t(g.w) * C);
  const int threads = thread_count(rows, int64_t(g.ow) * C);
  if (threads == 1) {  // straight into the caller's sums
    HWY_DYNAMIC_DISPATCH(DwBackWeightsRows)(g, x, dy, zeros, dkernel, dbias, 0, rows);
    return;
  }
  // Every row adds into the same 10 C sums, so each thread has its own [kernel | bias]
  // copy, added up at the end in thread order (deterministic for a given thread count).
  const int64_t stride = 10 * C;
  std::vector<float> partial(size_t(threads) * stride, 0.f);
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
    int64_t begin, end;
    share(rows, t, omp_get_num_threads(), &begin, &end);
    float* mine = partial.data() + t * stride;
    if (begin < end)
      HWY_DYNAMIC_DISPATCH(DwBackWeightsRows)(g, x, dy, zeros, dkernel ? mine : nullptr,
                                              dbias ? mine + 9 * C : nullptr, begin, end);
  }
  for (int t = 0; t < threads; ++t) {
    const float* p = partial.data() + t * stride;
    if (dkernel)
      for (int64_t i = 0; i < 9 * C; ++i) dkernel[i] += p[i];
    if (dbias)
      for (int64_t c = 0; c < C; ++c) dbias[c] += p[9 * C + c];
  }
}

std::vector<int64_t> depthwise_hwy_targets() { return hwy::SupportedAndGeneratedTargets(); }

void depthwise_hwy_force_target(int64_t target) { hwy::SetSupportedTargetsForTest(target); }

int64_t depthwise_hwy_dispatched_target() { return HWY_DYNAMIC_DISPATCH(DwCompiledTarget)(); }

const char* depthwise_hwy_target_name(int64_t target) { return hwy::TargetName(target); }

}  // namespace fer::kernels
#endif  // HWY_ONCE
