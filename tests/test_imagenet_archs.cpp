// The ImageNet architectures (fer/architectures_imagenet.h) and the layers they brought:
// parameter counts and layer names equal Keras's (so Keras weights load by name),
// feature-map shapes follow TensorFlow's 'same' padding, the "torch" padding variant,
// which blocks of MobileNet V2 are residual; finite-difference gradient checks of ReLU6,
// Residual, inverted residual blocks, ZeroPadding2D, Reshape and DepthwiseConv2D with a
// depth multiplier; config round trips; the "caffe" and "torch" preprocessing scales.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "data/image.h"
#include "data/preprocess.h"
#include "fer/architectures.h"
#include "fer/autograd.h"
#include "fer/error.h"
#include "fer/model.h"
#include "layers/activation.h"
#include "layers/conv2d.h"
#include "layers/depthwise_conv2d.h"
#include "layers/registry.h"
#include "layers/reshape.h"
#include "layers/residual.h"
#include "layers/sequential.h"
#include "layers/zero_padding.h"
#include "tests/gradcheck.h"
#include "tests/error_of.h"

using namespace fer;
using fer::testing::check_gradients;
using fer::testing::GradCheckOptions;
using fer::testing::random_tensor;

namespace {

Json options(std::initializer_list<std::pair<const char*, Json>> kv) {
  Json j = Json::object();
  for (const auto& [k, v] : kv) j[k] = v;
  return j;
}

Model build(const std::string& name, const Json& opts, uint64_t seed = 42) {
  return Model::from_architecture(make_architecture(name, opts), seed);
}

int64_t count(Layer& layer) {
  int64_t n = 0;
  for (Parameter* p : layer.parameters()) n += p->value.numel();
  return n;
}

// "Backbone" = the network's first child, named so by every ImageNet architecture.
Sequential& backbone(Model& m) {
  Layer& b = m.net().layer(0);
  EXPECT_EQ(b.name(), "backbone");
  auto* s = dynamic_cast<Sequential*>(&b);
  if (!s) throw Error("the backbone is not a Sequential");
  return *s;
}

// Names of the layers that own parameters, in parameter order (one entry per layer).
std::vector<std::string> weighted_layer_names(Model& m) {
  std::vector<std::string> names;
  for (Parameter* p : m.parameters()) {
    const std::string layer = p->name.substr(0, p->name.rfind('/'));
    if (names.empty() || names.back() != layer) names.push_back(layer);
  }
  return names;
}

// Depth-first (name, type) of every leaf of a layer config, without building anything.
void config_leaves(const Json& cfg, std::vector<std::pair<std::string, std::string>>& out) {
  if (cfg.contains("layers")) {
    for (const Json& c : cfg.at("layers").as_array()) config_leaves(c, out);
    return;
  }
  out.emplace_back(cfg.at("name").as_string(), cfg.at("type").as_string());
}

// TensorFlow 'same' with stride 2 applied k times: ceil(n / 2) each time.
int64_t halve(int64_t n, int times) {
  for (int i = 0; i < times; ++i) n = (n + 1) / 2;
  return n;
}

using fer::testing::error_of;

Shape example_shape(const Tensor& x) { return Shape(x.shape().begin() + 1, x.shape().end()); }

Tensor requiring_grad(const Shape& shape, uint64_t seed, float lo = -1, float hi = 1) {
  Rng rng(seed);
  Tensor x = random_tensor(shape, rng, lo, hi);
  x.set_requires_grad(true);
  return x;
}

// Checks d/dx and d/d(every trainable parameter) of `layer` (already built) in training mode.
void gradcheck_layer(Layer& layer, const Tensor& x, uint64_t seed, GradCheckOptions opt = {}) {
  std::vector<std::pair<std::string, Tensor>> wrt = {{"input", x}};
  for (Parameter* p : layer.parameters())
    if (p->trainable) wrt.emplace_back(p->name, p->value);
  check_gradients([&] { return layer.forward(x, true); }, wrt, seed, opt);
}

Tensor infer(Layer& layer, const Tensor& x) {
  NoGradGuard no_grad;
  return layer.forward(x, false);
}

}  // namespace

// ======================================================================================
// Parameter counts: Keras's model.count_params()
// ======================================================================================

TEST(ImagenetParameterCounts, MobileNetV1) {
  Model plain = build("mobilenet_v1", options({}));
  EXPECT_EQ(count(backbone(plain)), 3228864);  // MobileNet(include_top=False)
  Model top = build("mobilenet_v1", options({{"include_top", true}}));
  EXPECT_EQ(top.parameter_count(), 4253864);  // MobileNet()
  EXPECT_EQ(top.classes().size(), 1000u);
  // The backbone does not depend on the head.
  EXPECT_EQ(count(backbone(top)), 3228864);
}

