// Pooling layers (Keras's MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D). They
// have no parameters; the arithmetic is in kernels/pool.h.
//
//   MaxPool2D / AvgPool2D:    [N, H, W, C] -> [N, OH, OW, C]  (window pool_size, strides
//                             default to pool_size, padding 'valid' by default, as in Keras)
//   GlobalAveragePooling2D:   [N, H, W, C] -> [N, C]
#pragma once

#include <array>
#include <memory>
#include <string>

#include "kernels/padding.h"
#include "layers/layer.h"

namespace fer {

// What MaxPool2D and AvgPool2D share: the window, the shape checks and the config.
class Pool2D : public Layer {
 public:
  std::string type() const override { return type_; }
  Shape build(const Shape& input, Rng& rng) override;
  Json config() const override;

 protected:
  // strides {0, 0} means "the same as pool_size" (Keras's strides=None).
  Pool2D(std::string type, std::string name, std::array<int, 2> pool_size,
         std::array<int, 2> strides, const std::string& padding);
  // Checks x against the shape given to build() and returns its geometry.
  kernels::Conv2DGeometry geometry_for(const Tensor& x) const;

 private:
  std::string type_;
  std::array<int, 2> pool_size_;
  std::array<int, 2> strides_;
  kernels::Padding padding_;
  Shape input_shape_;  // one example [H, W, C], set by build()
};

class MaxPool2D : public Pool2D {
 public:
  explicit MaxPool2D(std::string name, std::array<int, 2> pool_size = {2, 2},
                     std::array<int, 2> strides = {0, 0}, const std::string& padding = "valid");
  static std::unique_ptr<Layer> from_config(const Json& config);
  Tensor forward(const Tensor& x, bool training) override;
};

class AvgPool2D : public Pool2D {
 public:
  explicit AvgPool2D(std::string name, std::array<int, 2> pool_size = {2, 2},
                     std::array<int, 2> strides = {0, 0}, const std::string& padding = "valid");
  static std::unique_ptr<Layer> from_config(const Json& config);
  Tensor forward(const Tensor& x, bool training) override;
};

class GlobalAveragePooling2D : public Layer {
 public:
  explicit GlobalAveragePooling2D(std::string name) : Layer(std::move(name)) {}
  static std::unique_ptr<Layer> from_config(const Json& config);

  std::string type() const override { return "GlobalAveragePooling2D"; }
  Shape build(const Shape& input, Rng& rng) override;
  Tensor forward(const Tensor& x, bool training) override;

 private:
  Shape input_shape_;  // one example [H, W, C], set by build()
};

}  // namespace fer
