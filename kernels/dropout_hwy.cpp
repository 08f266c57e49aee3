// Dropout (kernels/dropout.h) in Google Highway, compiled for every x86 SIMD level and
// dispatched at run time.
//
// One vector of N lanes handles N consecutive elements: their indices are an Iota, the
// hash is the same xor/shift/multiply sequence as dropout_hash on 32-bit lanes, and the
// keep decision becomes a lane mask that selects x * scale or zero. The work per element
// is ~10 integer operations against one load and one store, so it stays memory bound on
// AVX2/AVX-512. The last n % N elements run the same code with masked loads and stores.
#include "kernels/dropout.h"

#include <omp.h>

#include <algorithm>
#include <cstdint>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/dropout_hwy.cpp"
#include <hwy/foreach_target.h>  // re-includes this file once per SIMD target

#include <hwy/highway.h>
#include "kernels/hwy_group-inl.h"

HWY_BEFORE_NAMESPACE();
namespace fer::kernels::HWY_NAMESPACE {
namespace dropout_hwy {
namespace hn = hwy::HWY_NAMESPACE;

using D = hn::ScalableTag<float>;
using DU = hn::RebindToUnsigned<D>;
using DI = hn::RebindToSigned<D>;
using VU = hn::Vec<DU>;

HWY_INLINE VU Mix(VU x) {  // dropout_mix, lane-wise
  const DU du;
  x = hn::Xor(x, hn::ShiftRight<16>(x));
  x = hn::Mul(x, hn::Set(du, 0x7feb352du));
  x = hn::Xor(x, hn::ShiftRight<15>(x));
  x = hn::Mul(x, hn::Set(du, 0x846ca68bu));
  return hn::Xor(x, hn::ShiftRight<16>(x));
}

// Lanes of the elements whose indices `index` holds that are kept.
HWY_INLINE hn::Mask<D> Keep(VU index, uint64_t key, uint32_t threshold) {
  const D d;
  const DU du;
  const DI di;
  const VU h = Mix(hn::Xor(Mix(hn::Xor(index, hn::Set(du, static_cast<uint32_t>(key)))),
                           hn::Set(du, static_cast<uint32_t>(key >> 32))));
  // The top 24 bits fit a signed int, so a signed compare is the unsigned one.
  const auto top = hn::BitCast(di, hn::ShiftRight<8>(h));
  const auto drop = hn::Lt(top, hn::Set(di, static_cast<int32_t>(threshold)));
  return hn::Not(hn::RebindMask(d, drop));
}

// Elements [begin, end): forward (kBackward false) y = keep ? x * scale : 0, backward
// out += keep ? in * scale : 0.
template <bool kBackward>
void Span(const float* in, int64_t begin, int64_t end, uint64_t key, uint32_t threshold,
          float scale, float* out) {
  const D d;
  const size_t N = hn::Lanes(d);
  const auto vscale = hn::Set(d, scale);
  int64_t i = begin;
  // The lanes' element indices, stepped by N (Iota itself goes through memory in
  // Highway 1.0.3, too slow to call per vector).
  const DU du;
  VU index = hn::Iota(du, static_cast<uint32_t>(begin));
  const VU step = hn::Set(du, static_cast<uint32_t>(N));
  auto one = [&](const auto& g) {
    const auto v =
        hn::IfThenElseZero(Keep(index, key, threshold), hn::Mul(g.Load(in + i), vscale));
    g.Store(kBackward ? hn::Add(g.Load(out + i), v) : v, out + i);
  };
  const simd::Group<false> full{d, hn::FirstN(d, N), N};
  for (; i + static_cast<int64_t>(N) <= end; i += N, index = hn::Add(index, step)) one(full);
  if (i < end) {
    const size_t count = static_cast<size_t>(end - i);
    one(simd::Group<true>{d, hn::FirstN(d, count), count});
  }
}

}  // namespace dropout_hwy

void DropoutForwardSpan(const float* x, int64_t begin, int64_t end, uint64_t key,
                        uint32_t threshold, float scale, float* y) {
  dropout_hwy::Span<false>(x, begin, end, key, threshold, scale, y);
}
void DropoutBackwardSpan(const float* dy, int64_t begin, int64_t end, uint64_t key,
                         uint32_t threshold, float scale, float* dx) {
  dropout_hwy::Span<true>(dy, begin, end, key, threshold, scale, dx);
}
int64_t DropoutCompiledTarget() { return HWY_TARGET; }

}  // namespace fer::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace fer::kernels {

HWY_EXPORT(DropoutForwardSpan);
HWY_EXPORT(DropoutBackwardSpan);
HWY_EXPORT(DropoutCompiledTarget);

namespace {

// Splits [0, n) into one contiguous range per thread, in multiples of 64 elements so that
// no two threads write the same cache line. Below ~64K elements one thread: forking costs
// more than the pass over memory.
template <class Body>
void over_threads(int64_t n, const Body& body) {
  const int threads = (n < (int64_t{1} << 16) || omp_in_parallel()) ? 1 : omp_get_max_threads();
  if (threads == 1) return body(int64_t{0}, n);
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), T = omp_get_num_threads();
    const int64_t blocks = (n + 63) / 64;
    const int64_t begin = std::min(n, blocks * t / T * 64);
    const int64_t end = std::min(n, blocks * (t + 1) / T * 64);
    if (begin < end) body(begin, end);
  }
}

}  // namespace

void dropout_forward(const float* x, int64_t n, uint64_t key, float rate, float* y) {
  const uint32_t threshold = dropout_threshold(rate);
  const float scale = 1.f / (1.f - rate);
  over_threads(n, [&](int64_t begin, int64_t end) {
    HWY_DYNAMIC_DISPATCH(DropoutForwardSpan)(x, begin, end, key, threshold, scale, y);
  });
}

void dropout_backward(const float* dy, int64_t n, uint64_t key, float rate, float* dx) {
  const uint32_t threshold = dropout_threshold(rate);
  const float scale = 1.f / (1.f - rate);
  over_threads(n, [&](int64_t begin, int64_t end) {
    HWY_DYNAMIC_DISPATCH(DropoutBackwardSpan)(dy, begin, end, key, threshold, scale, dx);
  });
}

std::vector<int64_t> dropout_hwy_targets() { return hwy::SupportedAndGeneratedTargets(); }
void dropout_hwy_force_target(int64_t target) { hwy::SetSupportedTargetsForTest(target); }
int64_t dropout_hwy_dispatched_target() {
  return HWY_DYNAMIC_DISPATCH(DropoutCompiledTarget)();
}
const char* dropout_hwy_target_name(int64_t target) { return hwy::TargetName(target); }

}  // namespace fer::kernels
#endif  // HWY_ONCE
