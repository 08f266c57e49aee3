// The Highway softmax kernels (kernels/softmax_hwy.cpp: softmax rows, their backward, and
// the fused softmax cross-entropy with label smoothing and class weights) against the
// `_ref` loops in double, on every SIMD target compiled that this CPU runs (AVX-512, AVX2,
// SSE4, SSSE3, scalar). K = 1, 3, 7, 10, 17, 33 and 1000 fall below, across and above each
// target's vector width (the masked tail group); rows from 1 to 300, on 1 and 3 threads.
//
// Tolerances are the error bound derived at the top of softmax_hwy.cpp, with u = 2^-24:
// a result may differ from the reference by (1e-6 + gap * u) times the magnitude of its
// terms, gap = max - x[k] being how far below the row's max its class is (the float
// rounding of x - max, which exp magnifies). Concretely:
//   softmax      |y - y_ref|   <= (1e-6 + gap u) y_ref
//   backward     |dx - dx_ref| <= 1e-6 y (|dy| + sum_j |dy_j y_j|) + 2u |dx_ref|
//   loss         |l - l_ref|   <= (1e-6 + max gap u) l_ref       (a sum of nonnegative terms)
//                                 + the reference's own rounding of lse = max + log S
//   dlogits      |g - g_ref|   <= (1e-6 + gap u) (A p + a) / W   (see softmax.h for A, a, W)
//   and without smoothing, at the label, relative to the exact value: A p_y - a_y =
//   w_y (p_y - 1) nearly cancels for a confident row, and must keep its digits there
//   (the reference's do not: see check_ce).
// plus 1e-44 (a few subnormal steps) everywhere, for probabilities below 2^-126. A
// dropped, doubled or misplaced term moves a result by far more than these.
//
// Inputs: uniform logits, logits offset by 1000 (the max subtraction), a wide range
// [-60, 60] (far classes, subnormal probabilities), quantized logits (ties at the max),
// and confident rows (the label 20 above the rest: a tiny loss and label gradient).
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "fer/rng.h"
#include "hwy_targets.h"
#include "kernels/softmax.h"

using namespace fer;
using namespace fer::kernels;

namespace {

constexpr double kU = 1.0 / (1 << 24);  // 2^-24
constexpr double kRel = 1e-6;
constexpr double kTiny = 1e-44;
constexpr size_t kGuard = 40;
constexpr float kSentinel = -777.f;

enum class Logits { Uniform, Offset, Wide, Ties, Confident };
const char* logits_name(Logits l) {
  switch (l) {
    case Logits::Uniform: return "uniform";
    case Logits::Offset: return "offset 1000";
    case Logits::Wide: return "wide";
    case Logits::Ties: return "ties";
    case Logits::Confident: return "confident";
  }
  return "?";
}

// rows x K logits of one kind; Confident puts each row's label 20 above the rest.
std::vector<float> make_logits(int64_t rows, int64_t K, Logits kind, const std::vector<int>& labels,
                               Rng& rng) {
  std::vector<float> z(size_t(rows * K));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < K; ++k) {
      float& v = z[size_t(r * K + k)];
      switch (kind) {
        case Logits::Uniform: v = float(rng.uniform(-6, 6)); break;
        case Logits::Offset: v = float(1000 + rng.uniform(-6, 6)); break;
        case Logits::Wide: v = float(rng.uniform(-60, 60)); break;
        case Logits::Ties: v = float(int(rng.below(4)) - 1); break;
        case Logits::Confident:
          v = float(rng.uniform(-2, 2)) + (labels.empty() || k != labels[r] ? 0.f : 20.f);
          break;
      }
    }
  return z;
}

std::vector<float> random_values(size_t n, Rng& rng, double lo, double hi) {
  std::vector<float> v(n);
  for (float& x : v) x = float(rng.uniform(lo, hi));
  return v;
}

std::vector<float> guarded(std::vector<float> v) {
  v.resize(v.size() + kGuard, kSentinel);
  return v;
}

