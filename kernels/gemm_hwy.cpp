// fer's own SGEMM: Goto/BLIS-style blocking around a register-blocked FMA micro-kernel,
// written once with Google Highway and compiled for every x86 SIMD level (AVX-512, AVX2,
// SSE4, SSSE3, scalar); the best one the CPU supports is picked at run time.
//
// The loops, for one thread's share of C (see sgemm_hwy at the bottom for the split):
//
//   for jc in n, NC columns at a time:
//     for pc in k, KC at a time:
//       pack B[pc:+KC, jc:+NC] into NR-column panels (contiguous, zero-padded)  -> L2
//       for ic in m, MR rows at a time:                      (A's MR x KC sliver -> L1)
//         for jr in NC, NR columns at a time:
//           micro-kernel: C[ic:+MR, jc+jr:+NR] (+)= A[ic:+MR, pc:+KC] * panel   (registers)
//
// Two departures from the textbook, both measured (bench/bench_gemm.cpp):
// - A is never packed. The micro-kernel only broadcasts single A values, so it reads A
//   where it lies: for op(A) = A through MR row pointers (each read sequentially), for
//   op(A) = A^T as MR contiguous values per k step. The shapes that matter here (1x1
//   convolutions, im2col) have m in the tens of thousands and n, k in the tens to
//   hundreds: packing A would be a gather over all of A reused only n / 16 times, while
//   B is small and reused by every row. Instead each tile prefetches the next A sliver
//   (that took im2col-shaped GEMMs from ~60% to ~85% of the FMA peak).
// - With few rows of C (dW = X^T dY, whose B is the whole dY), B is read in place when
//   its layout allows, so that its one pass over memory overlaps the FMAs.
//
// alpha and beta are applied once per C element when a tile is written back (beta only
// for the first KC block; later blocks accumulate with beta = 1). beta == 0 never reads C.
#include "kernels/gemm.h"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/gemm_hwy.cpp"
#include <hwy/foreach_target.h>  // re-includes this file once per SIMD target

#include <hwy/aligned_allocator.h>
#include <hwy/cache_control.h>
#include <hwy/highway.h>

// Target-independent definitions, seen once.
#ifndef FER_KERNELS_GEMM_HWY_SHARED
#define FER_KERNELS_GEMM_HWY_SHARED
namespace fer::kernels::gemm_detail {

// One GEMM (or one thread's part of one) in BLAS terms; see gemm.h.
struct Problem {
  bool trans_a, trans_b;
  int64_t m, n, k;
  float alpha;
  const float* a;
  int64_t lda;
  const float* b;
  int64_t ldb;
  float beta;
  float* c;
  int64_t ldc;
};

// Cache blocking, for AMD EPYC Zen (48 KiB L1d, 1 MiB L2 per core). The packed B block
// (KC x NC floats) is re-read from L2 once per tile row, so it gets at most half of L2,
// kPackedB floats: KC = 384 up to NC = 336 columns, less depth for wider blocks. A tile
// streams one NR-wide panel of it (at most 384 x 32 floats = 48 KiB with AVX-512) from
// L2 against an A sliver of MR x KC (at most 18 KiB) that stays in L1.
constexpr int64_t kKC = 384;
constexpr int64_t kNC = 768;  // a multiple of every target's NR (32 and 48 for AVX-512)
constexpr int64_t kPackedB = 128 * 1024;
constexpr int64_t kMaxMR = 16;
// Threads that split the rows of C get multiples of this many (a multiple of every MR),
// so that only the last thread has a partial tile row.
constexpr int64_t kRowGrain = 24;

// Floats of per-thread scratch: the packed B block, then an A edge sliver (trans_a only).
constexpr int64_t kWorkspaceFloats = kPackedB + kKC * kMaxMR;

// The depth of the B blocks for a k x nc slice of B: at most kKC, and at most kPackedB
// floats once nc is rounded up to whole 16-float vectors (as the packing pads it); the
// blocks are made equal (a multiple of 8) so that no pass over C is spent on a sliver.
inline int64_t depth_block(int64_t k, int64_t nc) {
  const int64_t padded = (nc + 15) / 16 * 16;
  const int64_t most = std::min(kKC, kPackedB / padded / 8 * 8);
  const int64_t blocks = (k + most - 1) / most;
  return ((k + blocks - 1) / blocks + 7) / 8 * 8;
}

}  // namespace fer::kernels::gemm_detail
#endif  // FER_KERNELS_GEMM_HWY_SHARED

