// Batch normalization kernels on raw buffers.
//
// The input is seen as a matrix x[rows, C] with channels innermost: an NHWC batch has
// rows = N*H*W, a [N, F] feature batch has rows = N. Every channel c is normalized with
// its own statistics over all M = rows values in its column:
//
//   mean[c]    = 1/M sum_r x[r,c]
//   var[c]     = 1/M sum_r (x[r,c] - mean[c])^2        (biased, as Keras/TF normalize)
//   inv_std[c] = 1 / sqrt(var[c] + eps)
//   xhat[r,c]  = (x[r,c] - mean[c]) * inv_std[c]
//   y[r,c]     = gamma[c] * xhat[r,c] + beta[c]
//
// In inference (and when the layer is frozen) mean/var are the running statistics
// instead of the batch's, so every output depends only on its own input.
//
// Each op has a `_ref` version (plain loops, read it first) and an optimized version
// (OpenMP over rows with per-thread channel partial sums) that the tests compare.
#pragma once

#include <cstdint>

namespace fer::kernels {

// --- training forward ----------------------------------------------------------------
// Computes y from the batch statistics and writes the per-channel mean, biased variance
// and inv_std (all [C]) for the backward pass and the running-statistics update.
void batchnorm_forward_train_ref(const float* x, const float* gamma, const float* beta,
                                 int64_t rows, int64_t C, float eps, float* y, float* mean,
                                 float* var, float* inv_std);
void batchnorm_forward_train(const float* x, const float* gamma, const float* beta,
                             int64_t rows, int64_t C, float eps, float* y, float* mean,
                             float* var, float* inv_std);

// --- inference forward ---------------------------------------------------------------
// y = gamma * (x - moving_mean) / sqrt(moving_var + eps) + beta.
void batchnorm_forward_inference_ref(const float* x, const float* gamma, const float* beta,
                                     const float* moving_mean, const float* moving_var,
                                     int64_t rows, int64_t C, float eps, float* y);
void batchnorm_forward_inference(const float* x, const float* gamma, const float* beta,
                                 const float* moving_mean, const float* moving_var,
                                 int64_t rows, int64_t C, float eps, float* y);

// inv_std[c] = 1 / sqrt(var[c] + eps): the running statistics' version, for the
// inference-mode backward.
void batchnorm_inv_std(const float* var, int64_t C, float eps, float* inv_std);

// --- backward ------------------------------------------------------------------------
// Both backward kernels ADD into dx[rows, C], dgamma[C] and dbeta[C] (gradients
// accumulate, as on the tape); pass nullptr for a gradient that is not wanted.
// `mean` and `inv_std` are those the forward pass used.
//
// Training mode: mean and var depend on every x in the column, so each dx gathers the
// whole column. With M = rows:
//   dbeta[c]  = sum_r dy[r,c]
//   dgamma[c] = sum_r dy[r,c] * xhat[r,c]
//   dx[r,c]   = gamma[c] * inv_std[c] / M * (M * dy[r,c] - dbeta[c] - xhat[r,c] * dgamma[c])
void batchnorm_backward_train_ref(const float* x, const float* dy, const float* gamma,
                                  const float* mean, const float* inv_std, int64_t rows,
                                  int64_t C, float* dx, float* dgamma, float* dbeta);
void batchnorm_backward_train(const float* x, const float* dy, const float* gamma,
                              const float* mean, const float* inv_std, int64_t rows,
                              int64_t C, float* dx, float* dgamma, float* dbeta);

// Inference/frozen mode: the statistics are constants, so the layer is a per-channel
// affine map and dx[r,c] = gamma[c] * inv_std[c] * dy[r,c]. dgamma and dbeta are as above.
void batchnorm_backward_inference_ref(const float* x, const float* dy, const float* gamma,
                                      const float* mean, const float* inv_std, int64_t rows,
                                      int64_t C, float* dx, float* dgamma, float* dbeta);
void batchnorm_backward_inference(const float* x, const float* dy, const float* gamma,
                                  const float* mean, const float* inv_std, int64_t rows,
                                  int64_t C, float* dx, float* dgamma, float* dbeta);

// --- running statistics --------------------------------------------------------------
// Keras's exponential moving average after a training step:
//   moving_mean = moving_mean * momentum + mean * (1 - momentum)
//   moving_var  = moving_var  * momentum + var * M/(M-1) * (1 - momentum)
// The variance stored is the UNBIASED one (Bessel's correction, as TF's fused batch norm
// and PyTorch do), while normalization above uses the biased one. M = rows; with M = 1
// the correction factor is taken as 1 (the variance is 0 anyway).
void batchnorm_update_running_stats(float* moving_mean, float* moving_var, const float* mean,
                                    const float* var, int64_t rows, int64_t C,
                                    float momentum);

}  // namespace fer::kernels
