#include "kernels/gemm.h"

#include <cstdint>

// GCC 12 reports false "may be used uninitialized" warnings from inside Eigen's AVX-512
// GEMM kernels; they are not about this file's code.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <Eigen/Core>

namespace fer::kernels {

void sgemm_ref(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a,
               int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < n; ++j) {
      // The dot product of row i of op(A) with column j of op(B).
      float dot = 0.f;
      for (int p = 0; p < k; ++p) {
        const float a_ip = trans_a ? a[p * lda + i] : a[i * lda + p];
        const float b_pj = trans_b ? b[j * ldb + p] : b[p * ldb + j];
        dot += a_ip * b_pj;
      }
      float& c_ij = c[i * ldc + j];
      // beta == 0 must not read C: 0 * NaN would be NaN.
      c_ij = beta == 0.f ? alpha * dot : alpha * dot + beta * c_ij;
    }
  }
}

namespace {

using RowMajorMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
// A view of an existing row-major buffer whose rows are `ld` floats apart.
using ConstView = Eigen::Map<const RowMajorMatrix, Eigen::Unaligned, Eigen::OuterStride<>>;
using View = Eigen::Map<RowMajorMatrix, Eigen::Unaligned, Eigen::OuterStride<>>;

// C = alpha * A * B + beta * C, where A and B may be transposed views. noalias() tells
// Eigen that C does not overlap A or B, so it writes the product straight into C
// instead of into a temporary. Eigen folds `alpha *` into the GEMM kernel.
template <typename A, typename B>
void multiply_into(float alpha, const A& op_a, const B& op_b, float beta, View& c) {
  if (beta == 0.f) {
    c.noalias() = alpha * op_a * op_b;
  } else {
    if (beta != 1.f) c *= beta;
    c.noalias() += alpha * op_a * op_b;
  }
}

template <typename A>
void multiply_with_b(bool trans_b, int n, int k, float alpha, const A& op_a, const float* b,
                     int ldb, float beta, View& c) {
  if (trans_b)
    multiply_into(alpha, op_a, ConstView(b, n, k, Eigen::OuterStride<>(ldb)).transpose(), beta,
                  c);
  else
    multiply_into(alpha, op_a, ConstView(b, k, n, Eigen::OuterStride<>(ldb)), beta, c);
}

}  // namespace

// Every shape measured goes to the Highway GEMM: bench/bench_gemm.cpp times both on fer's
// shapes (MobileNet V1's 1x1 convolutions forward, dX and dW; cnn3's im2col convolutions
// and Dense layers; squares from 16 to 1024), and on this machine (AMD EPYC, AVX-512)
// sgemm_hwy was at least as fast as Eigen at every one: mostly 1.2-2.5x, one or two
// orders of magnitude on dW = X^T dY (Eigen's transposed-A path with a deep k) and on
// small products, which Eigen splits across threads and sgemm_hwy keeps on one. The
// nearest to a tie: [64, 256] x [256, 7] (cnn3's last Dense, 1.0-1.15x). Should a shape
// class turn out faster with Eigen, dispatch it here and say why.
void sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a,
           int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  sgemm_hwy(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void sgemm_eigen(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a,
                 int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  if (m <= 0 || n <= 0) return;
  View c_view(c, m, n, Eigen::OuterStride<>(ldc));
  if (k <= 0 || alpha == 0.f) {  // nothing to multiply: C = beta * C
    if (beta == 0.f) c_view.setZero();
    else if (beta != 1.f) c_view *= beta;
    return;
  }
  if (trans_a)
    multiply_with_b(trans_b, n, k, alpha,
                    ConstView(a, k, m, Eigen::OuterStride<>(lda)).transpose(), b, ldb, beta,
                    c_view);
  else
    multiply_with_b(trans_b, n, k, alpha, ConstView(a, m, k, Eigen::OuterStride<>(lda)), b, ldb,
                    beta, c_view);
}

void broadcast_rows(int rows, int cols, const float* bias, float* out) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < rows; ++i) {
    float* row = out + static_cast<int64_t>(i) * cols;
    for (int j = 0; j < cols; ++j) row[j] = bias[j];
  }
}

void add_column_sums(int rows, int cols, const float* m, float* sums) {
  // Rows outer, columns inner: the inner loop runs along memory and vectorizes. A serial
  // loop is enough here: it is one pass over dy, tiny next to the GEMMs around it.
  for (int i = 0; i < rows; ++i) {
    const float* row = m + static_cast<int64_t>(i) * cols;
    for (int j = 0; j < cols; ++j) sums[j] += row[j];
  }
}

}  // namespace fer::kernels