HWY_BEFORE_NAMESPACE();
namespace fer::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using gemm_detail::Problem;

using D = hn::ScalableTag<float>;
using V = hn::Vec<D>;
constexpr size_t kN = hn::MaxLanes(D());  // floats per vector (x86: exact)

// A tile is MR rows x NV vectors of C. It needs MR * NV accumulators, NV B vectors and
// one broadcast A value in registers, and per k step does MR * NV FMAs for NV loads and
// MR broadcasts. AVX-512 has 32 vector registers: 12 x 2 (27 registers) in general, and
// 8 x 3 (28) when n is a multiple of 48, which fits MobileNet's channel counts exactly
// (48 = 32 + 16 would leave a 16-wide tile that is bound by its 12 broadcasts).
// AVX2 and SSE have 16 registers: 6 x 2 (15).
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
constexpr bool kWide = true;
#else
constexpr bool kWide = false;
#endif
constexpr size_t RowsFor(size_t nv) { return kWide ? (nv == 3 ? 8 : 12) : 6; }
static_assert(RowsFor(2) <= gemm_detail::kMaxMR, "raise kMaxMR");
static_assert(gemm_detail::kRowGrain % RowsFor(2) == 0 &&
                  gemm_detail::kRowGrain % RowsFor(3) == 0,
              "kRowGrain must be a multiple of every MR");
static_assert(gemm_detail::kNC % (2 * kN) == 0 && (!kWide || gemm_detail::kNC % (3 * kN) == 0),
              "NC must hold whole panels");