// Each row's max, as a double per element: gap[k] = max - x[k].
std::vector<double> gaps(const std::vector<float>& x, int64_t rows, int64_t K) {
  std::vector<double> g(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x.data() + r * K;
    const double mx = *std::max_element(xr, xr + K);
    for (int64_t k = 0; k < K; ++k) g[size_t(r * K + k)] = mx - xr[k];
  }
  return g;
}

// The worst |error| / tolerance seen, printed at the end of each test: how tight it is.
double g_worst = 0;

// |got[i] - want[i]| <= tol[i] for want's floats, then the guard intact.
bool close(const std::vector<float>& got, const std::vector<double>& want,
           const std::vector<double>& tol, const std::string& what) {
  for (size_t i = 0; i < want.size(); ++i) {
    const double err = std::fabs(double(got[i]) - want[i]);
    if (!(err <= tol[i])) {
      ADD_FAILURE() << what << ": element " << i << " of " << want.size() << " is " << got[i]
                    << ", expected " << want[i] << " (tolerance " << tol[i] << ")";
      return false;
    }
    if (tol[i] > 0) g_worst = std::max(g_worst, err / tol[i]);
  }
  for (size_t i = want.size(); i < got.size(); ++i)
    if (got[i] != kSentinel) {
      ADD_FAILURE() << what << ": wrote past the end (guard float " << i - want.size() << ")";
      return false;
    }
  return true;
}

std::vector<double> as_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

template <typename Body>
void for_each_target(Body body) {
  fer::testing::for_each_hwy_target("softmax", softmax_hwy_targets, softmax_hwy_target_name,
                                    softmax_hwy_force_target, softmax_hwy_dispatched_target,
                                    body);
}

const int64_t kClasses[] = {1, 3, 7, 10, 17, 33, 1000};
const int64_t kRowCounts[] = {1, 5, 64};

// ---- softmax rows and their backward ------------------------------------------------------

bool check_softmax(int64_t rows, int64_t K, Logits kind, Rng& rng) {
  const std::string what = "rows=" + std::to_string(rows) + " K=" + std::to_string(K) + " " +
                           logits_name(kind);
  const size_t n = size_t(rows * K);
  const auto x = make_logits(rows, K, kind, {}, rng);
  const auto gap = gaps(x, rows, K);
  std::vector<float> y_ref(n);
  softmax_rows_ref(x.data(), rows, K, y_ref.data());
  auto y = guarded(std::vector<float>(n, 12345.f));
  softmax_rows(x.data(), rows, K, y.data());
  std::vector<double> tol(n);
  for (size_t i = 0; i < n; ++i) tol[i] = (kRel + gap[i] * kU) * y_ref[i] + kTiny;
  if (!close(y, as_double(y_ref), tol, what + " softmax")) return false;

  // Backward from the reference's probabilities, adding into a nonzero dx.
  const auto dy = random_values(n, rng, -1, 1), dx0 = random_values(n, rng, -1, 1);
  std::vector<float> dx_ref = dx0;
  softmax_rows_backward_ref(y_ref.data(), dy.data(), rows, K, dx_ref.data());
  auto dx = guarded(dx0);
  softmax_rows_backward(y_ref.data(), dy.data(), rows, K, dx.data());
  for (int64_t r = 0; r < rows; ++r) {
    double abs_dot = 0;
    for (int64_t k = 0; k < K; ++k) abs_dot += std::fabs(double(dy[r * K + k]) * y_ref[r * K + k]);
    for (int64_t k = 0; k < K; ++k) {
      const size_t i = size_t(r * K + k);
      tol[i] = kRel * y_ref[i] * (std::fabs(dy[i]) + abs_dot) + 2 * kU * std::fabs(dx_ref[i]) +
               kTiny;
    }
  }
  return close(dx, as_double(dx_ref), tol, what + " softmax backward");
}

