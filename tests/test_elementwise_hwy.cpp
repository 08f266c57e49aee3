// The Highway elementwise kernels against their reference loops, bit for bit, on every
// SIMD target compiled that this CPU runs (AVX-512, AVX2, SSE4, SSSE3, scalar):
//
// - ReLU / ReLU6 forward and backward (kernels/activation_hwy.cpp vs activation.cpp), on
//   inputs sprinkled with the values where the selects matter: exactly 0, -0 and 6, the
//   floats next to 0 and 6, +-inf, NaNs, denormals;
// - SGD (momentum, Nesterov, weight decay) and Adam/AdamW (both weight decays, several
//   steps of bias correction) updates (kernels/optimizer_update_hwy.cpp vs
//   optimizer_update.cpp), with exact zeros and -0 among the gradients and weights.
//
// Sizes 0, 1, 3, 15, 17, 33, ... straddle every vector width (the masked tail), random
// ones, and sizes above the OpenMP threshold (one chunk per thread, 2 and 3 threads).
// Every array sits between guard floats that must survive, at a 64-byte aligned address
// and one float past it (the sizes above 10000 only at the latter).
//
// "Bit for bit" is exact except that any NaN equals any NaN: where two NaNs meet in an add
// (dx + dy in the backward), which one's payload survives depends on operand order, and
// the compiler may swap the operands of a commutative add. NaNs passed through by a
// select keep their bits, and are checked as such by the in-place and forward tests.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <hwy/aligned_allocator.h>

#include "fer/rng.h"
#include "hwy_targets.h"
#include "kernels/activation.h"
#include "kernels/optimizer_update.h"

using namespace fer;
using namespace fer::kernels;

namespace {

uint32_t bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}

float from_bits(uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

bool same(float a, float b) { return bits(a) == bits(b) || (std::isnan(a) && std::isnan(b)); }

constexpr int64_t kGuard = 32;                   // floats on each side of an array
const float kSentinel = from_bits(0x7fa5a5a5u);  // a NaN no kernel here produces

// n floats at offset 0 or 1 from a 64-byte aligned address, between guards.
class Guarded {
 public:
  Guarded(int64_t n, int64_t offset) : n_(n), offset_(offset) {
    mem_ = hwy::AllocateAligned<float>(size_t(2 * kGuard + n + 1));
    for (int64_t i = 0; i < 2 * kGuard + n + 1; ++i) mem_[i] = kSentinel;
  }
  float* data() { return mem_.get() + kGuard + offset_; }
  float& operator[](int64_t i) { return data()[i]; }
  // The guards are untouched (bitwise).
  bool guards_intact() const {
    const float* p = mem_.get();
    for (int64_t i = 0; i < 2 * kGuard + n_ + 1; ++i) {
      const bool inside = i >= kGuard + offset_ && i < kGuard + offset_ + n_;
      if (!inside && bits(p[i]) != bits(kSentinel)) return false;
    }
    return true;
  }
  void copy_from(const std::vector<float>& v) { std::memcpy(data(), v.data(), n_ * 4); }
  std::vector<float> values() const {
    const float* p = mem_.get() + kGuard + offset_;
    return std::vector<float>(p, p + n_);
  }

 private:
  int64_t n_, offset_;
  hwy::AlignedFreeUniquePtr<float[]> mem_;
};

// got == want bit for bit (NaN = NaN), and the guards of `got` intact.
void expect_same(Guarded& got, const std::vector<float>& want, const std::string& what) {
  const std::vector<float> g = got.values();
  for (size_t i = 0; i < want.size(); ++i)
    if (!same(g[i], want[i])) {
      ADD_FAILURE() << what << ": element " << i << " of " << want.size() << " is " << g[i]
                    << " (0x" << std::hex << bits(g[i]) << "), reference " << want[i]
                    << " (0x" << bits(want[i]) << std::dec << ")";
      return;
    }
  EXPECT_TRUE(got.guards_intact()) << what << ": wrote outside [0, n)";
}

// Sizes: tails of every vector width, random ones, and threaded ones (the activation
// kernels thread from 2^16 floats, the optimizers from 2^15).
std::vector<int64_t> test_sizes(Rng& rng) {
  std::vector<int64_t> n = {0,  1,  2,  3,  4,  5,  7,  8,  9,   15,  16,    17,
                            31, 32, 33, 47, 63, 64, 65, 100, 255, 257, 1000, 4099};
  for (int i = 0; i < 8; ++i) n.push_back(1 + int64_t(rng.below(3000)));
  for (int64_t big : {(int64_t{1} << 15) + 3, (int64_t{1} << 16) - 1, (int64_t{1} << 16) + 17,
                      int64_t{100003}})
    n.push_back(big);
  return n;
}

// Runs body(n, offset) for every size and both offsets; the largest size also with 3
// threads (uneven chunks).
template <class Body>
void for_sizes(Rng& rng, const Body& body) {
  const std::vector<int64_t> sizes = test_sizes(rng);
  for (int64_t n : sizes)
    for (int64_t offset : {0, 1}) {
      if (n > 10000 && offset == 0) continue;  // the large sizes only unaligned (time)
      SCOPED_TRACE("n=" + std::to_string(n) + " offset=" + std::to_string(offset));
      body(n, offset);
    }
  const int threads = omp_get_max_threads();
  omp_set_num_threads(3);
  SCOPED_TRACE("3 threads");
  body(sizes.back(), 1);
  omp_set_num_threads(threads);
}

std::vector<float> uniform_values(int64_t n, Rng& rng, double lo, double hi) {
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(rng.uniform(lo, hi));
  return v;
}

// Replaces about one value in `every` by one of `specials`.
void sprinkle(std::vector<float>& v, const std::vector<float>& specials, Rng& rng, int every) {
  for (float& x : v)
    if (rng.below(every) == 0) x = specials[rng.below(specials.size())];
}

const float kInf = std::numeric_limits<float>::infinity();
const float kDenorm = std::numeric_limits<float>::denorm_min();

// The inputs where ReLU / ReLU6 decide something.
const std::vector<float> kActSpecials = {
    0.f, -0.f, 6.f, -6.f, std::nextafter(0.f, 1.f), std::nextafter(0.f, -1.f),
    std::nextafter(6.f, 0.f), std::nextafter(6.f, 7.f), kDenorm, -kDenorm, kInf, -kInf,
    from_bits(0x7fc00000u), from_bits(0xffc00000u), from_bits(0x7fc12345u),
    std::numeric_limits<float>::max(), -std::numeric_limits<float>::max()};

}  // namespace