// C[0:rows, 0:cols] = alpha * acc + beta * C (beta == 0: C is not read). acc holds the
// full MR x NV*N tile; rows and cols say how much of it lies inside C. The full-tile
// loops have constant bounds and constant indices once unrolled, so acc stays in
// registers; so does a tile of all MR rows whose last vector is partial, on targets with
// masked stores (AVX2 and up); other edge tiles go through a buffer.
template <size_t MR, size_t NV>
HWY_INLINE void WriteBack(D d, V (&acc)[MR][NV], float* HWY_RESTRICT c, int64_t ldc,
                          size_t rows, size_t cols, float alpha, float beta) {
  if (alpha != 1.f) {
    const V va = hn::Set(d, alpha);
    HWY_UNROLL(16)
    for (size_t r = 0; r < MR; ++r)
      HWY_UNROLL(4)
      for (size_t v = 0; v < NV; ++v) acc[r][v] = hn::Mul(acc[r][v], va);
  }
  if (HWY_LIKELY(rows == MR && cols == NV * kN)) {
    if (beta == 0.f) {
      HWY_UNROLL(16)
      for (size_t r = 0; r < MR; ++r)
        HWY_UNROLL(4)
        for (size_t v = 0; v < NV; ++v) hn::StoreU(acc[r][v], d, c + r * ldc + v * kN);
    } else if (beta == 1.f) {
      HWY_UNROLL(16)
      for (size_t r = 0; r < MR; ++r)
        HWY_UNROLL(4)
        for (size_t v = 0; v < NV; ++v) {
          float* cv = c + r * ldc + v * kN;
          hn::StoreU(hn::Add(hn::LoadU(d, cv), acc[r][v]), d, cv);
        }
    } else {
      const V vb = hn::Set(d, beta);
      HWY_UNROLL(16)
      for (size_t r = 0; r < MR; ++r)
        HWY_UNROLL(4)
        for (size_t v = 0; v < NV; ++v) {
          float* cv = c + r * ldc + v * kN;
          hn::StoreU(hn::MulAdd(hn::LoadU(d, cv), vb, acc[r][v]), d, cv);
        }
    }
    return;
  }
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
  // All MR rows, the last vector partial (n = 24 with 16-float vectors, as in every tile
  // of MobileNet V1 alpha 0.75's 24-channel input gradient): that vector is written (and,
  // with beta, read) under a mask straight from the registers, without the buffer.
  if (rows == MR && cols > (NV - 1) * kN) {
    const auto mask = hn::FirstN(d, cols - (NV - 1) * kN);
    const V vb = hn::Set(d, beta);
    HWY_UNROLL(16)
    for (size_t r = 0; r < MR; ++r) {
      float* crow = c + r * ldc;
      HWY_UNROLL(4)
      for (size_t v = 0; v + 1 < NV; ++v) {
        float* cv = crow + v * kN;
        const V x = acc[r][v];
        hn::StoreU(beta == 0.f ? x : hn::MulAdd(hn::LoadU(d, cv), vb, x), d, cv);
      }
      float* cv = crow + (NV - 1) * kN;
      const V last = acc[r][NV - 1];
      hn::BlendedStore(beta == 0.f ? last : hn::MulAdd(hn::MaskedLoad(mask, d, cv), vb, last),
                       mask, d, cv);
    }
    return;
  }
#endif
  HWY_ALIGN float buf[MR * NV * kN];
  HWY_UNROLL(16)
  for (size_t r = 0; r < MR; ++r)
    HWY_UNROLL(4)
    for (size_t v = 0; v < NV; ++v) hn::Store(acc[r][v], d, buf + (r * NV + v) * kN);
  const V vb = hn::Set(d, beta);
  for (size_t r = 0; r < rows; ++r) {
    float* crow = c + r * ldc;
    const float* brow = buf + r * NV * kN;
    for (size_t j0 = 0; j0 < cols; j0 += kN) {
      const V x = hn::Load(d, brow + j0);
      if (j0 + kN <= cols) {
        hn::StoreU(beta == 0.f ? x : hn::MulAdd(hn::LoadU(d, crow + j0), vb, x), d, crow + j0);
        continue;
      }
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
      // AVX2 and AVX-512 have true masked loads and stores: lanes past C are neither
      // read nor written (the emulation on older targets would rewrite them).
      const auto mask = hn::FirstN(d, cols - j0);
      const V y = beta == 0.f ? x : hn::MulAdd(hn::MaskedLoad(mask, d, crow + j0), vb, x);
      hn::BlendedStore(y, mask, d, crow + j0);
#else
      for (size_t j = j0; j < cols; ++j)
        crow[j] = beta == 0.f ? brow[j] : brow[j] + beta * crow[j];
#endif
    }
  }
}

