// BatchNorm with fused ReLU/ReLU6 (kernels/batchnorm_hwy.cpp and the fusion of a
// BatchNormalization -> ReLU pair in Sequential), three levels:
//
// 1. Kernels: every Highway kernel, fused (ReLU, ReLU6) and not, against the `_ref` loops
//    (double sums), on every SIMD target compiled that this CPU runs (AVX-512, AVX2, SSE4,
//    SSSE3, scalar: each has its own vector width, so C = 1, 3, 7, 17, 33, 100 fall below,
//    across and above it and exercise the masked tail group). Row counts 1, 2, 5 and 1000+
//    and batch-1 spatial maps; 3 threads for uneven shares. The `_loops` too.
// 2. Layers: the pair fused vs run one by one (Sequential::set_fusion(false)): outputs,
//    gradients of x, gamma and beta, running statistics, in training, inference and frozen
//    mode, for ReLU and ReLU6.
// 3. A whole MobileNet V1 (alpha 0.25, 32 px): a training step fused vs unfused gives the
//    same loss, logits, gradients and running statistics, and the same inference output.
//
// Tolerances are scaled by what the rounding can reach: sums by the sum of the absolute
// terms, elementwise results by the magnitude of their terms; a dropped, doubled or
// misplaced term moves a result by far more.
#include <gtest/gtest.h>

#include "hwy_targets.h"
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "fer/architectures.h"
#include "fer/autograd.h"
#include "fer/model.h"
#include "fer/rng.h"
#include "kernels/batchnorm.h"
#include "layers/activation.h"
#include "layers/add.h"
#include "layers/batchnorm.h"
#include "layers/loss.h"
#include "layers/sequential.h"
#include "tests/gradcheck.h"

using namespace fer;
using namespace fer::kernels;

