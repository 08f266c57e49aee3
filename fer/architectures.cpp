#include "fer/architectures.h"

#include <functional>
#include <map>

#include "fer/architectures_imagenet.h"
#include "fer/error.h"

namespace fer {

namespace arch {

Json conv2d(const std::string& name, int filters, int kernel, int stride,
            const std::string& padding, bool use_bias) {
  Json j = Json::object();
  j["type"] = "Conv2D";
  j["name"] = name;
  j["filters"] = filters;
  j["kernel_size"] = Json::array_of(std::vector<int>{kernel, kernel});
  j["strides"] = Json::array_of(std::vector<int>{stride, stride});
  j["padding"] = padding;
  j["use_bias"] = use_bias;
  return j;
}

Json depthwise_conv2d(const std::string& name, int kernel, int stride,
                      const std::string& padding, bool use_bias) {
  Json j = Json::object();
  j["type"] = "DepthwiseConv2D";
  j["name"] = name;
  j["kernel_size"] = Json::array_of(std::vector<int>{kernel, kernel});
  j["strides"] = Json::array_of(std::vector<int>{stride, stride});
  j["padding"] = padding;
  j["use_bias"] = use_bias;
  return j;
}

Json batchnorm(const std::string& name, double epsilon, double momentum) {
  Json j = Json::object();
  j["type"] = "BatchNormalization";
  j["name"] = name;
  j["epsilon"] = epsilon;
  j["momentum"] = momentum;
  return j;
}

Json relu(const std::string& name, double max_value) {
  Json j = Json::object();
  j["type"] = "ReLU";
  j["name"] = name;
  j["max_value"] = max_value;
  return j;
}

Json max_pool(const std::string& name, int pool, int stride, const std::string& padding) {
  Json j = Json::object();
  j["type"] = "MaxPooling2D";
  j["name"] = name;
  j["pool_size"] = Json::array_of(std::vector<int>{pool, pool});
  const int s = stride ? stride : pool;
  j["strides"] = Json::array_of(std::vector<int>{s, s});
  j["padding"] = padding;
  return j;
}

Json dropout(const std::string& name, double rate) {
  Json j = Json::object();
  j["type"] = "Dropout";
  j["name"] = name;
  j["rate"] = rate;
  return j;
}

Json dense(const std::string& name, int units, bool use_bias) {
  Json j = Json::object();
  j["type"] = "Dense";
  j["name"] = name;
  j["units"] = units;
  j["use_bias"] = use_bias;
  return j;
}

Json flatten(const std::string& name) {
  Json j = Json::object();
  j["type"] = "Flatten";
  j["name"] = name;
  return j;
}

Json global_average_pool(const std::string& name) {
  Json j = Json::object();
  j["type"] = "GlobalAveragePooling2D";
  j["name"] = name;
  return j;
}

Json sequential(const std::string& name, const Json::Array& layers) {
  Json j = Json::object();
  j["type"] = "Sequential";
  j["name"] = name;
  j["layers"] = Json(layers);
  return j;
}

Json depthwise_separable(const std::string& name, int filters, int stride, double relu_max,
                         double bn_momentum) {
  return sequential(name, {depthwise_conv2d(name + "_dw", 3, stride, "same", false),
                           batchnorm(name + "_dw_bn", 1e-3, bn_momentum),
                           relu(name + "_dw_relu", relu_max),
                           conv2d(name + "_pw", filters, 1, 1, "same", false),
                           batchnorm(name + "_pw_bn", 1e-3, bn_momentum),
                           relu(name + "_pw_relu", relu_max)});
}

Json architecture(const std::string& name, const Json& options, int size, int channels,
                  const Json& classes, const std::string& default_scale, const Json& network) {
  Json a = Json::object();
  a["name"] = name;
  a["options"] = options;
  a["input_shape"] = Json::array_of(std::vector<int>{size, size, channels});
  a["classes"] = classes;
  Json pre = Json::object();
  pre["height"] = size;
  pre["width"] = size;
  pre["channels"] = channels;
  pre["scale"] = options.get("scale", default_scale.c_str());
  pre["crop"] = options.get("crop", 0);
  a["preprocess"] = pre;
  a["network"] = network;
  return a;
}

Json classes_from(const Json& options, int default_count) {
  static const std::vector<std::string> kFer2013Classes = {"angry",   "disgust", "fear", "happy",
                                                           "neutral", "sad",     "surprise"};
  if (options.contains("classes")) {
    const Json& c = options.at("classes");
    FER_CHECK(c.is_array() && c.size() > 0, "classes: expected a non-empty list of names");
    for (const Json& name : c.as_array())
      FER_CHECK(name.is_string(), "classes: expected names (strings), got ", name.dump());
    return c;
  }
  const int n = options.get("num_classes", default_count);
  FER_CHECK(n >= 1, "num_classes must be >= 1, got ", n);
  if (n == 7) return Json::array_of(kFer2013Classes);
  Json names = Json::array();
  for (int i = 0; i < n; ++i) names.push_back("class_" + std::to_string(i));
  return names;
}

}  // namespace arch

namespace {

// The small FER CNN of the seed project: three blocks of (Conv3x3-BN-ReLU) x2, MaxPool,
// Dropout with 32, 64, 128 filters, then Dense 256-BN-ReLU-Dropout and Dense 7.
// Convolutions and the hidden Dense carry no bias: the BatchNorm right after them has
// its own shift (beta), so a bias there would be a redundant parameter.
// The network ends at the logits; softmax is applied by the loss and by predict.
//
// BatchNorm momentum is 0.9 here (PyTorch's 0.1), not Keras's 0.99: the first conv's
// outputs on [0, 1] images have a variance near 0.001, and a running variance that starts
// at 1 keeps 0.99^t of that start -- still 10x too large after a whole FER2013 epoch
// (448 steps), which wrecks inference-mode accuracy for the first epochs.
Json cnn3(const Json& options) {
  const int size = options.get("size", 48);
  const int channels = options.get("channels", 1);
  const double block_dropout = options.get("block_dropout", 0.25);
  const double dense_dropout = options.get("dropout", 0.5);
  const double bn_momentum = options.get("bn_momentum", 0.9);
  const Json classes = arch::classes_from(options, 7);
  const int num_classes = static_cast<int>(classes.size());
  Json::Array layers;
  const int filters[3] = {32, 64, 128};
  for (int b = 0; b < 3; ++b) {
    const std::string block = "block" + std::to_string(b + 1);
    for (int c = 1; c <= 2; ++c) {
      const std::string i = std::to_string(c);
      layers.push_back(arch::conv2d(block + "_conv" + i, filters[b], 3, 1, "same", false));
      layers.push_back(arch::batchnorm(block + "_bn" + i, 1e-3, bn_momentum));
      layers.push_back(arch::relu(block + "_relu" + i));
    }
    layers.push_back(arch::max_pool(block + "_pool", 2));
    layers.push_back(arch::dropout(block + "_dropout", block_dropout));
  }
  layers.push_back(arch::flatten("flatten"));
  layers.push_back(arch::dense("dense1", 256, false));
  layers.push_back(arch::batchnorm("dense1_bn", 1e-3, bn_momentum));
  layers.push_back(arch::relu("dense1_relu"));
  layers.push_back(arch::dropout("dense1_dropout", dense_dropout));
  layers.push_back(arch::dense("predictions", num_classes, true));

  // (option "crop": a centre crop at eval, paired with training's random crop)
  return arch::architecture("cnn3", options, size, channels, classes, "unit",
                            arch::sequential("cnn3", layers));
}

using Builder = std::function<Json(const Json&)>;
const std::map<std::string, Builder>& builders() {
  static const std::map<std::string, Builder> table = {{"cnn3", cnn3},
                                                        {"mobilenet_v1", arch::mobilenet_v1},
                                                        {"mobilenet_v2", arch::mobilenet_v2},
                                                        {"vgg16", arch::vgg16}};
  return table;
}

}  // namespace

std::vector<std::string> known_architectures() {
  std::vector<std::string> names;
  for (const auto& kv : builders()) names.push_back(kv.first);
  return names;
}

Json make_architecture(const std::string& name, const Json& options) {
  const auto it = builders().find(name);
  if (it == builders().end()) {
    std::string known;
    for (const auto& n : known_architectures()) known += (known.empty() ? "" : ", ") + n;
    fail("unknown model '", name, "' (known: ", known, ")");
  }
  return it->second(options.is_object() ? options : Json::object());
}

}  // namespace fer