// The micro-kernel: acc = A sliver (MR x kc) * B panel (kc x NV*N), then WriteBack.
// B panel: kc rows of NV*N floats, b_step apart (packed: NV*N). A: element (r, p) is at
//   kRows:  arow[r][p]                   (op(A) = A, one pointer per row)
//   !kRows: a[p * a_step + r]             (op(A) = A^T or a packed edge sliver)
// The first panel of a tile row reads its A sliver from memory, MR rows at once; to keep
// those loads from stalling, each tile prefetches the next sliver (arow[r] + a_next; 0
// for none), 16 floats of every row each 16 k steps, and its own C tile before the loop.
template <size_t MR, size_t NV, bool kRows>
HWY_NOINLINE void Tile(size_t kc, const float* const* arow, int64_t a_next,
                       const float* HWY_RESTRICT a, int64_t a_step,
                       const float* HWY_RESTRICT bp, int64_t b_step, float* HWY_RESTRICT c,
                       int64_t ldc, size_t rows, size_t cols, float alpha, float beta) {
  const D d;
  for (size_t r = 0; r < rows; ++r)
    for (size_t j = 0; j < cols; j += 16) hwy::Prefetch(c + r * ldc + j);

  V acc[MR][NV];
  for (size_t r = 0; r < MR; ++r)
    for (size_t v = 0; v < NV; ++v) acc[r][v] = hn::Zero(d);

  const float* ar[MR] = {};
  if constexpr (kRows)
    for (size_t r = 0; r < MR; ++r) ar[r] = arow[r];

  for (size_t p0 = 0; p0 < kc; p0 += 16) {
    if constexpr (kRows) {
      if (a_next != 0)
        for (size_t r = 0; r < MR; ++r) hwy::Prefetch(ar[r] + a_next + p0);
    }
    const size_t p_end = HWY_MIN(kc, p0 + 16);
    for (size_t p = p0; p < p_end; ++p) {
      V bv[NV];
      for (size_t v = 0; v < NV; ++v) bv[v] = hn::LoadU(d, bp + v * kN);
      bp += b_step;
      for (size_t r = 0; r < MR; ++r) {
        V av;
        if constexpr (kRows) av = hn::Set(d, ar[r][p]);
        else av = hn::Set(d, a[r]);
        for (size_t v = 0; v < NV; ++v) acc[r][v] = hn::MulAdd(av, bv[v], acc[r][v]);
      }
      if constexpr (!kRows) a += a_step;
    }
  }
  WriteBack<MR, NV>(d, acc, c, ldc, rows, cols, alpha, beta);
}

// Copies `cols` floats and zero-fills up to w (a multiple of kN, at most 3 vectors).
HWY_INLINE void CopyRow(const float* HWY_RESTRICT src, float* HWY_RESTRICT dst, int64_t cols,
                        int64_t w) {
  const D d;
  int64_t j = 0;
  for (; j + static_cast<int64_t>(kN) <= cols; j += kN) hn::Store(hn::LoadU(d, src + j), d, dst + j);
  for (; j < cols; ++j) dst[j] = src[j];
  for (; j < w; ++j) dst[j] = 0.f;
}

// panel[p * w + j] = src[j * ld + p] for j < cols, p < kc: a transposing copy, by 4 x 4
// blocks in 128-bit vectors (B^T is packed once per block and then reused by every row
// of C, but with few rows, as in a Dense layer's backward pass, a scalar gather here
// would cost as much as the multiply).
HWY_INLINE void PackTransposed(const float* HWY_RESTRICT src, int64_t ld, int64_t kc,
                               int64_t cols, float* HWY_RESTRICT panel, int64_t w) {
  int64_t j = 0;
#if HWY_TARGET != HWY_SCALAR
  const hn::FixedTag<float, 4> d4;
  for (; j + 4 <= cols; j += 4) {
    const float* s0 = src + j * ld;
    const float* s1 = s0 + ld;
    const float* s2 = s1 + ld;
    const float* s3 = s2 + ld;
    int64_t p = 0;
    for (; p + 4 <= kc; p += 4) {
      const auto r0 = hn::LoadU(d4, s0 + p), r1 = hn::LoadU(d4, s1 + p);
      const auto r2 = hn::LoadU(d4, s2 + p), r3 = hn::LoadU(d4, s3 + p);
      const auto t0 = hn::InterleaveLower(d4, r0, r1);  // r0[0] r1[0] r0[1] r1[1]
      const auto t1 = hn::InterleaveLower(d4, r2, r3);  // r2[0] r3[0] r2[1] r3[1]
      const auto t2 = hn::InterleaveUpper(d4, r0, r1);  // r0[2] r1[2] r0[3] r1[3]
      const auto t3 = hn::InterleaveUpper(d4, r2, r3);  // r2[2] r3[2] r2[3] r3[3]
      float* out = panel + p * w + j;
      hn::StoreU(hn::ConcatLowerLower(d4, t1, t0), d4, out);          // r0..3[0]
      hn::StoreU(hn::ConcatUpperUpper(d4, t1, t0), d4, out + w);      // r0..3[1]
      hn::StoreU(hn::ConcatLowerLower(d4, t3, t2), d4, out + 2 * w);  // r0..3[2]
      hn::StoreU(hn::ConcatUpperUpper(d4, t3, t2), d4, out + 3 * w);  // r0..3[3]
    }
    for (; p < kc; ++p) {
      float* out = panel + p * w + j;
      out[0] = s0[p], out[1] = s1[p], out[2] = s2[p], out[3] = s3[p];
    }
  }
#endif
  for (; j < cols; ++j) {
    const float* s0 = src + j * ld;
    for (int64_t p = 0; p < kc; ++p) panel[p * w + j] = s0[p];
  }
}

