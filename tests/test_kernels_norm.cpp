// Kernels for batch normalization, ReLU/ReLU6, softmax and softmax cross-entropy:
// hand-computed values, optimized versions against the `_ref` ones over randomized
// shapes, and the cross-entropy against PyTorch when it is installed.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "fer/rng.h"
#include "kernels/activation.h"
#include "kernels/batchnorm.h"
#include "kernels/softmax.h"

using namespace fer;
using namespace fer::kernels;

namespace {

std::vector<float> random_vector(size_t n, Rng& rng, double lo = -1, double hi = 1) {
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(rng.uniform(lo, hi));
  return v;
}

// Element-wise |a - b| <= atol + rtol * |b|.
void expect_close(const std::vector<float>& a, const std::vector<float>& b, double rtol,
                  double atol, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i)
    ASSERT_NEAR(a[i], b[i], atol + rtol * std::fabs(b[i])) << what << " at " << i;
}

// Shapes [rows, C] for the randomized comparisons: C not a multiple of 16, rows = 1, and
// sizes large enough that the optimized kernels actually start threads.
struct RowsC { int64_t rows, C; };
const RowsC kShapes[] = {{1, 1}, {1, 19}, {2, 3}, {7, 35}, {64, 17}, {3000, 19}, {2048, 33}};

}  // namespace

// ======================================================================================
// Batch normalization
// ======================================================================================

// x is 4 rows x 2 channels. Channel 0 = {1, 3, 5, 7}: mean 4, deviations {-3, -1, 1, 3},
// biased variance (9+1+1+9)/4 = 5. Channel 1 = {0, 0, 2, 2}: mean 1, deviations +-1,
// variance 1.
TEST(BatchNormKernel, TrainingForwardByHand) {
  const std::vector<float> x = {1, 0, 3, 0, 5, 2, 7, 2};
  const std::vector<float> gamma = {2.f, 0.5f}, beta = {1.f, -1.f};
  const float eps = 1e-3f;
  for (bool optimized : {false, true}) {
    std::vector<float> y(8), mean(2), var(2), inv_std(2);
    (optimized ? batchnorm_forward_train : batchnorm_forward_train_ref)(
        x.data(), gamma.data(), beta.data(), 4, 2, eps, y.data(), mean.data(), var.data(),
        inv_std.data());
    EXPECT_FLOAT_EQ(mean[0], 4.f);
    EXPECT_FLOAT_EQ(mean[1], 1.f);
    EXPECT_FLOAT_EQ(var[0], 5.f);
    EXPECT_FLOAT_EQ(var[1], 1.f);
    const double is0 = 1 / std::sqrt(5.001), is1 = 1 / std::sqrt(1.001);
    EXPECT_FLOAT_EQ(inv_std[0], float(is0));
    EXPECT_FLOAT_EQ(inv_std[1], float(is1));
    const double dev0[] = {-3, -1, 1, 3}, dev1[] = {-1, -1, 1, 1};
    for (int r = 0; r < 4; ++r) {
      EXPECT_NEAR(y[r * 2 + 0], 2 * dev0[r] * is0 + 1, 1e-6) << "row " << r;
      EXPECT_NEAR(y[r * 2 + 1], 0.5 * dev1[r] * is1 - 1, 1e-6) << "row " << r;
    }
  }
}

TEST(BatchNormKernel, RunningStatsUseMomentumAndUnbiasedVariance) {
  // After one step from (0, 1) with momentum 0.99, M = 4 rows:
  //   mean: 0.99*0 + 0.01*4           = 0.04
  //   var:  0.99*1 + 0.01*5*4/3       = 1.0566667  (5 is the biased variance)
  std::vector<float> mm = {0.f, 0.f}, mv = {1.f, 1.f};
  const std::vector<float> mean = {4.f, 1.f}, var = {5.f, 1.f};
  batchnorm_update_running_stats(mm.data(), mv.data(), mean.data(), var.data(), 4, 2, 0.99f);
  EXPECT_NEAR(mm[0], 0.04, 1e-7);
  EXPECT_NEAR(mm[1], 0.01, 1e-7);
  EXPECT_NEAR(mv[0], 0.99 + 0.01 * 5 * 4 / 3.0, 1e-6);
  EXPECT_NEAR(mv[1], 0.99 + 0.01 * 1 * 4 / 3.0, 1e-6);
  // One row: no Bessel correction (it would divide by zero); the variance is 0 anyway.
  std::vector<float> m1 = {1.f}, v1 = {2.f};
  const std::vector<float> bm = {3.f}, bv = {0.f};
  batchnorm_update_running_stats(m1.data(), v1.data(), bm.data(), bv.data(), 1, 1, 0.5f);
  EXPECT_FLOAT_EQ(m1[0], 2.f);
  EXPECT_FLOAT_EQ(v1[0], 1.f);
}

