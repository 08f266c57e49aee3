// SGD and Adam/AdamW updates (kernels/optimizer_update.h) in Google Highway, compiled for
// every x86 SIMD level and dispatched at run time.
//
// The loop bodies are the reference loops' (kernels/optimizer_update.cpp), one vector of
// weights at a time: the same operations on the same operands in the same order, each
// rounded on its own (hn::Mul then hn::Add, never hn::MulAdd), so every target returns
// the reference's bits. The reference's `if (weight_decay != 0)` and the like become
// template parameters rather than multiplications by zero: g + 0 * w is not always g
// (-0 + 0 is +0, 0 * inf is NaN). Large tensors are split into one contiguous chunk per
// OpenMP thread (kernels/parallel_chunks.h); the last n % N floats run as a masked tail.
//
// Adam's loop in the reference stays scalar (std::sqrt may set errno, so GCC will not
// vectorize it); here sqrt and the divisions are vector instructions, which are correctly
// rounded like the scalar ones.

// No floating-point contraction (-ffp-contract=off, set in CMakeLists.txt; see
// kernels/optimizer_update.h): with GCC's default -ffp-contract=fast, the AVX2 and AVX-512
// copies below would fuse Mul + Add into FMAs and the SSE4 and scalar copies could not.

#include "kernels/optimizer_update.h"

#include <cstdint>
#include <vector>

#include "kernels/parallel_chunks.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/optimizer_update_hwy.cpp"
#include <hwy/foreach_target.h>  // re-includes this file once per SIMD target

#include <hwy/highway.h>
#include "kernels/hwy_stream-inl.h"

HWY_BEFORE_NAMESPACE();
namespace fer::kernels::HWY_NAMESPACE {
namespace opt_hwy {
namespace hn = hwy::HWY_NAMESPACE;
using simd::D;
using simd::ForEachVector;
using simd::V;

enum class Momentum { kNone, kPlain, kNesterov };

// sgd_update_ref on n floats.
template <bool kWd, Momentum kMom>
void Sgd(float* w, const float* g, float* buf, int64_t n, const SgdConfig& c) {
  const D d;
  const V lr = hn::Set(d, c.lr), mom = hn::Set(d, c.momentum), wd = hn::Set(d, c.weight_decay);
  ForEachVector(n, [&](const auto& grp, int64_t i) {
    const V wi = grp.Load(w + i);
    V dir = grp.Load(g + i);
    if constexpr (kWd) dir = hn::Add(dir, hn::Mul(wd, wi));
    if constexpr (kMom != Momentum::kNone) {
      const V b = hn::Add(hn::Mul(mom, grp.Load(buf + i)), dir);
      grp.Store(b, buf + i);
      dir = kMom == Momentum::kNesterov ? hn::Add(dir, hn::Mul(mom, b)) : b;
    }
    grp.Store(hn::Sub(wi, hn::Mul(lr, dir)), w + i);
  });
}

template <bool kWd>
void SgdMom(float* w, const float* g, float* buf, int64_t n, const SgdConfig& c) {
  if (c.momentum == 0.f) return Sgd<kWd, Momentum::kNone>(w, g, buf, n, c);
  if (c.nesterov) return Sgd<kWd, Momentum::kNesterov>(w, g, buf, n, c);
  Sgd<kWd, Momentum::kPlain>(w, g, buf, n, c);
}

// adam_update_ref on n floats. kDecoupled: AdamW's decay of w first; kWd: Adam's L2 term.
template <bool kDecoupled, bool kWd>
void Adam(float* w, const float* g, float* m, float* v, int64_t n, const AdamConfig& c,
          const AdamScalars& s) {
  const D d;
  const V decay = hn::Set(d, s.decay), wd = hn::Set(d, c.weight_decay);
  const V b1 = hn::Set(d, s.beta1), b2 = hn::Set(d, s.beta2);
  const V omb1 = hn::Set(d, s.one_minus_b1), omb2 = hn::Set(d, s.one_minus_b2);
  const V bc2_sqrt = hn::Set(d, s.bc2_sqrt), eps = hn::Set(d, c.eps);
  const V step_size = hn::Set(d, s.step_size);
  ForEachVector(n, [&](const auto& grp, int64_t i) {
    V wi = grp.Load(w + i);
    if constexpr (kDecoupled) wi = hn::Mul(wi, decay);
    V dir = grp.Load(g + i);
    if constexpr (kWd) dir = hn::Add(dir, hn::Mul(wd, wi));
    const V mi = hn::Add(hn::Mul(b1, grp.Load(m + i)), hn::Mul(omb1, dir));
    const V vi = hn::Add(hn::Mul(b2, grp.Load(v + i)), hn::Mul(omb2, hn::Mul(dir, dir)));
    grp.Store(mi, m + i);
    grp.Store(vi, v + i);
    const V denom = hn::Add(hn::Div(hn::Sqrt(vi), bc2_sqrt), eps);  // sqrt(v_hat) + eps
    grp.Store(hn::Sub(wi, hn::Mul(step_size, hn::Div(mi, denom))), w + i);
  });
}

}  // namespace opt_hwy

void SgdSpan(float* w, const float* g, float* buf, int64_t n, const SgdConfig& c) {
  if (c.weight_decay != 0.f) opt_hwy::SgdMom<true>(w, g, buf, n, c);
  else opt_hwy::SgdMom<false>(w, g, buf, n, c);
}

void AdamSpan(float* w, const float* g, float* m, float* v, int64_t n, const AdamConfig& c,
              const AdamScalars& s) {
  const bool decoupled = c.decoupled_weight_decay != 0.f, l2 = c.weight_decay != 0.f;
  if (decoupled && l2) opt_hwy::Adam<true, true>(w, g, m, v, n, c, s);
  else if (decoupled) opt_hwy::Adam<true, false>(w, g, m, v, n, c, s);
  else if (l2) opt_hwy::Adam<false, true>(w, g, m, v, n, c, s);
  else opt_hwy::Adam<false, false>(w, g, m, v, n, c, s);
}

int64_t OptCompiledTarget() { return HWY_TARGET; }

}  // namespace fer::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace fer::kernels {