TEST(ImagenetParameterCounts, MobileNetV2) {
  Model plain = build("mobilenet_v2", options({}));
  EXPECT_EQ(count(backbone(plain)), 2257984);  // MobileNetV2(include_top=False)
  Model top = build("mobilenet_v2", options({{"include_top", true}}));
  EXPECT_EQ(top.parameter_count(), 3538984);  // MobileNetV2()
  // Keras's other widths (the last conv stays 1280 wide for alpha <= 1, is widened above).
  Model narrow = build("mobilenet_v2", options({{"alpha", 0.35}}));
  EXPECT_EQ(count(backbone(narrow)), 410208);  // MobileNetV2(alpha=0.35, include_top=False)
  Model wide = build("mobilenet_v2", options({{"alpha", 1.4}}));
  EXPECT_EQ(count(backbone(wide)), 4363712);  // MobileNetV2(alpha=1.4, include_top=False)
}

TEST(ImagenetParameterCounts, Vgg16) {
  Model plain = build("vgg16", options({}));
  EXPECT_EQ(count(backbone(plain)), 14714688);  // VGG16(include_top=False)

  // VGG16 with its top holds 138M parameters (550 MB, ~3 s to initialize), so its head is
  // counted from the config and the backbone's output shape instead of being built.
  const Json arch = make_architecture("vgg16", options({{"include_top", true}}));
  const Json& net = arch.at("network");
  ASSERT_EQ(net.at("layers").size(), 2u);
  auto bb = make_layer(net.at("layers")[0]);
  Rng rng(1);
  const Shape features = bb->build({224, 224, 3}, rng);
  EXPECT_EQ(features, (Shape{7, 7, 512}));
  int64_t total = count(*bb), width = 0;
  int dense_layers = 0;
  for (const Json& layer : net.at("layers")[1].at("layers").as_array()) {
    const std::string type = layer.at("type").as_string();
    if (type == "Flatten") {
      width = shape_numel(features);
    } else if (type == "Dense") {
      ASSERT_GT(width, 0) << "Dense before Flatten in the VGG16 head";
      const int64_t units = layer.at("units").as_int();
      total += width * units + (layer.get("use_bias", true) ? units : 0);
      width = units;
      ++dense_layers;
    } else {
      EXPECT_EQ(type, "ReLU") << "unexpected weighted layer in the VGG16 head";
    }
  }
  EXPECT_EQ(dense_layers, 3);
  EXPECT_EQ(width, 1000);
  EXPECT_EQ(total, 138357544);  // VGG16()
}

// ======================================================================================
// Keras layer names and parameter layouts
// ======================================================================================

TEST(ImagenetNames, MobileNetV1WithTop) {
  Model m = build("mobilenet_v1", options({{"include_top", true}, {"size", 64}}));
  std::vector<std::string> expected = {"conv1", "conv1_bn"};
  for (int i = 1; i <= 13; ++i) {
    const std::string id = std::to_string(i);
    for (const char* suffix : {"", "_bn"}) expected.push_back("conv_dw_" + id + suffix);
    for (const char* suffix : {"", "_bn"}) expected.push_back("conv_pw_" + id + suffix);
  }
  expected.push_back("conv_preds");
  EXPECT_EQ(weighted_layer_names(m), expected);

  std::map<std::string, Shape> shapes;
  for (Parameter* p : m.parameters()) shapes[p->name] = p->value.shape();
  EXPECT_EQ(shapes.at("conv1/kernel"), (Shape{3, 3, 3, 32}));
  EXPECT_EQ(shapes.at("conv_dw_1/depthwise_kernel"), (Shape{3, 3, 32, 1}));
  EXPECT_EQ(shapes.at("conv_pw_1/kernel"), (Shape{1, 1, 32, 64}));
  EXPECT_EQ(shapes.at("conv_dw_13/depthwise_kernel"), (Shape{3, 3, 1024, 1}));
  EXPECT_EQ(shapes.at("conv_pw_13_bn/moving_variance"), (Shape{1024}));
  EXPECT_EQ(shapes.at("conv_preds/kernel"), (Shape{1, 1, 1024, 1000}));
  EXPECT_EQ(shapes.at("conv_preds/bias"), (Shape{1000}));
  EXPECT_EQ(shapes.count("conv1/bias"), 0u);  // convolutions before BatchNorm have no bias
  EXPECT_EQ(shapes.count("conv_dw_1/bias"), 0u);

  // The classifier: GAP -> Reshape [1, 1, 1024] -> Dropout -> conv_preds -> Reshape [1000].
  NoGradGuard no_grad;
  Rng rng(3);
  const Tensor y = m.forward(random_tensor({2, 64, 64, 3}, rng), false);
  EXPECT_EQ(y.shape(), (Shape{2, 1000}));
}

TEST(ImagenetNames, MobileNetV1DepthMultiplierAndAlpha) {
  Model m = build("mobilenet_v1",
                  options({{"alpha", 0.75}, {"depth_multiplier", 2}, {"size", 32}}));
  std::map<std::string, Shape> shapes;
  for (Parameter* p : m.parameters()) shapes[p->name] = p->value.shape();
  EXPECT_EQ(shapes.at("conv1/kernel"), (Shape{3, 3, 3, 24}));              // int(32 * 0.75)
  EXPECT_EQ(shapes.at("conv_dw_1/depthwise_kernel"), (Shape{3, 3, 24, 2}));
  EXPECT_EQ(shapes.at("conv_dw_1_bn/gamma"), (Shape{48}));                  // C * M outputs
  EXPECT_EQ(shapes.at("conv_pw_1/kernel"), (Shape{1, 1, 48, 48}));          // int(64 * 0.75)
  EXPECT_EQ(shapes.at("conv_dw_13/depthwise_kernel"), (Shape{3, 3, 768, 2}));
}

