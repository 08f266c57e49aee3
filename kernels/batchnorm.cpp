#include "kernels/batchnorm.h"

#include <omp.h>

#include "kernels/activation.h"

#include <cmath>
#include <vector>

namespace fer::kernels {

// ======================================================================================
// Reference versions: one channel at a time, plain loops, sums in double.
// ======================================================================================

void batchnorm_forward_train_ref(const float* x, const float* gamma, const float* beta,
                                 int64_t rows, int64_t C, float eps, float* y, float* mean,
                                 float* var, float* inv_std) {
  for (int64_t c = 0; c < C; ++c) {
    // Two passes (mean first, then squared deviations from it) instead of
    // E[x^2] - E[x]^2, which loses every digit when |mean| >> std.
    double sum = 0;
    for (int64_t r = 0; r < rows; ++r) sum += x[r * C + c];
    const double m = sum / rows;
    double sq = 0;
    for (int64_t r = 0; r < rows; ++r) {
      const double d = x[r * C + c] - m;
      sq += d * d;
    }
    const double v = sq / rows;  // biased: divide by M, as Keras/TF normalize
    const double is = 1.0 / std::sqrt(v + eps);
    mean[c] = static_cast<float>(m);
    var[c] = static_cast<float>(v);
    inv_std[c] = static_cast<float>(is);
    for (int64_t r = 0; r < rows; ++r) {
      const double xhat = (x[r * C + c] - m) * is;
      y[r * C + c] = static_cast<float>(gamma[c] * xhat + beta[c]);
    }
  }
}

void batchnorm_forward_inference_ref(const float* x, const float* gamma, const float* beta,
                                     const float* moving_mean, const float* moving_var,
                                     int64_t rows, int64_t C, float eps, float* y) {
  for (int64_t c = 0; c < C; ++c) {
    const double is = 1.0 / std::sqrt(double(moving_var[c]) + eps);
    for (int64_t r = 0; r < rows; ++r) {
      const double xhat = (x[r * C + c] - double(moving_mean[c])) * is;
      y[r * C + c] = static_cast<float>(gamma[c] * xhat + beta[c]);
    }
  }
}

void batchnorm_inv_std(const float* var, int64_t C, float eps, float* inv_std) {
  for (int64_t c = 0; c < C; ++c)
    inv_std[c] = static_cast<float>(1.0 / std::sqrt(double(var[c]) + eps));
}

void batchnorm_backward_train_ref(const float* x, const float* dy, const float* gamma,
                                  const float* mean, const float* inv_std, int64_t rows,
                                  int64_t C, float* dx, float* dgamma, float* dbeta) {
  for (int64_t c = 0; c < C; ++c) {
    // The two column sums every dx needs: sum(dy) (= dbeta) and sum(dy * xhat) (= dgamma).
    double sum_dy = 0, sum_dy_xhat = 0;
    for (int64_t r = 0; r < rows; ++r) {
      const double xhat = (x[r * C + c] - double(mean[c])) * inv_std[c];
      sum_dy += dy[r * C + c];
      sum_dy_xhat += dy[r * C + c] * xhat;
    }
    if (dbeta) dbeta[c] += static_cast<float>(sum_dy);
    if (dgamma) dgamma[c] += static_cast<float>(sum_dy_xhat);
    if (!dx) continue;
    // dx = gamma*inv_std/M * (M*dy - sum(dy) - xhat*sum(dy*xhat)). The first term is the
    // direct path through xhat, the second the path through the mean, the third the
    // path through the variance.
    const double k = double(gamma[c]) * inv_std[c] / rows;
    for (int64_t r = 0; r < rows; ++r) {
      const double xhat = (x[r * C + c] - double(mean[c])) * inv_std[c];
      dx[r * C + c] += static_cast<float>(
          k * (rows * double(dy[r * C + c]) - sum_dy - xhat * sum_dy_xhat));
    }
  }
}

void batchnorm_backward_inference_ref(const float* x, const float* dy, const float* gamma,
                                      const float* mean, const float* inv_std, int64_t rows,
                                      int64_t C, float* dx, float* dgamma, float* dbeta) {
  for (int64_t c = 0; c < C; ++c) {
    double sum_dy = 0, sum_dy_xhat = 0;
    for (int64_t r = 0; r < rows; ++r) {
      const double xhat = (x[r * C + c] - double(mean[c])) * inv_std[c];
      sum_dy += dy[r * C + c];
      sum_dy_xhat += dy[r * C + c] * xhat;
      // Constant statistics: y is an affine function of x alone.
      if (dx) dx[r * C + c] += gamma[c] * inv_std[c] * dy[r * C + c];
    }
    if (dbeta) dbeta[c] += static_cast<float>(sum_dy);
    if (dgamma) dgamma[c] += static_cast<float>(sum_dy_xhat);
  }
}

void batchnorm_update_running_stats(float* moving_mean, float* moving_var, const float* mean,
                                    const float* var, int64_t rows, int64_t C,
                                    float momentum) {
  const double bessel = rows > 1 ? double(rows) / double(rows - 1) : 1.0;
  for (int64_t c = 0; c < C; ++c) {
    moving_mean[c] =
        static_cast<float>(double(moving_mean[c]) * momentum + double(mean[c]) * (1.0 - momentum));
    moving_var[c] = static_cast<float>(double(moving_var[c]) * momentum +
                                       double(var[c]) * bessel * (1.0 - momentum));
  }
}

// The fused references: the reference BatchNorm, then the reference activation (forward);
// the reference activation backward, then the reference BatchNorm backward. The activation
// backward reads the activation's output y where the layer pair reads its input z; they
// give the same mask (y > 0 iff z > 0, y < 6 iff z < 6).

namespace {
void act_forward_ref(Act act, float* y, int64_t n) {  // in place
  if (act == Act::kRelu) relu_forward_ref(y, n, y);
  if (act == Act::kRelu6) relu6_forward_ref(y, n, y);
}
// dz = dy masked by the activation's derivative (a fresh buffer: the activation backward
// adds into its output, as into a zeroed gradient on the tape).
std::vector<float> act_backward_ref(Act act, const float* y, const float* dy, int64_t n) {
  if (act == Act::kNone) return std::vector<float>(dy, dy + n);
  std::vector<float> dz(n, 0.f);
  if (act == Act::kRelu) relu_backward_ref(y, dy, n, dz.data());
  if (act == Act::kRelu6) relu6_backward_ref(y, dy, n, dz.data());
  return dz;
}
}  // namespace

void batchnorm_forward_train_fused_ref(Act act, const float* x, const float* gamma,
                                       const float* beta, int64_t rows, int64_t C, float eps,
                                       float* y, float* mean, float* var, float* inv_std) {
  batchnorm_forward_train_ref(x, gamma, beta, rows, C, eps, y, mean, var, inv_std);
  act_forward_ref(act, y, rows * C);
}

void batchnorm_forward_inference_fused_ref(Act act, const float* x, const float* gamma,
                                           const float* beta, const float* moving_mean,
                                           const float* moving_var, int64_t rows, int64_t C,
                                           float eps, float* y) {
  batchnorm_forward_inference_ref(x, gamma, beta, moving_mean, moving_var, rows, C, eps, y);
  act_forward_ref(act, y, rows * C);
}

void batchnorm_backward_train_fused_ref(Act act, const float* y, const float* x,
                                        const float* dy, const float* gamma, const float* mean,
                                        const float* inv_std, int64_t rows, int64_t C,
                                        float* dx, float* dgamma, float* dbeta) {
  const std::vector<float> dz = act_backward_ref(act, y, dy, rows * C);
  batchnorm_backward_train_ref(x, dz.data(), gamma, mean, inv_std, rows, C, dx, dgamma, dbeta);
}

void batchnorm_backward_inference_fused_ref(Act act, const float* y, const float* x,
                                            const float* dy, const float* gamma,
                                            const float* mean, const float* inv_std,
                                            int64_t rows, int64_t C, float* dx, float* dgamma,
                                            float* dbeta) {
  const std::vector<float> dz = act_backward_ref(act, y, dy, rows * C);
  batchnorm_backward_inference_ref(x, dz.data(), gamma, mean, inv_std, rows, C, dx, dgamma,
                                   dbeta);
}

// ======================================================================================
// The OpenMP loops (`_loops`; the public entry points are in batchnorm_hwy.cpp): rows are
// split over OpenMP threads; each thread sums its rows into
// its own [C] partial (channel loop innermost, so it walks memory contiguously and
// vectorizes), and the partials are added in thread order, so results do not depend on
// scheduling.
// ======================================================================================

namespace {

// Below this many elements, starting threads costs more than it saves.
constexpr int64_t kParallelMin = 1 << 15;

int threads_for(int64_t elements) {
  return elements < kParallelMin ? 1 : omp_get_max_threads();
}

// Column sums over all rows, one or two at once (the backward needs two): term(r, acc0,
// acc1) adds row r's contribution into the thread's partials acc0[C] (and acc1[C]); the
// totals land in out0[C] (and out1[C] unless it is nullptr).
template <typename Term>
void column_sums(int64_t rows, int64_t C, Term term, double* out0, double* out1) {
  const int nt = threads_for(rows * C);
  std::vector<double> partial(size_t(nt) * 2 * C, 0.0);
#pragma omp parallel num_threads(nt)
  {
    double* acc0 = partial.data() + size_t(omp_get_thread_num()) * 2 * C;
    double* acc1 = acc0 + C;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) term(r, acc0, acc1);
  }
  for (int64_t c = 0; c < C; ++c) {
    out0[c] = 0;
    if (out1) out1[c] = 0;
  }
  for (int t = 0; t < nt; ++t) {
    const double* acc0 = partial.data() + size_t(t) * 2 * C;
    const double* acc1 = acc0 + C;
    for (int64_t c = 0; c < C; ++c) {
      out0[c] += acc0[c];
      if (out1) out1[c] += acc1[c];
    }
  }
}

// y[r,c] = (x[r,c] - center[c]) * scale[c] + shift[c]. Subtracting the mean first (rather
// than folding it into shift) keeps the precision when |mean| >> std.
void affine_rows(const float* x, const float* center, const float* scale, const float* shift,
                 int64_t rows, int64_t C, float* y) {
#pragma omp parallel for schedule(static) num_threads(threads_for(rows * C))
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * C;
    float* yr = y + r * C;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) yr[c] = (xr[c] - center[c]) * scale[c] + shift[c];
  }
}

}  // namespace

