// Output sizes and padding for windowed ops (convolution, depthwise, pooling), with
// TensorFlow/Keras semantics:
//   valid: out = floor((in - k) / s) + 1, no padding.
//   same:  out = ceil(in / s); the total padding max((out - 1) * s + k - in, 0) is split
//          with the smaller half before (top/left) and the extra pixel after
//          (bottom/right). PyTorch pads symmetrically instead, which is why a stride-2
//          "same" conv needs care when porting weights between the two.
#pragma once

#include <string>

#include "fer/error.h"

namespace fer::kernels {

enum class Padding { Valid, Same };

inline Padding parse_padding(const std::string& s) {
  if (s == "valid") return Padding::Valid;
  if (s == "same") return Padding::Same;
  fail("unknown padding '", s, "' (expected 'same' or 'valid')");
}

inline const char* padding_name(Padding p) { return p == Padding::Same ? "same" : "valid"; }

struct Window1D {
  int out = 0;         // output length
  int pad_before = 0;  // zeros (or -inf for max pooling) before the first input
  int pad_after = 0;
};

// One spatial axis. Returns out = 0 when the window does not fit (valid, in < k).
inline Window1D window_1d(int in, int k, int stride, Padding padding) {
  Window1D w;
  if (padding == Padding::Valid) {
    w.out = in >= k ? (in - k) / stride + 1 : 0;
  } else {
    w.out = (in + stride - 1) / stride;
    int total = (w.out - 1) * stride + k - in;
    if (total < 0) total = 0;
    w.pad_before = total / 2;
    w.pad_after = total - w.pad_before;
  }
  return w;
}

// The geometry of a 2-D windowed op over an NHWC batch.
struct Conv2DGeometry {
  int n = 0, h = 0, w = 0, c = 0;   // input
  int kh = 0, kw = 0;               // window
  int stride_h = 1, stride_w = 1;
  int pad_top = 0, pad_left = 0;
  int oh = 0, ow = 0;               // output spatial size
};

inline Conv2DGeometry make_geometry(int n, int h, int w, int c, int kh, int kw, int stride_h,
                                    int stride_w, Padding padding) {
  const Window1D y = window_1d(h, kh, stride_h, padding);
  const Window1D x = window_1d(w, kw, stride_w, padding);
  Conv2DGeometry g;
  g.n = n; g.h = h; g.w = w; g.c = c;
  g.kh = kh; g.kw = kw;
  g.stride_h = stride_h; g.stride_w = stride_w;
  g.pad_top = y.pad_before; g.pad_left = x.pad_before;
  g.oh = y.out; g.ow = x.out;
  return g;
}

}  // namespace fer::kernels