TEST(ImagenetNames, MobileNetV2WithTop) {
  Model m = build("mobilenet_v2", options({{"include_top", true}, {"size", 64}}));
  std::vector<std::string> expected = {"Conv1", "bn_Conv1", "expanded_conv_depthwise",
                                       "expanded_conv_depthwise_BN", "expanded_conv_project",
                                       "expanded_conv_project_BN"};
  for (int i = 1; i <= 16; ++i) {
    const std::string b = "block_" + std::to_string(i) + "_";
    for (const char* part : {"expand", "expand_BN", "depthwise", "depthwise_BN", "project",
                             "project_BN"})
      expected.push_back(b + part);
  }
  for (const char* name : {"Conv_1", "Conv_1_bn", "Logits"}) expected.push_back(name);
  EXPECT_EQ(weighted_layer_names(m), expected);

  std::map<std::string, Shape> shapes;
  for (Parameter* p : m.parameters()) shapes[p->name] = p->value.shape();
  EXPECT_EQ(shapes.at("Conv1/kernel"), (Shape{3, 3, 3, 32}));
  EXPECT_EQ(shapes.at("expanded_conv_depthwise/depthwise_kernel"), (Shape{3, 3, 32, 1}));
  EXPECT_EQ(shapes.at("expanded_conv_project/kernel"), (Shape{1, 1, 32, 16}));
  EXPECT_EQ(shapes.at("block_1_expand/kernel"), (Shape{1, 1, 16, 96}));
  EXPECT_EQ(shapes.at("block_16_project/kernel"), (Shape{1, 1, 960, 320}));
  EXPECT_EQ(shapes.at("block_16_project_BN/moving_mean"), (Shape{320}));
  EXPECT_EQ(shapes.at("Conv_1/kernel"), (Shape{1, 1, 320, 1280}));
  EXPECT_EQ(shapes.at("Logits/kernel"), (Shape{1280, 1000}));
  EXPECT_EQ(shapes.at("Logits/bias"), (Shape{1000}));
}

TEST(ImagenetNames, Vgg16WithTopFromTheConfig) {
  // Names straight from the config (building the 138M-parameter model is too slow here).
  const Json arch = make_architecture("vgg16", options({{"include_top", true}}));
  std::vector<std::pair<std::string, std::string>> leaves;
  config_leaves(arch.at("network"), leaves);
  std::vector<std::string> weighted;
  for (const auto& [name, type] : leaves)
    if (type == "Conv2D" || type == "Dense") weighted.push_back(name);
  std::vector<std::string> expected;
  const int convs[5] = {2, 2, 3, 3, 3};
  for (int b = 1; b <= 5; ++b)
    for (int c = 1; c <= convs[b - 1]; ++c)
      expected.push_back("block" + std::to_string(b) + "_conv" + std::to_string(c));
  for (const char* name : {"fc1", "fc2", "predictions"}) expected.push_back(name);
  EXPECT_EQ(weighted, expected);

  // Built without the top: Keras's kernels and biases.
  Model m = build("vgg16", options({{"size", 32}}));
  std::map<std::string, Shape> shapes;
  for (Parameter* p : m.parameters()) shapes[p->name] = p->value.shape();
  EXPECT_EQ(shapes.at("block1_conv1/kernel"), (Shape{3, 3, 3, 64}));
  EXPECT_EQ(shapes.at("block1_conv1/bias"), (Shape{64}));
  EXPECT_EQ(shapes.at("block5_conv3/kernel"), (Shape{3, 3, 512, 512}));
  EXPECT_EQ(m.preprocess().at("scale").as_string(), "caffe");
}

// ======================================================================================
// Feature-map shapes
// ======================================================================================

TEST(ImagenetShapes, FeatureMapsFollowTensorFlowSamePadding) {
  // Five stride-2 stages in each MobileNet (TensorFlow 'same': ceil(n / 2) each), five
  // 2x2 'valid' max pools in VGG16 (floor).
  for (int size : {32, 33, 48, 96, 97, 128, 224}) {
    SCOPED_TRACE("size " + std::to_string(size));
    const Json o = options({{"size", size}});
    const int64_t m = halve(size, 5);
    Model v1 = build("mobilenet_v1", o);
    EXPECT_EQ(backbone(v1).output_shape(), (Shape{m, m, 1024}));
    EXPECT_EQ(v1.net().output_shape(), (Shape{7}));
    Model v2 = build("mobilenet_v2", o);
    EXPECT_EQ(backbone(v2).output_shape(), (Shape{m, m, 1280}));
    auto vgg = make_layer(make_architecture("vgg16", o).at("network").at("layers")[0]);
    Rng rng(1);
    const int64_t v = size / 32;
    EXPECT_EQ(vgg->build({size, size, 3}, rng), (Shape{v, v, 512}));
  }
}