void batchnorm_forward_train_loops(const float* x, const float* gamma, const float* beta,
                                   int64_t rows, int64_t C, float eps, float* y, float* mean,
                                   float* var, float* inv_std) {
  std::vector<double> m(C), v(C);
  column_sums(
      rows, C,
      [&](int64_t r, double* acc, double*) {
        const float* xr = x + r * C;
        for (int64_t c = 0; c < C; ++c) acc[c] += xr[c];
      },
      m.data(), nullptr);
  for (int64_t c = 0; c < C; ++c) m[c] /= rows;
  column_sums(
      rows, C,
      [&](int64_t r, double* acc, double*) {
        const float* xr = x + r * C;
        for (int64_t c = 0; c < C; ++c) {
          const double d = xr[c] - m[c];
          acc[c] += d * d;
        }
      },
      v.data(), nullptr);
  std::vector<float> scale(C);
  for (int64_t c = 0; c < C; ++c) {
    v[c] /= rows;
    const double is = 1.0 / std::sqrt(v[c] + eps);
    mean[c] = static_cast<float>(m[c]);
    var[c] = static_cast<float>(v[c]);
    inv_std[c] = static_cast<float>(is);
    scale[c] = static_cast<float>(gamma[c] * is);
  }
  affine_rows(x, mean, scale.data(), beta, rows, C, y);
}