TEST(SoftmaxHwy, RowsAndBackwardOnEveryTarget) {
  g_worst = 0;
  for_each_target([] {
    Rng rng(2024);
    for (int64_t K : kClasses)
      for (int64_t rows : kRowCounts)
        for (Logits kind : {Logits::Uniform, Logits::Offset, Logits::Wide, Logits::Ties})
          if (!check_softmax(rows, K, kind, rng)) return;  // one message per broken target
  });
  std::printf("worst error / tolerance: %.3f\n", g_worst);
}

TEST(SoftmaxHwy, RowsThreaded) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(3);
  for_each_target([] {
    Rng rng(5);
    for (int64_t K : {int64_t(1000), int64_t(33)})
      if (!check_softmax(K == 1000 ? 300 : 1001, K, Logits::Uniform, rng)) return;
  });
  omp_set_num_threads(saved);
}

// Hand values: softmax(0, 1, 2) on each target, and the +1000 row that would overflow
// without the max subtraction.
TEST(SoftmaxHwy, HandValues) {
  for_each_target([] {
    const std::vector<float> x = {0, 1, 2, 1000, 1001, 1002};
    const double e = std::exp(1.0), total = 1 + e + e * e;
    std::vector<float> y(6);
    softmax_rows(x.data(), 2, 3, y.data());
    for (int r = 0; r < 2; ++r) {
      EXPECT_NEAR(y[r * 3 + 0], 1 / total, 1e-7);
      EXPECT_NEAR(y[r * 3 + 1], e / total, 1e-7);
      EXPECT_NEAR(y[r * 3 + 2], e * e / total, 1e-7);
    }
  });
}

// NaN logits, or an infinite max, give a NaN row and loss, as in the reference (a
// diverged model must not show a finite loss); a -inf logit below a finite max is a
// probability of 0.
TEST(SoftmaxHwy, NonFiniteLogits) {
  const float nan = std::numeric_limits<float>::quiet_NaN(),
              inf = std::numeric_limits<float>::infinity();
  for_each_target([&] {
    for (int64_t K : {int64_t(3), int64_t(20)}) {
      for (float bad : {nan, inf}) {
        std::vector<float> x(size_t(2 * K), 0.5f), y(x.size());
        x[size_t(K + K / 2)] = bad;  // row 1
        softmax_rows(x.data(), 2, K, y.data());
        for (int64_t k = 0; k < K; ++k) {
          EXPECT_NEAR(y[k], 1.0 / K, 1e-7) << "K=" << K << " row 0 untouched";
          EXPECT_TRUE(std::isnan(y[K + k])) << "K=" << K << " x=" << bad << " k=" << k;
        }
        const std::vector<int> labels = {0, 0};
        std::vector<float> g(x.size());
        for (float eps : {0.f, 0.1f}) {
          EXPECT_TRUE(std::isnan(softmax_cross_entropy(x.data(), labels.data(), 2, K, eps,
                                                       nullptr, g.data())))
              << "K=" << K << " x=" << bad;
          EXPECT_TRUE(std::isnan(softmax_cross_entropy_ref(x.data(), labels.data(), 2, K, eps,
                                                           nullptr, g.data())));
        }
      }
      std::vector<float> x(size_t(K), 0.5f), y(x.size()), y_ref(x.size());
      x[1] = -inf;
      softmax_rows(x.data(), 1, K, y.data());
      softmax_rows_ref(x.data(), 1, K, y_ref.data());
      EXPECT_EQ(y[1], 0.f);
      for (int64_t k = 0; k < K; ++k) EXPECT_NEAR(y[k], y_ref[k], 1e-7) << k;
    }
  });
}

// ---- softmax cross-entropy ----------------------------------------------------------------

struct CeCase {
  int64_t N, K;
  Logits kind;
  float eps;
  bool weighted;
};