TEST(ImagenetShapes, IntermediateStridesAtAnOddSize) {
  // At 97: 49, 25, 13, 7, 4 after the five stride-2 layers. Checked on the layers' own
  // output shapes by building prefixes of the backbone config.
  const Json arch = make_architecture("mobilenet_v1", options({{"size", 97}, {"alpha", 0.25}}));
  const Json& layers = arch.at("network").at("layers")[0].at("layers");
  Rng rng(1);
  std::map<std::string, Shape> after;
  Shape shape = {97, 97, 3};
  for (const Json& cfg : layers.as_array()) {
    auto layer = make_layer(cfg);
    shape = layer->build(shape, rng);
    after[layer->name()] = shape;
  }
  EXPECT_EQ(after.at("conv1"), (Shape{49, 49, 8}));
  EXPECT_EQ(after.at("conv_dw_2"), (Shape{25, 25, 16}));
  EXPECT_EQ(after.at("conv_dw_4"), (Shape{13, 13, 32}));
  EXPECT_EQ(after.at("conv_dw_6"), (Shape{7, 7, 64}));
  EXPECT_EQ(after.at("conv_dw_12"), (Shape{4, 4, 128}));
  EXPECT_EQ(after.at("conv_pw_13"), (Shape{4, 4, 256}));
}

TEST(ImagenetShapes, ForwardGivesTheBuiltShapes) {
  NoGradGuard no_grad;
  for (const char* name : {"mobilenet_v1", "mobilenet_v2"})
    for (int size : {33, 48}) {
      SCOPED_TRACE(std::string(name) + " size " + std::to_string(size));
      Model m = build(name, options({{"size", size}, {"alpha", 0.35}}));
      Rng rng(size);
      const Tensor x = random_tensor({2, size, size, 3}, rng);
      const Tensor f = backbone(m).forward(x, false);
      EXPECT_EQ(example_shape(f), backbone(m).output_shape());
      EXPECT_EQ(m.forward(x, false).shape(), (Shape{2, 7}));
    }
}

TEST(ImagenetShapes, MobileNetV2ResidualBlocks) {
  // A block is residual exactly when it keeps the shape: stride 1 and the same width.
  const std::set<std::string> residual = {"block_2",  "block_4",  "block_5",  "block_7",
                                          "block_8",  "block_9",  "block_11", "block_12",
                                          "block_14", "block_15"};
  for (double alpha : {1.0, 0.35}) {
    SCOPED_TRACE("alpha " + std::to_string(alpha));
    Model m = build("mobilenet_v2", options({{"alpha", alpha}, {"size", 32}}));
    Sequential& b = backbone(m);
    int blocks = 0;
    for (size_t i = 0; i < b.size(); ++i) {
      Layer& child = b.layer(i);
      const std::string& n = child.name();
      if (n != "expanded_conv" && n.rfind("block_", 0) != 0) {
        EXPECT_EQ(dynamic_cast<Sequential*>(&child), nullptr) << n;
        continue;
      }
      ++blocks;
      const bool is_residual = dynamic_cast<Residual*>(&child) != nullptr;
      EXPECT_EQ(is_residual, residual.count(n) == 1) << n;
      EXPECT_EQ(child.type(), is_residual ? "Residual" : "Sequential") << n;
    }
    EXPECT_EQ(blocks, 17);
  }
}

TEST(ImagenetShapes, TorchPaddingInsertsZeroPaddingBeforeStridedConvs) {
  for (const char* name : {"mobilenet_v1", "mobilenet_v2"}) {
    SCOPED_TRACE(name);
    const Json arch = make_architecture(name, options({{"padding", "torch"}, {"alpha", 0.5}}));
    std::vector<std::pair<std::string, std::string>> leaves;
    config_leaves(arch.at("network"), leaves);
    // Every ZeroPadding2D "<conv>_pad" is followed by its conv, which then pads 'valid'
    // with stride 2; no other conv has stride 2.
    std::vector<std::string> padded;
    for (size_t i = 0; i < leaves.size(); ++i)
      if (leaves[i].second == "ZeroPadding2D") {
        ASSERT_LT(i + 1, leaves.size());
        EXPECT_EQ(leaves[i].first, leaves[i + 1].first + "_pad");
        padded.push_back(leaves[i + 1].first);
      }
    const std::vector<std::string> expected =
        std::string(name) == "mobilenet_v1"
            ? std::vector<std::string>{"conv1", "conv_dw_2", "conv_dw_4", "conv_dw_6",
                                       "conv_dw_12"}
            : std::vector<std::string>{"Conv1", "block_1_depthwise", "block_3_depthwise",
                                       "block_6_depthwise", "block_13_depthwise"};
    EXPECT_EQ(padded, expected);

    for (int size : {32, 33, 48, 96, 97, 128, 224}) {
      SCOPED_TRACE("size " + std::to_string(size));
      Model same = build(name, options({{"size", size}, {"alpha", 0.5}}));
      Model torch = build(name, options({{"size", size}, {"alpha", 0.5}, {"padding", "torch"}}));
      EXPECT_EQ(backbone(torch).output_shape(), backbone(same).output_shape());
      // The same arrays, so weights move between the two variants by name.
      auto ps = same.parameters(), pt = torch.parameters();
      ASSERT_EQ(ps.size(), pt.size());
      for (size_t i = 0; i < ps.size(); ++i) {
        EXPECT_EQ(ps[i]->name, pt[i]->name);
        EXPECT_EQ(ps[i]->value.shape(), pt[i]->value.shape()) << ps[i]->name;
      }
    }
  }
}

