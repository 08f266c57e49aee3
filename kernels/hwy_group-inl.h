// Highway helper shared by the SIMD kernels that vectorize over the innermost (channel)
// axis: loads and stores of one group of channels -- a full vector, or (kTail) the first
// `count` lanes only, so that the last group never touches memory past the channel count
// (nor, through a read-modify-write, floats that another thread owns).
//
// A per-target header: included after <hwy/foreach_target.h> by each kernel file, and
// compiled once per SIMD target (the include guard toggles with HWY_TARGET_TOGGLE, as
// Highway's own -inl.h headers do).
#if defined(FER_KERNELS_HWY_GROUP_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef FER_KERNELS_HWY_GROUP_INL_H_
#undef FER_KERNELS_HWY_GROUP_INL_H_
#else
#define FER_KERNELS_HWY_GROUP_INL_H_
#endif

#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace fer::kernels::HWY_NAMESPACE {
namespace simd {
namespace hn = hwy::HWY_NAMESPACE;

using D = hn::ScalableTag<float>;
using V = hn::Vec<D>;
using M = hn::Mask<D>;

template <bool kTail>
struct Group {
  D d;
  M m;  // FirstN(count)
  size_t count;
  HWY_INLINE V Load(const float* p) const {
    if constexpr (kTail) {
#if HWY_TARGET <= HWY_AVX2
      return hn::MaskedLoad(m, d, p);  // vmaskmov / AVX-512 masks: no access past count
#else
      // Highway 1.0.3's MaskedLoad below AVX2 is an aligned full-vector load (faults on
      // unaligned pointers, reads past the end), so copy the tail through the stack.
      HWY_ALIGN float buf[HWY_LANES(float)] = {};
      for (size_t i = 0; i < count; ++i) buf[i] = p[i];
      return hn::Load(d, buf);
#endif
    } else {
      return hn::LoadU(d, p);
    }
  }
  HWY_INLINE void Store(V v, float* p) const {
    if constexpr (kTail) hn::BlendedStore(v, m, d, p);
    else hn::StoreU(v, d, p);
  }
};

}  // namespace simd
}  // namespace fer::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // FER_KERNELS_HWY_GROUP_INL_H_ toggle
