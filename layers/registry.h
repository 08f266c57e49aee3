// Rebuilds a layer from its config() JSON -- how a model file alone recreates its network.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "layers/layer.h"

namespace fer {

// Throws fer::Error naming the unknown type and listing the known ones.
std::unique_ptr<Layer> make_layer(const Json& config);
std::vector<std::string> known_layer_types();

}  // namespace fer