namespace {

const char* act_name(Act act) {
  return act == Act::kNone ? "none" : act == Act::kRelu ? "relu" : "relu6";
}

std::vector<float> random_values(size_t n, Rng& rng, double lo, double hi) {
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(rng.uniform(lo, hi));
  return v;
}

// Extra floats after every output, holding a sentinel that must survive: the masked tail
// group must not write past the last channel of the last row.
constexpr size_t kGuard = 40;
constexpr float kSentinel = -777.f;

std::vector<float> guarded(std::vector<float> v) {
  v.resize(v.size() + kGuard, kSentinel);
  return v;
}

// |got[i] - want[i]| <= tol[i] for the first want.size() floats, then the guard intact.
bool close(const std::vector<float>& got, const std::vector<float>& want,
           const std::vector<double>& tol, const std::string& what) {
  for (size_t i = 0; i < want.size(); ++i)
    if (!(std::fabs(double(got[i]) - want[i]) <= tol[i])) {
      ADD_FAILURE() << what << ": element " << i << " of " << want.size() << " is " << got[i]
                    << ", expected " << want[i] << " (tolerance " << tol[i] << ")";
      return false;
    }
  for (size_t i = want.size(); i < got.size(); ++i)
    if (got[i] != kSentinel) {
      ADD_FAILURE() << what << ": wrote past the end (guard float " << i - want.size() << ")";
      return false;
    }
  return true;
}

// One kernel-level case: rows x C, an activation, and which backward gradients to ask for.
struct Case {
  int64_t rows, C;
  Act act;
};

std::string describe(const Case& s) {
  std::ostringstream o;
  o << "rows=" << s.rows << " C=" << s.C << " act=" << act_name(s.act);
  return o.str();
}

// Data like real pre-activation maps: every channel has its own offset and spread, gamma
// of both signs and up to 4 and beta up to 4, so that ReLU zeroes a good share of the
// outputs and ReLU6 clips some at 6 (both masks matter).
struct Data {
  std::vector<float> x, gamma, beta, dy, moving_mean, moving_var;
};

Data make_data(const Case& s, Rng& rng) {
  Data d;
  const auto offset = random_values(s.C, rng, -3, 3), spread = random_values(s.C, rng, 0.1, 2);
  d.x.resize(size_t(s.rows * s.C));
  for (int64_t r = 0; r < s.rows; ++r)
    for (int64_t c = 0; c < s.C; ++c)
      d.x[r * s.C + c] = offset[c] + spread[c] * static_cast<float>(rng.uniform(-1, 1));
  d.gamma = random_values(s.C, rng, -1, 4);
  d.beta = random_values(s.C, rng, -2, 4);
  d.dy = random_values(d.x.size(), rng, -1, 1);
  d.moving_mean = random_values(s.C, rng, -3, 3);
  d.moving_var = random_values(s.C, rng, 0.05, 3);
  return d;
}

// Forward (training and inference) and backward (training and inference, with every
// combination of wanted gradients) of one case against the fused _ref. Returns false on
// the first mismatch.
bool check_case(const Case& s, Rng& rng) {
  const std::string what = describe(s);
  const Data d = make_data(s, rng);
  const int64_t C = s.C, M = s.rows;
  const size_t n = d.x.size();
  const float eps = 1e-3f;

  // ---- training forward: statistics, then y (which starts as NaN everywhere).
  std::vector<float> y_ref(n), mean_ref(C), var_ref(C), is_ref(C);
  batchnorm_forward_train_fused_ref(s.act, d.x.data(), d.gamma.data(), d.beta.data(), M, C, eps,
                                    y_ref.data(), mean_ref.data(), var_ref.data(),
                                    is_ref.data());
  auto y = guarded(std::vector<float>(n, std::numeric_limits<float>::quiet_NaN()));
  auto mean = guarded(std::vector<float>(C)), var = guarded(std::vector<float>(C)),
       is = guarded(std::vector<float>(C));
  batchnorm_forward_train_fused(s.act, d.x.data(), d.gamma.data(), d.beta.data(), M, C, eps,
                                y.data(), mean.data(), var.data(), is.data());
  std::vector<double> tol_mean(C), tol_var(C), tol_is(C), tol_y(n);
  for (int64_t c = 0; c < C; ++c) {
    double abs_mean = 0;
    for (int64_t r = 0; r < M; ++r) abs_mean += std::fabs(d.x[r * C + c]) / M;
    tol_mean[c] = 1e-6 * abs_mean + 1e-9;
    tol_var[c] = 1e-5 * var_ref[c] + 1e-9;
    tol_is[c] = 1e-5 * is_ref[c];
  }
  // y rounds like its terms, plus what the float mean carries: the kernels normalize with
  // the mean they return, whose rounding (|mean| * 2^-24) a small std magnifies.
  for (int64_t r = 0; r < M; ++r)
    for (int64_t c = 0; c < C; ++c) {
      const double xhat = (d.x[r * C + c] - double(mean_ref[c])) * is_ref[c];
      tol_y[r * C + c] = 1e-5 * (std::fabs(d.gamma[c] * xhat) + std::fabs(d.beta[c])) +
                         1.2e-7 * std::fabs(d.gamma[c] * is_ref[c] * mean_ref[c]) + 1e-6;
    }
  if (!close(mean, mean_ref, tol_mean, what + " train mean")) return false;
  if (!close(var, var_ref, tol_var, what + " train var")) return false;
  if (!close(is, is_ref, tol_is, what + " train inv_std")) return false;
  if (!close(y, y_ref, tol_y, what + " train y")) return false;

  // ---- inference forward with the running statistics.
  batchnorm_forward_inference_fused_ref(s.act, d.x.data(), d.gamma.data(), d.beta.data(),
                                        d.moving_mean.data(), d.moving_var.data(), M, C, eps,
                                        y_ref.data());
  y = guarded(std::vector<float>(n, std::numeric_limits<float>::quiet_NaN()));
  batchnorm_forward_inference_fused(s.act, d.x.data(), d.gamma.data(), d.beta.data(),
                                    d.moving_mean.data(), d.moving_var.data(), M, C, eps,
                                    y.data());
  for (int64_t r = 0; r < M; ++r)
    for (int64_t c = 0; c < C; ++c) {
      const double is_c = 1.0 / std::sqrt(double(d.moving_var[c]) + eps);
      const double xhat = (d.x[r * C + c] - double(d.moving_mean[c])) * is_c;
      tol_y[r * C + c] = 1e-5 * (std::fabs(d.gamma[c] * xhat) + std::fabs(d.beta[c])) + 1e-6;
    }
  if (!close(y, y_ref, tol_y, what + " inference y")) return false;

  // ---- backward. The mask comes from the output y: the training forward's for the
  // training backward, the inference forward's for the inference backward (as the layer
  // does). The reference reads it from y; the optimized training backward recomputes it
  // from x, beta and the statistics, exactly as the optimized training forward computed
  // y -- so here y, mean and inv_std are that forward's, and any difference in the mask
  // (a single element) fails the comparison.
  std::vector<float> y_train(n), m0(C), v0(C), is0(C);
  batchnorm_forward_train_fused(s.act, d.x.data(), d.gamma.data(), d.beta.data(), M, C, eps,
                                y_train.data(), m0.data(), v0.data(), is0.data());
  std::vector<float> is_run(C);
  batchnorm_inv_std(d.moving_var.data(), C, eps, is_run.data());
  for (bool train : {true, false}) {
    const float* yy = train ? y_train.data() : y_ref.data();
    const float* mu = train ? m0.data() : d.moving_mean.data();
    const float* sd = train ? is0.data() : is_run.data();
    const std::string mode = train ? " train backward" : " inference backward";
    // dz (the masked dy) and the sums, to scale the tolerances.
    std::vector<double> sum_dz(C, 0), sum_dz_xhat(C, 0), abs_dz(C, 0), abs_dz_xhat(C, 0),
        max_dz(C, 0), max_xhat(C, 0);
    for (int64_t r = 0; r < M; ++r)
      for (int64_t c = 0; c < C; ++c) {
        const size_t i = r * C + c;
        const bool pass = s.act == Act::kNone ||
                          (yy[i] > 0 && (s.act == Act::kRelu || yy[i] < 6));
        const double dz = pass ? d.dy[i] : 0.0;
        const double xhat = (d.x[i] - double(mu[c])) * sd[c];
        sum_dz[c] += dz;
        sum_dz_xhat[c] += dz * xhat;
        abs_dz[c] += std::fabs(dz);
        abs_dz_xhat[c] += std::fabs(dz * xhat);
        max_dz[c] = std::max(max_dz[c], std::fabs(dz));
        max_xhat[c] = std::max(max_xhat[c], std::fabs(xhat));
      }
    // Gradients start from random values (the kernels add into them).
    const auto dx0 = random_values(n, rng, -1, 1), g0 = random_values(C, rng, -1, 1),
               b0 = random_values(C, rng, -1, 1);
    std::vector<double> tol_dx(n), tol_dg(C), tol_db(C);
    for (int64_t c = 0; c < C; ++c) {
      const double k = std::fabs(double(d.gamma[c]) * sd[c]);
      const double terms = train ? k * (max_dz[c] + std::fabs(sum_dz[c]) / M +
                                        max_xhat[c] * std::fabs(sum_dz_xhat[c]) / M)
                                 : k * max_dz[c];
      for (int64_t r = 0; r < M; ++r) tol_dx[r * C + c] = 1e-5 * terms + 2e-7;
      tol_dg[c] = 3e-5 * abs_dz_xhat[c] + 2e-7;
      tol_db[c] = 3e-5 * abs_dz[c] + 2e-7;
    }
    // Every combination of wanted gradients (nullptr = not wanted, must be skipped).
    for (int want = 1; want < 8; ++want) {
      const bool wdx = want & 1, wdg = want & 2, wdb = want & 4;
      std::vector<float> dx_ref = dx0, dg_ref = g0, db_ref = b0;
      auto dx = guarded(dx0), dg = guarded(g0), db = guarded(b0);
      auto ref =
          train ? batchnorm_backward_train_fused_ref : batchnorm_backward_inference_fused_ref;
      const auto opt = [&](float* dxp, float* dgp, float* dbp, bool dx_accumulate) {
        if (train)
          batchnorm_backward_train_fused(s.act, d.x.data(), d.dy.data(), d.gamma.data(),
                                         d.beta.data(), mu, sd, M, C, dxp, dgp, dbp,
                                         dx_accumulate);
        else
          batchnorm_backward_inference_fused(s.act, yy, d.x.data(), d.dy.data(), d.gamma.data(),
                                             mu, sd, M, C, dxp, dgp, dbp);
      };
      ref(s.act, yy, d.x.data(), d.dy.data(), d.gamma.data(), mu, sd, M, C,
          wdx ? dx_ref.data() : nullptr, wdg ? dg_ref.data() : nullptr,
          wdb ? db_ref.data() : nullptr);
      opt(wdx ? dx.data() : nullptr, wdg ? dg.data() : nullptr, wdb ? db.data() : nullptr, true);
      const std::string w = what + mode + " (want " + std::to_string(want) + ")";
      if (!close(dx, dx_ref, tol_dx, w + " dx")) return false;
      if (train && wdx) {  // dx overwritten (not read: NaN there must not leak) = added to 0
        std::vector<float> zero_ref(n, 0.f);
        ref(s.act, yy, d.x.data(), d.dy.data(), d.gamma.data(), mu, sd, M, C, zero_ref.data(),
            nullptr, nullptr);
        auto fresh = guarded(std::vector<float>(n, std::numeric_limits<float>::quiet_NaN()));
        opt(fresh.data(), nullptr, nullptr, false);
        if (!close(fresh, zero_ref, tol_dx, w + " dx overwritten")) return false;
      }
      if (!close(dg, dg_ref, tol_dg, w + " dgamma")) return false;
      if (!close(db, db_ref, tol_db, w + " dbeta")) return false;
    }
  }
  return true;
}

// Row counts: tiny, odd, and large enough for threads (rows * C >= 32K floats for C >= 33),
// plus batch-1 spatial maps of MobileNet's late layers (H * W rows).
const int64_t kChannels[] = {1, 3, 7, 17, 33, 100};
const int64_t kRows[] = {1, 2, 5, 1037, 3 * 3, 6 * 6, 12 * 12};

std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (Act act : {Act::kNone, Act::kRelu, Act::kRelu6})
    for (int64_t C : kChannels)
      for (int64_t rows : kRows) cases.push_back({rows, C, act});
  return cases;
}
// Runs `body` once per Highway target, with dispatch forced to it.
template <typename Body>
void for_each_target(Body body) {
  fer::testing::for_each_hwy_target("batchnorm", batchnorm_hwy_targets, batchnorm_hwy_target_name,
                               batchnorm_hwy_force_target, batchnorm_hwy_dispatched_target, body);
}

