// Flatten: [N, H, W, C] -> [N, H*W*C], keeping NHWC's row-major order (the same order as
// Keras with channels_last, so Dense weights that follow a Flatten port unchanged).
// Works for any per-example rank: [N, d1, ..., dk] -> [N, d1*...*dk].
#pragma once

#include <memory>
#include <string>

#include "layers/layer.h"

namespace fer {

class Flatten : public Layer {
 public:
  explicit Flatten(std::string name) : Layer(std::move(name)) {}
  static std::unique_ptr<Layer> from_config(const Json& config);

  std::string type() const override { return "Flatten"; }
  Shape build(const Shape& input, Rng& rng) override;
  Tensor forward(const Tensor& x, bool training) override;

 private:
  Shape input_shape_;  // one example, set by build()
};

}  // namespace fer