TEST(BatchNormKernel, BackwardByHand) {
  const std::vector<float> x = {1, 0, 3, 0, 5, 2, 7, 2};
  const std::vector<float> gamma = {2.f, 0.5f};
  const std::vector<float> mean = {4.f, 1.f};
  const std::vector<float> inv_std = {float(1 / std::sqrt(5.001)), float(1 / std::sqrt(1.001))};
  for (bool optimized : {false, true}) {
    // Training mode, a gradient that is the same on every row: shifting all inputs of a
    // channel by the same amount leaves BN's output unchanged, so dx must be exactly 0
    // (the mean path cancels the direct path); dbeta = 4 * dy, dgamma = dy * sum(xhat) = 0.
    const std::vector<float> dy = {0.5f, -2.f, 0.5f, -2.f, 0.5f, -2.f, 0.5f, -2.f};
    std::vector<float> dx(8, 1.f), dgamma(2, 10.f), dbeta(2, 10.f);  // += onto these
    (optimized ? batchnorm_backward_train : batchnorm_backward_train_ref)(
        x.data(), dy.data(), gamma.data(), mean.data(), inv_std.data(), 4, 2, dx.data(),
        dgamma.data(), dbeta.data());
    for (int i = 0; i < 8; ++i) EXPECT_NEAR(dx[i], 1.f, 1e-6) << i;
    EXPECT_NEAR(dbeta[0], 10 + 2.f, 1e-6);
    EXPECT_NEAR(dbeta[1], 10 - 8.f, 1e-6);
    EXPECT_NEAR(dgamma[0], 10.f, 1e-6);
    EXPECT_NEAR(dgamma[1], 10.f, 1e-6);

    // Training mode, dy = 1 on the first row of channel 0 only: sum(dy) = 1,
    // sum(dy*xhat) = xhat0 = -3*is, so dx_r = gamma*is/4 * (4*[r==0] - 1 - xhat_r*xhat_0).
    std::vector<float> dy1(8, 0.f);
    dy1[0] = 1.f;
    std::vector<float> dx1(8, 0.f), dg1(2, 0.f);
    (optimized ? batchnorm_backward_train : batchnorm_backward_train_ref)(
        x.data(), dy1.data(), gamma.data(), mean.data(), inv_std.data(), 4, 2, dx1.data(),
        dg1.data(), nullptr);
    const double is = inv_std[0];
    const double dev[] = {-3, -1, 1, 3};
    for (int r = 0; r < 4; ++r) {
      const double expected = 2 * is / 4 * ((r == 0 ? 4 : 0) - 1 - dev[r] * is * (-3 * is));
      EXPECT_NEAR(dx1[r * 2], expected, 1e-6) << "row " << r;
      EXPECT_EQ(dx1[r * 2 + 1], 0.f);
    }
    EXPECT_NEAR(dg1[0], -3 * is, 1e-6);

    // Inference mode: a per-channel affine map, dx = gamma * inv_std * dy.
    std::vector<float> dx2(8, 0.f);
    (optimized ? batchnorm_backward_inference : batchnorm_backward_inference_ref)(
        x.data(), dy.data(), gamma.data(), mean.data(), inv_std.data(), 4, 2, dx2.data(),
        nullptr, nullptr);
    for (int r = 0; r < 4; ++r) {
      EXPECT_NEAR(dx2[r * 2], 2 * inv_std[0] * 0.5, 1e-6);
      EXPECT_NEAR(dx2[r * 2 + 1], 0.5 * inv_std[1] * -2, 1e-6);
    }
  }
}

