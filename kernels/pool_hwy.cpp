// Pooling (kernels/pool.h) in Google Highway, compiled for every x86 SIMD level and
// dispatched at run time: max, average and global average pooling, forward and backward.
//
// One vector holds N consecutive channels of one pixel (channels are innermost in NHWC and
// pooling never mixes them), so a window cell is one load. The last, partial group of
// channels (C not a multiple of N: 1, 3, 17, ...) runs the same code with masked loads and
// stores (kernels/hwy_group-inl.h). For each output pixel the loop over channel groups is
// outside the loop over the window's cells, so a group's running max, argmax or sum stays
// in registers.
//
// Same results as the `_ref` loops, bit for bit, on every target:
// - each lane does the reference's arithmetic for its channel in the reference's order:
//   the window is scanned row by row, a max keeps the first of equal values (x > best, a
//   compare and a select rather than a max instruction, which would keep the second of
//   +0 / -0 and treat NaN differently), a sum starts at 0 and adds the cells in scan
//   order, and the mean divides by the count (not a multiply by its reciprocal);
// - the backward functions add into dx output pixel by output pixel in the reference's
//   order, so a cell that several overlapping windows feed sums them in the same order.
//   The max pool backward finds each channel's winner (the ordinal of its cell in the
//   window, kept as a float) in a first pass over the window, then adds dy into the
//   window's cells with the winner's lanes selected, leaving the other lanes' bits alone.
//
// Threads: the forward functions split the output rows (image, row) into one contiguous
// range per thread. The backward ones do too when the windows of different output rows
// share no input row (stride >= pool height: cnn3's 2x2/2 pools); when they overlap
// (3x3/2), two threads would add into the same dx rows, so they split by whole images,
// and a batch of one runs on one thread. Global pooling splits by images.
#include "kernels/pool.h"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/pool_hwy.cpp"
#include <hwy/foreach_target.h>  // re-includes this file once per SIMD target

#include <hwy/highway.h>
#include "kernels/hwy_group-inl.h"

// Target-independent definitions, seen once.
#ifndef FER_KERNELS_POOL_HWY_SHARED
#define FER_KERNELS_POOL_HWY_SHARED
namespace fer::kernels::pool_detail {

// The window of output pixel (oh, ow) clipped to the image: rows [h0, h1), cols [w0, w1)
// (as in pool.cpp: padded cells never win a max and are not counted in an average).
struct Window {
  int h0, h1, w0, w1;
  int count() const { return (h1 - h0) * (w1 - w0); }
};

inline Window window_at(const Conv2DGeometry& g, int oh, int ow) {
  const int top = oh * g.stride_h - g.pad_top;
  const int left = ow * g.stride_w - g.pad_left;
  return {std::max(top, 0), std::min(top + g.kh, g.h), std::max(left, 0),
          std::min(left + g.kw, g.w)};
}

}  // namespace fer::kernels::pool_detail
#endif  // FER_KERNELS_POOL_HWY_SHARED