TEST(BatchNormHwy, EveryKernelOnEveryTarget) {
  for_each_target([] {
    Rng rng(2024);
    for (const Case& s : all_cases())
      if (!check_case(s, rng)) return;  // one message per broken target
  });
}

// Larger inputs split over 3 threads (uneven shares, per-thread partial statistics and
// sums merged in order), with a batch-1 MobileNet-sized map among them.
TEST(BatchNormHwy, ThreadedOnEveryTarget) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(3);
  for_each_target([] {
    Rng rng(99);
    for (Act act : {Act::kNone, Act::kRelu, Act::kRelu6})
      for (const Case& s : {Case{5000, 17, act}, Case{1037, 100, act}, Case{48 * 48, 24, act},
                            Case{4099, 33, act}})
        if (!check_case(s, rng)) return;
  });
  omp_set_num_threads(saved);
}

// A NaN input stays NaN through a fused BatchNorm+ReLU6, as through relu6_forward (and
// PyTorch's relu6): a diverged activation must not be hidden by the fusion. ReLU maps NaN
// to 0 in both (relu_forward's x > 0 ? x : 0). Other elements agree to rounding.
TEST(BatchNormHwy, FusedInferencePassesNaNLikeTheUnfusedActivation) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const int64_t C = 19, rows = 7;
  Rng rng(5);
  std::vector<float> x(rows * C), gamma(C), beta(C), mm(C), mv(C);
  for (auto& v : x) v = static_cast<float>(rng.uniform(-8, 8));
  for (int64_t c = 0; c < C; ++c) {
    gamma[c] = static_cast<float>(rng.uniform(0.5, 2));
    beta[c] = static_cast<float>(rng.uniform(-1, 1));
    mm[c] = static_cast<float>(rng.uniform(-1, 1));
    mv[c] = static_cast<float>(rng.uniform(0.5, 2));
  }
  x[3] = nan, x[C + 17] = nan, x[5 * C + 16] = 100.f;  // 17, 16: masked tail lanes too
  for_each_target([&] {
    for (Act act : {Act::kRelu, Act::kRelu6}) {
      std::vector<float> want(x.size()), got(x.size());
      batchnorm_forward_inference_fused_ref(act, x.data(), gamma.data(), beta.data(), mm.data(),
                                            mv.data(), rows, C, 1e-3f, want.data());
      batchnorm_forward_inference_fused(act, x.data(), gamma.data(), beta.data(), mm.data(),
                                        mv.data(), rows, C, 1e-3f, got.data());
      for (size_t i = 0; i < x.size(); ++i) {
        ASSERT_EQ(std::isnan(got[i]), std::isnan(want[i])) << "act " << int(act) << " at " << i;
        if (!std::isnan(want[i])) {
          ASSERT_NEAR(got[i], want[i], 1e-5f) << "at " << i;
        }
      }
      EXPECT_EQ(std::isnan(got[3]), act == Act::kRelu6);
      EXPECT_EQ(std::isnan(got[C + 17]), act == Act::kRelu6);
      EXPECT_EQ(got[5 * C + 16], act == Act::kRelu6 ? 6.f : want[5 * C + 16]);
    }
  });
}

