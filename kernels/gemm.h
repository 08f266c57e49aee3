// Matrix multiplication (GEMM), the workhorse under Dense and Conv2D.
//
// Both functions compute, with BLAS's conventions but C's row-major memory order,
//
//   C = alpha * op(A) * op(B) + beta * C        op(A) is m x k, op(B) is k x n, C is m x n
//
// where op(A) = A when trans_a is false (A is stored m x k, row i starts at a + i*lda)
// and op(A) = A^T when it is true (A is stored k x m, row p starts at a + p*lda); the
// same for B with ldb. The leading dimensions let a caller multiply a block of a bigger
// matrix. As in BLAS, beta == 0 makes C write-only: its old contents (even NaN) are
// ignored, so callers need not clear the output first.
//
// Every layer calls `sgemm`, never an implementation directly, so that the
// implementation can be swapped without touching them.
#pragma once

#include <cstdint>
#include <vector>

namespace fer::kernels {

// Three plain loops: the definition, used to test the fast version.
void sgemm_ref(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a,
               int lda, const float* b, int ldb, float beta, float* c, int ldc);

// The one the layers call: sgemm_hwy, which measured at least as fast as Eigen at every
// shape fer produces (see gemm.cpp). Both are multithreaded with OpenMP and run
// single-threaded when called from inside an OpenMP parallel region, so they never
// oversubscribe.
void sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a,
           int lda, const float* b, int ldb, float beta, float* c, int ldc);

// Eigen's blocked, vectorized GEMM: the baseline sgemm_hwy is measured against.
void sgemm_eigen(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a,
                 int lda, const float* b, int ldb, float beta, float* c, int ldc);

// fer's own GEMM (kernels/gemm_hwy.cpp): Goto-style blocking around an FMA micro-kernel
// written with Google Highway, compiled for AVX-512, AVX2, SSE4, SSSE3 and scalar code;
// the best target the CPU supports is chosen at run time.
void sgemm_hwy(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a,
               int lda, const float* b, int ldb, float beta, float* c, int ldc);

// For tests and benchmarks, which run sgemm_hwy on each of its targets in turn:
//   sgemm_hwy_targets: the Highway targets (HWY_AVX3, HWY_AVX2, ...) sgemm_hwy was compiled
//     for and this CPU supports, best first (hwy::SupportedAndGeneratedTargets as seen from
//     gemm_hwy.cpp, whose target list differs from a -march=native file's);
//   sgemm_hwy_force_target: hwy::SetSupportedTargetsForTest(target), 0 to undo;
//   sgemm_hwy_dispatched_target: the target the next sgemm_hwy call runs;
//   sgemm_hwy_target_name: "AVX3", "AVX2", ...
// They exist so that callers need not include Highway's headers: Highway 1.0.3 fails to
// compile under -march=native on CPUs with AVX-512 VNNI/VBMI2 (detect_targets.h: "best
// baseline should be included in dynamic targets").
std::vector<int64_t> sgemm_hwy_targets();
void sgemm_hwy_force_target(int64_t target);
int64_t sgemm_hwy_dispatched_target();
const char* sgemm_hwy_target_name(int64_t target);

// The two bias helpers of a layer that ends in a GEMM, for a contiguous rows x cols
// matrix (one row per example or pixel, one column per output unit or channel):
//   broadcast_rows:  out[i][j] = bias[j]   (then sgemm with beta = 1 adds x * W on top)
//   add_column_sums: sums[j] += sum_i m[i][j]   (dbias = column sums of dy)
void broadcast_rows(int rows, int cols, const float* bias, float* out);
void add_column_sums(int rows, int cols, const float* m, float* sums);

}  // namespace fer::kernels