HWY_EXPORT(SgdSpan);
HWY_EXPORT(AdamSpan);
HWY_EXPORT(OptCompiledTarget);

namespace {
// Below this many weights a tensor is updated on one thread: starting a parallel region
// costs a few microseconds, about what one core needs for ~30k elements.
constexpr int64_t kParallelMin = int64_t{1} << 15;
}  // namespace

void sgd_update(float* w, const float* g, float* buf, int64_t n, const SgdConfig& c) {
  for_each_chunk(n, kParallelMin, [&](int64_t b, int64_t e) {
    // buf is null when momentum is 0 (and then never read).
    HWY_DYNAMIC_DISPATCH(SgdSpan)(w + b, g + b, buf ? buf + b : nullptr, e - b, c);
  });
}

void adam_update(float* w, const float* g, float* m, float* v, int64_t n, const AdamConfig& c) {
  const AdamScalars s = adam_scalars(c);
  for_each_chunk(n, kParallelMin, [&](int64_t b, int64_t e) {
    HWY_DYNAMIC_DISPATCH(AdamSpan)(w + b, g + b, m + b, v + b, e - b, c, s);
  });
}

std::vector<int64_t> optimizer_hwy_targets() { return hwy::SupportedAndGeneratedTargets(); }

void optimizer_hwy_force_target(int64_t target) { hwy::SetSupportedTargetsForTest(target); }

int64_t optimizer_hwy_dispatched_target() { return HWY_DYNAMIC_DISPATCH(OptCompiledTarget)(); }

const char* optimizer_hwy_target_name(int64_t target) { return hwy::TargetName(target); }

}  // namespace fer::kernels
#endif  // HWY_ONCE