// ======================================================================================
// ReLU / ReLU6
// ======================================================================================

TEST(ActivationHwy, MatchesReferenceOnEveryTarget) {
  const auto body = [] {
    Rng rng(17);
    for_sizes(rng, [&](int64_t n, int64_t offset) {
      std::vector<float> x = uniform_values(n, rng, -3, 9);
      sprinkle(x, kActSpecials, rng, 4);
      std::vector<float> dy = uniform_values(n, rng, -1, 1);
      sprinkle(dy, {0.f, -0.f, kInf, -kInf, from_bits(0x7fc00000u)}, rng, 16);
      // dx starts non-zero (gradients accumulate), with some -0: a lane that does not
      // pass must keep it, not turn it into -0 + 0 = +0.
      std::vector<float> dx0 = uniform_values(n, rng, -1, 1);
      sprinkle(dx0, {-0.f, 0.f}, rng, 4);

      Guarded gx(n, offset), gdy(n, offset), out(n, offset);
      gx.copy_from(x);
      gdy.copy_from(dy);
      std::vector<float> want(n);

      relu_forward_ref(x.data(), n, want.data());
      relu_forward(gx.data(), n, out.data());
      expect_same(out, want, "relu_forward");
      relu6_forward_ref(x.data(), n, want.data());
      relu6_forward(gx.data(), n, out.data());
      expect_same(out, want, "relu6_forward");

      want = dx0;
      relu_backward_ref(x.data(), dy.data(), n, want.data());
      out.copy_from(dx0);
      relu_backward(gx.data(), gdy.data(), n, out.data());
      expect_same(out, want, "relu_backward");
      want = dx0;
      relu6_backward_ref(x.data(), dy.data(), n, want.data());
      out.copy_from(dx0);
      relu6_backward(gx.data(), gdy.data(), n, out.data());
      expect_same(out, want, "relu6_backward");

      // The inputs are only read.
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(bits(gx[i]), bits(x[i]));
      EXPECT_TRUE(gx.guards_intact() && gdy.guards_intact());
    });
  };
  fer::testing::for_each_hwy_target("activation", activation_hwy_targets,
                                    activation_hwy_target_name, activation_hwy_force_target,
                                    activation_hwy_dispatched_target, body);
}

