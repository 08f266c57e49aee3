#include "kernels/softmax.h"

#include <omp.h>

#include <cmath>
#include <limits>
#include <vector>

namespace fer::kernels {

// ======================================================================================
// Reference versions
// ======================================================================================

void softmax_rows_ref(const float* x, int64_t rows, int64_t K, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * K;
    float* yr = y + r * K;
    double mx = xr[0];
    for (int64_t k = 1; k < K; ++k) mx = std::max<double>(mx, xr[k]);
    double sum = 0;
    for (int64_t k = 0; k < K; ++k) sum += std::exp(xr[k] - mx);
    for (int64_t k = 0; k < K; ++k) yr[k] = static_cast<float>(std::exp(xr[k] - mx) / sum);
  }
}

void softmax_rows_backward_ref(const float* y, const float* dy, int64_t rows, int64_t K,
                               float* dx) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* yr = y + r * K;
    const float* dyr = dy + r * K;
    // sum_j dy_j y_j: how much of the gradient is "shared" by the normalization.
    double dot = 0;
    for (int64_t k = 0; k < K; ++k) dot += double(dyr[k]) * yr[k];
    for (int64_t k = 0; k < K; ++k) dx[r * K + k] += static_cast<float>(yr[k] * (dyr[k] - dot));
  }
}

double softmax_cross_entropy_ref(const float* logits, const int* labels, int64_t N, int64_t K,
                                 float label_smoothing, const float* class_weights,
                                 float* dlogits) {
  const double eps = label_smoothing;
  auto w = [&](int64_t k) { return class_weights ? double(class_weights[k]) : 1.0; };

  // W: the normalizer of the 'mean' reduction, the total weight of the labels.
  double W = 0;
  for (int64_t i = 0; i < N; ++i) W += w(labels[i]);
  double sum_w = 0;  // sum_k w[k], for A_i below
  for (int64_t k = 0; k < K; ++k) sum_w += w(k);

  double total = 0;
  std::vector<double> logp(K);
  for (int64_t i = 0; i < N; ++i) {
    const float* z = logits + i * K;
    const int y = labels[i];
    // log softmax(z)[k] = z[k] - logsumexp(z), with the max subtracted for stability.
    double mx = z[0];
    for (int64_t k = 1; k < K; ++k) mx = std::max<double>(mx, z[k]);
    double sum = 0;
    for (int64_t k = 0; k < K; ++k) sum += std::exp(z[k] - mx);
    const double lse = mx + std::log(sum);
    for (int64_t k = 0; k < K; ++k) logp[k] = z[k] - lse;

    // Row loss -sum_k a[i,k] logp[k] with the weighted target a[i,k].
    double row = 0;
    for (int64_t k = 0; k < K; ++k) {
      const double a = (k == y ? (1 - eps) * w(y) : 0.0) + eps / K * w(k);
      row -= a * logp[k];
    }
    total += row;

    if (dlogits) {
      const double A = (1 - eps) * w(y) + eps / K * sum_w;
      for (int64_t k = 0; k < K; ++k) {
        const double a = (k == y ? (1 - eps) * w(y) : 0.0) + eps / K * w(k);
        dlogits[i * K + k] = static_cast<float>((A * std::exp(logp[k]) - a) / W);
      }
    }
  }
  if (W == 0) return std::numeric_limits<double>::quiet_NaN();
  return total / W;
}

double softmax_cross_entropy_soft_ref(const float* logits, const float* targets, int64_t N,
                                      int64_t K, float* dlogits) {
  double total = 0;
  for (int64_t i = 0; i < N; ++i) {
    const float* z = logits + i * K;
    const float* t = targets + i * K;
    double mx = z[0];
    for (int64_t k = 1; k < K; ++k) mx = std::max<double>(mx, z[k]);
    double sum = 0;
    for (int64_t k = 0; k < K; ++k) sum += std::exp(z[k] - mx);
    const double lse = mx + std::log(sum);  // log sum_k exp(z[k])
    for (int64_t k = 0; k < K; ++k) {
      const double logp = z[k] - lse;
      total -= t[k] * logp;
      if (dlogits) dlogits[i * K + k] = static_cast<float>((std::exp(logp) - t[k]) / N);
    }
  }
  return total / N;
}