bool check_ce(const CeCase& c, Rng& rng) {
  const std::string what = "N=" + std::to_string(c.N) + " K=" + std::to_string(c.K) + " " +
                           logits_name(c.kind) + " eps=" + std::to_string(c.eps) +
                           (c.weighted ? " weighted" : "");
  const int64_t N = c.N, K = c.K;
  const size_t n = size_t(N * K);
  std::vector<int> labels(N);
  for (int& y : labels) y = int(rng.below(K));
  const auto z = make_logits(N, K, c.kind, labels, rng);
  const auto w = random_values(K, rng, 0.1, 3);
  const float* wp = c.weighted ? w.data() : nullptr;

  std::vector<float> g_ref(n);
  const double l_ref =
      softmax_cross_entropy_ref(z.data(), labels.data(), N, K, c.eps, wp, g_ref.data());
  auto g = guarded(std::vector<float>(n, 12345.f));
  const double l = softmax_cross_entropy(z.data(), labels.data(), N, K, c.eps, wp, g.data());
  const double l_nograd =
      softmax_cross_entropy(z.data(), labels.data(), N, K, c.eps, wp, nullptr);

  // Per row: the sum of exponentials S, and S - e_y = sum_{k != y} exp(z[k] - max) (all
  // terms positive: no cancellation), from which the label's gradient without smoothing,
  // w_y (p_y - 1) / W = -w_y (S - e_y) / S / W, is exact to double precision. The
  // reference's own (A p_y - a_y) / W loses digits there when p_y ~ 1 (so does its loss,
  // through the rounding of lse = max + log S), and the kernels are held to this instead.
  const double eps = c.eps;
  auto wk = [&](int64_t k) { return wp ? double(wp[k]) : 1.0; };
  double W = 0, sum_w = 0;
  for (int64_t i = 0; i < N; ++i) W += wk(labels[i]);
  for (int64_t k = 0; k < K; ++k) sum_w += wk(k);
  const auto gap = gaps(z, N, K);
  std::vector<double> want = as_double(g_ref), tol(n);
  double max_gap = 0, ref_loss_err = 0;
  for (int64_t i = 0; i < N; ++i) {
    const int y = labels[i];
    const double A = (1 - eps) * wk(y) + eps / K * sum_w;
    const float* zi = z.data() + i * K;
    const double mx = *std::max_element(zi, zi + K);
    double sum = 0, others = 0, row_gap = 0;
    for (int64_t k = 0; k < K; ++k) {
      sum += std::exp(zi[k] - mx);
      if (k != y) others += std::exp(zi[k] - mx);
      row_gap = std::max(row_gap, mx - zi[k]);
    }
    max_gap = std::max(max_gap, row_gap);
    // The reference's row loss is A times lse - z[k] terms, lse rounded to double.
    ref_loss_err += A * std::fabs(mx + std::log(sum)) * 0x1p-52 / W;
    for (int64_t k = 0; k < K; ++k) {
      const size_t j = size_t(i * K + k);
      const double a = (k == y ? (1 - eps) * wk(y) : 0.0) + eps / K * wk(k);
      const double p = std::exp(zi[k] - mx) / sum;
      tol[j] = (kRel + gap[j] * kU) * (A * p + a) / W + kTiny;
      if (eps == 0 && k == y) {
        want[j] = -wk(y) * (others / sum) / W;
        tol[j] = (kRel + row_gap * kU) * std::fabs(want[j]) + kTiny;
      }
    }
  }

  const double loss_tol = (kRel + max_gap * kU) * std::fabs(l_ref) + ref_loss_err + kTiny;
  if (!(std::fabs(l - l_ref) <= loss_tol)) {
    ADD_FAILURE() << what << ": loss " << l << ", expected " << l_ref << " (tolerance "
                  << loss_tol << ")";
    return false;
  }
  g_worst = std::max(g_worst, std::fabs(l - l_ref) / loss_tol);
  if (l_nograd != l) {
    ADD_FAILURE() << what << ": the loss without dlogits is " << l_nograd << ", with " << l;
    return false;
  }
  return close(g, want, tol, what + " dlogits");
}

