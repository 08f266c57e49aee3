#include "layers/flatten.h"

#include "fer/error.h"
#include "layers/config_util.h"
#include "layers/reshape.h"

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
      Shape(x.shape().begin() + 1, x.shape().end()) != input_shape_)
    layer_error("expected input ", batch_shape_str(input_shape_), ", got ", shape_str(x.shape()));
  // NHWC memory already is [N, H*W*C] row-major: flattening only relabels the shape.
  return reshape_examples(x, {shape_numel(input_shape_)});
}

}  // namespace fer
