// Dropout kernels (kernels/dropout.h): the Highway version against the reference loop, bit
// for bit, on every SIMD target compiled that this CPU runs; the statistics of the masks;
// and the layer's forward/backward agreeing with the kernels.
#include <gtest/gtest.h>

#include "hwy_targets.h"
#include <omp.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "fer/autograd.h"
#include "fer/rng.h"
#include "kernels/dropout.h"
#include "layers/dropout.h"

using namespace fer;
using namespace fer::kernels;

namespace {

constexpr size_t kGuard = 37;  // floats after every output that must stay untouched
constexpr float kSentinel = -777.f;

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

void run_on_every_target(void (*body)()) {
  fer::testing::for_each_hwy_target("dropout", dropout_hwy_targets, dropout_hwy_target_name,
                                    dropout_hwy_force_target, dropout_hwy_dispatched_target,
                                    body);
}

// Forward and backward of both versions on n elements starting `offset` floats into a
// buffer (so unaligned too), with 1 and 3 threads.
void compare(int64_t n, size_t offset, uint64_t key, float rate) {
  SCOPED_TRACE("n=" + std::to_string(n) + " offset=" + std::to_string(offset) +
               " rate=" + std::to_string(rate));
  Rng rng(static_cast<uint64_t>(n) * 31 + offset);
  std::vector<float> x(offset + n), dx0(offset + n);
  for (auto& v : x) v = static_cast<float>(rng.uniform(-2, 2));
  for (auto& v : dx0) v = static_cast<float>(rng.uniform(-1, 1));
  if (n > 3) x[offset + 1] = -0.f, dx0[offset + 2] = -0.f;  // signed zeros must match too
  for (int threads : {1, 3}) {
    omp_set_num_threads(threads);
    std::vector<float> y_ref(offset + n + kGuard, kSentinel), y(offset + n + kGuard, kSentinel);
    dropout_forward_ref(x.data() + offset, n, key, rate, y_ref.data() + offset);
    dropout_forward(x.data() + offset, n, key, rate, y.data() + offset);
    std::vector<float> dx_ref(dx0), dx(dx0);
    dx_ref.resize(offset + n + kGuard, kSentinel);
    dx.resize(offset + n + kGuard, kSentinel);
    dropout_backward_ref(x.data() + offset, n, key, rate, dx_ref.data() + offset);
    dropout_backward(x.data() + offset, n, key, rate, dx.data() + offset);
    for (size_t i = 0; i < y.size(); ++i) {
      ASSERT_TRUE(same_bits(y[i], y_ref[i])) << "forward " << i << ": " << y[i] << " vs " << y_ref[i];
      ASSERT_TRUE(same_bits(dx[i], dx_ref[i])) << "backward " << i << ": " << dx[i] << " vs " << dx_ref[i];
    }
  }
  omp_set_num_threads(omp_get_num_procs());
}

}  // namespace

TEST(DropoutKernels, HighwayEqualsReferenceOnEveryTarget) {
  run_on_every_target([] {
    for (int64_t n : {0, 1, 3, 7, 15, 16, 17, 33, 100, 1000, 70001})
      for (size_t offset : {0, 1})
        for (float rate : {0.f, 0.1f, 0.5f, 0.9f}) compare(n, offset, 0x0123456789abcdefull + n, rate);
  });
}

TEST(DropoutKernels, DropsTheRightFractionIndependently) {
  // Over 2^20 elements the dropped fraction is within 5 standard deviations of the rate,
  // and neighbouring elements are uncorrelated (a hash that ignored the low bits of the
  // index would drop runs of elements together).
  const int64_t n = 1 << 20;
  for (float rate : {0.1f, 0.25f, 0.5f}) {
    std::vector<float> x(n, 1.f), y(n);
    dropout_forward(x.data(), n, 99, rate, y.data());
    int64_t dropped = 0, both = 0;
    for (int64_t i = 0; i < n; ++i) {
      dropped += y[i] == 0.f;
      if (i > 0) both += y[i] == 0.f && y[i - 1] == 0.f;
    }
    const double p = double(dropped) / n, sd = std::sqrt(rate * (1 - rate) / n);
    EXPECT_NEAR(p, rate, 5 * sd) << rate;
    // P(both dropped) = rate^2 for independent neighbours.
    EXPECT_NEAR(double(both) / (n - 1), double(rate) * rate, 5 * std::sqrt(rate * rate / n))
        << rate;
    // Kept values are exactly x / (1 - rate).
    for (int64_t i = 0; i < 1000; ++i)
      if (y[i] != 0.f) {
        ASSERT_EQ(y[i], 1.f / (1.f - rate));
      }
  }
  // Different keys give different masks; each element is kept under about as many keys as
  // the rate says (the key is not ignored for any element).
  const int64_t m = 4096;
  std::vector<int> kept(m, 0);
  std::vector<float> x(m, 1.f), y(m);
  for (uint64_t key = 0; key < 400; ++key) {
    dropout_forward(x.data(), m, key * 0x9E3779B97F4A7C15ull, 0.5f, y.data());
    for (int64_t i = 0; i < m; ++i) kept[i] += y[i] != 0.f;
  }
  for (int64_t i = 0; i < m; ++i) ASSERT_TRUE(kept[i] > 120 && kept[i] < 280) << i << " " << kept[i];
}

TEST(DropoutKernels, LayerBackwardRecomputesTheForwardMask) {
  // The layer stores no mask: its backward must drop exactly the elements its forward did.
  Rng rng(5);
  Dropout drop("drop", 0.3f, 17);
  drop.build({64, 33}, rng);
  Tensor x({2, 64, 33});
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = 1.f + static_cast<float>(rng.uniform());
  x.set_requires_grad(true);
  for (int step = 0; step < 3; ++step) {  // a new mask each step, each matched by its backward
    x.zero_grad();
    Tensor y = drop.forward(x, true);
    Tape::current().backward(y, Tensor(y.shape(), 1.f));
    for (int64_t i = 0; i < x.numel(); ++i) {
      const bool kept = y.data()[i] != 0.f;
      ASSERT_EQ(x.grad()[i], kept ? 1.f / 0.7f : 0.f) << "step " << step << " element " << i;
    }
  }
}