// The statistics keep their digits when |mean| >> std over many rows (where a float
// E[x^2] - E[x]^2, or even a long float sum, would not).
TEST(BatchNormHwy, LargeMeanManyRows) {
  const int64_t rows = 100003, C = 3;
  std::vector<float> x(rows * C);
  Rng rng(7);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < C; ++c)
      x[r * C + c] = float(1000.0 * (c + 1) + 0.01 * rng.uniform(-1, 1));
  const std::vector<float> gamma(C, 1.f), beta(C, 0.f);
  std::vector<float> y(x.size()), y_ref(x.size()), m(C), v(C), s(C), m_ref(C), v_ref(C), s_ref(C);
  batchnorm_forward_train_ref(x.data(), gamma.data(), beta.data(), rows, C, 1e-12f, y_ref.data(),
                              m_ref.data(), v_ref.data(), s_ref.data());
  batchnorm_forward_train(x.data(), gamma.data(), beta.data(), rows, C, 1e-12f, y.data(),
                          m.data(), v.data(), s.data());
  for (int64_t c = 0; c < C; ++c) {
    EXPECT_NEAR(m[c], m_ref[c], 1e-7 * m_ref[c]) << "channel " << c;
    EXPECT_NEAR(v[c], v_ref[c], 1e-4 * v_ref[c]) << "channel " << c;
  }
}

