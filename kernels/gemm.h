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
// Every layer calls `sgemm`, never Eigen directly, so that the implementation can be
// swapped (a later step replaces it with our own Highway kernel) without touching them.
#pragma once

namespace fer::kernels {

// Three plain loops: the definition, used to test the fast version.
void sgemm_ref(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a,
               int lda, const float* b, int ldb, float beta, float* c, int ldc);

// Eigen's blocked, vectorized GEMM (multithreaded with OpenMP; it runs single-threaded
// when called from inside an OpenMP parallel region, so it never oversubscribes).
void sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a,
           int lda, const float* b, int ldb, float beta, float* c, int ldc);

// The two bias helpers of a layer that ends in a GEMM, for a contiguous rows x cols
// matrix (one row per example or pixel, one column per output unit or channel):
//   broadcast_rows:  out[i][j] = bias[j]   (then sgemm with beta = 1 adds x * W on top)
//   add_column_sums: sums[j] += sum_i m[i][j]   (dbias = column sums of dy)
void broadcast_rows(int rows, int cols, const float* bias, float* out);
void add_column_sums(int rows, int cols, const float* m, float* sums);

}  // namespace fer::kernels
