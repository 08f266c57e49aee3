// The Highway depthwise kernels (kernels/depthwise_conv2d_hwy.cpp) against the plain _ref
// loops, on every SIMD target compiled that this CPU runs (AVX-512, AVX2, SSE4, SSSE3,
// scalar): each target is its own copy of the code with its own vector width, so channel
// counts below, at and above every width (and the masked tail group) differ per target.
// Each is forced in turn with depthwise_hwy_force_target and checked over randomized
// shapes: C in {1, 3, 7, 16, 17, 33, 64, 100}, H, W in {1, 2, 3, 5, 8, 13}, stride 1 and
// 2, 'same' and 'valid', batch 1 and 3, with and without bias.
#include <gtest/gtest.h>

#include "hwy_targets.h"
#include <omp.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "fer/rng.h"
#include "kernels/depthwise_conv2d.h"

using namespace fer;
using namespace fer::kernels;

namespace {

struct Case {
  int n, h, w, c, stride;
  Padding padding;
  bool bias;
};

std::string describe(const Case& s) {
  std::ostringstream o;
  o << "n=" << s.n << " h=" << s.h << " w=" << s.w << " c=" << s.c << " stride=" << s.stride
    << " " << padding_name(s.padding) << (s.bias ? " bias" : " no-bias");
  return o.str();
}

std::vector<float> random_values(size_t size, Rng& rng) {
  std::vector<float> v(size);
  for (float& x : v) x = static_cast<float>(rng.uniform(-1.0, 1.0));
  return v;
}

std::vector<float> absolute(std::vector<float> v) {
  for (float& x : v) x = std::fabs(x);
  return v;
}

// Extra floats after every output, holding a sentinel that must survive: the masked tail
// group must not write past the last channel of the last pixel.
constexpr size_t kGuard = 40;
constexpr float kSentinel = -777.f;

// Compares the first `size` floats of `got` with `want`; `scale` holds the same sums over
// absolute values, which bound the rounding error: 2e-5 * scale is ~100 ulps of the terms'
// magnitude sum, while a dropped, doubled or misplaced term moves the result by a whole
// term (at least ~1/500 of that sum for these shapes). Then checks the guard.
bool close(const std::vector<float>& got, const std::vector<float>& want,
           const std::vector<float>& scale, const std::string& what) {
  for (size_t i = 0; i < want.size(); ++i) {
    const float tol = 2e-5f * scale[i] + 1e-6f;
    if (!(std::fabs(got[i] - want[i]) <= tol)) {
      ADD_FAILURE() << what << ": element " << i << " of " << want.size() << " is " << got[i]
                    << ", expected " << want[i];
      return false;
    }
  }
  for (size_t i = want.size(); i < got.size(); ++i)
    if (got[i] != kSentinel) {
      ADD_FAILURE() << what << ": wrote past the end (guard float " << i - want.size() << ")";
      return false;
    }
  return true;
}

std::vector<float> guarded(std::vector<float> v) {
  v.resize(v.size() + kGuard, kSentinel);
  return v;
}

// All three ops of one case against _ref. Returns false on the first mismatch.
bool check_case(const Case& s, Rng& rng) {
  const std::string what = describe(s);
  const Conv2DGeometry g = make_geometry(s.n, s.h, s.w, s.c, 3, 3, s.stride, s.stride,
                                         s.padding);
  if (g.oh <= 0 || g.ow <= 0) return true;  // 'valid' with a window larger than the image
  const size_t xsize = size_t(s.n) * s.h * s.w * s.c;
  const size_t ysize = size_t(s.n) * g.oh * g.ow * s.c;
  const auto x = random_values(xsize, rng), k = random_values(9 * size_t(s.c), rng);
  const auto b = random_values(s.c, rng), dy = random_values(ysize, rng);
  const auto ax = absolute(x), ak = absolute(k), ab = absolute(b), ady = absolute(dy);
  const float* bias = s.bias ? b.data() : nullptr;
  const float* abias = s.bias ? ab.data() : nullptr;

  // Forward: y starts as NaN, which must be overwritten everywhere.
  std::vector<float> y_ref(ysize), y_abs(ysize);
  depthwise_conv2d_forward_ref(g, x.data(), k.data(), bias, y_ref.data());
  depthwise_conv2d_forward_ref(g, ax.data(), ak.data(), abias, y_abs.data());
  auto y = guarded(std::vector<float>(ysize, std::numeric_limits<float>::quiet_NaN()));
  depthwise_conv2d_forward(g, x.data(), k.data(), bias, y.data());
  if (!close(y, y_ref, y_abs, what + " forward")) return false;

  // Backward to the input adds into what dx held.
  const auto dx0 = random_values(xsize, rng);
  auto dx_ref = dx0, dx_abs = absolute(dx0);
  depthwise_conv2d_backward_input_ref(g, dy.data(), k.data(), dx_ref.data());
  depthwise_conv2d_backward_input_ref(g, ady.data(), ak.data(), dx_abs.data());
  auto dx = guarded(dx0);
  depthwise_conv2d_backward_input(g, dy.data(), k.data(), dx.data());
  if (!close(dx, dx_ref, dx_abs, what + " backward input")) return false;
  {  // accumulate = false overwrites dx (NaN there must not leak) as if it held zeros
    std::vector<float> zero_ref(xsize, 0.f), zero_abs(xsize, 0.f);
    depthwise_conv2d_backward_input_ref(g, dy.data(), k.data(), zero_ref.data());
    depthwise_conv2d_backward_input_ref(g, ady.data(), ak.data(), zero_abs.data());
    auto fresh = guarded(std::vector<float>(xsize, std::numeric_limits<float>::quiet_NaN()));
    depthwise_conv2d_backward_input(g, dy.data(), k.data(), fresh.data(), false);
    if (!close(fresh, zero_ref, zero_abs, what + " backward input overwriting")) return false;
  }

  // Backward to the weights adds into dkernel and (with bias) dbias; without bias the
  // dbias pointer is nullptr and must be skipped.
  const auto dk0 = random_values(k.size(), rng), db0 = random_values(b.size(), rng);
  auto dk_ref = dk0, db_ref = db0, dk_abs = absolute(dk0), db_abs = absolute(db0);
  depthwise_conv2d_backward_weights_ref(g, x.data(), dy.data(), dk_ref.data(),
                                        s.bias ? db_ref.data() : nullptr);
  depthwise_conv2d_backward_weights_ref(g, ax.data(), ady.data(), dk_abs.data(),
                                        s.bias ? db_abs.data() : nullptr);
  auto dk = guarded(dk0), db = guarded(db0);
  depthwise_conv2d_backward_weights(g, x.data(), dy.data(), dk.data(),
                                    s.bias ? db.data() : nullptr);
  if (!close(dk, dk_ref, dk_abs, what + " backward kernel")) return false;
  if (!close(db, db_ref, db_abs, what + " backward bias")) return false;

  // Only the bias gradient (dkernel nullptr): the same bias sums, kernel untouched.
  if (s.bias) {
    auto db_only = guarded(db0);
    depthwise_conv2d_backward_weights(g, x.data(), dy.data(), nullptr, db_only.data());
    if (!close(db_only, db_ref, db_abs, what + " backward bias only")) return false;
  }
  return true;
}

const int kChannels[] = {1, 3, 7, 16, 17, 33, 64, 100};
const int kSizes[] = {1, 2, 3, 5, 8, 13};

// Every channel count with every stride and padding (random sizes, batch, bias), then
// every (H, W) pair with every stride and padding (random channels, batch, bias).
std::vector<Case> random_cases(Rng& rng) {
  auto pick = [&rng](int count) { return static_cast<int>(rng.uniform() * count) % count; };
  std::vector<Case> cases;
  for (int c : kChannels)
    for (int stride : {1, 2})
      for (Padding p : {Padding::Same, Padding::Valid})
        for (int rep = 0; rep < 3; ++rep)
          cases.push_back({pick(2) ? 3 : 1, kSizes[pick(6)], kSizes[pick(6)], c, stride, p,
                           pick(2) == 1});
  for (int h : kSizes)
    for (int w : kSizes)
      for (int stride : {1, 2})
        for (Padding p : {Padding::Same, Padding::Valid})
          cases.push_back({pick(2) ? 3 : 1, h, w, kChannels[pick(8)], stride, p, pick(2) == 1});
  return cases;
}
// Runs `body` once per Highway target, with dispatch forced to it.
template <typename Body>
void for_each_target(Body body) {
  fer::testing::for_each_hwy_target("depthwise", depthwise_hwy_targets, depthwise_hwy_target_name,
                               depthwise_hwy_force_target, depthwise_hwy_dispatched_target, body);
}

TEST(DepthwiseHwy, RandomShapesOnEveryTarget) {
  for_each_target([] {
    Rng rng(2024);
    for (const Case& s : random_cases(rng))
      if (!check_case(s, rng)) return;  // one message per broken target
  });
}

// Larger images, so that the rows are split over threads (and the weight gradients go
// through per-thread partial sums); 3 threads give uneven shares. The last two outgrow
// 1 MiB, where the forward runs its rows in the streaming order (row by row, all channel
// groups of a row together) instead of group by group.
TEST(DepthwiseHwy, ThreadedOnEveryTarget) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(3);
  for_each_target([] {
    Rng rng(99);
    for (const Case& s : {Case{3, 13, 13, 100, 1, Padding::Same, true},
                          Case{3, 13, 13, 100, 2, Padding::Same, true},
                          Case{2, 24, 17, 33, 2, Padding::Valid, false},
                          Case{2, 24, 17, 33, 1, Padding::Valid, true},
                          Case{2, 41, 40, 100, 1, Padding::Same, true},
                          Case{3, 40, 41, 70, 2, Padding::Same, false}})
      if (!check_case(s, rng)) return;
  });
  omp_set_num_threads(saved);
}

// Windows and strides the Highway code does not cover fall back to the loops.
TEST(DepthwiseHwy, OtherWindowsFallBack) {
  Rng rng(5);
  for (int kh : {1, 2, 5})
    for (int stride : {1, 2, 3}) {
      const Conv2DGeometry g = make_geometry(2, 9, 7, 17, kh, kh, stride, stride, Padding::Same);
      const auto x = random_values(size_t(2) * 9 * 7 * 17, rng);
      const auto k = random_values(size_t(kh) * kh * 17, rng);
      std::vector<float> y_ref(size_t(2) * g.oh * g.ow * 17), y(y_ref.size());
      depthwise_conv2d_forward_ref(g, x.data(), k.data(), nullptr, y_ref.data());
      depthwise_conv2d_forward(g, x.data(), k.data(), nullptr, y.data());
      for (size_t i = 0; i < y.size(); ++i)
        ASSERT_NEAR(y[i], y_ref[i], 1e-4f) << "k=" << kh << " stride=" << stride << " at " << i;
    }
}

}  // namespace