TEST(ImagenetShapes, TorchPaddingDiffersFromSameOnlyWhereTensorFlowPadsAsymmetrically) {
  // Stride-2 3x3 on an even input: TensorFlow pads (0 top, 1 bottom), PyTorch (1, 1) -- a
  // different result with the same weights; on an odd input both pad (1, 1).
  for (int size : {32, 33}) {
    Json conv = arch::conv2d("c", 2, 3, 2, "same", false);
    auto same = make_layer(conv);
    auto torch = make_layer(arch::sequential(
        "t", {options({{"type", "ZeroPadding2D"}, {"name", "c_pad"}, {"padding", 1}}),
              arch::conv2d("c", 2, 3, 2, "valid", false)}));
    Rng r1(5), r2(5);
    same->build({size, size, 1}, r1);
    torch->build({size, size, 1}, r2);
    Rng rng(6);
    const Tensor x = random_tensor({1, size, size, 1}, rng);
    const std::vector<float> a = infer(*same, x).to_vector(), b = infer(*torch, x).to_vector();
    ASSERT_EQ(a.size(), b.size());
    if (size % 2) {
      EXPECT_EQ(a, b) << "odd input: both pad one pixel on each side";
    } else {
      EXPECT_NE(a, b) << "even input: TensorFlow pads bottom/right only";
    }
  }
}

TEST(ImagenetArchitectures, BadOptionsAreNamed) {
  EXPECT_NE(error_of([] { build("mobilenet_v2", options({{"size", 31}})); })
                .find("mobilenet_v2: input size must be >= 32, got 31"),
            std::string::npos);
  EXPECT_NE(error_of([] { build("mobilenet_v1", options({{"padding", "reflect"}})); })
                .find("padding"),
            std::string::npos);
  EXPECT_NE(error_of([] { build("vgg16", options({{"head", "pool"}})); }).find("head"),
            std::string::npos);
}

// ======================================================================================
// Gradient checks
// ======================================================================================

// Moves values at least `margin` away from each kink (the derivative jumps there).
static void avoid_kinks(Tensor& t, std::vector<float> kinks, float margin) {
  for (int64_t i = 0; i < t.numel(); ++i)
    for (float k : kinks) {
      float& v = t.data()[i];
      if (std::fabs(v - k) < margin) v = v < k ? k - margin : k + margin;
    }
}

TEST(ImagenetGradients, Relu6) {
  for (int n : {1, 2}) {
    ReLU relu6("relu6", 6);
    Rng rng(10 + n);
    relu6.build({3, 4, 5}, rng);
    GradCheckOptions opt;
    Tensor x = random_tensor({n, 3, 4, 5}, rng, -3, 9);
    avoid_kinks(x, {0.f, 6.f}, 5 * float(opt.step));
    x.set_requires_grad(true);
    check_gradients([&] { return relu6.forward(x, true); }, {{"x", x}}, n, opt);
    // Both caps: below 0 and above 6 the output is flat.
    const Tensor probe({1, 1, 1, 4}, std::vector<float>{-1, 2.5f, 6, 7.5f});
    EXPECT_EQ(infer(relu6, probe).to_vector(), (std::vector<float>{0, 2.5f, 6, 6}));
  }
}

TEST(ImagenetGradients, ResidualAddsTheInputToTheBody) {
  const Json body = arch::sequential(
      "res", {arch::conv2d("res_conv", 3, 3, 1, "same", true),
              arch::depthwise_conv2d("res_dw", 3, 1, "same", true)});
  Json residual_cfg = body;
  residual_cfg["type"] = "Residual";
  for (int n : {1, 2}) {
    SCOPED_TRACE("batch " + std::to_string(n));
    auto res = make_layer(residual_cfg);
    auto plain = make_layer(body);
    Rng r1(7), r2(7);
    EXPECT_EQ(res->build({5, 4, 3}, r1), (Shape{5, 4, 3}));
    plain->build({5, 4, 3}, r2);  // same seed: the same weights
    Tensor x = requiring_grad({n, 5, 4, 3}, 20 + n);
    // y = x + body(x), exactly.
    const std::vector<float> y = infer(*res, x).to_vector(), b = infer(*plain, x).to_vector();
    ASSERT_EQ(y.size(), b.size());
    for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(y[i], x.data()[i] + b[i]) << i;
    gradcheck_layer(*res, x, 30 + n);
  }
}

