// The Highway pooling kernels (kernels/pool_hwy.cpp: max, average and global average
// pooling, forward and backward) against the `_ref` loops, on every SIMD target compiled
// that this CPU runs (AVX-512, AVX2, SSE4, SSSE3, scalar: each has its own vector width,
// so C = 1, 3, 7, 17, 33 fall below, across and above it and exercise the masked tail
// group).
//
// The kernels do each channel's arithmetic in the reference's order, so every result must
// match BIT FOR BIT (compared as integers: a +0 for a -0 fails too):
// - inputs are quantized to a few values, zeros of both signs among them, so that windows
//   hold ties (max pooling sends the gradient to the first of equal values in scan order,
//   and keeps the first of +0 / -0 as the output);
// - an all-negative batch catches a max pool that pads with 0 instead of -inf;
// - backward passes add into a dx that is not zero (with -0 entries, which an added +0
//   would turn into +0);
// - every output has guard floats after it that must survive (the masked tail group must
//   not write past the last channel).
// Geometries: pools 2x2 and 3x3 (and 3x2), strides 1 and 2, 'valid' and 'same' padding,
// odd sizes, 1x1 maps, batch 1, and maps large enough to run on 1 and 3 threads (by rows,
// and by images when overlapping windows share input rows).
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "fer/rng.h"
#include "hwy_targets.h"
#include "kernels/pool.h"

using namespace fer;
using namespace fer::kernels;

