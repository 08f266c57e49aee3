// The register-blocked micro-kernel shared by the direct convolution
// (kernels/conv2d_direct_hwy.cpp) and Winograd's 16 products (kernels/conv2d_winograd_hwy.cpp):
// R rows (output pixels, or Winograd tiles) x J vectors of output channels accumulate in
// registers over a run of input values, each step broadcasting one value per row and
// loading J kernel vectors.
//
// A per-target header, like kernels/hwy_group-inl.h: included after
// <hwy/foreach_target.h> and compiled once per SIMD target.
#if defined(FER_KERNELS_CONV_BLOCK_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef FER_KERNELS_CONV_BLOCK_INL_H_
#undef FER_KERNELS_CONV_BLOCK_INL_H_
#else
#define FER_KERNELS_CONV_BLOCK_INL_H_
#endif

#include <cstdint>

#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace fer::kernels::HWY_NAMESPACE {
namespace conv_block {
namespace hn = hwy::HWY_NAMESPACE;

using D = hn::ScalableTag<float>;
using V = hn::Vec<D>;

// Accumulator budget: AVX-512 has 32 vector registers, the others 16; a block of R x J
// accumulators needs J more for the kernel row and one for the broadcast. Each row also
// keeps one input pointer in a general register, of which x86 has 16: with R = 12 three
// of them were reloaded from the stack on every step of the inner loop, so blocks use at
// most 8 rows (bench_conv2d, 1 thread, cnn3 block1_conv2, direct: forward 15.4 -> 14.4 ms,
// backward to the input 17.6 -> 15.0 ms).
#if HWY_TARGET <= HWY_AVX3
constexpr int kMaxJ = 4;
template <int J> constexpr int kRows = J == 4 ? 6 : 8;
#else
constexpr int kMaxJ = 2;
template <int J> constexpr int kRows = J == 2 ? 6 : 8;
#endif

// acc[r][j] += sum_{i < length} p[r][i] * k[i * ocp + j * N]: one contiguous run of input
// values per row and the kernel rows (ocp floats apart) that multiply them.
template <int R, int J>
HWY_INLINE void Accumulate(V (&acc)[R][J], const float* const* p, const float* k,
                           int64_t length, int64_t ocp) {
  const D d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  for (int64_t i = 0; i < length; ++i, k += ocp) {
    V wv[J];
    HWY_UNROLL(16)
    for (int j = 0; j < J; ++j) wv[j] = hn::LoadU(d, k + j * N);
    HWY_UNROLL(16)
    for (int r = 0; r < R; ++r) {
      const V xb = hn::Set(d, p[r][i]);
      HWY_UNROLL(16)
      for (int j = 0; j < J; ++j) acc[r][j] = hn::MulAdd(xb, wv[j], acc[r][j]);
    }
  }
}

}  // namespace conv_block
}  // namespace fer::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // FER_KERNELS_CONV_BLOCK_INL_H_ toggle