// An inverted residual block as MobileNet V2 builds it: expand 1x1 -> BN -> ReLU6 ->
// depthwise 3x3 (stride) -> BN -> ReLU6 -> project 1x1 -> BN (linear), residual at stride 1.
static Json inverted_residual(const std::string& name, int in, int out, int stride) {
  auto bn = [](const std::string& n) { return arch::batchnorm(n, 1e-3, 0.999); };
  Json block = arch::sequential(
      name, {arch::conv2d(name + "_expand", 6 * in, 1, 1, "same", false), bn(name + "_expand_BN"),
             arch::relu(name + "_expand_relu", 6),
             arch::depthwise_conv2d(name + "_depthwise", 3, stride, "same", false),
             bn(name + "_depthwise_BN"), arch::relu(name + "_depthwise_relu", 6),
             arch::conv2d(name + "_project", out, 1, 1, "same", false), bn(name + "_project_BN")});
  if (stride == 1 && in == out) block["type"] = "Residual";
  return block;
}

TEST(ImagenetGradients, InvertedResidualBlocks) {
  struct Case { int n, h, w, in, out, stride; };
  const Case cases[] = {{1, 4, 4, 3, 3, 1}, {2, 5, 4, 4, 4, 1}, {1, 6, 6, 3, 5, 2},
                        {2, 5, 5, 4, 6, 2}};
  for (const Case& k : cases) {
    SCOPED_TRACE("n " + std::to_string(k.n) + " stride " + std::to_string(k.stride));
    auto block = make_layer(inverted_residual("blk", k.in, k.out, k.stride));
    EXPECT_EQ(block->type(), k.stride == 1 ? "Residual" : "Sequential");
    Rng rng(40 + k.n + k.stride);
    const int64_t oh = (k.h + k.stride - 1) / k.stride, ow = (k.w + k.stride - 1) / k.stride;
    EXPECT_EQ(block->build({k.h, k.w, k.in}, rng), (Shape{oh, ow, k.out}));
    // BatchNorm shifts put every ReLU6 input clearly on one side of 0 -- off (below 0)
    // or on the slope -- by channel: beta -3 or 3 with a small gamma, and BN's normalized
    // values stay within a few units. So no finite-difference step crosses a kink. (The
    // cap at 6 is checked on its own above: a channel held at 6 feeds the next BatchNorm
    // a large constant whose cancellation in float32 drowns the finite differences.) The
    // project BN, with no ReLU after it, gets plain random values.
    for (Parameter* p : block->parameters()) {
      const std::string& name = p->name;
      float* v = p->value.data();
      const bool project = name.find("_project_BN") != std::string::npos;
      if (name.find("/gamma") != std::string::npos)
        for (int64_t i = 0; i < p->value.numel(); ++i)
          v[i] = float(project ? rng.uniform(0.5, 1.5) : rng.uniform(0.4, 0.6));
      if (name.find("/beta") != std::string::npos)
        for (int64_t i = 0; i < p->value.numel(); ++i)
          v[i] = project ? float(rng.uniform(-0.3, 0.3)) : (i % 2 ? 3.f : -3.f);
    }
    Tensor x = requiring_grad({k.n, k.h, k.w, k.in}, 50 + k.n, -2, 2);
    // A step of 5e-3 moves no ReLU6 input anywhere near 0. Float32's rounding of the
    // loss (~1e-5 here: BatchNorm subtracts the large common offset the shifted channels
    // carry) limits smaller steps, BatchNorm's curvature over a handful of values larger
    // ones; hence tests/test_blocks.cpp's tolerances.
    GradCheckOptions opt;
    opt.step = 5e-3;
    opt.rtol = 5e-2;
    opt.atol = 5e-3;
    gradcheck_layer(*block, x, 60 + k.n, opt);
  }
}

TEST(ImagenetGradients, ZeroPadding2DAsymmetric) {
  for (int n : {1, 2}) {
    ZeroPadding2D pad("pad", {1, 2, 0, 3});  // top, bottom, left, right
    Rng rng(1);
    EXPECT_EQ(pad.build({2, 3, 2}, rng), (Shape{5, 6, 2}));
    Tensor x = requiring_grad({n, 2, 3, 2}, 70 + n);
    const Tensor y = infer(pad, x);
    ASSERT_EQ(y.shape(), (Shape{n, 5, 6, 2}));
    for (int b = 0; b < n; ++b)
      for (int i = 0; i < 5; ++i)
        for (int j = 0; j < 6; ++j)
          for (int c = 0; c < 2; ++c) {
            const bool inside = i >= 1 && i < 3 && j < 3;
            const float expected = inside ? x.data()[((b * 2 + i - 1) * 3 + j) * 2 + c] : 0.f;
            EXPECT_EQ(y.data()[((b * 5 + i) * 6 + j) * 2 + c], expected)
                << "b " << b << " i " << i << " j " << j << " c " << c;
          }
    gradcheck_layer(pad, x, 80 + n);
  }
}