namespace {

constexpr size_t kGuard = 40;
constexpr float kSentinel = -777.f;

// Values from {-1, -0.5, -0, +0, 0.5, 1} (+ offset): windows of 4 or 9 cells hold ties.
std::vector<float> quantized(size_t n, Rng& rng, float offset = 0.f) {
  static const float kLevels[] = {-1.f, -0.5f, -0.f, 0.f, 0.5f, 1.f};
  std::vector<float> v(n);
  // (offset 0 is not added: -0 + 0 would be +0)
  for (float& x : v) x = offset == 0.f ? kLevels[rng.below(6)] : kLevels[rng.below(6)] + offset;
  return v;
}

// v with the guard floats after it.
std::vector<float> guarded(std::vector<float> v) {
  v.resize(v.size() + kGuard, kSentinel);
  return v;
}

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// got == want bit for bit on want's floats, and got's guard intact.
bool same_bits(const std::vector<float>& got, const std::vector<float>& want,
               const std::string& what) {
  for (size_t i = 0; i < want.size(); ++i)
    if (bits(got[i]) != bits(want[i])) {
      ADD_FAILURE() << what << ": element " << i << " of " << want.size() << " is " << got[i]
                    << " (bits " << std::hex << bits(got[i]) << "), expected " << want[i]
                    << " (bits " << bits(want[i]) << std::dec << ")";
      return false;
    }
  for (size_t i = want.size(); i < got.size(); ++i)
    if (got[i] != kSentinel) {
      ADD_FAILURE() << what << ": wrote past the end (guard float " << i - want.size() << ")";
      return false;
    }
  return true;
}

struct PoolCase {
  int n, h, w, c, kh, kw, sh, sw;
  Padding padding;
};

std::string describe(const PoolCase& t) {
  std::ostringstream s;
  s << "x [" << t.n << "," << t.h << "," << t.w << "," << t.c << "] pool " << t.kh << "x"
    << t.kw << " stride " << t.sh << "," << t.sw << " " << padding_name(t.padding);
  return s.str();
}

// Max and average pooling, forward and backward, of one case against the reference.
bool check_pool(const PoolCase& t, Rng& rng, float offset) {
  const std::string what = describe(t) + (offset < 0 ? " (all negative)" : "");
  const Conv2DGeometry g = make_geometry(t.n, t.h, t.w, t.c, t.kh, t.kw, t.sh, t.sw, t.padding);
  if (g.oh <= 0 || g.ow <= 0) {
    ADD_FAILURE() << what << ": the case does not fit";
    return false;
  }
  const size_t xs = size_t(t.n) * t.h * t.w * t.c, ys = size_t(t.n) * g.oh * g.ow * t.c;
  const auto x = quantized(xs, rng, offset);
  const auto dy = quantized(ys, rng);
  const auto dx0 = quantized(xs, rng);

  std::vector<float> y_ref(ys), dx_ref = dx0;
  auto y = guarded(std::vector<float>(ys, 12345.f)), dx = guarded(dx0);
  max_pool2d_forward_ref(g, x.data(), y_ref.data());
  max_pool2d_forward(g, x.data(), y.data());
  if (!same_bits(y, y_ref, what + " max forward")) return false;
  max_pool2d_backward_ref(g, x.data(), dy.data(), dx_ref.data());
  max_pool2d_backward(g, x.data(), dy.data(), dx.data());
  if (!same_bits(dx, dx_ref, what + " max backward")) return false;

  y = guarded(std::vector<float>(ys, 12345.f)), dx = guarded(dx0), dx_ref = dx0;
  avg_pool2d_forward_ref(g, x.data(), y_ref.data());
  avg_pool2d_forward(g, x.data(), y.data());
  if (!same_bits(y, y_ref, what + " avg forward")) return false;
  avg_pool2d_backward_ref(g, dy.data(), dx_ref.data());
  avg_pool2d_backward(g, dy.data(), dx.data());
  return same_bits(dx, dx_ref, what + " avg backward");
}

std::vector<PoolCase> pool_cases(Rng& rng) {
  std::vector<PoolCase> cases;
  // Every channel count with each kind of window: 2x2/2 (cnn3's), 3x3/2 (overlapping), 3x3/1.
  for (int c : {1, 3, 7, 16, 17, 33}) {
    cases.push_back({2, 6, 6, c, 2, 2, 2, 2, Padding::Valid});
    cases.push_back({2, 7, 7, c, 2, 2, 2, 2, Padding::Same});   // odd: a clipped last window
    cases.push_back({1, 7, 5, c, 2, 2, 2, 2, Padding::Valid});  // odd: the last column unused
    cases.push_back({2, 7, 7, c, 3, 3, 2, 2, Padding::Valid});
    cases.push_back({1, 8, 9, c, 3, 3, 2, 2, Padding::Same});
    cases.push_back({2, 5, 6, c, 3, 3, 1, 1, Padding::Same});
    cases.push_back({3, 1, 1, c, 2, 2, 2, 2, Padding::Same});   // 1x1 map
    cases.push_back({1, 1, 1, c, 3, 3, 2, 2, Padding::Same});
    cases.push_back({2, 9, 9, c, 3, 2, 2, 3, Padding::Valid});  // uneven window and strides
  }
  // Random small geometries.
  for (int i = 0; i < 40; ++i) {
    static const int kC[] = {1, 2, 3, 5, 7, 8, 17, 33};
    PoolCase t{1 + int(rng.below(3)), 1 + int(rng.below(9)), 1 + int(rng.below(9)),
               kC[rng.below(8)],      2 + int(rng.below(2)), 2 + int(rng.below(2)),
               1 + int(rng.below(2)), 1 + int(rng.below(2)),
               rng.bernoulli(0.5) ? Padding::Same : Padding::Valid};
    if (t.padding == Padding::Valid && (t.h < t.kh || t.w < t.kw)) t.padding = Padding::Same;
    cases.push_back(t);
  }
  return cases;
}

// Outputs of 32K+ floats, which the kernels split over threads: by output rows (2x2/2,
// batch 1 too), by images (3x3, whose windows overlap: 3 threads on 2 or 4 images would
// split images if they split rows, and add into shared dx rows in another order), one
// thread (3x3/2 at batch 1).
const PoolCase kThreadedCases[] = {
    {5, 24, 24, 32, 2, 2, 2, 2, Padding::Valid}, {1, 48, 48, 33, 2, 2, 2, 2, Padding::Valid},
    {1, 47, 45, 17, 2, 2, 2, 2, Padding::Same},  {4, 33, 33, 40, 3, 3, 2, 2, Padding::Same},
    {1, 25, 25, 64, 3, 3, 2, 2, Padding::Same},  {2, 19, 15, 64, 3, 3, 1, 1, Padding::Same},
};

// Global average pooling of x [n, hw, c].
bool check_global(int n, int hw, int c, Rng& rng) {
  std::ostringstream s;
  s << "global x [" << n << "," << hw << "," << c << "]";
  const std::string what = s.str();
  const auto x = quantized(size_t(n) * hw * c, rng);
  const auto dy = quantized(size_t(n) * c, rng);
  const auto dx0 = quantized(x.size(), rng);
  std::vector<float> y_ref(size_t(n) * c), dx_ref = dx0;
  auto y = guarded(std::vector<float>(y_ref.size(), 12345.f)), dx = guarded(dx0);
  global_avg_pool2d_forward_ref(n, hw, c, x.data(), y_ref.data());
  global_avg_pool2d_forward(n, hw, c, x.data(), y.data());
  if (!same_bits(y, y_ref, what + " forward")) return false;
  global_avg_pool2d_backward_ref(n, hw, c, dy.data(), dx_ref.data());
  global_avg_pool2d_backward(n, hw, c, dy.data(), dx.data());
  return same_bits(dx, dx_ref, what + " backward");
}

// Runs `body` once per Highway target, with dispatch forced to it.
template <typename Body>
void for_each_target(Body body) {
  fer::testing::for_each_hwy_target("pool", pool_hwy_targets, pool_hwy_target_name,
                                    pool_hwy_force_target, pool_hwy_dispatched_target, body);
}

TEST(PoolHwy, MaxAndAveragePoolBitIdenticalOnEveryTarget) {
  for_each_target([] {
    Rng rng(2024);
    for (const PoolCase& t : pool_cases(rng))
      for (float offset : {0.f, -2.f})
        if (!check_pool(t, rng, offset)) return;  // one message per broken target
  });
}

TEST(PoolHwy, ThreadedBitIdenticalOnEveryTarget) {
  const int saved = omp_get_max_threads();
  for (int threads : {1, 3}) {
    omp_set_num_threads(threads);
    SCOPED_TRACE(std::to_string(threads) + " threads");
    for_each_target([] {
      Rng rng(99);
      for (const PoolCase& t : kThreadedCases)
        if (!check_pool(t, rng, 0.f)) return;
    });
  }
  omp_set_num_threads(saved);
}

TEST(PoolHwy, GlobalAveragePoolBitIdenticalOnEveryTarget) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(3);
  for_each_target([] {
    Rng rng(7);
    for (int n : {1, 3, 64})
      for (int hw : {1, 9, 49})
        for (int c : {1, 3, 7, 17, 33, 768})
          if (!check_global(n, hw, c, rng)) return;
  });
  omp_set_num_threads(saved);
}