HWY_BEFORE_NAMESPACE();
namespace fer::kernels::HWY_NAMESPACE {
namespace pool_hwy {
namespace hn = hwy::HWY_NAMESPACE;
using pool_detail::Window;
using pool_detail::window_at;

using D = hn::ScalableTag<float>;
using V = hn::Vec<D>;
using M = hn::Mask<D>;

// One group of channels (kernels/hwy_group-inl.h).
using simd::Group;

// Calls f(group, ch) for every group of channels of a pixel: full vectors, then the
// masked tail group when c is not a multiple of the vector width.
template <class F>
HWY_INLINE void ForGroups(int c, const F& f) {
  const D d;
  const int N = static_cast<int>(hn::Lanes(d));
  const Group<false> full{d, hn::FirstN(d, size_t(N)), size_t(N)};
  int ch = 0;
  for (; ch + N <= c; ch += N) f(full, ch);
  if (ch < c) {
    const Group<true> tail{d, hn::FirstN(d, size_t(c - ch)), size_t(c - ch)};
    f(tail, ch);
  }
}

// Calls f(p, j) for the window's cells in scan order: p points at the cell's channel ch
// in image a_n (of x or dx), j is the cell's ordinal in the (clipped) window.
template <class T, class F>
HWY_INLINE void ForCells(const Conv2DGeometry& g, const Window& win, T* a_n, int ch,
                         const F& f) {
  int j = 0;
  for (int ih = win.h0; ih < win.h1; ++ih) {
    T* row = a_n + (int64_t(ih) * g.w) * g.c + ch;
    for (int iw = win.w0; iw < win.w1; ++iw) f(row + int64_t(iw) * g.c, j++);
  }
}

// Output rows [begin, end) of the batch, row r being row r % oh of image r / oh: calls
// f(n, oh, ow, window) for each of their pixels in order. A window wholly in the padding
// would have no cell to start from; make_geometry never makes one, and such a pixel is
// skipped (its output left unwritten).
template <class F>
HWY_INLINE void ForPixels(const Conv2DGeometry& g, int64_t begin, int64_t end, const F& f) {
  for (int64_t r = begin; r < end; ++r) {
    const int n = static_cast<int>(r / g.oh), oh = static_cast<int>(r % g.oh);
    for (int ow = 0; ow < g.ow; ++ow) {
      const Window win = window_at(g, oh, ow);
      if (win.h0 < win.h1 && win.w0 < win.w1) f(n, oh, ow, win);
    }
  }
}

inline int64_t image_size(const Conv2DGeometry& g) { return int64_t(g.h) * g.w * g.c; }
inline int64_t out_at(const Conv2DGeometry& g, int n, int oh, int ow) {
  return ((int64_t(n) * g.oh + oh) * g.ow + ow) * g.c;
}

void MaxForward(const Conv2DGeometry& g, const float* x, float* y, int64_t begin,
                int64_t end) {
  ForPixels(g, begin, end, [&](int n, int oh, int ow, const Window& win) {
    const float* x_n = x + n * image_size(g);
    float* out = y + out_at(g, n, oh, ow);
    ForGroups(g.c, [&](const auto& grp, int ch) {
      // Starting from the first cell, which then compares against itself: no change.
      V best = grp.Load(x_n + (int64_t(win.h0) * g.w + win.w0) * g.c + ch);
      ForCells(g, win, x_n, ch, [&](const float* p, int) {
        const V v = grp.Load(p);
        best = hn::IfThenElse(hn::Gt(v, best), v, best);  // strict: the first max stays
      });
      grp.Store(best, out + ch);
    });
  });
}

void MaxBackward(const Conv2DGeometry& g, const float* x, const float* dy, float* dx,
                 int64_t begin, int64_t end) {
  ForPixels(g, begin, end, [&](int n, int oh, int ow, const Window& win) {
    const float* x_n = x + n * image_size(g);
    float* dx_n = dx + n * image_size(g);
    const float* d = dy + out_at(g, n, oh, ow);
    ForGroups(g.c, [&](const auto& grp, int ch) {
      // Pass 1: each lane's winner, as the ordinal of its cell (exact in a float).
      V best = grp.Load(x_n + (int64_t(win.h0) * g.w + win.w0) * g.c + ch);
      V winner = hn::Zero(grp.d);
      ForCells(g, win, x_n, ch, [&](const float* p, int j) {
        const V v = grp.Load(p);
        const M more = hn::Gt(v, best);
        best = hn::IfThenElse(more, v, best);
        winner = hn::IfThenElse(more, hn::Set(grp.d, float(j)), winner);
      });
      // Pass 2: dy goes to the winning cell's lanes; the other lanes keep their bits
      // (a select, not an add of 0, which would turn -0 into +0).
      const V grad = grp.Load(d + ch);
      ForCells(g, win, dx_n, ch, [&](float* p, int j) {
        const V old = grp.Load(p);
        const M won = hn::Eq(winner, hn::Set(grp.d, float(j)));
        grp.Store(hn::IfThenElse(won, hn::Add(old, grad), old), p);
      });
    });
  });
}

void AvgForward(const Conv2DGeometry& g, const float* x, float* y, int64_t begin,
                int64_t end) {
  ForPixels(g, begin, end, [&](int n, int oh, int ow, const Window& win) {
    const float* x_n = x + n * image_size(g);
    float* out = y + out_at(g, n, oh, ow);
    ForGroups(g.c, [&](const auto& grp, int ch) {
      V sum = hn::Zero(grp.d);
      ForCells(g, win, x_n, ch, [&](const float* p, int) { sum = hn::Add(sum, grp.Load(p)); });
      grp.Store(hn::Div(sum, hn::Set(grp.d, static_cast<float>(win.count()))), out + ch);
    });
  });
}

void AvgBackward(const Conv2DGeometry& g, const float* dy, float* dx, int64_t begin,
                 int64_t end) {
  ForPixels(g, begin, end, [&](int n, int oh, int ow, const Window& win) {
    float* dx_n = dx + n * image_size(g);
    const float* d = dy + out_at(g, n, oh, ow);
    ForGroups(g.c, [&](const auto& grp, int ch) {
      const V share = hn::Div(grp.Load(d + ch), hn::Set(grp.d, static_cast<float>(win.count())));
      ForCells(g, win, dx_n, ch, [&](float* p, int) {
        grp.Store(hn::Add(grp.Load(p), share), p);
      });
    });
  });
}

// Images [begin, end) of x [n, hw, c].
void GlobalForward(int hw, int c, const float* x, float* y, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    const float* x_i = x + i * hw * c;
    ForGroups(c, [&](const auto& grp, int ch) {
      V sum = hn::Zero(grp.d);
      for (int p = 0; p < hw; ++p) sum = hn::Add(sum, grp.Load(x_i + int64_t(p) * c + ch));
      grp.Store(hn::Div(sum, hn::Set(grp.d, static_cast<float>(hw))), y + i * c + ch);
    });
  }
}

void GlobalBackward(int hw, int c, const float* dy, float* dx, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    float* dx_i = dx + i * hw * c;
    ForGroups(c, [&](const auto& grp, int ch) {
      const V share = hn::Div(grp.Load(dy + i * c + ch), hn::Set(grp.d, static_cast<float>(hw)));
      for (int p = 0; p < hw; ++p) {
        float* q = dx_i + int64_t(p) * c + ch;
        grp.Store(hn::Add(grp.Load(q), share), q);
      }
    });
  }
}

}  // namespace pool_hwy

