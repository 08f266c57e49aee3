// Finite-difference gradient checks, shared by the layer and loss tests.
//
// For a function y = f(x, params) we check d/dθ of L = sum(y * w) for a fixed random w:
// the analytic gradient comes from the tape (backward seeded with w), the numerical one
// from central differences (L(θ+h) - L(θ-h)) / 2h, evaluated in float32 with the layer's
// own forward. Float32 rounding limits the agreement, hence the tolerances.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "fer/autograd.h"
#include "fer/rng.h"
#include "fer/tensor.h"

namespace fer::testing {

inline Tensor random_tensor(const Shape& shape, Rng& rng, float lo = -1.f, float hi = 1.f) {
  Tensor t(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<float>(rng.uniform(lo, hi));
  return t;
}

struct GradCheckOptions {
  double step = 1e-2;     // finite-difference step h
  double rtol = 2e-2;     // |a - n| <= atol + rtol * max(|a|, |n|)
  double atol = 2e-3;
  int max_checks = 60;    // elements checked per tensor (spread over the tensor)
};

// `forward` must recompute y from the current contents of `wrt` (and anything else it
// closes over) each time it is called. Every tensor in `wrt` must require a gradient.
// Fails the current test (with the tensor's name and element index) on a mismatch.
inline void check_gradients(const std::function<Tensor()>& forward,
                            std::vector<std::pair<std::string, Tensor>> wrt,
                            uint64_t seed = 1, GradCheckOptions opt = {}) {
  Rng rng(seed);
  // Analytic gradients.
  for (auto& [name, t] : wrt) t.zero_grad();
  Tensor y = forward();
  const Tensor w = random_tensor(y.shape(), rng);
  Tape::current().backward(y, w);
  auto loss = [&]() {
    NoGradGuard no_grad;
    Tensor out = forward();
    double s = 0;
    for (int64_t i = 0; i < out.numel(); ++i) s += double(out.data()[i]) * w.data()[i];
    return s;
  };
  for (auto& [name, t] : wrt) {
    ASSERT_TRUE(t.has_grad()) << name << ": no gradient reached this tensor";
    const std::vector<float> analytic(t.grad(), t.grad() + t.numel());
    const int64_t n = t.numel();
    const int64_t stride = std::max<int64_t>(1, n / opt.max_checks);
    for (int64_t i = 0; i < n; i += stride) {
      float* p = t.data() + i;
      const float saved = *p;
      *p = static_cast<float>(saved + opt.step);
      const double up = loss();
      *p = static_cast<float>(saved - opt.step);
      const double down = loss();
      *p = saved;
      const double numeric = (up - down) / (2 * opt.step);
      const double a = analytic[i];
      const double tol = opt.atol + opt.rtol * std::max(std::fabs(a), std::fabs(numeric));
      EXPECT_NEAR(a, numeric, tol) << name << "[" << i << "] of " << shape_str(t.shape());
    }
  }
}

}  // namespace fer::testing
