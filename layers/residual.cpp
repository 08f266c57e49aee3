#include "layers/residual.h"

#include "layers/add.h"
#include "layers/registry.h"

namespace fer {

std::unique_ptr<Layer> Residual::from_config(const Json& config) {
  auto block = std::make_unique<Residual>(config.at("name").as_string());
  for (const Json& child : config.at("layers").as_array()) block->add(make_layer(child));
  return block;
}

Shape Residual::build(const Shape& input, Rng& rng) {
  const Shape out = Sequential::build(input, rng);
  if (out != input)
    layer_error("the block maps ", shape_str(input), " to ", shape_str(out),
                "; a residual connection needs the same shape in and out");
  return out;
}

Tensor Residual::forward(const Tensor& x, bool training) {
  return fer::add(x, Sequential::forward(x, training));
}

}  // namespace fer
