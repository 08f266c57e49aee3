// Small helpers shared by layer implementations: reading Keras-style config fields and
// spelling batch shapes in error messages.
#pragma once

#include <array>
#include <string>

#include "fer/error.h"
#include "fer/json.h"
#include "fer/tensor.h"
#include "kernels/padding.h"

namespace fer {

// "kernel_size": [3, 3], or Keras's shorthand "kernel_size": 3; a missing key or null
// (Keras's strides=None) reads as the fallback.
inline std::array<int, 2> read_pair(const Json& config, const std::string& key,
                                    std::array<int, 2> fallback) {
  if (!config.contains(key) || config.at(key).is_null()) return fallback;
  const Json& v = config.at(key);
  if (v.is_number()) return {static_cast<int>(v.as_int()), static_cast<int>(v.as_int())};
  FER_CHECK(v.is_array() && v.size() == 2, "layer '", config.get("name", ""), "': '", key,
            "' must be a number or a list of two numbers, got ", v.dump());
  return {static_cast<int>(v[0].as_int()), static_cast<int>(v[1].as_int())};
}

// "[N, 24, 24, 32]": the batch shape a layer built for one example expects.
inline std::string batch_shape_str(const Shape& example) {
  std::string s = "[N";
  for (int64_t d : example) s += ", " + std::to_string(d);
  return s + "]";
}

// Checks a convolution window (positive kernel size and strides) and parses its padding;
// errors name the layer: "layer 'conv1' (Conv2D): strides must be positive, got [0, 1]".
inline kernels::Padding check_window(const std::string& name, const std::string& type,
                                     std::array<int, 2> kernel_size, std::array<int, 2> strides,
                                     const std::string& padding) {
  const std::string where = "layer '" + name + "' (" + type + "): ";
  FER_CHECK(kernel_size[0] > 0 && kernel_size[1] > 0, where, "kernel_size must be positive, got [",
            kernel_size[0], ", ", kernel_size[1], "]");
  FER_CHECK(strides[0] > 0 && strides[1] > 0, where, "strides must be positive, got [",
            strides[0], ", ", strides[1], "]");
  try {
    return kernels::parse_padding(padding);
  } catch (const Error& e) {
    fail(where, e.what());
  }
}

}  // namespace fer