// Packs B[pc:+kc, jc:+nc] (of op(B)) into panels of NR = NV*N columns: panel j holds kc
// rows of w floats, w = NR, or for the last panel the columns left rounded up to whole
// vectors; the padding is zero, so padded columns compute zeros that are never stored.
template <size_t NV>
void PackB(const Problem& P, int64_t pc, int64_t kc, int64_t jc, int64_t nc,
           float* HWY_RESTRICT dst) {
  constexpr int64_t kNR = NV * kN;
  for (int64_t jr = 0; jr < nc; jr += kNR) {
    const int64_t cols = std::min<int64_t>(kNR, nc - jr);
    const int64_t w = hwy::DivCeil(cols, static_cast<int64_t>(kN)) * kN;
    float* panel = dst + jr * kc;  // earlier panels are all kNR wide
    const int64_t j0 = jc + jr;
    if (!P.trans_b) {  // rows of B are contiguous
      for (int64_t p = 0; p < kc; ++p) CopyRow(P.b + (pc + p) * P.ldb + j0, panel + p * w, cols, w);
    } else {  // op(B) = B^T: column j of op(B) is row j of B, contiguous in p
      PackTransposed(P.b + j0 * P.ldb + pc, P.ldb, kc, cols, panel, w);
      for (int64_t p = 0; p < kc; ++p)
        for (int64_t j = cols; j < w; ++j) panel[p * w + j] = 0.f;
    }
  }
}

// One tile row (MR rows of C starting at c_row) against every panel of the B block:
// packed (b_step == 0; panel j at b + j * NR * kc, rows NR or fewer floats apart) or
// read in place (rows b_step apart; every panel is NR wide).
template <size_t MR, size_t NV, bool kRows>
HWY_INLINE void TileRow(const Problem& P, size_t kc, size_t rows, const float* const* arow,
                        int64_t a_next, const float* a, int64_t a_step, const float* b,
                        int64_t b_step, int64_t nc, float* c_row, float beta) {
  constexpr int64_t kNR = NV * kN;
  for (int64_t jr = 0; jr < nc; jr += kNR) {
    const size_t cols = static_cast<size_t>(std::min<int64_t>(kNR, nc - jr));
    const float* bp = b_step ? b + jr : b + jr * static_cast<int64_t>(kc);
    float* c = c_row + jr;
    // The sliver is in cache after the first panel: prefetch the next one only then.
    const int64_t next = jr == 0 ? a_next : 0;
    // The last panel may be narrower (packed B only): NV vectors, or fewer.
    if (cols > (NV - 1) * kN) {
      Tile<MR, NV, kRows>(kc, arow, next, a, a_step, bp, b_step ? b_step : kNR, c, P.ldc,
                          rows, cols, P.alpha, beta);
    } else if (NV == 3 && cols > kN) {
      Tile<MR, (NV == 3 ? 2 : 1), kRows>(kc, arow, next, a, a_step, bp, 2 * kN, c, P.ldc,
                                         rows, cols, P.alpha, beta);
    } else {
      Tile<MR, 1, kRows>(kc, arow, next, a, a_step, bp, kN, c, P.ldc, rows, cols, P.alpha,
                         beta);
    }
  }
}