TEST(BatchNormKernel, LargeMeanKeepsPrecision) {
  // var of {1e4 + 0.01, 1e4 - 0.01} is 1e-4; E[x^2] - E[x]^2 in float would give garbage.
  const std::vector<float> x = {10000.01f, 9999.99f};
  const float one = 1.f, zero = 0.f;
  for (bool optimized : {false, true}) {
    std::vector<float> y(2), mean(1), var(1), inv_std(1);
    (optimized ? batchnorm_forward_train : batchnorm_forward_train_ref)(
        x.data(), &one, &zero, 2, 1, 1e-8f, y.data(), mean.data(), var.data(), inv_std.data());
    const double d = (double(x[0]) - double(x[1])) / 2;  // the exact float inputs' spread
    EXPECT_NEAR(var[0], d * d, 1e-9);
    EXPECT_NEAR(y[0], 1.f, 1e-3);
    EXPECT_NEAR(y[1], -1.f, 1e-3);
  }
}

TEST(BatchNormKernel, OptimizedMatchesReference) {
  Rng rng(3);
  for (const RowsC s : kShapes) {
    const std::string what = "rows=" + std::to_string(s.rows) + " C=" + std::to_string(s.C);
    const size_t n = size_t(s.rows * s.C);
    // An offset mean per channel, as real activations have.
    std::vector<float> x = random_vector(n, rng, -2, 3);
    const std::vector<float> gamma = random_vector(s.C, rng, 0.5, 1.5);
    const std::vector<float> beta = random_vector(s.C, rng);
    const std::vector<float> dy = random_vector(n, rng);

    // Training forward.
    std::vector<float> y0(n), m0(s.C), v0(s.C), is0(s.C);
    std::vector<float> y1(n), m1(s.C), v1(s.C), is1(s.C);
    batchnorm_forward_train_ref(x.data(), gamma.data(), beta.data(), s.rows, s.C, 1e-3f,
                                y0.data(), m0.data(), v0.data(), is0.data());
    batchnorm_forward_train(x.data(), gamma.data(), beta.data(), s.rows, s.C, 1e-3f, y1.data(),
                            m1.data(), v1.data(), is1.data());
    expect_close(m1, m0, 1e-6, 1e-6, "mean " + what);
    expect_close(v1, v0, 1e-5, 1e-6, "var " + what);
    expect_close(is1, is0, 1e-5, 0, "inv_std " + what);
    expect_close(y1, y0, 1e-5, 1e-5, "train y " + what);

    // Inference forward with made-up running statistics.
    const std::vector<float> mm = random_vector(s.C, rng);
    const std::vector<float> mv = random_vector(s.C, rng, 0.1, 2);
    batchnorm_forward_inference_ref(x.data(), gamma.data(), beta.data(), mm.data(), mv.data(),
                                    s.rows, s.C, 1e-3f, y0.data());
    batchnorm_forward_inference(x.data(), gamma.data(), beta.data(), mm.data(), mv.data(),
                                s.rows, s.C, 1e-3f, y1.data());
    expect_close(y1, y0, 1e-5, 1e-5, "inference y " + what);

    // Both backwards, accumulating onto the same nonzero starting gradients.
    for (bool train : {true, false}) {
      const std::vector<float> start = random_vector(n, rng);
      const std::vector<float> gstart = random_vector(s.C, rng);
      std::vector<float> dx0 = start, dx1 = start, dg0 = gstart, dg1 = gstart, db0 = gstart,
                         db1 = gstart;
      if (train) {
        batchnorm_backward_train_ref(x.data(), dy.data(), gamma.data(), m0.data(), is0.data(),
                                     s.rows, s.C, dx0.data(), dg0.data(), db0.data());
        batchnorm_backward_train(x.data(), dy.data(), gamma.data(), m0.data(), is0.data(),
                                 s.rows, s.C, dx1.data(), dg1.data(), db1.data());
      } else {
        batchnorm_backward_inference_ref(x.data(), dy.data(), gamma.data(), m0.data(),
                                         is0.data(), s.rows, s.C, dx0.data(), dg0.data(),
                                         db0.data());
        batchnorm_backward_inference(x.data(), dy.data(), gamma.data(), m0.data(), is0.data(),
                                     s.rows, s.C, dx1.data(), dg1.data(), db1.data());
      }
      const std::string mode = train ? " (train) " : " (inference) ";
      expect_close(dx1, dx0, 1e-4, 1e-5, "dx" + mode + what);
      // Sums over up to 3000 rows of float products: allow for the rounding.
      expect_close(dg1, dg0, 1e-4, 1e-4, "dgamma" + mode + what);
      expect_close(db1, db0, 1e-4, 1e-4, "dbeta" + mode + what);
    }
  }
}