// Entry points per target.
void PoolMaxForwardRows(const Conv2DGeometry& g, const float* x, float* y, int64_t begin,
                        int64_t end) {
  pool_hwy::MaxForward(g, x, y, begin, end);
}
void PoolMaxBackwardRows(const Conv2DGeometry& g, const float* x, const float* dy, float* dx,
                         int64_t begin, int64_t end) {
  pool_hwy::MaxBackward(g, x, dy, dx, begin, end);
}
void PoolAvgForwardRows(const Conv2DGeometry& g, const float* x, float* y, int64_t begin,
                        int64_t end) {
  pool_hwy::AvgForward(g, x, y, begin, end);
}
void PoolAvgBackwardRows(const Conv2DGeometry& g, const float* dy, float* dx, int64_t begin,
                         int64_t end) {
  pool_hwy::AvgBackward(g, dy, dx, begin, end);
}
void PoolGlobalForwardImages(int hw, int c, const float* x, float* y, int64_t begin,
                             int64_t end) {
  pool_hwy::GlobalForward(hw, c, x, y, begin, end);
}
void PoolGlobalBackwardImages(int hw, int c, const float* dy, float* dx, int64_t begin,
                              int64_t end) {
  pool_hwy::GlobalBackward(hw, c, dy, dx, begin, end);
}
int64_t PoolCompiledTarget() { return HWY_TARGET; }

}  // namespace fer::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace fer::kernels {

HWY_EXPORT(PoolMaxForwardRows);
HWY_EXPORT(PoolMaxBackwardRows);
HWY_EXPORT(PoolAvgForwardRows);
HWY_EXPORT(PoolAvgBackwardRows);
HWY_EXPORT(PoolGlobalForwardImages);
HWY_EXPORT(PoolGlobalBackwardImages);
HWY_EXPORT(PoolCompiledTarget);

