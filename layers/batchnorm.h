// BatchNormalization over the last axis (channels of an NHWC batch, features of [N, F]),
// with Keras's parameters, defaults and running-statistics convention.
//
//   training (and not frozen): normalize with the batch's mean and biased variance, then
//     update moving_mean/moving_variance (momentum, unbiased variance; see
//     kernels/batchnorm.h). Gradients flow through the batch statistics.
//   inference, or frozen: normalize with moving_mean/moving_variance and leave them be;
//     the layer is then a fixed per-channel affine map. A frozen BN in a fine-tuned
//     backbone behaves like this even in training, as in Keras (trainable=False).
//
// Parameters: "<name>/gamma" (ones, if scale), "<name>/beta" (zeros, if center), both
// trainable; "<name>/moving_mean" (zeros) and "<name>/moving_variance" (ones), not
// trainable and never requiring a gradient.
//
// Fusion: inside a Sequential, a BatchNormalization immediately followed by a ReLU or
// ReLU6 runs the pair as one kernel in both directions (forward_fused; the _fused kernels
// of kernels/batchnorm.h): the activation is applied as the normalized values are
// written, and its mask is applied to the incoming gradient as it is read. The ReLU layer
// itself stays in the model (same architecture, names and files); Sequential just does
// not call it. Sequential::set_fusion(false) turns this off.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "kernels/batchnorm.h"
#include "layers/layer.h"

namespace fer {

class BatchNormalization : public Layer {
 public:
  explicit BatchNormalization(std::string name, float epsilon = 1e-3f, float momentum = 0.99f,
                              bool center = true, bool scale = true);

  std::string type() const override { return "BatchNormalization"; }
  Shape build(const Shape& input, Rng& rng) override;
  Tensor forward(const Tensor& x, bool training) override;
  std::vector<Parameter*> parameters() override;
  // True for a ReLU layer (plain or ReLU6): forward_fused then runs BatchNorm + activation.
  bool fuses_with(const Layer& next) const override;
  Tensor forward_fused(const Tensor& x, bool training, Layer& next) override;
  Json config() const override;
  // Reads {"name", "epsilon", "momentum", "center", "scale"}; missing fields take the
  // Keras defaults.
  static std::unique_ptr<Layer> from_config(const Json& config);

  // For Sequential's image-chunked inference (Layer::forward_images): one example's shape
  // (empty before build), the activation a fused `next` layer applies, and the inference
  // normalization (running statistics) plus `act`, in place on `rows` rows of channels.
  const Shape& example_shape() const { return input_shape_; }
  static kernels::Act activation_of(const Layer& next);
  void normalize_inference_in_place(float* y, int64_t rows, kernels::Act act) const;

  // In training, the backward writes x's gradient over y's in place when it is the first
  // gradient into x (Tensor::take_grad_of): one buffer and one pass of memory traffic
  // fewer per layer. On by default; off (FER_BN_IN_PLACE=0, or here) every backward
  // writes a buffer of its own. Both give the same gradients bit for bit.
  static void set_in_place_backward(bool enabled);
  static bool in_place_backward();

  float epsilon() const { return epsilon_; }
  float momentum() const { return momentum_; }
  // Direct access (tests, weight import). Undefined tensors for an absent gamma/beta.
  Tensor& gamma() { return gamma_.value; }
  Tensor& beta() { return beta_.value; }
  Tensor& moving_mean() { return moving_mean_.value; }
  Tensor& moving_variance() { return moving_variance_.value; }

 private:
  // The forward pass with `act` applied to the output (and its mask to the gradient).
  Tensor run(const Tensor& x, bool training, kernels::Act act);

  float epsilon_;
  float momentum_;
  bool center_;
  bool scale_;
  bool built_ = false;
  Shape input_shape_;  // one example, as given to build()
  int64_t channels_ = 0;
  Parameter gamma_, beta_, moving_mean_, moving_variance_;
  // Stand-ins for an absent gamma (ones) or beta (zeros), so the kernels need no cases.
  Tensor ones_, zeros_;
};

}  // namespace fer