TEST(ImagenetGradients, Reshape) {
  for (int n : {1, 2}) {
    Reshape r("r", {-1, 3});
    Rng rng(1);
    EXPECT_EQ(r.build({2, 2, 3}, rng), (Shape{4, 3}));
    Tensor x = requiring_grad({n, 2, 2, 3}, 90 + n);
    const Tensor y = infer(r, x);
    EXPECT_EQ(y.shape(), (Shape{n, 4, 3}));
    EXPECT_EQ(y.to_vector(), x.to_vector());  // row-major order kept
    gradcheck_layer(r, x, 100 + n);
    Reshape flat("flat", {12});
    flat.build({2, 2, 3}, rng);
    EXPECT_EQ(infer(flat, x).shape(), (Shape{n, 12}));
  }
  Rng rng(1);
  Reshape bad("bad", {5, -1});
  EXPECT_NE(error_of([&] { bad.build({2, 2, 3}, rng); }).find("layer 'bad' (Reshape): cannot reshape"),
            std::string::npos);
  EXPECT_THROW(Reshape("two_unknowns", {-1, -1}), Error);
}

// Reference depthwise convolution with a depth multiplier, TensorFlow 'same' padding:
// y[n, oy, ox, c*M + m] = sum_ij x[n, oy*s + i - top, ox*s + j - left, c] k[i, j, c, m] + b.
static std::vector<float> depthwise_reference(const Tensor& x, const Tensor& k, const Tensor& bias,
                                       int stride) {
  const int64_t N = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3);
  const int64_t KH = k.dim(0), KW = k.dim(1), M = k.dim(3);
  const int64_t OH = (H + stride - 1) / stride, OW = (W + stride - 1) / stride;
  const int64_t top = std::max<int64_t>((OH - 1) * stride + KH - H, 0) / 2;
  const int64_t left = std::max<int64_t>((OW - 1) * stride + KW - W, 0) / 2;
  std::vector<float> y(N * OH * OW * C * M);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t oy = 0; oy < OH; ++oy)
      for (int64_t ox = 0; ox < OW; ++ox)
        for (int64_t c = 0; c < C; ++c)
          for (int64_t m = 0; m < M; ++m) {
            double s = bias.defined() ? bias.data()[c * M + m] : 0;
            for (int64_t i = 0; i < KH; ++i)
              for (int64_t j = 0; j < KW; ++j) {
                const int64_t iy = oy * stride + i - top, ix = ox * stride + j - left;
                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                s += double(x.data()[((n * H + iy) * W + ix) * C + c]) *
                     k.data()[((i * KW + j) * C + c) * M + m];
              }
            y[((n * OH + oy) * OW + ox) * C * M + c * M + m] = float(s);
          }
  return y;
}

TEST(ImagenetGradients, DepthwiseConv2DDepthMultiplier) {
  for (int m : {2, 3})
    for (int n : {1, 2})
      for (int stride : {1, 2})
        for (bool bias : {true, false}) {
          SCOPED_TRACE("M " + std::to_string(m) + " n " + std::to_string(n) + " stride " +
                       std::to_string(stride) + " bias " + std::to_string(bias));
          DepthwiseConv2D dw("dw", {3, 3}, {stride, stride}, "same", bias, m);
          Rng rng(110 + m * 8 + n * 4 + stride * 2 + bias);
          const int64_t oh = (5 + stride - 1) / stride, ow = (4 + stride - 1) / stride;
          EXPECT_EQ(dw.build({5, 4, 3}, rng), (Shape{oh, ow, 3 * m}));
          EXPECT_EQ(dw.kernel().shape(), (Shape{3, 3, 3, m}));
          if (bias) {
            EXPECT_EQ(dw.bias().shape(), (Shape{3 * m}));
            Tensor b = dw.bias();  // shares storage; non-zero biases, so each is seen
            for (int64_t i = 0; i < b.numel(); ++i) b.data()[i] = float(rng.uniform(-0.5, 0.5));
          }
          Tensor x = requiring_grad({n, 5, 4, 3}, 120 + n);
          // Output channel c*M + m uses input channel c with kernel[.., c, m].
          const std::vector<float> y = infer(dw, x).to_vector();
          const std::vector<float> ref = depthwise_reference(x, dw.kernel(), dw.bias(), stride);
          ASSERT_EQ(y.size(), ref.size());
          for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], ref[i], 1e-5) << "output " << i;
          gradcheck_layer(dw, x, 130 + n);
        }
}

// ======================================================================================
// Errors and config round trips
// ======================================================================================

TEST(ImagenetLayers, ResidualRejectsAShapeChangingBody) {
  Rng rng(1);
  Json wider = arch::sequential("block_3", {arch::conv2d("block_3_project", 8, 1)});
  wider["type"] = "Residual";
  auto a = make_layer(wider);
  EXPECT_EQ(error_of([&] { a->build({4, 4, 6}, rng); }),
            "layer 'block_3' (Residual): the block maps [4, 4, 6] to [4, 4, 8]; a residual "
            "connection needs the same shape in and out");
  Json strided = arch::sequential("block_6", {arch::depthwise_conv2d("block_6_dw", 3, 2)});
  strided["type"] = "Residual";
  auto b = make_layer(strided);
  EXPECT_NE(error_of([&] { b->build({6, 6, 4}, rng); }).find("layer 'block_6' (Residual)"),
            std::string::npos);
}

