// Reshape: gives each example a new shape with the same number of elements, in the same
// (row-major, NHWC) order -- Keras's Reshape. Keras's MobileNet uses it around its
// classifier: GAP [C] -> Reshape [1, 1, C] -> 1x1 Conv2D "conv_preds" -> Reshape [classes],
// which is why conv_preds/kernel is [1, 1, C, classes] and imports unchanged.
#pragma once

#include <memory>
#include <string>

#include "layers/layer.h"

namespace fer {

// x [N, ...] -> [N, per_example...]: the same elements in the same order, recorded on the
// tape (the gradient passes straight through). What Reshape and Flatten both do.
Tensor reshape_examples(const Tensor& x, const Shape& per_example);

class Reshape : public Layer {
 public:
  Reshape(std::string name, Shape target_shape);
  static std::unique_ptr<Layer> from_config(const Json& config);

  std::string type() const override { return "Reshape"; }
  Shape build(const Shape& input, Rng& rng) override;
  Tensor forward(const Tensor& x, bool training) override;
  Json config() const override;  // adds "target_shape"

 private:
  Shape target_shape_;  // one example; one entry may be -1 (inferred)
  Shape input_shape_;   // set by build()
  Shape output_shape_;
};

}  // namespace fer
