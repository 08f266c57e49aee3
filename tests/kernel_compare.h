// Shared by the kernel tests that check a fast kernel against its reference loops: random
// inputs, the float-rounding comparison, and the description of a convolution case.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "fer/rng.h"
#include "kernels/conv2d.h"
#include "kernels/padding.h"

namespace fer::testing {

inline std::vector<float> random_values(size_t n, Rng& rng) {
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(rng.uniform(-1.0, 1.0));
  return v;
}

// Fast and reference kernels sum in different orders, so they agree to float rounding:
// relative to the largest value of the tensor. An indexing bug gives errors of order 1.
inline void expect_close(const std::vector<float>& got, const std::vector<float>& want,
                         const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  float scale = 1.f;
  for (float v : want) scale = std::max(scale, std::fabs(v));
  const float tol = 1e-4f * scale;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], tol) << what << " at index " << i;
  }
}

// A fast forward convolution kernel (kernels/conv2d.h) against the reference: it must
// overwrite y (which starts at 123) everywhere. bias may be nullptr.
using ConvForward = void (*)(const kernels::Conv2DGeometry&, int, const float*, const float*,
                             const float*, float*);
inline void expect_forward_matches(const kernels::Conv2DGeometry& g, int oc,
                                   const std::vector<float>& x,
                                   const std::vector<float>& kernel, const float* bias,
                                   ConvForward fast, const std::string& what) {
  const size_t ysize = size_t(g.n) * g.oh * g.ow * oc;
  std::vector<float> y_ref(ysize), y(ysize, 123.f);
  kernels::conv2d_forward_ref(g, oc, x.data(), kernel.data(), bias, y_ref.data());
  fast(g, oc, x.data(), kernel.data(), bias, y.data());
  expect_close(y, y_ref, what + " forward");
}

// A fast backward-to-the-input convolution kernel (kernels/conv2d.h) against the reference:
// adding into a random dx, and with accumulate = false overwriting a NaN-filled one (the
// NaN must not leak) as if it held zeros. dx0 is drawn from rng here.
using ConvBackwardInput = void (*)(const kernels::Conv2DGeometry&, int, const float*,
                                   const float*, float*, bool);
inline void expect_backward_input_matches(const kernels::Conv2DGeometry& g, int oc,
                                          const std::vector<float>& dy,
                                          const std::vector<float>& kernel, size_t x_size,
                                          Rng& rng, ConvBackwardInput fast,
                                          const std::string& what) {
  const auto dx0 = random_values(x_size, rng);
  auto dx_ref = dx0, dx = dx0;
  kernels::conv2d_backward_input_ref(g, oc, dy.data(), kernel.data(), dx_ref.data());
  fast(g, oc, dy.data(), kernel.data(), dx.data(), true);
  expect_close(dx, dx_ref, what + " backward input");
  std::vector<float> zero_ref(x_size, 0.f);
  kernels::conv2d_backward_input_ref(g, oc, dy.data(), kernel.data(), zero_ref.data());
  std::vector<float> fresh(x_size, std::numeric_limits<float>::quiet_NaN());
  fast(g, oc, dy.data(), kernel.data(), fresh.data(), false);
  expect_close(fresh, zero_ref, what + " backward input overwriting");
}

// One convolution shape: input [n, h, w, c], a kh x kw kernel to oc channels.
struct ConvCase {
  int n, h, w, c, oc, kh, kw, sh, sw;
  kernels::Padding padding;
};

inline std::string describe(const ConvCase& t) {
  std::ostringstream s;
  s << "x [" << t.n << "," << t.h << "," << t.w << "," << t.c << "] k " << t.kh << "x" << t.kw
    << " oc " << t.oc << " stride " << t.sh << "," << t.sw << " "
    << kernels::padding_name(t.padding);
  return s.str();
}

// A random convolution: batch 1-3, input up to max_h x max_w x max_c, up to max_oc
// outputs, windows 1-4, strides 1-3, either padding (Same where Valid would not fit).
inline ConvCase random_conv_case(Rng& rng, int max_h, int max_w, int max_c, int max_oc) {
  ConvCase t;
  t.n = 1 + int(rng.below(3));
  t.h = 1 + int(rng.below(max_h));
  t.w = 1 + int(rng.below(max_w));
  t.c = 1 + int(rng.below(max_c));
  t.oc = 1 + int(rng.below(max_oc));
  t.kh = 1 + int(rng.below(4));
  t.kw = 1 + int(rng.below(4));
  t.sh = 1 + int(rng.below(3));
  t.sw = 1 + int(rng.below(3));
  t.padding = rng.bernoulli(0.5) ? kernels::Padding::Same : kernels::Padding::Valid;
  if (t.padding == kernels::Padding::Valid && (t.h < t.kh || t.w < t.kw))
    t.padding = kernels::Padding::Same;
  return t;
}

}  // namespace fer::testing