TEST(ActivationHwy, InPlaceAndExactBits) {
  // y = x in place (BatchNorm's reference applies its activation that way), and the
  // results of the specials spelled out: relu maps NaN and -0 to +0, relu6 passes both
  // through with their bits.
  const std::vector<float> x = {-0.f, 0.f, 6.f, -6.f, std::nextafter(6.f, 7.f), kInf, -kInf,
                                from_bits(0x7fc12345u), from_bits(0xffc00001u), 3.f, -2.f,
                                kDenorm, -kDenorm, 7.f, 5.5f, 1e-30f, -1e30f};
  const int64_t n = int64_t(x.size());
  std::vector<float> relu(n), relu6(n);
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    relu[i] = v > 0.f ? v : 0.f;
    relu6[i] = std::isnan(v) ? v : v < 0.f ? 0.f : v > 6.f ? 6.f : v;
  }
  EXPECT_EQ(bits(relu6[0]), bits(-0.f));
  const auto body = [&] {
    for (int64_t offset : {0, 1}) {
      Guarded a(n, offset);
      a.copy_from(x);
      relu_forward(a.data(), n, a.data());
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(bits(a[i]), bits(relu[i])) << "relu " << i;
      a.copy_from(x);
      relu6_forward(a.data(), n, a.data());
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(bits(a[i]), bits(relu6[i])) << "relu6 " << i;
      EXPECT_TRUE(a.guards_intact());
    }
    std::vector<float> y(n);
    relu_forward_ref(x.data(), n, y.data());
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(bits(y[i]), bits(relu[i])) << "relu_ref " << i;
    relu6_forward_ref(x.data(), n, y.data());
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(bits(y[i]), bits(relu6[i])) << "relu6_ref " << i;
  };
  fer::testing::for_each_hwy_target("activation", activation_hwy_targets,
                                    activation_hwy_target_name, activation_hwy_force_target,
                                    activation_hwy_dispatched_target, body);
}

TEST(ActivationHwy, EmptyTouchesNothing) {
  relu_forward(nullptr, 0, nullptr);
  relu6_forward(nullptr, 0, nullptr);
  relu_backward(nullptr, nullptr, 0, nullptr);
  relu6_backward(nullptr, nullptr, 0, nullptr);
}

// ======================================================================================
// SGD and Adam
// ======================================================================================

namespace {

// Weights, gradients and slots with exact zeros and -0 mixed in (g + wd * w is not g when
// g = -0, so the kernels must skip the decay when wd is 0 rather than multiply by it).
std::vector<float> optimizer_values(int64_t n, Rng& rng, double lo, double hi) {
  std::vector<float> v = uniform_values(n, rng, lo, hi);
  sprinkle(v, {0.f, -0.f, kDenorm, 1e-20f, -3e4f}, rng, 10);
  return v;
}

// Non-negative: Adam's second moment.
std::vector<float> second_moments(int64_t n, Rng& rng) {
  std::vector<float> v = uniform_values(n, rng, 0, 0.5);
  sprinkle(v, {0.f, kDenorm, 1e-30f, 4.f}, rng, 10);
  return v;
}

struct SgdCase {
  float momentum;
  bool nesterov;
  float weight_decay;
};

const SgdCase kSgdCases[] = {{0.f, false, 0.f},  {0.f, false, 1e-2f}, {0.f, true, 1e-2f},
                             {0.9f, false, 0.f}, {0.9f, false, 5e-4f}, {0.9f, true, 0.f},
                             {0.9f, true, 5e-4f}, {0.5f, true, 0.1f}};

struct AdamCase {
  float weight_decay, decoupled;
  float eps;
};

const AdamCase kAdamCases[] = {
    {0.f, 0.f, 1e-7f}, {1e-2f, 0.f, 1e-7f}, {0.f, 5e-2f, 1e-7f}, {1e-2f, 5e-2f, 1e-8f}};

}  // namespace