namespace {

// Threads for `units` units of work of `floats_per_unit` floats each: one below ~32K
// floats (forking costs more than it saves), never more than there are units, and one
// inside an enclosing parallel region.
int thread_count(int64_t units, int64_t floats_per_unit) {
  if (omp_in_parallel()) return 1;
  if (units * floats_per_unit < (int64_t{1} << 15)) return 1;
  return static_cast<int>(std::min<int64_t>(omp_get_max_threads(), units));
}

// Runs f(begin, end) on contiguous shares of [0, units), one per thread; with one thread,
// straight (a parallel region, even of one thread, costs microseconds at batch 1).
template <class F>
void in_shares(int64_t units, int64_t floats_per_unit, const F& f) {
  if (units <= 0) return;
  const int threads = thread_count(units, floats_per_unit);
  if (threads == 1) return f(int64_t{0}, units);
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), T = omp_get_num_threads();
    const int64_t begin = units * t / T, end = units * (t + 1) / T;
    if (begin < end) f(begin, end);
  }
}

bool empty(const Conv2DGeometry& g) { return g.n <= 0 || g.oh <= 0 || g.ow <= 0 || g.c <= 0; }

// Runs a backward kernel over output rows [begin, end) in shares that never put two
// threads on the same dx row: by rows when the windows of different output rows read
// disjoint input rows (stride_h >= kh), else by whole images.
template <class F>
void backward_shares(const Conv2DGeometry& g, const F& rows_fn) {
  const int64_t row_floats = int64_t(g.ow) * g.c;
  if (g.stride_h >= g.kh) {
    in_shares(int64_t(g.n) * g.oh, row_floats, rows_fn);
  } else {
    in_shares(g.n, g.oh * row_floats,
              [&](int64_t b, int64_t e) { rows_fn(b * g.oh, e * g.oh); });
  }
}

}  // namespace

void max_pool2d_forward(const Conv2DGeometry& g, const float* x, float* y) {
  if (empty(g)) return;
  in_shares(int64_t(g.n) * g.oh, int64_t(g.ow) * g.c, [&](int64_t b, int64_t e) {
    HWY_DYNAMIC_DISPATCH(PoolMaxForwardRows)(g, x, y, b, e);
  });
}

void max_pool2d_backward(const Conv2DGeometry& g, const float* x, const float* dy, float* dx) {
  if (empty(g)) return;
  backward_shares(g, [&](int64_t b, int64_t e) {
    HWY_DYNAMIC_DISPATCH(PoolMaxBackwardRows)(g, x, dy, dx, b, e);
  });
}

void avg_pool2d_forward(const Conv2DGeometry& g, const float* x, float* y) {
  if (empty(g)) return;
  in_shares(int64_t(g.n) * g.oh, int64_t(g.ow) * g.c, [&](int64_t b, int64_t e) {
    HWY_DYNAMIC_DISPATCH(PoolAvgForwardRows)(g, x, y, b, e);
  });
}

void avg_pool2d_backward(const Conv2DGeometry& g, const float* dy, float* dx) {
  if (empty(g)) return;
  backward_shares(g, [&](int64_t b, int64_t e) {
    HWY_DYNAMIC_DISPATCH(PoolAvgBackwardRows)(g, dy, dx, b, e);
  });
}

void global_avg_pool2d_forward(int n, int hw, int c, const float* x, float* y) {
  if (hw <= 0 || c <= 0) return;
  in_shares(n, int64_t(hw) * c, [&](int64_t b, int64_t e) {
    HWY_DYNAMIC_DISPATCH(PoolGlobalForwardImages)(hw, c, x, y, b, e);
  });
}

void global_avg_pool2d_backward(int n, int hw, int c, const float* dy, float* dx) {
  if (hw <= 0 || c <= 0) return;
  in_shares(n, int64_t(hw) * c, [&](int64_t b, int64_t e) {
    HWY_DYNAMIC_DISPATCH(PoolGlobalBackwardImages)(hw, c, dy, dx, b, e);
  });
}

std::vector<int64_t> pool_hwy_targets() { return hwy::SupportedAndGeneratedTargets(); }

void pool_hwy_force_target(int64_t target) { hwy::SetSupportedTargetsForTest(target); }

int64_t pool_hwy_dispatched_target() { return HWY_DYNAMIC_DISPATCH(PoolCompiledTarget)(); }

const char* pool_hwy_target_name(int64_t target) { return hwy::TargetName(target); }

}  // namespace fer::kernels
#endif  // HWY_ONCE