std::vector<CeCase> ce_cases() {
  std::vector<CeCase> cases;
  for (int64_t K : kClasses)
    for (int64_t N : kRowCounts)
      for (Logits kind : {Logits::Uniform, Logits::Offset, Logits::Ties, Logits::Confident})
        for (float eps : {0.f, 0.1f})
          for (bool weighted : {false, true}) cases.push_back({N, K, kind, eps, weighted});
  return cases;
}

TEST(SoftmaxCrossEntropyHwy, LossAndGradientOnEveryTarget) {
  g_worst = 0;
  for_each_target([] {
    Rng rng(11);
    for (const CeCase& c : ce_cases())
      if (!check_ce(c, rng)) return;
  });
  std::printf("worst error / tolerance: %.3f\n", g_worst);
}

// 3 threads on 300 rows of 1000 classes: the same bounds, and the same loss bits as one
// thread (row losses are added up in row order, whatever the shares).
TEST(SoftmaxCrossEntropyHwy, ThreadedMatchesOneThread) {
  const int saved = omp_get_max_threads();
  for_each_target([] {
    Rng rng(3);
    omp_set_num_threads(3);
    for (float eps : {0.f, 0.1f})
      if (!check_ce({300, 1000, Logits::Uniform, eps, true}, rng)) return;
    const int64_t N = 300, K = 1000;
    std::vector<int> labels(N);
    for (int& y : labels) y = int(rng.below(K));
    const auto z = make_logits(N, K, Logits::Uniform, labels, rng);
    std::vector<float> g3(size_t(N * K)), g1(g3.size());
    const double l3 = softmax_cross_entropy(z.data(), labels.data(), N, K, 0.1f, nullptr, g3.data());
    omp_set_num_threads(1);
    const double l1 = softmax_cross_entropy(z.data(), labels.data(), N, K, 0.1f, nullptr, g1.data());
    EXPECT_EQ(l3, l1);
    EXPECT_EQ(g3, g1);
  });
  omp_set_num_threads(saved);
}

// ---- cross-entropy against soft targets (knowledge distillation) -----------------------

// Random distributions over K classes, one per row; `peaked` puts most mass on one class.
std::vector<float> random_targets(int64_t rows, int64_t K, bool peaked, Rng& rng) {
  std::vector<float> t(size_t(rows * K));
  for (int64_t r = 0; r < rows; ++r) {
    double sum = 0;
    for (int64_t k = 0; k < K; ++k) sum += t[r * K + k] = float(rng.uniform(0, 1));
    if (peaked) sum += t[r * K + rng.below(K)] += float(20 * sum);
    for (int64_t k = 0; k < K; ++k) t[r * K + k] = float(t[r * K + k] / sum);
  }
  return t;
}