// The OpenMP loops (the benchmark's baseline) still agree with the reference.
TEST(BatchNormHwy, LoopsMatchReference) {
  Rng rng(11);
  for (int64_t C : {3, 33})
    for (int64_t rows : {5, 2000}) {
      const Data d = make_data({rows, C, Act::kNone}, rng);
      const size_t n = d.x.size();
      std::vector<float> y(n), y_ref(n), m(C), v(C), s(C), mr(C), vr(C), sr(C);
      batchnorm_forward_train_ref(d.x.data(), d.gamma.data(), d.beta.data(), rows, C, 1e-3f,
                                  y_ref.data(), mr.data(), vr.data(), sr.data());
      batchnorm_forward_train_loops(d.x.data(), d.gamma.data(), d.beta.data(), rows, C, 1e-3f,
                                    y.data(), m.data(), v.data(), s.data());
      for (size_t i = 0; i < n; ++i) ASSERT_NEAR(y[i], y_ref[i], 1e-4) << i;
      batchnorm_forward_inference_ref(d.x.data(), d.gamma.data(), d.beta.data(),
                                      d.moving_mean.data(), d.moving_var.data(), rows, C, 1e-3f,
                                      y_ref.data());
      batchnorm_forward_inference_loops(d.x.data(), d.gamma.data(), d.beta.data(),
                                        d.moving_mean.data(), d.moving_var.data(), rows, C,
                                        1e-3f, y.data());
      for (size_t i = 0; i < n; ++i) ASSERT_NEAR(y[i], y_ref[i], 1e-4) << i;
      for (bool train : {true, false}) {
        std::vector<float> dx(n, 0.f), dx_ref(n, 0.f), dg(C, 0.f), dg_ref(C, 0.f), db(C, 0.f),
            db_ref(C, 0.f);
        (train ? batchnorm_backward_train_ref : batchnorm_backward_inference_ref)(
            d.x.data(), d.dy.data(), d.gamma.data(), mr.data(), sr.data(), rows, C,
            dx_ref.data(), dg_ref.data(), db_ref.data());
        (train ? batchnorm_backward_train_loops : batchnorm_backward_inference_loops)(
            d.x.data(), d.dy.data(), d.gamma.data(), mr.data(), sr.data(), rows, C, dx.data(),
            dg.data(), db.data());
        for (size_t i = 0; i < n; ++i) ASSERT_NEAR(dx[i], dx_ref[i], 1e-3) << i;
        for (int64_t c = 0; c < C; ++c) {
          ASSERT_NEAR(dg[c], dg_ref[c], 1e-3 * (1 + std::fabs(dg_ref[c]))) << c;
          ASSERT_NEAR(db[c], db_ref[c], 1e-3 * (1 + std::fabs(db_ref[c]))) << c;
        }
      }
    }
}

// ======================================================================================
// The fused layer pair
// ======================================================================================

// Restores the fusion switch however the test ends.
struct FusionGuard {
  bool saved = Sequential::fusion();
  ~FusionGuard() { Sequential::set_fusion(saved); }
};

// Sequential [BatchNormalization "bn", ReLU "act"] built for {H, W, C}, with random
// gamma, beta and running statistics (the same for every call with the same seed).
std::unique_ptr<Sequential> make_bn_relu(const Shape& example, float max_value, bool center,
                                      bool scale, uint64_t seed) {
  auto s = std::make_unique<Sequential>("block");
  s->add(std::make_unique<BatchNormalization>("bn", 1e-3f, 0.9f, center, scale));
  s->add(std::make_unique<ReLU>("act", max_value));
  Rng rng(seed);
  s->build(example, rng);
  auto& bn = static_cast<BatchNormalization&>(s->layer(0));
  const int64_t C = example.back();
  auto fill = [&](Tensor& t, double lo, double hi) {
    if (!t.defined()) return;
    for (int64_t c = 0; c < C; ++c) t.data()[c] = static_cast<float>(rng.uniform(lo, hi));
  };
  fill(bn.gamma(), -1, 4);
  fill(bn.beta(), -2, 4);
  fill(bn.moving_mean(), -1, 1);
  fill(bn.moving_variance(), 0.2, 2);
  return s;
}

struct PairResult {
  size_t tape_entries = 0;
  std::vector<float> y, dx, dgamma, dbeta, moving_mean, moving_var;
};

