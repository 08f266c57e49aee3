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
// Each op has a `_ref` version (plain loops, read it first) and an optimized version that
// the tests compare. The optimized entry points (the names without a suffix, which the
// layers call) are Google Highway SIMD kernels (kernels/batchnorm_hwy.cpp, compiled for
// every x86 SIMD level and dispatched at run time); the earlier OpenMP loops remain as
// `_loops`, the baseline of bench/bench_batchnorm.cpp.
//
// Fused activation. In MobileNets every BatchNormalization feeds a ReLU or ReLU6, and each
// of those is a whole pass over memory of little arithmetic. The `_fused` kernels apply
// the activation inside BatchNorm's own passes:
//   forward:  y = act(gamma * xhat + beta)
//   backward: dy is first masked by the activation's derivative, read from the OUTPUT y
//             (dz = dy where 0 < y, and y < 6 for ReLU6; 0 elsewhere: the same as
//             relu_backward / relu6_backward in kernels/activation.h, since y > 0 exactly
//             where the activation's input was > 0, and y < 6 where it was < 6), then the
//             BatchNorm backward runs on dz.
// Act::kNone gives plain BatchNorm (y is then not read and may be nullptr).
#pragma once

#include <cstdint>
#include <vector>

namespace fer::kernels {

enum class Act { kNone, kRelu, kRelu6 };

// --- training forward ----------------------------------------------------------------
// Computes y from the batch statistics and writes the per-channel mean, biased variance
// and inv_std (all [C]) for the backward pass and the running-statistics update.
void batchnorm_forward_train_ref(const float* x, const float* gamma, const float* beta,
                                 int64_t rows, int64_t C, float eps, float* y, float* mean,
                                 float* var, float* inv_std);
void batchnorm_forward_train(const float* x, const float* gamma, const float* beta,
                             int64_t rows, int64_t C, float eps, float* y, float* mean,
                             float* var, float* inv_std);
void batchnorm_forward_train_loops(const float* x, const float* gamma, const float* beta,
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
void batchnorm_forward_inference_loops(const float* x, const float* gamma, const float* beta,
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
void batchnorm_backward_train_loops(const float* x, const float* dy, const float* gamma,
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
void batchnorm_backward_inference_loops(const float* x, const float* dy, const float* gamma,
                                        const float* mean, const float* inv_std, int64_t rows,
                                        int64_t C, float* dx, float* dgamma, float* dbeta);

// --- fused activation ------------------------------------------------------------------
// The four ops above with an activation applied after (forward) or its mask applied
// before (backward); see the top of this file. The unfused entry points are these with
// Act::kNone. `_fused_ref` runs the `_ref` BatchNorm and the `_ref` activation one after
// the other (kernels/activation.h), stating what the fusion must equal.
void batchnorm_forward_train_fused_ref(Act act, const float* x, const float* gamma,
                                       const float* beta, int64_t rows, int64_t C, float eps,
                                       float* y, float* mean, float* var, float* inv_std);
void batchnorm_forward_train_fused(Act act, const float* x, const float* gamma,
                                   const float* beta, int64_t rows, int64_t C, float eps,
                                   float* y, float* mean, float* var, float* inv_std);

void batchnorm_forward_inference_fused_ref(Act act, const float* x, const float* gamma,
                                           const float* beta, const float* moving_mean,
                                           const float* moving_var, int64_t rows, int64_t C,
                                           float eps, float* y);
void batchnorm_forward_inference_fused(Act act, const float* x, const float* gamma,
                                       const float* beta, const float* moving_mean,
                                       const float* moving_var, int64_t rows, int64_t C,
                                       float eps, float* y);

// `y` is the fused forward's output (post-activation); `dy` the gradient with respect to it.
void batchnorm_backward_train_fused_ref(Act act, const float* y, const float* x,
                                        const float* dy, const float* gamma, const float* mean,
                                        const float* inv_std, int64_t rows, int64_t C,
                                        float* dx, float* dgamma, float* dbeta);
// The optimized training backward does not read y: it recomputes the activation's input
// gamma * xhat + beta from x exactly as batchnorm_forward_train_fused computed it (hence
// `beta`, and mean/inv_std must be that forward's), so its mask is the one the forward's y
// gives -- and two of the seven passes over memory are saved. beta may be nullptr with
// Act::kNone.
// dx_accumulate false: dx is overwritten (not read), as if it held zeros -- for a
// gradient buffer this backward pass is the first to write (Tensor::grad_to_write), which
// then needs no zero-fill.
void batchnorm_backward_train_fused(Act act, const float* x, const float* dy,
                                    const float* gamma, const float* beta, const float* mean,
                                    const float* inv_std, int64_t rows, int64_t C, float* dx,
                                    float* dgamma, float* dbeta, bool dx_accumulate = true);

void batchnorm_backward_inference_fused_ref(Act act, const float* y, const float* x,
                                            const float* dy, const float* gamma,
                                            const float* mean, const float* inv_std,
                                            int64_t rows, int64_t C, float* dx, float* dgamma,
                                            float* dbeta);
void batchnorm_backward_inference_fused(Act act, const float* y, const float* x,
                                        const float* dy, const float* gamma, const float* mean,
                                        const float* inv_std, int64_t rows, int64_t C,
                                        float* dx, float* dgamma, float* dbeta);

// For tests and benchmarks, as depthwise_hwy_* in kernels/depthwise_conv2d.h: the Highway
// targets compiled and supported by this CPU (best first), forcing one (0 undoes), the
// target the next call runs, and a target's name.
std::vector<int64_t> batchnorm_hwy_targets();
void batchnorm_hwy_force_target(int64_t target);
int64_t batchnorm_hwy_dispatched_target();
const char* batchnorm_hwy_target_name(int64_t target);

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