// Up to this many rows of C, an unpacked B is read in place (see SgemmBlocked).
constexpr int64_t kInPlaceBRows = 96;

// The whole problem P on the calling thread, with tiles of MR x NV vectors.
template <size_t MR, size_t NV>
void SgemmBlocked(const Problem& P, float* HWY_RESTRICT workspace) {
  float* packed_b = workspace;
  float* a_edge = workspace + gemm_detail::kPackedB;
  for (int64_t jc = 0; jc < P.n; jc += gemm_detail::kNC) {
    const int64_t nc = std::min(gemm_detail::kNC, P.n - jc);
    const int64_t kc_block = gemm_detail::depth_block(P.k, nc);
    for (int64_t pc = 0; pc < P.k; pc += kc_block) {
      const int64_t kc = std::min(kc_block, P.k - pc);
      // With few rows of C, B is used by few tiles and packing it would be a pass over
      // memory of its own (in dW = X^T dY, B is the whole dY); reading it in place
      // instead overlaps that traffic with the FMAs. Possible when op(B) = B and every
      // panel is full.
      const bool b_in_place = !P.trans_b && P.m <= kInPlaceBRows && nc % (NV * kN) == 0;
      const float* b = packed_b;
      int64_t b_step = 0;
      if (b_in_place) {
        b = P.b + pc * P.ldb + jc;
        b_step = P.ldb;
      } else {
        PackB<NV>(P, pc, kc, jc, nc, packed_b);
      }
      const float beta = pc == 0 ? P.beta : 1.f;
      for (int64_t ic = 0; ic < P.m; ic += MR) {
        const size_t rows = static_cast<size_t>(std::min<int64_t>(MR, P.m - ic));
        float* c_row = P.c + ic * P.ldc + jc;
        if (!P.trans_a) {
          // Rows past m repeat the last row: computed, never stored, never out of bounds.
          const float* arow[MR];
          for (size_t r = 0; r < MR; ++r)
            arow[r] = P.a + (ic + static_cast<int64_t>(std::min(r, rows - 1))) * P.lda + pc;
          // Only a full next sliver is prefetched (its rows exist).
          const int64_t a_next = ic + 2 * static_cast<int64_t>(MR) <= P.m ? MR * P.lda : 0;
          TileRow<MR, NV, true>(P, kc, rows, arow, a_next, nullptr, 0, b, b_step, nc, c_row,
                                beta);
        } else if (rows == MR) {
          TileRow<MR, NV, false>(P, kc, rows, nullptr, 0, P.a + pc * P.lda + ic, P.lda, b,
                                 b_step, nc, c_row, beta);
        } else {
          // The last, partial sliver of A^T: reading MR values per k step would run past
          // column m, so copy it out zero-padded.
          for (int64_t p = 0; p < kc; ++p)
            for (size_t r = 0; r < MR; ++r)
              a_edge[p * MR + r] = r < rows ? P.a[(pc + p) * P.lda + ic + r] : 0.f;
          TileRow<MR, NV, false>(P, kc, rows, nullptr, 0, a_edge, MR, b, b_step, nc, c_row,
                                 beta);
        }
      }
    }
  }
}

