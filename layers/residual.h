// Residual: a Sequential whose output is added to its input, y = x + body(x) -- the
// skip connection of MobileNet V2's inverted residual blocks (and of ResNets).
//
// The body must keep the shape (build() fails otherwise, naming the shapes). Backward
// is the two branches' gradients summed: dx = dy + d(body)/dx^T dy, which add() and the
// body's own tape entries produce.
#pragma once

#include <memory>
#include <string>

#include "layers/sequential.h"

namespace fer {

class Residual : public Sequential {
 public:
  explicit Residual(std::string name) : Sequential(std::move(name)) {}
  static std::unique_ptr<Layer> from_config(const Json& config);

  std::string type() const override { return "Residual"; }
  Shape build(const Shape& input, Rng& rng) override;
  Tensor forward(const Tensor& x, bool training) override;
};

}  // namespace fer