// One forward + backward of the pair (mode: 0 training, 1 inference, 2 frozen in training).
PairResult run_pair(bool fuse, int mode, float max_value, bool center, bool scale,
                    const Tensor& x_in, const Tensor& w) {
  Sequential::set_fusion(fuse);
  const Shape example(x_in.shape().begin() + 1, x_in.shape().end());
  auto s = make_bn_relu(example, max_value, center, scale, 17);
  if (mode == 2) s->set_frozen(true);
  auto& bn = static_cast<BatchNormalization&>(s->layer(0));
  Tensor x = x_in.clone();
  x.set_requires_grad(true);
  Tape& tape = Tape::current();
  const size_t before = tape.size();
  Tensor y = s->forward(x, mode != 1);
  PairResult r;
  r.tape_entries = tape.size() - before;
  r.y = y.to_vector();
  tape.backward(y, w);
  r.dx = x.grad_tensor().to_vector();
  if (scale && bn.gamma().requires_grad()) r.dgamma = bn.gamma().grad_tensor().to_vector();
  if (center && bn.beta().requires_grad()) r.dbeta = bn.beta().grad_tensor().to_vector();
  r.moving_mean = bn.moving_mean().to_vector();
  r.moving_var = bn.moving_variance().to_vector();
  return r;
}

// a ~ b elementwise, relative to the largest |b| (these are sums of many terms).
void expect_near_all(const std::vector<float>& a, const std::vector<float>& b, double rtol,
                     const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  double scale = 0;
  for (float v : b) scale = std::max(scale, double(std::fabs(v)));
  for (size_t i = 0; i < a.size(); ++i)
    ASSERT_NEAR(a[i], b[i], rtol * scale + 1e-7) << what << " at " << i << " of " << a.size();
}

TEST(BatchNormReluFusion, PairMatchesUnfusedInEveryMode) {
  FusionGuard guard;
  Rng rng(3);
  const char* modes[] = {"training", "inference", "frozen"};
  for (const Shape& shape : {Shape{4, 6, 6, 17}, Shape{1, 3, 3, 33}, Shape{2, 5, 7, 3}})
    for (float max_value : {0.f, 6.f})
      for (int mode = 0; mode < 3; ++mode)
        for (bool affine : {true, false}) {
          Tensor x = fer::testing::random_tensor(shape, rng, -2, 3);
          const Tensor w = fer::testing::random_tensor(shape, rng);
          const std::string what = std::string(modes[mode]) + (max_value ? " relu6" : " relu") +
                                   (affine ? "" : " no center/scale") + " " + shape_str(shape);
          const PairResult fused = run_pair(true, mode, max_value, affine, affine, x, w);
          const PairResult plain = run_pair(false, mode, max_value, affine, affine, x, w);
          // The fusion really ran: one backward closure for the pair instead of two.
          EXPECT_EQ(fused.tape_entries, 1u) << what;
          EXPECT_EQ(plain.tape_entries, 2u) << what;
          // The activation matters here: some outputs are clipped (else the mask would
          // not be tested).
          const auto clipped = std::count_if(plain.y.begin(), plain.y.end(), [&](float v) {
            return v == 0.f || (max_value > 0 && v == max_value);
          });
          EXPECT_GT(clipped, 0) << what;
          EXPECT_LT(size_t(clipped), plain.y.size()) << what;
          expect_near_all(fused.y, plain.y, 1e-6, what + " y");
          expect_near_all(fused.dx, plain.dx, 1e-5, what + " dx");
          expect_near_all(fused.dgamma, plain.dgamma, 1e-5, what + " dgamma");
          expect_near_all(fused.dbeta, plain.dbeta, 1e-5, what + " dbeta");
          expect_near_all(fused.moving_mean, plain.moving_mean, 1e-6, what + " moving_mean");
          expect_near_all(fused.moving_var, plain.moving_var, 1e-6, what + " moving_var");
          if (mode == 0) {  // the statistics moved (else the check above says little)
            const auto start = make_bn_relu({shape[1], shape[2], shape[3]}, max_value, affine,
                                         affine, 17);
            auto& bn0 = static_cast<BatchNormalization&>(start->layer(0));
            EXPECT_NE(fused.moving_mean, bn0.moving_mean().to_vector()) << what;
          }
          EXPECT_EQ(fused.dgamma.empty(), !affine || mode == 2) << what;
        }
}

