#include "kernels/pool.h"

#include <algorithm>
#include <cstdint>
#include <vector>

namespace fer::kernels {

namespace {

inline int64_t at_x(const Conv2DGeometry& g, int n, int h, int w) {
  return ((int64_t(n) * g.h + h) * g.w + w) * g.c;
}
inline int64_t at_y(const Conv2DGeometry& g, int n, int h, int w) {
  return ((int64_t(n) * g.oh + h) * g.ow + w) * g.c;
}

// The window of output pixel (oh, ow) clipped to the image: rows [h0, h1), cols [w0, w1).
// Clipping is how padding is handled: -inf cells never win a max, and Keras leaves
// padded cells out of an average, so both pools simply skip them.
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

}  // namespace

// ---- Max pooling: reference ---------------------------------------------------------

// The flat index in x of the largest cell of one channel's window (first one on ties),
// or -1 for an empty window (which 'same'/'valid' geometry never produces).
static int64_t argmax_ref(const Conv2DGeometry& g, const float* x, int n, int oh, int ow,
                          int c) {
  const Window win = window_at(g, oh, ow);
  int64_t best = -1;
  for (int ih = win.h0; ih < win.h1; ++ih)
    for (int iw = win.w0; iw < win.w1; ++iw) {
      const int64_t i = at_x(g, n, ih, iw) + c;
      if (best < 0 || x[i] > x[best]) best = i;  // strict '>': the first maximum wins
    }
  return best;
}

void max_pool2d_forward_ref(const Conv2DGeometry& g, const float* x, float* y) {
  for (int n = 0; n < g.n; ++n)
    for (int oh = 0; oh < g.oh; ++oh)
      for (int ow = 0; ow < g.ow; ++ow)
        for (int c = 0; c < g.c; ++c) {
          const int64_t best = argmax_ref(g, x, n, oh, ow, c);
          y[at_y(g, n, oh, ow) + c] = best >= 0 ? x[best] : 0.f;
        }
}

void max_pool2d_backward_ref(const Conv2DGeometry& g, const float* x, const float* dy,
                             float* dx) {
  // y = x[winner], so only the winner has a gradient: d y / d x[winner] = 1.
  for (int n = 0; n < g.n; ++n)
    for (int oh = 0; oh < g.oh; ++oh)
      for (int ow = 0; ow < g.ow; ++ow)
        for (int c = 0; c < g.c; ++c) {
          const int64_t best = argmax_ref(g, x, n, oh, ow, c);
          if (best >= 0) dx[best] += dy[at_y(g, n, oh, ow) + c];
        }
}

// ---- Max pooling: OpenMP loops (the baseline of kernels/pool_hwy.cpp) ---------------

// For one output pixel, finds every channel's winner at once, walking the window cell
// by cell with channels innermost (contiguous memory). best[c] is the winner's flat index.
static void argmax_pixel(const Conv2DGeometry& g, const float* x, int n, int oh, int ow,
                         int64_t* best) {
  const Window win = window_at(g, oh, ow);
  const int64_t first = at_x(g, n, win.h0, win.w0);
  for (int c = 0; c < g.c; ++c) best[c] = first + c;
  for (int ih = win.h0; ih < win.h1; ++ih)
    for (int iw = win.w0; iw < win.w1; ++iw) {
      const int64_t base = at_x(g, n, ih, iw);
      for (int c = 0; c < g.c; ++c)
        if (x[base + c] > x[best[c]]) best[c] = base + c;
    }
}

void max_pool2d_forward_loops(const Conv2DGeometry& g, const float* x, float* y) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int n = 0; n < g.n; ++n)
    for (int oh = 0; oh < g.oh; ++oh)
      for (int ow = 0; ow < g.ow; ++ow) {
        // A running maximum needs no index: it vectorizes as a plain max over channels.
        const Window win = window_at(g, oh, ow);
        float* __restrict out = y + at_y(g, n, oh, ow);
        const float* first = x + at_x(g, n, win.h0, win.w0);
        for (int c = 0; c < g.c; ++c) out[c] = first[c];
        for (int ih = win.h0; ih < win.h1; ++ih)
          for (int iw = win.w0; iw < win.w1; ++iw) {
            const float* __restrict in = x + at_x(g, n, ih, iw);
            for (int c = 0; c < g.c; ++c) out[c] = std::max(out[c], in[c]);
          }
      }
}

void max_pool2d_backward_loops(const Conv2DGeometry& g, const float* x, const float* dy,
                               float* dx) {
  // Windows overlap when the stride is smaller than the pool, so two output pixels may
  // send gradient to the same input: threads split the batch by image, which never shares.
#pragma omp parallel
  {
    std::vector<int64_t> best(g.c);
#pragma omp for schedule(static)
    for (int n = 0; n < g.n; ++n)
      for (int oh = 0; oh < g.oh; ++oh)
        for (int ow = 0; ow < g.ow; ++ow) {
          argmax_pixel(g, x, n, oh, ow, best.data());
          const float* d = dy + at_y(g, n, oh, ow);
          for (int c = 0; c < g.c; ++c) dx[best[c]] += d[c];
        }
  }
}

// ---- Average pooling ----------------------------------------------------------------

