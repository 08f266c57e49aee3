// Highway helper for the elementwise kernels over flat arrays (activations, optimizer
// updates): walks [0, n) one vector at a time, the last n % N floats as a masked tail
// group (kernels/hwy_group-inl.h) that reads and writes nothing past n.
//
// A per-target header like hwy_group-inl.h: included after <hwy/foreach_target.h>, compiled
// once per SIMD target.
#if defined(FER_KERNELS_HWY_STREAM_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef FER_KERNELS_HWY_STREAM_INL_H_
#undef FER_KERNELS_HWY_STREAM_INL_H_
#else
#define FER_KERNELS_HWY_STREAM_INL_H_
#endif

#include <cstdint>

#include <hwy/highway.h>
#include "kernels/hwy_group-inl.h"

HWY_BEFORE_NAMESPACE();
namespace fer::kernels::HWY_NAMESPACE {
namespace simd {

// Calls body(group, i) for i = 0, N, 2N, ... (N lanes per vector): with a full Group while
// N floats remain, then once with a tail Group of the n % N left. The body loads and
// stores element i.. of its arrays through the group.
template <class Body>
HWY_INLINE void ForEachVector(int64_t n, const Body& body) {
  const D d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const Group<false> full{d, hn::FirstN(d, size_t(N)), size_t(N)};
  int64_t i = 0;
  for (; i + N <= n; i += N) body(full, i);
  if (i < n) {
    const size_t rest = static_cast<size_t>(n - i);
    body(Group<true>{d, hn::FirstN(d, rest), rest}, i);
  }
}

}  // namespace simd
}  // namespace fer::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // FER_KERNELS_HWY_STREAM_INL_H_ toggle