// ======================================================================================
// OpenMP loops (the baseline of kernels/softmax_hwy.cpp): rows over threads.
// ======================================================================================

namespace {
constexpr int64_t kParallelMin = 1 << 14;
int threads_for(int64_t elements) {
  return elements < kParallelMin ? 1 : omp_get_max_threads();
}

// y[0..K) = softmax(x[0..K)) in float (sum in double); returns log(sum exp(x - max)) + max.
double softmax_row(const float* x, int64_t K, float* y) {
  float mx = x[0];
  for (int64_t k = 1; k < K; ++k) mx = x[k] > mx ? x[k] : mx;
  double sum = 0;
  for (int64_t k = 0; k < K; ++k) {
    y[k] = std::exp(x[k] - mx);
    sum += y[k];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t k = 0; k < K; ++k) y[k] *= inv;
  return mx + std::log(sum);
}
}  // namespace

void softmax_rows_loops(const float* x, int64_t rows, int64_t K, float* y) {
#pragma omp parallel for schedule(static) num_threads(threads_for(rows * K))
  for (int64_t r = 0; r < rows; ++r) softmax_row(x + r * K, K, y + r * K);
}

void softmax_rows_backward_loops(const float* y, const float* dy, int64_t rows, int64_t K,
                                 float* dx) {
#pragma omp parallel for schedule(static) num_threads(threads_for(rows * K))
  for (int64_t r = 0; r < rows; ++r) {
    const float* yr = y + r * K;
    const float* dyr = dy + r * K;
    float* dxr = dx + r * K;
    double dot = 0;
    for (int64_t k = 0; k < K; ++k) dot += double(dyr[k]) * yr[k];
    const float d = static_cast<float>(dot);
#pragma omp simd
    for (int64_t k = 0; k < K; ++k) dxr[k] += yr[k] * (dyr[k] - d);
  }
}

double softmax_cross_entropy_loops(const float* logits, const int* labels, int64_t N,
                                   int64_t K, float label_smoothing,
                                   const float* class_weights, float* dlogits) {
  const double eps = label_smoothing;
  double W = 0, sum_w = 0;
  for (int64_t i = 0; i < N; ++i) W += class_weights ? class_weights[labels[i]] : 1.0;
  for (int64_t k = 0; k < K; ++k) sum_w += class_weights ? class_weights[k] : 1.0;
  const float inv_W = static_cast<float>(1.0 / W);
  const float spread = static_cast<float>(eps / K);  // the smoothing mass per class

  // Row losses go to their own slots and are added in order afterwards, so the result
  // does not depend on how rows were scheduled.
  std::vector<double> row_loss(N);
  const int nt = threads_for(N * K);
#pragma omp parallel num_threads(nt)
  {
    std::vector<float> p_local(dlogits ? 0 : K);
#pragma omp for schedule(static)
    for (int64_t i = 0; i < N; ++i) {
      const float* z = logits + i * K;
      float* p = dlogits ? dlogits + i * K : p_local.data();
      const double lse = softmax_row(z, K, p);
      const int y = labels[i];
      const double wy = class_weights ? class_weights[y] : 1.0;
      // -sum_k a[i,k] logp[k], split into the one-hot part and the smoothing part.
      double smooth = 0;
      if (eps != 0) {
        for (int64_t k = 0; k < K; ++k)
          smooth += (class_weights ? class_weights[k] : 1.0) * (lse - z[k]);
      }
      row_loss[i] = (1 - eps) * wy * (lse - z[y]) + eps / K * smooth;
      if (dlogits) {
        // dlogits = (A p - a) / W, built in place over p.
        const float A = static_cast<float>((1 - eps) * wy + eps / K * sum_w);
        if (class_weights) {
          for (int64_t k = 0; k < K; ++k)
            p[k] = (A * p[k] - spread * class_weights[k]) * inv_W;
        } else {
#pragma omp simd
          for (int64_t k = 0; k < K; ++k) p[k] = (A * p[k] - spread) * inv_W;
        }
        p[y] -= static_cast<float>((1 - eps) * wy) * inv_W;
      }
    }
  }
  if (W == 0) return std::numeric_limits<double>::quiet_NaN();
  double total = 0;
  for (int64_t i = 0; i < N; ++i) total += row_loss[i];
  return total / W;
}

}  // namespace fer::kernels