void avg_pool2d_forward_ref(const Conv2DGeometry& g, const float* x, float* y) {
  for (int n = 0; n < g.n; ++n)
    for (int oh = 0; oh < g.oh; ++oh)
      for (int ow = 0; ow < g.ow; ++ow)
        for (int c = 0; c < g.c; ++c) {
          const Window win = window_at(g, oh, ow);
          float sum = 0.f;
          for (int ih = win.h0; ih < win.h1; ++ih)
            for (int iw = win.w0; iw < win.w1; ++iw) sum += x[at_x(g, n, ih, iw) + c];
          y[at_y(g, n, oh, ow) + c] = sum / static_cast<float>(win.count());
        }
}

void avg_pool2d_backward_ref(const Conv2DGeometry& g, const float* dy, float* dx) {
  // y = (1/count) * sum of the window, so every counted cell gets dy / count.
  for (int n = 0; n < g.n; ++n)
    for (int oh = 0; oh < g.oh; ++oh)
      for (int ow = 0; ow < g.ow; ++ow)
        for (int c = 0; c < g.c; ++c) {
          const Window win = window_at(g, oh, ow);
          const float share = dy[at_y(g, n, oh, ow) + c] / static_cast<float>(win.count());
          for (int ih = win.h0; ih < win.h1; ++ih)
            for (int iw = win.w0; iw < win.w1; ++iw) dx[at_x(g, n, ih, iw) + c] += share;
        }
}

void avg_pool2d_forward_loops(const Conv2DGeometry& g, const float* x, float* y) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int n = 0; n < g.n; ++n)
    for (int oh = 0; oh < g.oh; ++oh)
      for (int ow = 0; ow < g.ow; ++ow) {
        const Window win = window_at(g, oh, ow);
        float* __restrict out = y + at_y(g, n, oh, ow);
        for (int c = 0; c < g.c; ++c) out[c] = 0.f;
        for (int ih = win.h0; ih < win.h1; ++ih)
          for (int iw = win.w0; iw < win.w1; ++iw) {
            const float* __restrict in = x + at_x(g, n, ih, iw);
            for (int c = 0; c < g.c; ++c) out[c] += in[c];
          }
        const float inv = 1.f / static_cast<float>(win.count());
        for (int c = 0; c < g.c; ++c) out[c] *= inv;
      }
}

void avg_pool2d_backward_loops(const Conv2DGeometry& g, const float* dy, float* dx) {
  // Threads split by image: overlapping windows of one image add into the same cells.
#pragma omp parallel for schedule(static)
  for (int n = 0; n < g.n; ++n)
    for (int oh = 0; oh < g.oh; ++oh)
      for (int ow = 0; ow < g.ow; ++ow) {
        const Window win = window_at(g, oh, ow);
        const float inv = 1.f / static_cast<float>(win.count());
        const float* __restrict d = dy + at_y(g, n, oh, ow);
        for (int ih = win.h0; ih < win.h1; ++ih)
          for (int iw = win.w0; iw < win.w1; ++iw) {
            float* __restrict out = dx + at_x(g, n, ih, iw);
            for (int c = 0; c < g.c; ++c) out[c] += d[c] * inv;
          }
      }
}

// ---- Global average pooling ---------------------------------------------------------

void global_avg_pool2d_forward_ref(int n, int hw, int c, const float* x, float* y) {
  for (int i = 0; i < n; ++i)
    for (int ch = 0; ch < c; ++ch) {
      float sum = 0.f;
      for (int p = 0; p < hw; ++p) sum += x[(int64_t(i) * hw + p) * c + ch];
      y[int64_t(i) * c + ch] = sum / static_cast<float>(hw);
    }
}

void global_avg_pool2d_backward_ref(int n, int hw, int c, const float* dy, float* dx) {
  for (int i = 0; i < n; ++i)
    for (int ch = 0; ch < c; ++ch) {
      const float share = dy[int64_t(i) * c + ch] / static_cast<float>(hw);
      for (int p = 0; p < hw; ++p) dx[(int64_t(i) * hw + p) * c + ch] += share;
    }
}

void global_avg_pool2d_forward_loops(int n, int hw, int c, const float* x, float* y) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < n; ++i) {
    float* __restrict out = y + int64_t(i) * c;
    for (int ch = 0; ch < c; ++ch) out[ch] = 0.f;
    for (int p = 0; p < hw; ++p) {
      const float* __restrict in = x + (int64_t(i) * hw + p) * c;
      for (int ch = 0; ch < c; ++ch) out[ch] += in[ch];
    }
    const float inv = 1.f / static_cast<float>(hw);
    for (int ch = 0; ch < c; ++ch) out[ch] *= inv;
  }
}

void global_avg_pool2d_backward_loops(int n, int hw, int c, const float* dy, float* dx) {
  const float inv = 1.f / static_cast<float>(hw);
#pragma omp parallel for schedule(static)
  for (int i = 0; i < n; ++i) {
    const float* __restrict d = dy + int64_t(i) * c;
    for (int p = 0; p < hw; ++p) {
      float* __restrict out = dx + (int64_t(i) * hw + p) * c;
      for (int ch = 0; ch < c; ++ch) out[ch] += d[ch] * inv;
    }
  }
}

}  // namespace fer::kernels
