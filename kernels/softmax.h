// Softmax over the last axis and the fused softmax cross-entropy loss, on raw buffers.
//
// Inputs are matrices [rows, K] (K classes innermost). `_ref` versions are plain loops in
// double (read them first). The optimized entry points (the names without a suffix, which
// the layers call) are Google Highway SIMD kernels (kernels/softmax_hwy.cpp, compiled for
// every x86 SIMD level and dispatched at run time) that work in float along each row,
// rows split over OpenMP threads; softmax_hwy.cpp derives their error bound against the
// reference (about 1e-6 relative). The earlier OpenMP loops remain as `_loops`, the
// baseline of bench/bench_pool_softmax.cpp. All subtract the row maximum before
// exponentiating: softmax(z) = softmax(z - max z) mathematically, and it keeps exp() from
// overflowing on large logits.
#pragma once

#include <cstdint>
#include <vector>

namespace fer::kernels {

// y[r,k] = exp(x[r,k] - max_j x[r,j]) / sum_j exp(x[r,j] - max_j x[r,j])
void softmax_rows_ref(const float* x, int64_t rows, int64_t K, float* y);
void softmax_rows(const float* x, int64_t rows, int64_t K, float* y);
void softmax_rows_loops(const float* x, int64_t rows, int64_t K, float* y);

// Backward of y = softmax(x) given y and dy: the Jacobian is diag(y) - y y^T, so
//   dx[r,k] += y[r,k] * (dy[r,k] - sum_j dy[r,j] * y[r,j])      (ADDS into dx)
void softmax_rows_backward_ref(const float* y, const float* dy, int64_t rows, int64_t K,
                               float* dx);
void softmax_rows_backward(const float* y, const float* dy, int64_t rows, int64_t K,
                           float* dx);
void softmax_rows_backward_loops(const float* y, const float* dy, int64_t rows, int64_t K,
                                 float* dx);

// Softmax cross-entropy of logits z[N, K] against integer labels[N] (each in [0, K); the
// caller checks), with label smoothing eps and optional per-class weights w[K]
// (nullptr = all ones). Exactly PyTorch 1.13's
//   cross_entropy(z, labels, weight=w, label_smoothing=eps, reduction='mean'):
//
//   logp[i,k] = log softmax(z[i])[k]
//   loss = (1/W) sum_i [ (1-eps) * w[y_i] * (-logp[i,y_i])
//                        + (eps/K) * sum_k w[k] * (-logp[i,k]) ],   W = sum_i w[y_i]
//
// Note where the weights go: the one-hot part is weighted by the label's class, the
// smoothing part by each class k it spreads onto, and both are normalized by the label
// weights W. Without weights this is the mean over rows of the cross-entropy with target
// (1-eps)*onehot + eps/K (Keras's label_smoothing too).
//
// Writing a[i,k] = (1-eps) w[y_i] [k == y_i] + (eps/K) w[k] (the row's weighted target)
// and A_i = sum_k a[i,k], the loss is -(1/W) sum_i sum_k a[i,k] logp[i,k] and its
// gradient is
//   dlogits[i,k] = (A_i * softmax(z[i])[k] - a[i,k]) / W
// (= (p - target) / N in the unweighted case). Returns the loss; writes (overwrites)
// dlogits[N, K] unless it is nullptr. Returns NaN when W = 0.
double softmax_cross_entropy_ref(const float* logits, const int* labels, int64_t N, int64_t K,
                                 float label_smoothing, const float* class_weights,
                                 float* dlogits);
double softmax_cross_entropy(const float* logits, const int* labels, int64_t N, int64_t K,
                             float label_smoothing, const float* class_weights,
                             float* dlogits);
double softmax_cross_entropy_loops(const float* logits, const int* labels, int64_t N,
                                   int64_t K, float label_smoothing,
                                   const float* class_weights, float* dlogits);

// Softmax cross-entropy against soft targets t[N, K] (each row a distribution: entries
// >= 0 summing to 1 -- e.g. a teacher network's probabilities in knowledge distillation,
// Hinton et al. 2015; the caller checks):
//   loss = -(1/N) sum_i sum_k t[i,k] logp[i,k],   dlogits[i,k] = (p[i,k] - t[i,k]) / N
// (the general form of PyTorch 1.13's cross_entropy with probability targets; a one-hot t
// gives softmax_cross_entropy above). Returns the loss; writes dlogits unless nullptr.
// The optimized version takes p from the Highway softmax_rows and gets log p from it
// without underflow (see softmax_hwy.cpp).
double softmax_cross_entropy_soft_ref(const float* logits, const float* targets, int64_t N,
                                      int64_t K, float* dlogits);
double softmax_cross_entropy_soft(const float* logits, const float* targets, int64_t N,
                                  int64_t K, float* dlogits);

// For tests and benchmarks, as batchnorm_hwy_* in kernels/batchnorm.h: the Highway
// targets compiled and supported by this CPU (best first), forcing one (0 undoes), the
// target the next call runs, and a target's name.
std::vector<int64_t> softmax_hwy_targets();
void softmax_hwy_force_target(int64_t target);
int64_t softmax_hwy_dispatched_target();
const char* softmax_hwy_target_name(int64_t target);

}  // namespace fer::kernels