// The hand-checked semantics, on the dispatched target: -inf padding, ties to the first
// cell, +0 vs -0 kept as the first, and 'same' averages counting only the cells inside.
TEST(PoolHwy, HandComputed) {
  // 3x3 of negatives, 2x2/2 'same': the padding is at the bottom/right.
  std::vector<float> x(9);
  for (int i = 0; i < 9; ++i) x[i] = -float(i + 1);
  const Conv2DGeometry g = make_geometry(1, 3, 3, 1, 2, 2, 2, 2, Padding::Same);
  std::vector<float> y(4);
  max_pool2d_forward(g, x.data(), y.data());
  EXPECT_EQ(y, (std::vector<float>{-1, -3, -7, -9}));
  avg_pool2d_forward(g, x.data(), y.data());
  EXPECT_EQ(y, (std::vector<float>{-3, -4.5f, -7.5f, -9}));

  // Two channels, a 2x2 window of ties: channel 0 all 2, channel 1 = -0, +0, +0, +0.
  const std::vector<float> ties = {2, -0.f, 2, 0.f, 2, 0.f, 2, 0.f};
  const Conv2DGeometry g2 = make_geometry(1, 2, 2, 2, 2, 2, 2, 2, Padding::Valid);
  std::vector<float> y2(2), dx(8, 0.f);
  max_pool2d_forward(g2, ties.data(), y2.data());
  EXPECT_EQ(y2[0], 2.f);
  EXPECT_TRUE(std::signbit(y2[1])) << "the first of -0, +0 is the max";
  const std::vector<float> dy = {1.f, 5.f};
  max_pool2d_backward(g2, ties.data(), dy.data(), dx.data());
  EXPECT_EQ(dx, (std::vector<float>{1, 5, 0, 0, 0, 0, 0, 0}));
}

// The `_loops` baseline of the benchmark still computes the same pools (its averages
// multiply by 1/count, so they may differ from the reference in the last bit).
TEST(PoolHwy, LoopsBaselineMatchesReference) {
  Rng rng(5);
  for (const PoolCase& t : {PoolCase{2, 7, 7, 17, 2, 2, 2, 2, Padding::Same},
                            PoolCase{2, 8, 9, 33, 3, 3, 2, 2, Padding::Same}}) {
    const Conv2DGeometry g = make_geometry(t.n, t.h, t.w, t.c, t.kh, t.kw, t.sh, t.sw, t.padding);
    const size_t xs = size_t(t.n) * t.h * t.w * t.c, ys = size_t(t.n) * g.oh * g.ow * t.c;
    const auto x = quantized(xs, rng), dy = quantized(ys, rng);
    std::vector<float> a(ys), b(ys), da(xs, 0.f), db(xs, 0.f);
    max_pool2d_forward_ref(g, x.data(), a.data());
    max_pool2d_forward_loops(g, x.data(), b.data());
    EXPECT_EQ(a, b) << describe(t);
    max_pool2d_backward_ref(g, x.data(), dy.data(), da.data());
    max_pool2d_backward_loops(g, x.data(), dy.data(), db.data());
    EXPECT_EQ(da, db) << describe(t);
    avg_pool2d_forward_ref(g, x.data(), a.data());
    avg_pool2d_forward_loops(g, x.data(), b.data());
    for (size_t i = 0; i < ys; ++i) EXPECT_NEAR(a[i], b[i], 1e-6) << describe(t) << " " << i;
    std::fill(da.begin(), da.end(), 0.f), std::fill(db.begin(), db.end(), 0.f);
    avg_pool2d_backward_ref(g, dy.data(), da.data());
    avg_pool2d_backward_loops(g, dy.data(), db.data());
    for (size_t i = 0; i < xs; ++i) EXPECT_NEAR(da[i], db[i], 1e-6) << describe(t) << " " << i;
  }
}

}  // namespace