// ======================================================================================
// ReLU and ReLU6
// ======================================================================================

TEST(ActivationKernel, ReluAndRelu6AtTheEdges) {
  const std::vector<float> x = {-1.f, -0.f, 0.f, 1e-7f, 0.5f, 5.99f, 6.f, 6.01f, 100.f};
  const std::vector<float> relu = {0, 0, 0, 1e-7f, 0.5f, 5.99f, 6, 6.01f, 100};
  const std::vector<float> relu6 = {0, 0, 0, 1e-7f, 0.5f, 5.99f, 6, 6, 6};
  // Gradient 0 at the kinks x = 0 and x = 6 (as TF and PyTorch).
  const std::vector<float> drelu = {0, 0, 0, 1, 1, 1, 1, 1, 1};
  const std::vector<float> drelu6 = {0, 0, 0, 1, 1, 1, 0, 0, 0};
  const std::vector<float> dy(x.size(), 1.f);
  const int64_t n = int64_t(x.size());
  for (bool optimized : {false, true}) {
    std::vector<float> y(x.size());
    (optimized ? relu_forward : relu_forward_ref)(x.data(), n, y.data());
    EXPECT_EQ(y, relu);
    (optimized ? relu6_forward : relu6_forward_ref)(x.data(), n, y.data());
    EXPECT_EQ(y, relu6);
    std::vector<float> dx(x.size(), 0.f);
    (optimized ? relu_backward : relu_backward_ref)(x.data(), dy.data(), n, dx.data());
    EXPECT_EQ(dx, drelu);
    // Backward accumulates: a second call doubles.
    (optimized ? relu_backward : relu_backward_ref)(x.data(), dy.data(), n, dx.data());
    for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(dx[i], 2 * drelu[i]);
    std::fill(dx.begin(), dx.end(), 0.f);
    (optimized ? relu6_backward : relu6_backward_ref)(x.data(), dy.data(), n, dx.data());
    EXPECT_EQ(dx, drelu6);
  }
}

TEST(ActivationKernel, OptimizedMatchesReference) {
  Rng rng(5);
  for (int64_t n : {1, 7, 1000, 100003}) {  // the last one is threaded
    const std::vector<float> x = random_vector(n, rng, -3, 9);
    const std::vector<float> dy = random_vector(n, rng);
    const std::vector<float> start = random_vector(n, rng);
    std::vector<float> y0(n), y1(n);
    relu_forward_ref(x.data(), n, y0.data());
    relu_forward(x.data(), n, y1.data());
    EXPECT_EQ(y0, y1) << "relu n=" << n;
    relu6_forward_ref(x.data(), n, y0.data());
    relu6_forward(x.data(), n, y1.data());
    EXPECT_EQ(y0, y1) << "relu6 n=" << n;
    std::vector<float> d0 = start, d1 = start;
    relu_backward_ref(x.data(), dy.data(), n, d0.data());
    relu_backward(x.data(), dy.data(), n, d1.data());
    EXPECT_EQ(d0, d1) << "relu backward n=" << n;
    d0 = start;
    d1 = start;
    relu6_backward_ref(x.data(), dy.data(), n, d0.data());
    relu6_backward(x.data(), dy.data(), n, d1.data());
    EXPECT_EQ(d0, d1) << "relu6 backward n=" << n;
  }
}

// ======================================================================================
// Softmax
// ======================================================================================