// Tiles of MR = RowsFor(NV) rows, or -- when all of C has fewer rows than that (a Dense
// layer or a small 1x1 convolution at batch 1) -- of the fewest rows of 1, 2, 4, 8 that
// hold it. A full-height tile would compute its missing rows too (they repeat the last
// one and are never stored): at m = 1 that is 12 times the work, and a GEMV is bound by
// reading B once anyway. bench_gemm's cnn3_dense1_1x4608x256 row measures it.
template <size_t NV>
void SgemmRows(const Problem& P, float* HWY_RESTRICT workspace) {
  constexpr size_t MR = RowsFor(NV);
  if (P.m >= static_cast<int64_t>(MR)) return SgemmBlocked<MR, NV>(P, workspace);
  if (P.m == 1) return SgemmBlocked<1, NV>(P, workspace);
  if (P.m == 2) return SgemmBlocked<2, NV>(P, workspace);
  if (P.m <= 4) return SgemmBlocked<4, NV>(P, workspace);
  if constexpr (MR > 8) {
    if (P.m <= 8) return SgemmBlocked<8, NV>(P, workspace);
  }
  SgemmBlocked<MR, NV>(P, workspace);
}

// The whole problem P on the calling thread. workspace: kWorkspaceFloats, 64-byte aligned.
void SgemmSerial(const Problem& P, float* HWY_RESTRICT workspace) {
  if (kWide && P.n % (3 * kN) == 0) SgemmRows<3>(P, workspace);
  else SgemmRows<2>(P, workspace);
}

// Which target this copy of the code was compiled for (tests check the dispatch).
int64_t CompiledTarget() { return HWY_TARGET; }

}  // namespace fer::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace fer::kernels {

HWY_EXPORT(SgemmSerial);
HWY_EXPORT(CompiledTarget);

using gemm_detail::Problem;

namespace {

// Per-thread scratch, kept between calls (OpenMP reuses its threads), so a GEMM does not
// map fresh pages for its packed B block every time.
float* thread_workspace() {
  thread_local hwy::AlignedFreeUniquePtr<float[]> ws;
  if (!ws) ws = hwy::AllocateAligned<float>(gemm_detail::kWorkspaceFloats);
  return ws.get();
}

// The part of P that touches rows [i0, i0 + rows) of C, columns [j0, j0 + cols), and the
// terms [p0, p0 + depth) of the inner sum.
Problem sub_problem(const Problem& P, int64_t i0, int64_t rows, int64_t j0, int64_t cols,
                    int64_t p0, int64_t depth) {
  Problem s = P;
  s.m = rows;
  s.n = cols;
  s.k = depth;
  s.a = P.trans_a ? P.a + p0 * P.lda + i0 : P.a + i0 * P.lda + p0;
  s.b = P.trans_b ? P.b + j0 * P.ldb + p0 : P.b + p0 * P.ldb + j0;
  s.c = P.c + i0 * P.ldc + j0;
  return s;
}

// [begin, end) of part t of `total` split into `parts` pieces that are multiples of
// `grain` (the last piece takes the remainder).
void split(int64_t total, int parts, int t, int64_t grain, int64_t* begin, int64_t* end) {
  const int64_t chunk = hwy::DivCeil(hwy::DivCeil(total, int64_t{parts}), grain) * grain;
  *begin = std::min(total, t * chunk);
  *end = std::min(total, *begin + chunk);
}

enum class Split { kRows, kCols, kDepth };

// How to share one GEMM among T threads. Each way duplicates some memory traffic:
// splitting rows makes every thread pack all of B (k*n floats each), splitting columns
// makes every thread read all of A (m*k), splitting the inner sum needs a private m x n
// result per extra thread, written once and added into C once. Pick the cheapest among
// the splits that give every thread a real share of work.
Split choose_split(const Problem& P, int threads) {
  const int64_t T = threads;
  const bool rows_ok = P.m >= 16 * T;
  const bool cols_ok = P.n >= 64 * T;
  const bool depth_ok = P.k >= 256 * T;
  const int64_t rows_cost = (T - 1) * P.k * P.n;
  const int64_t cols_cost = (T - 1) * P.m * P.k;
  const int64_t depth_cost = (T - 1) * P.m * P.n * 3;
  Split best = Split::kRows;
  int64_t best_cost = rows_ok ? rows_cost : INT64_MAX;
  if (cols_ok && cols_cost < best_cost) best = Split::kCols, best_cost = cols_cost;
  if (depth_ok && depth_cost < best_cost) best = Split::kDepth, best_cost = depth_cost;
  return best;
}

void scale_c(const Problem& P) {
  for (int64_t i = 0; i < P.m; ++i) {
    float* row = P.c + i * P.ldc;
    for (int64_t j = 0; j < P.n; ++j) row[j] = P.beta == 0.f ? 0.f : P.beta * row[j];
  }
}

}  // namespace

