// fer's Highway SGEMM (kernels/gemm_hwy.cpp) against a double-precision reference, on
// every SIMD target it was compiled for that this CPU can run (AVX-512, AVX2, SSE4, ...):
// each target is its own copy of the micro-kernel, tile sizes and edge handling, so each
// is forced in turn with hwy::SetSupportedTargetsForTest (through sgemm_hwy_force_target)
// and checked over randomized shapes, all four transpose combinations, padded leading
// dimensions and alpha/beta cases.
#include <gtest/gtest.h>

#include "hwy_targets.h"
#include <omp.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "fer/rng.h"
#include "kernels/gemm.h"

using namespace fer;
using namespace fer::kernels;

namespace {

using Gemm = void (*)(bool, bool, int, int, int, float, const float*, int, const float*, int,
                      float, float*, int);

struct Case {
  bool ta, tb;
  int m, n, k;
  float alpha, beta;
  int pad_a, pad_b, pad_c;  // extra floats per row beyond what the matrix needs
};

std::string describe(const Case& s) {
  std::ostringstream o;
  o << "m=" << s.m << " n=" << s.n << " k=" << s.k << " trans_a=" << s.ta
    << " trans_b=" << s.tb << " alpha=" << s.alpha << " beta=" << s.beta
    << " pads=" << s.pad_a << "," << s.pad_b << "," << s.pad_c;
  return o.str();
}

// Runs `gemm` on one case with random A, B, C and checks every element of C against a
// double-precision sum. Returns false (after a gtest failure naming the case and element)
// on the first wrong value, so a broken target stops after one message.
//
// Tolerance: the float result's rounding error is at most about k * FLT_EPSILON times the
// sum of the terms' magnitudes (|alpha * a * b| over p, plus |beta * c|); (k + 2) times that
// bound is still ~1/k of one term, so a dropped, doubled or misplaced term always fails.
// The padding columns of C hold a sentinel that must survive (no writes outside C), and
// with beta == 0 C starts as NaN, which must not leak into the result.
bool check_case(Gemm gemm, const Case& s, Rng& rng) {
  const int a_rows = s.ta ? s.k : s.m, a_cols = s.ta ? s.m : s.k;
  const int b_rows = s.tb ? s.n : s.k, b_cols = s.tb ? s.k : s.n;
  const int lda = a_cols + s.pad_a, ldb = b_cols + s.pad_b, ldc = s.n + s.pad_c;
  std::vector<float> a(size_t(a_rows) * lda), b(size_t(b_rows) * ldb), c(size_t(s.m) * ldc);
  for (float& x : a) x = static_cast<float>(rng.uniform(-1.0, 1.0));
  for (float& x : b) x = static_cast<float>(rng.uniform(-1.0, 1.0));
  const float sentinel = 12345.f;
  for (int i = 0; i < s.m; ++i)
    for (int j = 0; j < ldc; ++j)
      c[size_t(i) * ldc + j] = j >= s.n              ? sentinel
                               : s.beta == 0.f       ? std::numeric_limits<float>::quiet_NaN()
                                                     : static_cast<float>(rng.uniform(-1.0, 1.0));
  const std::vector<float> c0 = c;

  gemm(s.ta, s.tb, s.m, s.n, s.k, s.alpha, a.data(), lda, b.data(), ldb, s.beta, c.data(), ldc);

  for (int i = 0; i < s.m; ++i)
    for (int j = 0; j < ldc; ++j) {
      const float got = c[size_t(i) * ldc + j];
      if (j >= s.n) {
        if (got != sentinel) {
          ADD_FAILURE() << describe(s) << ": wrote outside C at row " << i << " column " << j;
          return false;
        }
        continue;
      }
      double sum = 0, mag = 0;
      for (int p = 0; p < s.k; ++p) {
        const double x = s.ta ? a[size_t(p) * lda + i] : a[size_t(i) * lda + p];
        const double y = s.tb ? b[size_t(j) * ldb + p] : b[size_t(p) * ldb + j];
        sum += x * y;
        mag += std::fabs(x * y);
      }
      double want = double(s.alpha) * sum;
      mag *= std::fabs(s.alpha);
      if (s.beta != 0.f) {
        want += double(s.beta) * c0[size_t(i) * ldc + j];
        mag += std::fabs(double(s.beta) * c0[size_t(i) * ldc + j]);
      }
      const double tol = (s.k + 2) * double(FLT_EPSILON) * mag + 1e-30;
      if (!(std::fabs(got - want) <= tol)) {
        ADD_FAILURE() << describe(s) << ": C[" << i << "][" << j << "] = " << got
                      << ", want " << want << " (tolerance " << tol << ")";
        return false;
      }
    }
  return true;
}

// Sizes around the tile edges of every target (MR = 6, 8 or 12 rows, NR = 8, 16, 32 or
// 48 columns, depth blocks of at most 384), primes, and random sizes up to 300.
std::vector<Case> random_cases(Rng& rng, int count) {
  const int special[] = {1,  2,  3,  5,  6,  7,  8,  9,   11,  12,  13,  16,  17,  23,  24,  25,
                         31, 32, 33, 37, 47, 48, 49, 61, 96, 97, 127, 144, 192, 251, 256, 257, 293};
  auto size = [&]() {
    return rng.bernoulli(0.5) ? special[rng.below(std::size(special))]
                              : 1 + static_cast<int>(rng.below(300));
  };
  const float alphas[] = {1.f, -0.5f, 2.5f};
  const float betas[] = {0.f, 1.f, 0.3f, -2.f};
  std::vector<Case> cases;
  for (int i = 0; i < count; ++i) {
    Case s;
    s.ta = i & 1;
    s.tb = (i >> 1) & 1;  // every transpose combination equally often
    s.m = size(), s.n = size(), s.k = size();
    s.alpha = alphas[rng.below(3)];
    s.beta = betas[rng.below(4)];
    s.pad_a = rng.bernoulli(0.5) ? 0 : static_cast<int>(rng.below(20));
    s.pad_b = rng.bernoulli(0.5) ? 0 : static_cast<int>(rng.below(20));
    s.pad_c = rng.bernoulli(0.5) ? 0 : 1 + static_cast<int>(rng.below(20));
    cases.push_back(s);
  }
  return cases;
}

// Shapes that take each multithreaded path of sgemm_hwy (rows of C split across threads,
// columns split, the inner sum split with a reduction, several depth blocks); all have
// m * n * k >= 2^20, below which sgemm_hwy stays on one thread.
std::vector<Case> threaded_cases() {
  std::vector<Case> cases;
  for (int t = 0; t < 4; ++t) {
    const bool ta = t & 1, tb = t >> 1;
    cases.push_back({ta, tb, 301, 97, 67, 1.f, 0.f, 3, 0, 5});     // rows
    cases.push_back({ta, tb, 20, 611, 101, -1.f, 1.f, 0, 7, 0});   // columns
    cases.push_back({ta, tb, 29, 45, 1537, 0.5f, 0.3f, 2, 0, 1});  // inner sum (k split)
    cases.push_back({ta, tb, 257, 129, 513, 1.f, 1.f, 0, 0, 0});   // rows, two depth blocks
  }
  return cases;
}

// Wide C (several column blocks of the packed B, shallower depth blocks), B read in place,
// and the degenerate shapes.
std::vector<Case> special_cases() {
  return {
      {false, true, 40, 800, 300, 1.f, 0.5f, 0, 0, 3},  // two column blocks (NC = 768)
      {true, false, 30, 816, 200, 1.f, 0.f, 1, 0, 0},   // NC blocks of 48-wide panels
      // Few rows and whole panels: B is read in place (rows ldb apart), not packed.
      {true, false, 30, 96, 600, 1.f, 1.f, 3, 5, 0},
      {false, false, 50, 64, 300, -1.f, 0.f, 0, 7, 2},
      {false, false, 20, 48, 40, 1.f, 0.3f, 0, 0, 0},
      {false, false, 7, 9, 0, 1.f, 0.f, 0, 0, 2},   // k = 0, beta = 0: C = 0 (not NaN)
      {false, false, 7, 9, 0, 1.f, 0.5f, 0, 0, 2},  // k = 0: C = beta * C
      {true, true, 13, 5, 4, 0.f, 1.f, 1, 1, 1},    // alpha = 0: C unchanged
      {false, true, 13, 5, 4, 0.f, 0.f, 1, 1, 1},   // alpha = 0, beta = 0: C = 0
  };
}

bool run_all(Gemm gemm, const std::vector<Case>& cases, Rng& rng) {
  for (const Case& s : cases)
    if (!check_case(gemm, s, rng)) return false;
  return true;
}
// Runs `body` once per Highway target, with dispatch forced to it.
template <typename Body>
void for_each_target(Body body) {
  fer::testing::for_each_hwy_target("sgemm", sgemm_hwy_targets, sgemm_hwy_target_name,
                               sgemm_hwy_force_target, sgemm_hwy_dispatched_target, body);
}

TEST(GemmHwy, RandomShapesOnEveryTarget) {
  // Single-threaded here (the threaded paths have their own test), so that the many
  // small cases test the kernel and edge tiles rather than the fork/join.
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  for_each_target([] {
    Rng rng(7);
    const std::vector<Case> cases = random_cases(rng, 120);
    EXPECT_TRUE(run_all(&sgemm_hwy, cases, rng));
    EXPECT_TRUE(run_all(&sgemm_hwy, special_cases(), rng));
  });
  omp_set_num_threads(saved);
}

TEST(GemmHwy, ThreadedPathsOnEveryTarget) {
  // Three threads even on a two-core machine: uneven splits, and a remainder thread.
  const int saved = omp_get_max_threads();
  omp_set_num_threads(3);
  for_each_target([] {
    Rng rng(11);
    EXPECT_TRUE(run_all(&sgemm_hwy, threaded_cases(), rng));
  });
  omp_set_num_threads(saved);
}

TEST(GemmHwy, FewRowsOnEveryTarget) {
  // C with fewer rows than one tile (a Dense layer or a small 1x1 convolution at batch 1)
  // runs on tiles of 1, 2, 4 or 8 rows: every such m, with B read in place (n a multiple
  // of the panel width, op(B) = B) or packed, one or two depth blocks, and at m = 1 the
  // two-thread split of cnn3's dense1 at batch 1 ([1, 4608] x [4608, 256]).
  const int saved = omp_get_max_threads();
  for_each_target([] {
    Rng rng(13);
    std::vector<Case> cases;
    for (int m = 1; m <= 13; ++m)
      for (int t = 0; t < 4; ++t)
        for (const int n : {96, 48, 7, 33})
          for (const int k : {37, 500})
            cases.push_back({bool(t & 1), bool(t >> 1), m, n, k, t == 3 ? -0.5f : 1.f,
                             m % 3 == 0 ? 0.f : 0.3f, m % 2, 0, m % 3});
    omp_set_num_threads(1);
    EXPECT_TRUE(run_all(&sgemm_hwy, cases, rng));
    omp_set_num_threads(2);
    EXPECT_TRUE(run_all(&sgemm_hwy, {{false, false, 1, 256, 4608, 1.f, 1.f, 0, 0, 0},
                                     {false, false, 3, 256, 4608, 1.f, 0.f, 0, 0, 0}},
                        rng));
  });
  omp_set_num_threads(saved);
}

TEST(GemmHwy, InsideParallelRegionRunsPerThread) {
  // Called from inside an OpenMP region, each call must run on its own thread and still
  // be right (no shared scratch between concurrent calls).
  bool ok[4] = {false, false, false, false};
#pragma omp parallel for num_threads(4)
  for (int t = 0; t < 4; ++t) {
    Rng rng(100 + t);
    const Case s{t % 2 == 1, t >= 2, 150 + t, 70, 300, 1.f, 0.f, 1, 2, 3};
    ok[t] = check_case(&sgemm_hwy, s, rng);
  }
  for (int t = 0; t < 4; ++t) EXPECT_TRUE(ok[t]) << "call " << t;
}

TEST(GemmHwy, DispatcherAgreesWithReference) {
  // kernels::sgemm picks Highway or Eigen by shape; both routes must be right.
  Rng rng(3);
  EXPECT_TRUE(run_all(&sgemm, random_cases(rng, 40), rng));
  EXPECT_TRUE(run_all(&sgemm, threaded_cases(), rng));
  EXPECT_TRUE(run_all(&sgemm, special_cases(), rng));
  EXPECT_TRUE(run_all(&sgemm_eigen, random_cases(rng, 8), rng));
}

}  // namespace
