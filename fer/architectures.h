// The registry of named architectures ("cnn3", later "mobilenet_v1", ...). Each entry
// turns options into a full architecture description for Model::from_architecture():
//   {"name", "options", "input_shape": [H, W, C], "classes": [...],
//    "preprocess": {...}, "network": <Sequential config>}
// Architectures are written as layer configs (Keras class names and fields), so what is
// built here is exactly what a model file stores.
#pragma once

#include <string>
#include <vector>

#include "fer/json.h"

namespace fer {

// options may hold "size" (input side), "channels", "num_classes"/"classes",
// "dropout", ... depending on the architecture. Unknown names throw, listing known ones.
Json make_architecture(const std::string& name, const Json& options = Json::object());
std::vector<std::string> known_architectures();

// Layer-config builders shared by architecture definitions.
namespace arch {
// The full description of a square-input model: name, options, input shape, classes,
// preprocessing (size x size x channels, options "scale" (default_scale) and "crop") and
// the network's layer config.
Json architecture(const std::string& name, const Json& options, int size, int channels,
                  const Json& classes, const std::string& default_scale, const Json& network);

// The class names from options "classes" (a list) or "num_classes" (default_count when
// absent): FER2013's seven when there are 7, else "class_0", "class_1", ...
Json classes_from(const Json& options, int default_count);

Json conv2d(const std::string& name, int filters, int kernel, int stride = 1,
            const std::string& padding = "same", bool use_bias = true);
Json depthwise_conv2d(const std::string& name, int kernel, int stride = 1,
                      const std::string& padding = "same", bool use_bias = true);
Json batchnorm(const std::string& name, double epsilon = 1e-3, double momentum = 0.99);
Json relu(const std::string& name, double max_value = 0);
Json max_pool(const std::string& name, int pool = 2, int stride = 0,
              const std::string& padding = "valid");
Json dropout(const std::string& name, double rate);
Json dense(const std::string& name, int units, bool use_bias = true);
Json flatten(const std::string& name);
Json global_average_pool(const std::string& name);
Json sequential(const std::string& name, const Json::Array& layers);

// The depthwise-separable block of MobileNet, built from the two convolutions: a 3x3
// depthwise convolution filters each channel on its own (stride `stride`), a 1x1
// pointwise convolution mixes channels into `filters` outputs, each followed by
// BatchNorm and ReLU (capped at relu_max; 6 = ReLU6, 0 = uncapped). A standard 3x3
// convolution costs 9*C*F multiply-adds per pixel; this block costs 9*C + C*F.
// Layers are named <name>_dw, <name>_dw_bn, <name>_dw_relu, <name>_pw, <name>_pw_bn,
// <name>_pw_relu inside a Sequential called <name>.
Json depthwise_separable(const std::string& name, int filters, int stride = 1,
                         double relu_max = 6, double bn_momentum = 0.99);
}  // namespace arch

}  // namespace fer
