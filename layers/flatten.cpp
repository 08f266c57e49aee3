#include "layers/flatten.h"

#include "fer/autograd.h"
#include "fer/error.h"

namespace fer {

std::unique_ptr<Layer> Flatten::from_config(const Json& config) {
  return std::make_unique<Flatten>(config.at("name").as_string());
}

Shape Flatten::build(const Shape& input, Rng& /*rng*/) {
  if (input.empty()) layer_error("expected at least one dimension per example, got []");
  input_shape_ = input;
  return {shape_numel(input)};
}

Tensor Flatten::forward(const Tensor& x, bool /*training*/) {
  if (input_shape_.empty()) layer_error("forward() called before build()");
  if (x.ndim() != static_cast<int>(input_shape_.size()) + 1 ||
      Shape(x.shape().begin() + 1, x.shape().end()) != input_shape_) {
    std::string expected = "[N";
    for (int64_t d : input_shape_) expected += ", " + std::to_string(d);
    layer_error("expected input ", expected, "], got ", shape_str(x.shape()));
  }
  // NHWC memory already is [N, H*W*C] row-major: flattening only relabels the shape
  // (reshape copies the data; the framework has no views).
  Tensor y = x.reshape({x.dim(0), shape_numel(input_shape_)});
  Tape& tape = Tape::current();
  if (tape.wants({&x})) {
    y.set_requires_grad(true);
    // Same elements in the same order, so the gradient passes straight through.
    tape.record([x, y]() {
      const float* dy = y.grad();
      float* dx = x.grad();
      for (int64_t i = 0; i < x.numel(); ++i) dx[i] += dy[i];
    });
  }
  return y;
}

}  // namespace fer