// Gradient check of the fused pair itself (not just agreement with the unfused one).
TEST(BatchNormReluFusion, FusedPairGradients) {
  FusionGuard guard;
  Sequential::set_fusion(true);
  for (float max_value : {0.f, 6.f}) {
    auto s = make_bn_relu({3, 3, 5}, max_value, true, true, 23);
    auto& bn = static_cast<BatchNormalization&>(s->layer(0));
    // Scales and shifts that put part of every channel below 0 and part of two above 6,
    // so that the activation's mask decides some gradients.
    const float gamma[5] = {1.f, 2.f, 3.f, 4.f, -2.f}, beta[5] = {0.f, 0.5f, 3.f, 2.5f, -0.5f};
    std::copy(gamma, gamma + 5, bn.gamma().data());
    std::copy(beta, beta + 5, bn.beta().data());
    Rng rng(8);
    Tensor x = fer::testing::random_tensor({2, 3, 3, 5}, rng, -2, 3);
    x.set_requires_grad(true);
    {
      NoGradGuard no_grad;
      const std::vector<float> y = s->forward(x, true).to_vector();
      EXPECT_GT(std::count(y.begin(), y.end(), 0.f), 10);
      if (max_value > 0) {
        EXPECT_GT(std::count(y.begin(), y.end(), 6.f), 3);
      }
    }
    // Away from the kinks of the activation, so finite differences do not cross one.
    fer::testing::check_gradients(
        [&] {
          Tensor y = s->forward(x, true);
          return y;
        },
        {{"x", x}, {"gamma", bn.gamma()}, {"beta", bn.beta()}}, 5,
        fer::testing::GradCheckOptions{1e-3, 3e-2, 3e-3, 60});
  }
}

// A ReLU that does not directly follow a BatchNormalization, and a BatchNormalization
// followed by something else, run on their own; so does a pair split across containers.
TEST(BatchNormReluFusion, OnlyAdjacentPairsFuse) {
  FusionGuard guard;
  Sequential::set_fusion(true);
  Sequential s("s");
  s.add(std::make_unique<ReLU>("r0"));
  s.add(std::make_unique<BatchNormalization>("bn1"));
  s.add(std::make_unique<BatchNormalization>("bn2"));
  s.add(std::make_unique<ReLU>("r2", 6.f));
  s.add(std::make_unique<ReLU>("r3"));
  Rng rng(1);
  s.build({4, 4, 3}, rng);
  Tensor x = fer::testing::random_tensor({2, 4, 4, 3}, rng);
  x.set_requires_grad(true);
  Tape& tape = Tape::current();
  const size_t before = tape.size();
  s.forward(x, true);
  // r0, bn1, bn2+r2 (fused), r3.
  EXPECT_EQ(tape.size() - before, 4u);
  tape.clear();
}

// forward_until (`fer infer --layer`) stops inside a pair: at the BatchNormalization it
// returns the normalized values before the activation, at the ReLU the fused output.
TEST(BatchNormReluFusion, ForwardUntilEitherLayerOfAPair) {
  FusionGuard guard;
  Rng rng(4);
  const Tensor x = fer::testing::random_tensor({2, 3, 3, 7}, rng, -2, 3);
  Sequential::set_fusion(false);
  auto plain = make_bn_relu({3, 3, 7}, 6.f, true, true, 9);
  const std::vector<float> bn_out = plain->layer(0).forward(x, false).to_vector();
  const std::vector<float> act_out = plain->forward(x, false).to_vector();
  ASSERT_NE(bn_out, act_out);  // some values are clipped
  Sequential::set_fusion(true);
  auto fused = make_bn_relu({3, 3, 7}, 6.f, true, true, 9);
  bool found = false;
  EXPECT_EQ(fused->forward_until(x, "bn", false, &found).to_vector(), bn_out);
  EXPECT_TRUE(found);
  found = false;
  expect_near_all(fused->forward_until(x, "act", false, &found).to_vector(), act_out, 1e-6,
                  "until act");
  EXPECT_TRUE(found);
}

// ======================================================================================
// A whole MobileNet V1
// ======================================================================================

struct StepResult {
  size_t tape_entries = 0;
  std::vector<float> loss, logits, inference;
  std::vector<std::vector<float>> grads, stats;
  std::vector<std::string> names;
  std::string config;
};

StepResult mobilenet_step(bool fuse, bool frozen_backbone) {
  Sequential::set_fusion(fuse);
  Json o = Json::object();
  o["size"] = 32;
  o["alpha"] = 0.25;
  Model m = Model::from_architecture(make_architecture("mobilenet_v1", o), 42);
  if (frozen_backbone) m.net().layer(0).set_frozen(true);
  Rng rng(5);
  Tensor x = fer::testing::random_tensor({3, 32, 32, 3}, rng, 0, 1);
  x.set_requires_grad(true);  // so that every layer, frozen or not, records its backward
  const std::vector<int> labels = {1, 4, 6};
  StepResult r;
  Tape& tape = Tape::current();
  const size_t before = tape.size();
  Tensor logits = m.forward(x, true);
  r.tape_entries = tape.size() - before;
  r.logits = logits.to_vector();
  Tensor loss = softmax_cross_entropy(logits, labels);
  r.loss = loss.to_vector();
  backward(loss);
  r.grads.push_back(x.grad_tensor().to_vector());
  for (Parameter* p : m.parameters()) {
    r.names.push_back(p->name);
    if (p->value.requires_grad()) r.grads.push_back(p->value.grad_tensor().to_vector());
    if (!p->trainable) r.stats.push_back(p->value.to_vector());
  }
  {
    NoGradGuard no_grad;
    r.inference = m.forward(x, false).to_vector();
  }
  r.config = m.architecture().dump();
  return r;
}

