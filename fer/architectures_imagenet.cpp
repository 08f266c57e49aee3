#include "fer/architectures_imagenet.h"

#include <string>
#include <vector>

#include "fer/architectures.h"
#include "fer/error.h"

namespace fer::arch {

namespace {

// Shared settings of one network, read once from the options.
struct Settings {
  double bn_momentum, bn_epsilon;
  bool torch_padding;
};

Settings read_settings(const Json& options, double default_momentum) {
  Settings s;
  s.bn_momentum = options.get("bn_momentum", default_momentum);
  s.bn_epsilon = options.get("bn_epsilon", 1e-3);
  const std::string padding = options.get("padding", "same");
  FER_CHECK(padding == "same" || padding == "torch", "padding: expected 'same' (TensorFlow's) or "
            "'torch' (symmetric), got '", padding, "'");
  s.torch_padding = padding == "torch";
  return s;
}

// A k x k convolution (or depthwise convolution) with stride `stride` and 'same' output
// size. TensorFlow pads a stride-2 'same' conv on an even input at the bottom/right only;
// PyTorch pads k/2 on every side. With torch padding the conv is preceded by an explicit
// ZeroPadding2D "<name>_pad" (Keras's own name for it) and uses 'valid'.
void add_conv(Json::Array& layers, const Settings& s, Json conv, int kernel, int stride) {
  if (s.torch_padding && stride > 1 && kernel > 1) {
    Json pad = Json::object();
    pad["type"] = "ZeroPadding2D";
    pad["name"] = conv.at("name").as_string() + "_pad";
    pad["padding"] = kernel / 2;
    layers.push_back(pad);
    conv["padding"] = "valid";
  }
  layers.push_back(conv);
}

Json relu6(const std::string& name) { return relu(name, 6); }

Json reshape(const std::string& name, const std::vector<int>& shape) {
  Json j = Json::object();
  j["type"] = "Reshape";
  j["name"] = name;
  j["target_shape"] = Json::array_of(shape);
  return j;
}

// The FER heads (include_top = false): optional convs, pooling or flattening, optional
// hidden Dense layers, the classifier "predictions".
Json custom_head(const Json& options, int num_classes, double bn_momentum) {
  const std::string head = options.get("head", "gap");
  FER_CHECK(head == "gap" || head == "mlp" || head == "flatten", "head: expected gap, mlp or "
            "flatten, got '", head, "'");
  const double dropout_rate = options.get("dropout", head == "mlp" ? 0.5 : 0.0);
  FER_CHECK(dropout_rate >= 0 && dropout_rate < 1, "dropout must be in [0, 1), got ", dropout_rate);
  Json::Array layers;
  if (options.contains("head_convs")) {
    int i = 0;
    for (const Json& conv : options.at("head_convs").as_array()) {
      FER_CHECK(conv.is_array() && conv.size() == 2, "head_convs: expected [[kernel, filters], "
                "...], got ", options.at("head_convs").dump());
      const int k = static_cast<int>(conv.as_array()[0].as_int());
      const int f = static_cast<int>(conv.as_array()[1].as_int());
      FER_CHECK(k >= 1 && f >= 1, "head_convs: kernel and filters must be >= 1, got ", conv.dump());
      const std::string name = "head_conv" + std::to_string(++i);
      layers.push_back(conv2d(name, f, k, 1, "same", false));
      layers.push_back(batchnorm(name + "_bn", 1e-3, bn_momentum));
      layers.push_back(relu(name + "_relu"));
    }
  }
  if (head == "flatten") {
    layers.push_back(flatten("flatten"));
  } else {
    layers.push_back(global_average_pool("global_average_pooling2d"));
  }
  if (head == "mlp") {
    std::vector<int> units = {256, 512};
    if (options.contains("head_units")) {
      units.clear();
      for (const Json& u : options.at("head_units").as_array()) units.push_back(static_cast<int>(u.as_int()));
    }
    for (size_t i = 0; i < units.size(); ++i) {
      const std::string name = "head_dense" + std::to_string(i + 1);
      layers.push_back(dense(name, units[i]));
      layers.push_back(relu(name + "_relu"));
      if (dropout_rate > 0) layers.push_back(dropout(name + "_dropout", dropout_rate));
    }
  } else if (dropout_rate > 0) {
    layers.push_back(dropout("head_dropout", dropout_rate));
  }
  layers.push_back(dense("predictions", num_classes));
  return sequential("head", layers);
}

// Wraps backbone + head into the architecture description Model::from_architecture takes.
Json describe(const std::string& name, const Json& options, int size, int channels,
              const Json& classes, const std::string& default_scale, const Json& backbone,
              const Json& head) {
  return architecture(name, options, size, channels, classes, default_scale,
                      sequential(name, {backbone, head}));
}

// What every ImageNet architecture reads first: the input, and the classes (ImageNet's
// 1000 with Keras's top, FER2013's 7 under a FER head, unless options say otherwise).
struct Input {
  int size, channels;
  bool include_top;
  Json classes;
  int num_classes;
};

Input read_input(const std::string& name, const Json& options) {
  Input in;
  in.size = options.get("size", 224);
  in.channels = options.get("channels", 3);
  in.include_top = options.get("include_top", false);
  FER_CHECK(in.size >= 32, name, ": input size must be >= 32, got ", in.size);
  in.classes = classes_from(options, in.include_top ? 1000 : 7);
  in.num_classes = static_cast<int>(in.classes.size());
  return in;
}

double read_alpha(const std::string& name, const Json& options) {
  const double alpha = options.get("alpha", 1.0);
  FER_CHECK(alpha > 0, name, ": alpha must be > 0, got ", alpha);
  return alpha;
}

}  // namespace

int make_divisible(double v, int divisor) {
  int new_v = std::max(divisor, static_cast<int>(v + divisor / 2.0) / divisor * divisor);
  if (new_v < 0.9 * v) new_v += divisor;
  return new_v;
}

// MobileNet V1 (Howard et al. 2017) as keras.applications.MobileNet builds it: a strided
// 3x3 conv, then 13 depthwise-separable blocks (see arch::depthwise_separable for why
// they are cheap), all with BatchNorm and ReLU6 and TensorFlow 'same' padding.
Json mobilenet_v1(const Json& options) {
  const auto [size, channels, include_top, classes, num_classes] = read_input("mobilenet_v1", options);
  const double alpha = read_alpha("mobilenet_v1", options);
  const int depth_multiplier = options.get("depth_multiplier", 1);
  FER_CHECK(depth_multiplier >= 1, "mobilenet_v1: depth_multiplier must be >= 1");
  const Settings s = read_settings(options, 0.99);

  Json::Array b;
  add_conv(b, s, conv2d("conv1", static_cast<int>(32 * alpha), 3, 2, "same", false), 3, 2);
  b.push_back(batchnorm("conv1_bn", s.bn_epsilon, s.bn_momentum));
  b.push_back(relu6("conv1_relu"));
  // (pointwise filters, stride of the depthwise conv) for blocks 1..13.
  const int blocks[13][2] = {{64, 1},  {128, 2}, {128, 1}, {256, 2}, {256, 1},
                             {512, 2}, {512, 1}, {512, 1}, {512, 1}, {512, 1},
                             {512, 1}, {1024, 2}, {1024, 1}};
  int last = 0;
  for (int i = 0; i < 13; ++i) {
    const std::string id = std::to_string(i + 1);
    const int stride = blocks[i][1];
    Json dw = depthwise_conv2d("conv_dw_" + id, 3, stride, "same", false);
    dw["depth_multiplier"] = depth_multiplier;
    add_conv(b, s, dw, 3, stride);
    b.push_back(batchnorm("conv_dw_" + id + "_bn", s.bn_epsilon, s.bn_momentum));
    b.push_back(relu6("conv_dw_" + id + "_relu"));
    last = static_cast<int>(blocks[i][0] * alpha);
    b.push_back(conv2d("conv_pw_" + id, last, 1, 1, "same", false));
    b.push_back(batchnorm("conv_pw_" + id + "_bn", s.bn_epsilon, s.bn_momentum));
    b.push_back(relu6("conv_pw_" + id + "_relu"));
  }
  Json head;
  if (include_top) {
    head = sequential("head", {global_average_pool("global_average_pooling2d_1"),
                               reshape("reshape_1", {1, 1, last}),
                               dropout("dropout", options.get("dropout", 1e-3)),
                               conv2d("conv_preds", num_classes, 1, 1, "same", true),
                               reshape("reshape_2", {num_classes})});
  } else {
    head = custom_head(options, num_classes, s.bn_momentum);
  }
  return describe("mobilenet_v1", options, size, channels, classes, "symmetric",
                  sequential("backbone", b), head);
}

// MobileNet V2 (Sandler et al. 2018) as keras.applications.MobileNetV2 builds it. Each
// inverted residual block expands the channels 6x with a 1x1 conv, filters them with a
// 3x3 depthwise conv, and projects back down with a 1x1 conv that has NO activation (the
// "linear bottleneck": ReLU in a narrow space destroys information). When the block keeps
// the shape (stride 1, same width) its input is added to its output (a Residual).
Json mobilenet_v2(const Json& options) {
  const auto [size, channels, include_top, classes, num_classes] = read_input("mobilenet_v2", options);
  const double alpha = read_alpha("mobilenet_v2", options);
  const Settings s = read_settings(options, 0.999);
  auto bn = [&](const std::string& name) { return batchnorm(name, s.bn_epsilon, s.bn_momentum); };

  Json::Array b;
  int in_channels = make_divisible(32 * alpha, 8);
  add_conv(b, s, conv2d("Conv1", in_channels, 3, 2, "same", false), 3, 2);
  b.push_back(bn("bn_Conv1"));
  b.push_back(relu6("Conv1_relu"));
  // (expansion t, output channels c, repeats n, first stride s) -- Table 2 of the paper.
  const int stages[7][4] = {{1, 16, 1, 1},  {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
                            {6, 96, 3, 1},  {6, 160, 3, 2}, {6, 320, 1, 1}};
  int block_id = 0;
  for (const auto& st : stages) {
    for (int r = 0; r < st[2]; ++r, ++block_id) {
      const int expansion = st[0], stride = r == 0 ? st[3] : 1;
      const int out_channels = make_divisible(st[1] * alpha, 8);
      // Block 0 has no expansion and Keras calls it "expanded_conv".
      const std::string prefix =
          block_id == 0 ? "expanded_conv_" : "block_" + std::to_string(block_id) + "_";
      Json::Array layers;
      if (block_id > 0) {
        layers.push_back(conv2d(prefix + "expand", expansion * in_channels, 1, 1, "same", false));
        layers.push_back(bn(prefix + "expand_BN"));
        layers.push_back(relu6(prefix + "expand_relu"));
      }
      add_conv(layers, s, depthwise_conv2d(prefix + "depthwise", 3, stride, "same", false), 3,
               stride);
      layers.push_back(bn(prefix + "depthwise_BN"));
      layers.push_back(relu6(prefix + "depthwise_relu"));
      layers.push_back(conv2d(prefix + "project", out_channels, 1, 1, "same", false));
      layers.push_back(bn(prefix + "project_BN"));
      const std::string block_name = block_id == 0 ? "expanded_conv" : "block_" + std::to_string(block_id);
      Json block = sequential(block_name, layers);
      if (stride == 1 && in_channels == out_channels) block["type"] = "Residual";
      b.push_back(block);
      in_channels = out_channels;
    }
  }
  const int last = alpha > 1.0 ? make_divisible(1280 * alpha, 8) : 1280;
  b.push_back(conv2d("Conv_1", last, 1, 1, "same", false));
  b.push_back(bn("Conv_1_bn"));
  b.push_back(relu6("out_relu"));
  Json head;
  if (include_top) {
    head = sequential("head", {global_average_pool("global_average_pooling2d"),
                               dense("Logits", num_classes)});
  } else {
    head = custom_head(options, num_classes, s.bn_momentum);
  }
  return describe("mobilenet_v2", options, size, channels, classes, "symmetric",
                  sequential("backbone", b), head);
}

// VGG16 (Simonyan & Zisserman 2014) as keras.applications.VGG16 builds it: five blocks of
// 3x3 convolutions (64, 128, 256, 512, 512 filters; 2, 2, 3, 3, 3 of them) with biases
// and ReLU, each ending in a 2x2 max pool. Keras fuses the ReLU into the conv; here it is
// its own layer "<conv>_relu" (no weights, so the names of weighted layers still match).
Json vgg16(const Json& options) {
  const auto [size, channels, include_top, classes, num_classes] = read_input("vgg16", options);
  const double bn_momentum = options.get("bn_momentum", 0.99);  // only the FER head has BN

  Json::Array b;
  const int blocks[5][2] = {{64, 2}, {128, 2}, {256, 3}, {512, 3}, {512, 3}};
  for (int i = 0; i < 5; ++i) {
    const std::string block = "block" + std::to_string(i + 1);
    for (int c = 1; c <= blocks[i][1]; ++c) {
      const std::string name = block + "_conv" + std::to_string(c);
      b.push_back(conv2d(name, blocks[i][0], 3, 1, "same", true));
      b.push_back(relu(name + "_relu"));
    }
    b.push_back(max_pool(block + "_pool", 2));
  }
  Json head;
  if (include_top) {
    head = sequential("head", {flatten("flatten"), dense("fc1", 4096), relu("fc1_relu"),
                               dense("fc2", 4096), relu("fc2_relu"),
                               dense("predictions", num_classes)});
  } else {
    head = custom_head(options, num_classes, bn_momentum);
  }
  return describe("vgg16", options, size, channels, classes, "caffe", sequential("backbone", b),
                  head);
}

}  // namespace fer::arch