TEST(SoftmaxKernel, HandValuesAndStability) {
  // softmax(0, 1, 2) = (1, e, e^2) / (1 + e + e^2); adding 1000 to a row changes nothing
  // (without the max subtraction exp(1000) would overflow to inf).
  const std::vector<float> x = {0, 1, 2, 1000, 1001, 1002, -1000, 0, -1000};
  const double e = std::exp(1.0), total = 1 + e + e * e;
  for (bool optimized : {false, true}) {
    std::vector<float> y(9);
    (optimized ? softmax_rows : softmax_rows_ref)(x.data(), 3, 3, y.data());
    for (int r = 0; r < 2; ++r) {
      EXPECT_NEAR(y[r * 3 + 0], 1 / total, 1e-7);
      EXPECT_NEAR(y[r * 3 + 1], e / total, 1e-7);
      EXPECT_NEAR(y[r * 3 + 2], e * e / total, 1e-7);
    }
    EXPECT_EQ(y[6], 0.f);
    EXPECT_FLOAT_EQ(y[7], 1.f);
    EXPECT_EQ(y[8], 0.f);
    // Backward on the distribution (1, 2, 3) / 6.
    const std::vector<float> p = {1 / 6.f, 2 / 6.f, 3 / 6.f};
    // Backward: with dy = onehot(j), dx_k = y_k ([k == j] - y_j).
    const std::vector<float> dy = {0, 1, 0};
    std::vector<float> dx(3, 0.f);
    (optimized ? softmax_rows_backward : softmax_rows_backward_ref)(p.data(), dy.data(), 1, 3,
                                                                    dx.data());
    EXPECT_NEAR(dx[0], 1 / 6.0 * (0 - 1 / 3.0), 1e-6);
    EXPECT_NEAR(dx[1], 1 / 3.0 * (1 - 1 / 3.0), 1e-6);
    EXPECT_NEAR(dx[2], 1 / 2.0 * (0 - 1 / 3.0), 1e-6);
  }
}

TEST(SoftmaxKernel, OptimizedMatchesReference) {
  Rng rng(7);
  for (const RowsC s : kShapes) {
    const std::string what = "rows=" + std::to_string(s.rows) + " K=" + std::to_string(s.C);
    const size_t n = size_t(s.rows * s.C);
    const std::vector<float> x = random_vector(n, rng, -8, 8);
    const std::vector<float> dy = random_vector(n, rng);
    std::vector<float> y0(n), y1(n);
    softmax_rows_ref(x.data(), s.rows, s.C, y0.data());
    softmax_rows(x.data(), s.rows, s.C, y1.data());
    expect_close(y1, y0, 1e-5, 1e-7, "softmax " + what);
    std::vector<float> d0 = dy, d1 = dy;  // accumulate onto something nonzero
    softmax_rows_backward_ref(y0.data(), dy.data(), s.rows, s.C, d0.data());
    softmax_rows_backward(y0.data(), dy.data(), s.rows, s.C, d1.data());
    expect_close(d1, d0, 1e-5, 1e-6, "softmax backward " + what);
  }
}

// ======================================================================================
// Softmax cross-entropy
// ======================================================================================

// Two rows, three classes. Row 0: logits (0, ln2, ln3), label 2, so
// -logp = (ln6, ln3, ln2) and p = (1/6, 1/3, 1/2). Row 1: logits (0, 0, 0), label 0, so
// -logp = ln3 everywhere and p = 1/3.
struct CeCase {
  std::vector<float> logits{0.f, std::log(2.f), std::log(3.f), 0.f, 0.f, 0.f};
  std::vector<int> labels{2, 0};
};