// config() -> JSON text -> make_layer -> build with the same seed -> the same outputs
// and the same config.
static void expect_round_trip(Layer& layer, const Shape& example, uint64_t seed) {
  Rng r1(seed);
  layer.build(example, r1);
  auto copy = make_layer(Json::parse(layer.config().dump()));
  Rng r2(seed);
  copy->build(example, r2);
  EXPECT_EQ(copy->type(), layer.type());
  EXPECT_EQ(copy->config().dump(), layer.config().dump());
  Shape batch = {2};
  batch.insert(batch.end(), example.begin(), example.end());
  Rng rng(seed + 1);
  const Tensor x = random_tensor(batch, rng);
  EXPECT_EQ(infer(*copy, x).to_vector(), infer(layer, x).to_vector()) << layer.name();
}

TEST(ImagenetLayers, ConfigRoundTrips) {
  auto res = make_layer(inverted_residual("block_2", 4, 4, 1));
  ASSERT_EQ(res->type(), "Residual");
  expect_round_trip(*res, {5, 5, 4}, 1);
  Reshape reshape("reshape_1", {1, 1, -1});
  expect_round_trip(reshape, {6}, 2);
  EXPECT_EQ(reshape.config().at("target_shape").dump(), "[1,1,-1]");
  ZeroPadding2D pad("conv1_pad", {0, 1, 2, 3});
  expect_round_trip(pad, {3, 3, 2}, 3);
  EXPECT_EQ(pad.config().at("padding").dump(), "[[0,1],[2,3]]");
  DepthwiseConv2D dw("conv_dw_1", {3, 3}, {2, 2}, "same", true, 3);
  expect_round_trip(dw, {5, 5, 2}, 4);
  EXPECT_EQ(dw.config().at("depth_multiplier").as_int(), 3);
}

TEST(ImagenetLayers, ZeroPadding2DReadsKerasForms) {
  Rng rng(1);
  auto shape_of = [&](const char* padding) {
    auto l = make_layer(Json::parse(std::string(R"({"type": "ZeroPadding2D", "name": "p", "padding": )") +
                                    padding + "}"));
    return l->build({4, 5, 1}, rng);
  };
  EXPECT_EQ(shape_of("1"), (Shape{6, 7, 1}));
  EXPECT_EQ(shape_of("[2, 1]"), (Shape{8, 7, 1}));
  EXPECT_EQ(shape_of("[[0, 1], [2, 3]]"), (Shape{5, 10, 1}));
  EXPECT_THROW(shape_of("[1, 2, 3]"), Error);
}

// ======================================================================================
// Preprocessing scales of the ImageNet weights
// ======================================================================================

TEST(ImagenetPreprocess, CaffeAndTorchScales) {
  data::Image im;
  im.height = 1;
  im.width = 2;
  im.channels = 3;
  im.pixels = {10, 120, 250, 0, 255, 60};  // RGB, RGB
  data::Preprocess p;
  p.height = 1;
  p.width = 2;
  p.channels = 3;
  std::vector<float> out(6);

  // caffe (Keras's VGG16): BGR, minus the ImageNet mean pixel [103.939, 116.779, 123.68].
  p.scale = "caffe";
  data::preprocess(im, p, out.data());
  const double caffe[6] = {250 - 103.939, 120 - 116.779, 10 - 123.68,
                           60 - 103.939,  255 - 116.779, 0 - 123.68};
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(out[i], caffe[i], 1e-4) << "caffe value " << i;

  // torch (torchvision): RGB, (x / 255 - mean) / std with mean [0.485, 0.456, 0.406] and
  // std [0.229, 0.224, 0.225].
  p.scale = "torch";
  data::preprocess(im, p, out.data());
  const double torch[6] = {(10 / 255.0 - 0.485) / 0.229, (120 / 255.0 - 0.456) / 0.224,
                           (250 / 255.0 - 0.406) / 0.225, (0 / 255.0 - 0.485) / 0.229,
                           (255 / 255.0 - 0.456) / 0.224, (60 / 255.0 - 0.406) / 0.225};
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(out[i], torch[i], 1e-5) << "torch value " << i;

  // A gray image is replicated to RGB first, so every caffe channel sees the same value.
  data::Image gray;
  gray.height = 1;
  gray.width = 1;
  gray.channels = 1;
  gray.pixels = {200};
  p.width = 1;
  p.scale = "caffe";
  data::preprocess(gray, p, out.data());
  EXPECT_NEAR(out[0], 200 - 103.939, 1e-4);
  EXPECT_NEAR(out[1], 200 - 116.779, 1e-4);
  EXPECT_NEAR(out[2], 200 - 123.68, 1e-4);

  // Both need three channels.
  p.channels = 1;
  EXPECT_NE(error_of([&] { p.check(); }).find("scale 'caffe' needs 3 channels"), std::string::npos);
  p.scale = "torch";
  EXPECT_THROW(p.check(), Error);
}