TEST(BatchNormReluFusion, MobileNetV1StepMatchesUnfused) {
  FusionGuard guard;
  for (bool frozen : {false, true}) {
    const std::string what = frozen ? "frozen backbone" : "training";
    const StepResult fused = mobilenet_step(true, frozen);
    const StepResult plain = mobilenet_step(false, frozen);
    // conv1 and the 13 depthwise and 13 pointwise convolutions each end in BN + ReLU6.
    EXPECT_EQ(plain.tape_entries - fused.tape_entries, 27u) << what;
    EXPECT_EQ(fused.names, plain.names) << what;
    EXPECT_EQ(fused.config, plain.config) << what;
    expect_near_all(fused.loss, plain.loss, 1e-6, what + " loss");
    expect_near_all(fused.logits, plain.logits, 1e-5, what + " logits");
    expect_near_all(fused.inference, plain.inference, 1e-5, what + " inference logits");
    ASSERT_EQ(fused.grads.size(), plain.grads.size()) << what;
    for (size_t i = 0; i < fused.grads.size(); ++i)
      expect_near_all(fused.grads[i], plain.grads[i], 1e-4,
                      what + " gradient " + std::to_string(i));
    ASSERT_EQ(fused.stats.size(), plain.stats.size()) << what;
    for (size_t i = 0; i < fused.stats.size(); ++i)
      expect_near_all(fused.stats[i], plain.stats[i], 1e-6,
                      what + " statistic " + std::to_string(i));
  }
}

// ======================================================================================
// The in-place backward (BatchNormalization::set_in_place_backward)
// ======================================================================================

// Restores the in-place switch however the test ends.
struct InPlaceGuard {
  bool saved = BatchNormalization::in_place_backward();
  ~InPlaceGuard() { BatchNormalization::set_in_place_backward(saved); }
};

TEST(BatchNormInPlaceBackward, MobileNetV1StepGivesTheSameGradientsBitForBit) {
  FusionGuard fusion_guard;
  InPlaceGuard guard;
  for (bool frozen : {false, true}) {
    const std::string what = frozen ? "frozen backbone" : "training";
    BatchNormalization::set_in_place_backward(true);
    const StepResult in_place = mobilenet_step(true, frozen);
    BatchNormalization::set_in_place_backward(false);
    const StepResult own_buffer = mobilenet_step(true, frozen);
    ASSERT_EQ(in_place.grads.size(), own_buffer.grads.size()) << what;
    for (size_t i = 0; i < in_place.grads.size(); ++i)
      EXPECT_EQ(in_place.grads[i], own_buffer.grads[i]) << what << " gradient " << i;
    EXPECT_EQ(in_place.stats, own_buffer.stats) << what;
  }
}

TEST(BatchNormInPlaceBackward, TakesTheOutputGradientOnlyWhenItIsTheFirstIntoItsInput) {
  InPlaceGuard guard;
  Rng rng(9);
  const Shape example = {3, 4, 5};
  const Tensor x_in = fer::testing::random_tensor({2, 3, 4, 5}, rng, -1, 2);
  const Tensor w = fer::testing::random_tensor({2, 3, 4, 5}, rng, -1, 1);
  // y = BN(x) alone, then y = BN(x) + x (the sum's backward writes x's gradient first,
  // so BatchNorm must add into it, not take y's).
  for (bool residual : {false, true}) {
    std::vector<float> dx[2];
    bool y_kept_grad[2];
    for (bool in_place : {false, true}) {
      BatchNormalization::set_in_place_backward(in_place);
      BatchNormalization bn("bn");
      Rng init(3);
      bn.build(example, init);
      bn.gamma().copy_from(fer::testing::random_tensor({5}, init, 0.5f, 1.5f));
      Tensor x = x_in.clone();
      x.set_requires_grad(true);
      Tensor y = bn.forward(x, true);
      Tensor out = residual ? add(y, x) : y;
      Tape::current().backward(out, w);
      dx[in_place] = x.grad_tensor().to_vector();
      y_kept_grad[in_place] = y.has_grad();
    }
    const std::string what = residual ? "BN(x) + x" : "BN(x)";
    EXPECT_EQ(dx[true], dx[false]) << what;
    EXPECT_TRUE(y_kept_grad[false]) << what;
    // In place, y's gradient buffer became x's -- unless x had a gradient already.
    EXPECT_EQ(y_kept_grad[true], residual) << what;
  }
}

}  // namespace