void batchnorm_forward_inference_loops(const float* x, const float* gamma, const float* beta,
                                       const float* moving_mean, const float* moving_var,
                                       int64_t rows, int64_t C, float eps, float* y) {
  std::vector<float> scale(C);
  for (int64_t c = 0; c < C; ++c)
    scale[c] = static_cast<float>(gamma[c] / std::sqrt(double(moving_var[c]) + eps));
  affine_rows(x, moving_mean, scale.data(), beta, rows, C, y);
}

// Per channel: sum(dy) and sum(dy * xhat), the two reductions every BatchNorm backward
// needs; they are also dbeta and dgamma, which are accumulated here (when asked for).
static void dy_sums(const float* x, const float* dy, const float* mean, const float* inv_std,
                    int64_t rows, int64_t C, std::vector<double>& sum_dy,
                    std::vector<double>& sum_dy_xhat, float* dgamma, float* dbeta) {
  sum_dy.assign(C, 0.0);
  sum_dy_xhat.assign(C, 0.0);
  column_sums(
      rows, C,
      [&](int64_t r, double* acc_dy, double* acc_dy_xhat) {
        const float* xr = x + r * C;
        const float* dyr = dy + r * C;
        for (int64_t c = 0; c < C; ++c) {
          const float xhat = (xr[c] - mean[c]) * inv_std[c];
          acc_dy[c] += dyr[c];
          acc_dy_xhat[c] += double(dyr[c]) * xhat;
        }
      },
      sum_dy.data(), sum_dy_xhat.data());
  for (int64_t c = 0; c < C; ++c) {
    if (dbeta) dbeta[c] += static_cast<float>(sum_dy[c]);
    if (dgamma) dgamma[c] += static_cast<float>(sum_dy_xhat[c]);
  }
}