TEST(SoftmaxCrossEntropyKernel, HandValues) {
  const CeCase c;
  const double ln2 = std::log(2.0), ln3 = std::log(3.0), ln6 = std::log(6.0);
  const std::vector<float> w = {2.f, 1.f, 0.5f};
  for (bool optimized : {false, true}) {
    auto ce = optimized ? softmax_cross_entropy : softmax_cross_entropy_ref;
    std::vector<float> g(6);

    // Plain: mean of -logp[label]; gradient (p - onehot) / N.
    EXPECT_NEAR(ce(c.logits.data(), c.labels.data(), 2, 3, 0.f, nullptr, g.data()),
                (ln2 + ln3) / 2, 1e-6);
    const double plain[] = {1 / 12.0, 1 / 6.0, -1 / 4.0, -1 / 3.0, 1 / 6.0, 1 / 6.0};
    for (int i = 0; i < 6; ++i) EXPECT_NEAR(g[i], plain[i], 1e-6) << i;

    // Smoothing 0.3: targets (0.1, 0.1, 0.8) and (0.8, 0.1, 0.1); gradient (p - t) / N.
    EXPECT_NEAR(ce(c.logits.data(), c.labels.data(), 2, 3, 0.3f, nullptr, g.data()),
                (0.1 * ln6 + 0.1 * ln3 + 0.8 * ln2 + ln3) / 2, 1e-6);
    const double smooth[] = {(1 / 6.0 - 0.1) / 2, (1 / 3.0 - 0.1) / 2, (0.5 - 0.8) / 2,
                             (1 / 3.0 - 0.8) / 2, (1 / 3.0 - 0.1) / 2, (1 / 3.0 - 0.1) / 2};
    for (int i = 0; i < 6; ++i) EXPECT_NEAR(g[i], smooth[i], 1e-6) << i;

    // Weights (2, 1, 0.5): W = w[2] + w[0] = 2.5; loss = (0.5 ln2 + 2 ln3) / 2.5; each
    // row's gradient is w[label] (p - onehot) / W.
    EXPECT_NEAR(ce(c.logits.data(), c.labels.data(), 2, 3, 0.f, w.data(), g.data()),
                (0.5 * ln2 + 2 * ln3) / 2.5, 1e-6);
    for (int k = 0; k < 3; ++k) {
      EXPECT_NEAR(g[k], 0.5 * (plain[k] * 2) / 2.5, 1e-6) << k;
      EXPECT_NEAR(g[3 + k], 2 * (plain[3 + k] * 2) / 2.5, 1e-6) << k;
    }

    // Weights and smoothing 0.3, PyTorch's way: the one-hot part weighted by the label's
    // class, the smoothing part by each class it spreads onto, both divided by W:
    //   (0.7 * (0.5 ln2 + 2 ln3) + 0.1 * ((2 ln6 + ln3 + 0.5 ln2) + 3.5 ln3)) / 2.5
    EXPECT_NEAR(ce(c.logits.data(), c.labels.data(), 2, 3, 0.3f, w.data(), g.data()),
                (0.7 * (0.5 * ln2 + 2 * ln3) + 0.1 * (2 * ln6 + ln3 + 0.5 * ln2 + 3.5 * ln3)) /
                    2.5,
                1e-6);
    // Row 1 (label 0): a = 0.7*2*onehot + 0.1*w = (1.6, 0.1, 0.05), A = 1.75,
    // gradient (A p - a) / W with p = 1/3.
    EXPECT_NEAR(g[3], (1.75 / 3 - 1.6) / 2.5, 1e-6);
    EXPECT_NEAR(g[4], (1.75 / 3 - 0.1) / 2.5, 1e-6);
    EXPECT_NEAR(g[5], (1.75 / 3 - 0.05) / 2.5, 1e-6);

    // No gradient wanted: nullptr is fine. Zero label weight: NaN (the layer refuses it).
    EXPECT_NEAR(ce(c.logits.data(), c.labels.data(), 2, 3, 0.f, nullptr, nullptr),
                (ln2 + ln3) / 2, 1e-6);
    const std::vector<float> zero_w = {0.f, 1.f, 0.f};
    EXPECT_TRUE(
        std::isnan(ce(c.logits.data(), c.labels.data(), 2, 3, 0.f, zero_w.data(), nullptr)));
  }
}

TEST(SoftmaxCrossEntropyKernel, OptimizedMatchesReference) {
  Rng rng(11);
  for (const RowsC s : kShapes) {
    const int64_t N = s.rows, K = s.C;
    const std::vector<float> z = random_vector(size_t(N * K), rng, -6, 6);
    std::vector<int> labels(N);
    for (int& y : labels) y = int(rng.below(K));
    const std::vector<float> w = random_vector(K, rng, 0.1, 3);
    for (float eps : {0.f, 0.1f}) {
      for (bool weighted : {false, true}) {
        const std::string what = "N=" + std::to_string(N) + " K=" + std::to_string(K) +
                                 " eps=" + std::to_string(eps) + (weighted ? " weighted" : "");
        std::vector<float> g0(N * K), g1(N * K);
        const float* wp = weighted ? w.data() : nullptr;
        const double l0 =
            softmax_cross_entropy_ref(z.data(), labels.data(), N, K, eps, wp, g0.data());
        const double l1 =
            softmax_cross_entropy(z.data(), labels.data(), N, K, eps, wp, g1.data());
        EXPECT_NEAR(l1, l0, 1e-5 * std::max(1.0, std::fabs(l0))) << what;
        // Gradients are O(1/N); compare relative to that scale.
        expect_close(g1, g0, 1e-4, 1e-6 / N, what);
      }
    }
  }
}

