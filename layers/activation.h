// Activation layers: ReLU (optionally capped: ReLU6) and Softmax over the last axis.
//
// Both are parameter-free and shape-preserving; they accept any [N, ...] batch.
#pragma once

#include <memory>
#include <string>

#include "layers/layer.h"

namespace fer {

// Keras's ReLU layer: y = max(x, 0), capped at max_value when max_value > 0.
// Supported: max_value = 0 (no cap, plain ReLU) and max_value = 6 (ReLU6, MobileNetV2's
// activation: bounded outputs survive low-precision arithmetic). Config {"max_value"};
// Keras writes null for no cap, which from_config reads as 0.
class ReLU : public Layer {
 public:
  explicit ReLU(std::string name, float max_value = 0.f);

  std::string type() const override { return "ReLU"; }
  Shape build(const Shape& input, Rng& rng) override;
  Tensor forward(const Tensor& x, bool training) override;
  Json config() const override;
  static std::unique_ptr<Layer> from_config(const Json& config);

  float max_value() const { return max_value_; }

 private:
  float max_value_;
};

// The two ReLUs by name.
std::unique_ptr<ReLU> make_relu(const std::string& name);   // max(x, 0)
std::unique_ptr<ReLU> make_relu6(const std::string& name);  // min(max(x, 0), 6)

// Softmax over the last axis: y[..., k] = exp(x[..., k]) / sum_j exp(x[..., j]).
// Backward: dx = y * (dy - sum(dy * y)) over the same axis. (To train a classifier, feed
// the logits to softmax_cross_entropy in layers/loss.h instead, which is fused and
// numerically safer; this layer is for models that output probabilities.)
class Softmax : public Layer {
 public:
  explicit Softmax(std::string name) : Layer(std::move(name)) {}

  std::string type() const override { return "Softmax"; }
  Shape build(const Shape& input, Rng& rng) override;
  Tensor forward(const Tensor& x, bool training) override;
  Json config() const override;  // {"axis": -1}, as Keras writes it
  static std::unique_ptr<Layer> from_config(const Json& config);
};

}  // namespace fer
