// Dense: Keras's fully connected layer, y = x * kernel + bias.
//
//   input  [N, F]  ->  output [N, units]
//   params "<name>/kernel" [F, units], "<name>/bias" [units] (if use_bias)
//
// The input must be flat (one vector per example): put a Flatten or a
// GlobalAveragePooling2D layer before a Dense that follows convolutions.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "layers/layer.h"

namespace fer {

class Dense : public Layer {
 public:
  Dense(std::string name, int units, bool use_bias = true);
  static std::unique_ptr<Layer> from_config(const Json& config);

  std::string type() const override { return "Dense"; }
  Shape build(const Shape& input, Rng& rng) override;
  Tensor forward(const Tensor& x, bool training) override;
  std::vector<Parameter*> parameters() override;
  Json config() const override;

  const Tensor& kernel() const { return kernel_.value; }
  const Tensor& bias() const { return bias_.value; }

 private:
  int units_;
  bool use_bias_;
  int64_t in_features_ = 0;  // F, set by build()
  Parameter kernel_;
  Parameter bias_;
};

}  // namespace fer
