#include "layers/registry.h"

#include <functional>
#include <map>

#include "fer/error.h"
#include "layers/activation.h"
#include "layers/batchnorm.h"
#include "layers/conv2d.h"
#include "layers/dense.h"
#include "layers/depthwise_conv2d.h"
#include "layers/dropout.h"
#include "layers/flatten.h"
#include "layers/pooling.h"
#include "layers/reshape.h"
#include "layers/residual.h"
#include "layers/sequential.h"
#include "layers/zero_padding.h"

namespace fer {

namespace {
using Factory = std::function<std::unique_ptr<Layer>(const Json&)>;

// Keras class names, so an architecture reads like its Keras definition.
const std::map<std::string, Factory>& factories() {
  static const std::map<std::string, Factory> table = {
      {"Sequential", Sequential::from_config},
      {"Residual", Residual::from_config},
      {"Conv2D", Conv2D::from_config},
      {"DepthwiseConv2D", DepthwiseConv2D::from_config},
      {"Dense", Dense::from_config},
      {"MaxPooling2D", MaxPool2D::from_config},
      {"AveragePooling2D", AvgPool2D::from_config},
      {"GlobalAveragePooling2D", GlobalAveragePooling2D::from_config},
      {"Flatten", Flatten::from_config},
      {"BatchNormalization", BatchNormalization::from_config},
      {"ReLU", ReLU::from_config},
      {"Softmax", Softmax::from_config},
      {"Dropout", Dropout::from_config},
      {"Reshape", Reshape::from_config},
      {"ZeroPadding2D", ZeroPadding2D::from_config},
  };
  return table;
}
}  // namespace

std::vector<std::string> known_layer_types() {
  std::vector<std::string> names;
  for (const auto& kv : factories()) names.push_back(kv.first);
  return names;
}

std::unique_ptr<Layer> make_layer(const Json& config) {
  FER_CHECK(config.is_object(), "layer config: expected a JSON object, got ", config.dump());
  const std::string type = config.get("type", "");
  const auto it = factories().find(type);
  if (it == factories().end()) {
    std::string known;
    for (const auto& name : known_layer_types()) known += (known.empty() ? "" : ", ") + name;
    fail("unknown layer type '", type, "' in ", config.dump(), " (known: ", known, ")");
  }
  try {
    return it->second(config);
  } catch (const Error& e) {
    fail("layer config ", config.get("name", "?"), " (", type, "): ", e.what());
  }
}

}  // namespace fer
