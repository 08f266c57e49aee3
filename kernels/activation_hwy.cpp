// ReLU and ReLU6 (kernels/activation.h) in Google Highway, compiled for every x86 SIMD
// level and dispatched at run time.
//
// Each kernel is one pass over flat arrays: a vector compare and a select (forward), or a
// compare and a select between dx and dx + dy (backward). The selects are exactly the
// reference's, in the same order, so the results are the same bits, NaN and -0
// included:
//   relu:   x > 0 ? x : 0                 (NaN > 0 is false: NaN -> +0, -0 -> +0)
//   relu6:  v = x < 0 ? 0 : x; v > 6 ? 6 : v  (NaN and -0 pass through unchanged)
//   backward: lanes that pass get dx + dy, the others keep dx untouched (adding a zero
//   instead would turn a -0 in dx into +0).
// Large arrays are split into one contiguous chunk per OpenMP thread
// (kernels/parallel_chunks.h); the last n % N floats run as a masked tail.
#include "kernels/activation.h"

#include <cstdint>
#include <vector>

#include "kernels/parallel_chunks.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/activation_hwy.cpp"
#include <hwy/foreach_target.h>  // re-includes this file once per SIMD target

#include <hwy/highway.h>
#include "kernels/hwy_stream-inl.h"

HWY_BEFORE_NAMESPACE();
namespace fer::kernels::HWY_NAMESPACE {
namespace act_hwy {
namespace hn = hwy::HWY_NAMESPACE;
using simd::D;
using simd::ForEachVector;
using simd::M;
using simd::V;

HWY_INLINE V Relu(D d, V x) { return hn::IfThenElseZero(hn::Gt(x, hn::Zero(d)), x); }

HWY_INLINE V Relu6(D d, V x) {
  const V v = hn::IfThenZeroElse(hn::Lt(x, hn::Zero(d)), x);
  const V six = hn::Set(d, 6.f);
  return hn::IfThenElse(hn::Gt(v, six), six, v);
}

// Where the gradient passes: 0 < x (ReLU), 0 < x < 6 (ReLU6).
template <bool kSix>
HWY_INLINE M Passes(D d, V x) {
  M pass = hn::Gt(x, hn::Zero(d));
  if constexpr (kSix) pass = hn::And(pass, hn::Lt(x, hn::Set(d, 6.f)));
  return pass;
}

template <bool kSix>
HWY_INLINE void Backward(const float* x, const float* dy, int64_t n, float* dx) {
  simd::ForEachVector(n, [&](const auto& g, int64_t i) {
    const V old = g.Load(dx + i);
    const V sum = hn::Add(old, g.Load(dy + i));
    g.Store(hn::IfThenElse(Passes<kSix>(g.d, g.Load(x + i)), sum, old), dx + i);
  });
}

}  // namespace act_hwy

void ReluForwardSpan(const float* x, int64_t n, float* y) {
  simd::ForEachVector(n, [&](const auto& g, int64_t i) {
    g.Store(act_hwy::Relu(g.d, g.Load(x + i)), y + i);
  });
}

void Relu6ForwardSpan(const float* x, int64_t n, float* y) {
  simd::ForEachVector(n, [&](const auto& g, int64_t i) {
    g.Store(act_hwy::Relu6(g.d, g.Load(x + i)), y + i);
  });
}

void ReluBackwardSpan(const float* x, const float* dy, int64_t n, float* dx) {
  act_hwy::Backward<false>(x, dy, n, dx);
}

void Relu6BackwardSpan(const float* x, const float* dy, int64_t n, float* dx) {
  act_hwy::Backward<true>(x, dy, n, dx);
}

int64_t ActCompiledTarget() { return HWY_TARGET; }

}  // namespace fer::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace fer::kernels {

HWY_EXPORT(ReluForwardSpan);
HWY_EXPORT(Relu6ForwardSpan);
HWY_EXPORT(ReluBackwardSpan);
HWY_EXPORT(Relu6BackwardSpan);
HWY_EXPORT(ActCompiledTarget);

namespace {
// Threads only pay off on large tensors (the work is memory bound).
constexpr int64_t kParallelMin = int64_t{1} << 16;
}  // namespace

void relu_forward(const float* x, int64_t n, float* y) {
  for_each_chunk(n, kParallelMin, [&](int64_t b, int64_t e) {
    HWY_DYNAMIC_DISPATCH(ReluForwardSpan)(x + b, e - b, y + b);
  });
}

void relu6_forward(const float* x, int64_t n, float* y) {
  for_each_chunk(n, kParallelMin, [&](int64_t b, int64_t e) {
    HWY_DYNAMIC_DISPATCH(Relu6ForwardSpan)(x + b, e - b, y + b);
  });
}

void relu_backward(const float* x, const float* dy, int64_t n, float* dx) {
  for_each_chunk(n, kParallelMin, [&](int64_t b, int64_t e) {
    HWY_DYNAMIC_DISPATCH(ReluBackwardSpan)(x + b, dy + b, e - b, dx + b);
  });
}

void relu6_backward(const float* x, const float* dy, int64_t n, float* dx) {
  for_each_chunk(n, kParallelMin, [&](int64_t b, int64_t e) {
    HWY_DYNAMIC_DISPATCH(Relu6BackwardSpan)(x + b, dy + b, e - b, dx + b);
  });
}

std::vector<int64_t> activation_hwy_targets() { return hwy::SupportedAndGeneratedTargets(); }

void activation_hwy_force_target(int64_t target) { hwy::SetSupportedTargetsForTest(target); }

int64_t activation_hwy_dispatched_target() {
  return HWY_DYNAMIC_DISPATCH(ActCompiledTarget)();
}

const char* activation_hwy_target_name(int64_t target) { return hwy::TargetName(target); }

}  // namespace fer::kernels
#endif  // HWY_ONCE