// PyTorch is the reference for the weighted + smoothed semantics. Every case's logits,
// labels and weights go to one file, one Python run (importing torch takes seconds)
// evaluates torch.nn.functional.cross_entropy in float64 on each, and writes each loss and
// d loss / d logits back.
TEST(SoftmaxCrossEntropyKernel, MatchesPyTorch) {
  if (std::system("/usr/bin/python3 -c 'import torch' > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "PyTorch is not available to /usr/bin/python3; the cross-check against "
                    "torch.nn.functional.cross_entropy was skipped";

  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() /
                       ("fer_test_ce_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path script = dir / "ce.py", input = dir / "in.txt", output = dir / "out.txt";
  // Input: the number of cases, then per case four lines: "N K eps", labels, weights
  // (empty line for none), logits. Output: per case a line "loss g0 g1 ...".
  std::ofstream(script) << R"(import sys, torch
import torch.nn.functional as F
lines = open(sys.argv[1]).read().split('\n')
out = open(sys.argv[2], 'w')
for c in range(int(lines[0])):
    head, lab, wts, lgt = lines[1 + 4 * c: 5 + 4 * c]
    n, k, eps = int(head.split()[0]), int(head.split()[1]), float(head.split()[2])
    labels = torch.tensor([int(v) for v in lab.split()])
    w = [float(v) for v in wts.split()]
    z = torch.tensor([float(v) for v in lgt.split()], dtype=torch.float64).reshape(n, k)
    z.requires_grad_(True)
    weight = torch.tensor(w, dtype=torch.float64) if w else None
    loss = F.cross_entropy(z, labels, weight=weight, label_smoothing=eps)
    loss.backward()
    out.write(' '.join(repr(v) for v in [loss.item()] + z.grad.flatten().tolist()) + '\n')
)";

  struct Case {
    float eps;
    bool weighted;
    std::vector<float> z;
    std::vector<int> labels;
  };
  Rng rng(13);
  const int64_t N = 13, K = 7;
  const std::vector<float> w = random_vector(K, rng, 0.2, 3);
  std::vector<Case> cases;
  for (float eps : {0.f, 0.1f, 0.25f})
    for (bool weighted : {false, true})
      for (double scale : {1.0, 10.0}) {
        Case c{eps, weighted, random_vector(size_t(N * K), rng, -scale, scale),
               std::vector<int>(N)};
        for (int& y : c.labels) y = int(rng.below(K));
        cases.push_back(c);
      }
  {
    std::ofstream in(input);
    char buf[64];
    in << cases.size() << '\n';
    for (const Case& c : cases) {
      in << N << ' ' << K << ' ' << c.eps << '\n';
      for (int y : c.labels) in << y << ' ';
      in << '\n';
      if (c.weighted)
        for (float v : w) std::snprintf(buf, sizeof buf, "%.9g ", v), in << buf;
      in << '\n';
      for (float v : c.z) std::snprintf(buf, sizeof buf, "%.9g ", v), in << buf;
      in << '\n';
    }
  }
  const std::string cmd =
      "/usr/bin/python3 " + script.string() + " " + input.string() + " " + output.string();
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "python failed: " << cmd;

  std::ifstream out(output);
  for (size_t ci = 0; ci < cases.size(); ++ci) {
    const Case& c = cases[ci];
    double torch_loss = 0;
    out >> torch_loss;
    std::vector<double> torch_grad(N * K);
    for (double& g : torch_grad) out >> g;
    ASSERT_TRUE(bool(out)) << "could not read case " << ci << " from " << output;
    for (bool optimized : {false, true}) {
      const std::string what = "case " + std::to_string(ci) + ": eps=" + std::to_string(c.eps) +
                               (c.weighted ? " weighted" : "") +
                               (optimized ? " (optimized)" : " (ref)");
      std::vector<float> g(N * K);
      const double loss = (optimized ? softmax_cross_entropy : softmax_cross_entropy_ref)(
          c.z.data(), c.labels.data(), N, K, c.eps, c.weighted ? w.data() : nullptr, g.data());
      EXPECT_NEAR(loss, torch_loss, 1e-5) << what;
      for (int64_t i = 0; i < N * K; ++i)
        ASSERT_NEAR(g[i], torch_grad[i], 1e-5) << what << " dlogits[" << i << "]";
    }
  }
  fs::remove_all(dir);
}