TEST(OptimizerHwy, SgdMatchesReferenceOnEveryTarget) {
  const auto body = [] {
    Rng rng(23);
    for_sizes(rng, [&](int64_t n, int64_t offset) {
      const std::vector<float> w0 = optimizer_values(n, rng, -1, 1);
      const std::vector<float> buf0 = optimizer_values(n, rng, -0.5, 0.5);
      for (const SgdCase& k : kSgdCases) {
        SCOPED_TRACE("momentum " + std::to_string(k.momentum) + " nesterov " +
                     std::to_string(k.nesterov) + " wd " + std::to_string(k.weight_decay));
        SgdConfig c;
        c.lr = 0.05f;
        c.momentum = k.momentum;
        c.nesterov = k.nesterov;
        c.weight_decay = k.weight_decay;
        const bool has_buf = k.momentum != 0.f;
        std::vector<float> w = w0, buf = buf0;
        Guarded gw(n, offset), gg(n, offset), gbuf(n, offset);
        gw.copy_from(w0);
        gbuf.copy_from(buf0);
        for (int step = 0; step < 3; ++step) {
          const std::vector<float> g = optimizer_values(n, rng, -2, 2);
          gg.copy_from(g);
          sgd_update_ref(w.data(), g.data(), has_buf ? buf.data() : nullptr, n, c);
          // Without momentum the buffer may be null (and must then not be touched).
          sgd_update(gw.data(), gg.data(), has_buf ? gbuf.data() : nullptr, n, c);
          expect_same(gw, w, "sgd w, step " + std::to_string(step));
          expect_same(gbuf, buf, "sgd buf, step " + std::to_string(step));
          EXPECT_TRUE(gg.guards_intact());
          if (::testing::Test::HasFailure()) return;
        }
      }
    });
  };
  fer::testing::for_each_hwy_target("optimizer", optimizer_hwy_targets,
                                    optimizer_hwy_target_name, optimizer_hwy_force_target,
                                    optimizer_hwy_dispatched_target, body);
}

TEST(OptimizerHwy, AdamMatchesReferenceOnEveryTarget) {
  const auto body = [] {
    Rng rng(29);
    for_sizes(rng, [&](int64_t n, int64_t offset) {
      const std::vector<float> w0 = optimizer_values(n, rng, -1, 1);
      for (const AdamCase& k : kAdamCases) {
        SCOPED_TRACE("wd " + std::to_string(k.weight_decay) + " decoupled " +
                     std::to_string(k.decoupled));
        AdamConfig c;
        c.lr = 0.01f;
        c.weight_decay = k.weight_decay;
        c.decoupled_weight_decay = k.decoupled;
        c.eps = k.eps;
        // Zero moments, as a fresh optimizer starts; step 1 has the largest correction.
        std::vector<float> w = w0, m(n, 0.f), v(n, 0.f);
        Guarded gw(n, offset), gg(n, offset), gm(n, offset), gv(n, offset);
        gw.copy_from(w0);
        gm.copy_from(m);
        gv.copy_from(v);
        for (int step = 1; step <= 5; ++step) {
          c.step = step;
          std::vector<float> g = optimizer_values(n, rng, -2, 2);
          gg.copy_from(g);
          adam_update_ref(w.data(), g.data(), m.data(), v.data(), n, c);
          adam_update(gw.data(), gg.data(), gm.data(), gv.data(), n, c);
          const std::string s = " step " + std::to_string(step);
          expect_same(gw, w, "adam w" + s);
          expect_same(gm, m, "adam m" + s);
          expect_same(gv, v, "adam v" + s);
          EXPECT_TRUE(gg.guards_intact());
          if (::testing::Test::HasFailure()) return;
        }
      }
      // Mid-run moments (random, some zero) and a late step.
      std::vector<float> w = w0, m = optimizer_values(n, rng, -0.5, 0.5),
                         v = second_moments(n, rng);
      Guarded gw(n, offset), gg(n, offset), gm(n, offset), gv(n, offset);
      gw.copy_from(w);
      gm.copy_from(m);
      gv.copy_from(v);
      AdamConfig c;
      c.lr = 3e-4f;
      c.step = 1234;
      const std::vector<float> g = optimizer_values(n, rng, -1, 1);
      gg.copy_from(g);
      adam_update_ref(w.data(), g.data(), m.data(), v.data(), n, c);
      adam_update(gw.data(), gg.data(), gm.data(), gv.data(), n, c);
      expect_same(gw, w, "adam w, step 1234");
      expect_same(gm, m, "adam m, step 1234");
      expect_same(gv, v, "adam v, step 1234");
    });
  };
  fer::testing::for_each_hwy_target("optimizer", optimizer_hwy_targets,
                                    optimizer_hwy_target_name, optimizer_hwy_force_target,
                                    optimizer_hwy_dispatched_target, body);
}