// The SIMD version against the double reference on every target (same bounds as the
// integer-label loss: the loss is a sum of nonnegative terms t*(lse - z), the gradient
// (p - t)/N), and both against the integer-label kernel when the targets are the smoothed
// one-hot rows that kernel implies.
TEST(SoftmaxCrossEntropySoft, MatchesReferenceAndTheLabelLossOnEveryTarget) {
  g_worst = 0;
  for_each_target([] {
    Rng rng(21);
    for (int64_t N : kRowCounts)
      for (int64_t K : kClasses)
        for (Logits kind : {Logits::Uniform, Logits::Offset, Logits::Wide, Logits::Confident})
          for (bool peaked : {false, true}) {
            const std::string what = "N=" + std::to_string(N) + " K=" + std::to_string(K) + " " +
                                     logits_name(kind) + (peaked ? " peaked" : "");
            std::vector<int> labels(static_cast<size_t>(N));
            for (int& y : labels) y = int(rng.below(K));
            const auto z = make_logits(N, K, kind, labels, rng);
            const auto t = random_targets(N, K, peaked, rng);
            const auto gap = gaps(z, N, K);
            std::vector<float> g_ref(size_t(N * K));
            const double l_ref = softmax_cross_entropy_soft_ref(z.data(), t.data(), N, K, g_ref.data());
            auto g = guarded(std::vector<float>(size_t(N * K), 12345.f));
            const double l = softmax_cross_entropy_soft(z.data(), t.data(), N, K, g.data());
            double max_gap = 0, mx = 0;
            for (size_t i = 0; i < gap.size(); ++i) max_gap = std::max(max_gap, gap[i]);
            for (float v : z) mx = std::max<double>(mx, std::fabs(v));
            ASSERT_NEAR(l, l_ref, (kRel + max_gap * kU) * l_ref + 4 * kU * mx + 1e-12) << what;
            EXPECT_EQ(softmax_cross_entropy_soft(z.data(), t.data(), N, K, nullptr), l) << what;
            std::vector<double> tol(g_ref.size());
            for (size_t i = 0; i < tol.size(); ++i) {
              const double p = g_ref[i] * N + t[i];  // the reference's probability
              tol[i] = ((kRel + gap[i] * kU) * (std::fabs(p) + t[i])) / N + kTiny;
            }
            if (!close(g, as_double(g_ref), tol, what + " soft dlogits")) return;

            // Smoothed one-hot targets: the integer-label kernel's loss and gradient (to the
            // float rounding of the targets eps/K and 1 - eps, about 1e-8 relative).
            for (float eps : {0.f, 0.1f}) {
              std::vector<float> onehot(size_t(N * K));
              for (int64_t i = 0; i < N; ++i)
                for (int64_t k = 0; k < K; ++k)
                  onehot[i * K + k] = (k == labels[i] ? 1 - eps : 0.f) + eps / K;
              std::vector<float> g_soft(size_t(N * K)), g_hard(size_t(N * K));
              const double ls = softmax_cross_entropy_soft_ref(z.data(), onehot.data(), N, K,
                                                               g_soft.data());
              const double lh = softmax_cross_entropy_ref(z.data(), labels.data(), N, K, eps,
                                                          nullptr, g_hard.data());
              ASSERT_NEAR(ls, lh, 1e-7 * (1 + std::fabs(lh))) << what << " eps " << eps;
              for (size_t i = 0; i < g_soft.size(); ++i)
                ASSERT_NEAR(g_soft[i], g_hard[i], 1e-7) << what << " eps " << eps << " " << i;
            }
          }
  });
  std::printf("worst error / tolerance: %.3f\n", g_worst);
}

// The `_loops` baseline of the benchmark still computes the same thing.
TEST(SoftmaxHwy, LoopsBaselineMatchesReference) {
  Rng rng(8);
  const int64_t N = 64, K = 7;
  std::vector<int> labels(N);
  for (int& y : labels) y = int(rng.below(K));
  const auto z = make_logits(N, K, Logits::Uniform, labels, rng);
  const auto w = random_values(K, rng, 0.1, 3);
  std::vector<float> a(N * K), b(N * K);
  const double la = softmax_cross_entropy_ref(z.data(), labels.data(), N, K, 0.1f, w.data(), a.data());
  const double lb = softmax_cross_entropy_loops(z.data(), labels.data(), N, K, 0.1f, w.data(), b.data());
  EXPECT_NEAR(la, lb, 1e-6 * la);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-7) << i;
  softmax_rows_ref(z.data(), N, K, a.data());
  softmax_rows_loops(z.data(), N, K, b.data());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-6 * a[i] + 1e-12) << i;
  const auto dy = random_values(a.size(), rng, -1, 1);
  std::vector<float> da(a.size(), 0.f), db(a.size(), 0.f);
  softmax_rows_backward_ref(a.data(), dy.data(), N, K, da.data());
  softmax_rows_backward_loops(a.data(), dy.data(), N, K, db.data());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(da[i], db[i], 1e-6) << i;
}

}  // namespace