void batchnorm_backward_train_loops(const float* x, const float* dy, const float* gamma,
                                    const float* mean, const float* inv_std, int64_t rows,
                                    int64_t C, float* dx, float* dgamma, float* dbeta) {
  std::vector<double> sum_dy, sum_dy_xhat;
  dy_sums(x, dy, mean, inv_std, rows, C, sum_dy, sum_dy_xhat, dgamma, dbeta);
  if (!dx) return;
  // dx = k * (dy - a - xhat * b) with k = gamma*inv_std, a = mean(dy), b = mean(dy*xhat).
  std::vector<float> k(C), a(C), b(C);
  for (int64_t c = 0; c < C; ++c) {
    k[c] = gamma[c] * inv_std[c];
    a[c] = static_cast<float>(sum_dy[c] / rows);
    b[c] = static_cast<float>(sum_dy_xhat[c] / rows);
  }
#pragma omp parallel for schedule(static) num_threads(threads_for(rows * C))
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * C;
    const float* dyr = dy + r * C;
    float* dxr = dx + r * C;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) {
      const float xhat = (xr[c] - mean[c]) * inv_std[c];
      dxr[c] += k[c] * (dyr[c] - a[c] - xhat * b[c]);
    }
  }
}

void batchnorm_backward_inference_loops(const float* x, const float* dy, const float* gamma,
                                        const float* mean, const float* inv_std, int64_t rows,
                                        int64_t C, float* dx, float* dgamma, float* dbeta) {
  if (dgamma || dbeta) {
    std::vector<double> sum_dy, sum_dy_xhat;
    dy_sums(x, dy, mean, inv_std, rows, C, sum_dy, sum_dy_xhat, dgamma, dbeta);
  }
  if (!dx) return;
  std::vector<float> k(C);
  for (int64_t c = 0; c < C; ++c) k[c] = gamma[c] * inv_std[c];
#pragma omp parallel for schedule(static) num_threads(threads_for(rows * C))
  for (int64_t r = 0; r < rows; ++r) {
    const float* dyr = dy + r * C;
    float* dxr = dx + r * C;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) dxr[c] += k[c] * dyr[c];
  }
}

}  // namespace fer::kernels