void sgemm_hwy(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a,
               int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  if (m <= 0 || n <= 0) return;
  const Problem P{trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc};
  if (k <= 0 || alpha == 0.f) {  // nothing to multiply: C = beta * C
    if (beta != 1.f) scale_c(P);
    return;
  }
  // Forking threads costs a few microseconds: not worth it below 2 MFLOP (~10 us on one
  // core), and never inside a parallel region (the caller already uses the cores).
  int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (int64_t{m} * n * k < (int64_t{1} << 20)) threads = 1;
  if (threads == 1) {
    HWY_DYNAMIC_DISPATCH(SgemmSerial)(P, thread_workspace());
    return;
  }
  const Split how = choose_split(P, threads);
  if (how != Split::kDepth) {
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num(), T = omp_get_num_threads();
      int64_t begin, end;
      if (how == Split::kRows) {
        split(P.m, T, t, gemm_detail::kRowGrain, &begin, &end);
        if (begin < end)
          HWY_DYNAMIC_DISPATCH(SgemmSerial)(sub_problem(P, begin, end - begin, 0, P.n, 0, P.k),
                                            thread_workspace());
      } else {
        // Whole panels per thread (NR is 32 or 48 with AVX-512, 16 or 8 below).
        split(P.n, T, t, P.n % 48 == 0 ? 48 : 32, &begin, &end);
        if (begin < end)
          HWY_DYNAMIC_DISPATCH(SgemmSerial)(sub_problem(P, 0, P.m, begin, end - begin, 0, P.k),
                                            thread_workspace());
      }
    }
    return;
  }
  // Split the inner sum: thread 0 accumulates its share into C itself (with the caller's
  // beta); thread t > 0 writes its share into partial[t - 1], and after a barrier all
  // threads add the partials into C, each for its own rows.
  thread_local std::vector<float> partial;
  const int64_t mn = P.m * P.n;
  partial.resize(static_cast<size_t>(mn) * (threads - 1));
  float* partials = partial.data();
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), T = omp_get_num_threads();
    int64_t begin, end;
    split(P.k, T, t, 16, &begin, &end);
    Problem s = sub_problem(P, 0, P.m, 0, P.n, begin, end - begin);
    if (t > 0) {
      s.c = partials + (t - 1) * mn;
      s.ldc = P.n;
      s.beta = 0.f;
    }
    if (begin < end) HWY_DYNAMIC_DISPATCH(SgemmSerial)(s, thread_workspace());
    else if (t > 0) std::fill(s.c, s.c + mn, 0.f);
    else if (P.beta != 1.f) scale_c(P);
#pragma omp barrier
    split(P.m, T, t, 1, &begin, &end);
    for (int u = 1; u < T; ++u)
      for (int64_t i = begin; i < end; ++i) {
        float* crow = P.c + i * P.ldc;
        const float* prow = partials + (u - 1) * mn + i * P.n;
        for (int64_t j = 0; j < P.n; ++j) crow[j] += prow[j];
      }
  }
}

std::vector<int64_t> sgemm_hwy_targets() { return hwy::SupportedAndGeneratedTargets(); }

void sgemm_hwy_force_target(int64_t target) { hwy::SetSupportedTargetsForTest(target); }

int64_t sgemm_hwy_dispatched_target() { return HWY_DYNAMIC_DISPATCH(CompiledTarget)(); }

const char* sgemm_hwy_target_name(int64_t target) { return hwy::TargetName(target); }

}  // namespace fer::kernels
#endif  // HWY_ONCE