namespace {
// One rounding per operation: a volatile result cannot be fused with the next operation.
float mul(float a, float b) {
  volatile float r = a * b;
  return r;
}
float add(float a, float b) {
  volatile float r = a + b;
  return r;
}
float sub(float a, float b) {
  volatile float r = a - b;
  return r;
}
float div(float a, float b) {
  volatile float r = a / b;
  return r;
}
}  // namespace

// The documented arithmetic of the reference itself (kernels/optimizer_update.h): every
// operation rounded on its own, no FMA, whatever the build's -march. The check has teeth:
// on these inputs the same formulas with FMAs give different bits for many elements.
TEST(OptimizerReference, RoundsEveryOperationOnItsOwn) {
  Rng rng(31);
  const int64_t n = 4096;
  const std::vector<float> w0 = uniform_values(n, rng, -1, 1),
                           g = uniform_values(n, rng, -2, 2),
                           m0 = uniform_values(n, rng, -0.5, 0.5),
                           v0 = uniform_values(n, rng, 0, 0.5);
  int fused_differs = 0;

  SgdConfig sc;
  sc.lr = 0.05f;
  sc.momentum = 0.9f;
  sc.nesterov = true;
  sc.weight_decay = 1e-2f;
  std::vector<float> w = w0, buf = m0;
  sgd_update_ref(w.data(), g.data(), buf.data(), n, sc);
  for (int64_t i = 0; i < n; ++i) {
    float d = add(g[i], mul(sc.weight_decay, w0[i]));
    const float b = add(mul(sc.momentum, m0[i]), d);
    d = add(d, mul(sc.momentum, b));
    ASSERT_EQ(bits(buf[i]), bits(b)) << "sgd buf " << i;
    ASSERT_EQ(bits(w[i]), bits(sub(w0[i], mul(sc.lr, d)))) << "sgd w " << i;
    const float fd = std::fma(sc.weight_decay, w0[i], g[i]);
    const float fb = std::fma(sc.momentum, m0[i], fd);
    fused_differs += bits(std::fma(-sc.lr, std::fma(sc.momentum, fb, fd), w0[i])) != bits(w[i]);
  }

  AdamConfig ac;
  ac.lr = 0.01f;
  ac.weight_decay = 1e-2f;
  ac.decoupled_weight_decay = 5e-2f;
  ac.step = 3;
  const AdamScalars s = adam_scalars(ac);
  std::vector<float> aw = w0, m = m0, v = v0;
  adam_update_ref(aw.data(), g.data(), m.data(), v.data(), n, ac);
  for (int64_t i = 0; i < n; ++i) {
    const float wi = mul(w0[i], s.decay);
    const float d = add(g[i], mul(ac.weight_decay, wi));
    const float mi = add(mul(s.beta1, m0[i]), mul(s.one_minus_b1, d));
    const float vi = add(mul(s.beta2, v0[i]), mul(s.one_minus_b2, mul(d, d)));
    const float denom = add(div(std::sqrt(vi), s.bc2_sqrt), ac.eps);
    ASSERT_EQ(bits(m[i]), bits(mi)) << "adam m " << i;
    ASSERT_EQ(bits(v[i]), bits(vi)) << "adam v " << i;
    ASSERT_EQ(bits(aw[i]), bits(sub(wi, mul(s.step_size, div(mi, denom))))) << "adam w " << i;
  }
  EXPECT_GT(fused_differs, 100) << "inputs too tame to tell fused from separate rounding";
}
