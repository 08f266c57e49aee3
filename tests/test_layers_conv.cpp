// Conv2D, DepthwiseConv2D, Dense, the pooling layers and Flatten: output shapes,
// parameters, finite-difference gradient checks (inputs and parameters), config round
// trips and the errors a user sees for a wrong input.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "fer/autograd.h"
#include "fer/error.h"
#include "fer/rng.h"
#include "kernels/conv2d.h"
#include "layers/conv2d.h"
#include "layers/dense.h"
#include "layers/depthwise_conv2d.h"
#include "layers/flatten.h"
#include "layers/pooling.h"
#include "tests/gradcheck.h"
#include "tests/error_of.h"

using namespace fer;
using fer::testing::check_gradients;
using fer::testing::random_tensor;

namespace {

// An input that requires a gradient, with values in [-1, 1].
Tensor input(const Shape& shape, uint64_t seed) {
  Rng rng(seed);
  Tensor x = random_tensor(shape, rng);
  x.set_requires_grad(true);
  return x;
}

// Distinct values at least 0.05 apart (a shuffled ramp), so that a finite-difference
// step of 0.01 never changes which cell wins a max-pool window.
Tensor distinct_input(const Shape& shape, uint64_t seed) {
  Tensor x(shape);
  std::vector<int64_t> order(x.numel());
  std::iota(order.begin(), order.end(), 0);
  Rng rng(seed);
  for (int64_t i = x.numel() - 1; i > 0; --i) std::swap(order[i], order[rng.below(i + 1)]);
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = 0.05f * float(order[i] - x.numel() / 2);
  x.set_requires_grad(true);
  return x;
}

// Checks d/dx and d/dparam of one layer built for x's example shape.
void gradcheck_layer(Layer& layer, const Tensor& x, uint64_t seed = 1) {
  std::vector<std::pair<std::string, Tensor>> wrt = {{"input", x}};
  for (Parameter* p : layer.parameters()) wrt.push_back({p->name, p->value});
  check_gradients([&] { return layer.forward(x, true); }, wrt, seed);
}

// Forward without recording anything on the tape (parameters require gradients, so a
// plain forward would leave a closure behind for the next test's backward).
Tensor infer(Layer& layer, const Tensor& x) {
  NoGradGuard no_grad;
  return layer.forward(x, false);
}

Shape example_shape(const Tensor& x) { return Shape(x.shape().begin() + 1, x.shape().end()); }

using fer::testing::error_of;

// ---- Conv2D -------------------------------------------------------------------------

TEST(Conv2DLayer, OutputShapesParametersAndInit) {
  Rng rng(1);
  Conv2D conv("conv1", 32, {3, 3}, {1, 1}, "same");
  EXPECT_EQ(conv.build({48, 48, 1}, rng), (Shape{48, 48, 32}));
  auto params = conv.parameters();
  ASSERT_EQ(params.size(), 2u);
  EXPECT_EQ(params[0]->name, "conv1/kernel");
  EXPECT_EQ(params[0]->value.shape(), (Shape{3, 3, 1, 32}));
  EXPECT_TRUE(params[0]->value.requires_grad());
  EXPECT_EQ(params[1]->name, "conv1/bias");
  EXPECT_EQ(params[1]->value.shape(), (Shape{32}));
  for (float b : params[1]->value.to_vector()) EXPECT_EQ(b, 0.f);
  // Glorot uniform: fan_in = 3*3*1, fan_out = 3*3*32.
  const double limit = std::sqrt(6.0 / (9 + 288));
  float largest = 0;
  for (float k : params[0]->value.to_vector()) {
    EXPECT_LE(std::fabs(k), limit);
    largest = std::max(largest, std::fabs(k));
  }
  EXPECT_GT(largest, 0.8 * limit);  // spread over the whole range, not collapsed

  EXPECT_EQ(Conv2D("c", 8, {3, 3}, {2, 2}, "same").build({48, 48, 3}, rng), (Shape{24, 24, 8}));
  EXPECT_EQ(Conv2D("c", 8, {3, 3}, {2, 2}, "same").build({7, 7, 3}, rng), (Shape{4, 4, 8}));
  EXPECT_EQ(Conv2D("c", 8, {3, 3}).build({48, 48, 3}, rng), (Shape{46, 46, 8}));
  EXPECT_EQ(Conv2D("c", 8, {5, 3}, {1, 2}, "valid").build({9, 9, 3}, rng), (Shape{5, 4, 8}));
  Conv2D no_bias("c", 4, {1, 1}, {1, 1}, "valid", false);
  no_bias.build({5, 5, 2}, rng);
  EXPECT_EQ(no_bias.parameters().size(), 1u);

  Tensor x = input({3, 48, 48, 1}, 2);
  EXPECT_EQ(infer(conv, x).shape(), (Shape{3, 48, 48, 32}));
}

TEST(Conv2DLayer, GradientsMatchFiniteDifferences) {
  struct Case { Shape x; int filters; std::array<int, 2> k, s; const char* padding; bool bias; };
  const Case cases[] = {
      {{2, 5, 5, 3}, 4, {3, 3}, {1, 1}, "same", true},
      {{1, 6, 6, 2}, 3, {3, 3}, {2, 2}, "same", true},    // even input: pad bottom/right
      {{2, 7, 5, 3}, 2, {3, 2}, {2, 2}, "valid", true},   // odd sizes, uneven kernel
      {{1, 4, 4, 5}, 3, {1, 1}, {1, 1}, "valid", false},  // pointwise, batch 1, no bias
      {{2, 1, 1, 3}, 2, {3, 3}, {1, 1}, "same", true},    // 1x1 map
  };
  int i = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE("case " + std::to_string(i));
    Rng rng(10 + i);
    Conv2D conv("conv", c.filters, c.k, c.s, c.padding, c.bias);
    Tensor x = input(c.x, 20 + i);
    conv.build(example_shape(x), rng);
    gradcheck_layer(conv, x, 30 + i);
    ++i;
  }
}

TEST(Conv2DLayer, HandComputedForward) {
  // The 3x3 input, 2x2 kernel example: y = [[37, 47], [67, 77]] + bias.
  Rng rng(1);
  Conv2D conv("conv", 1, {2, 2});
  conv.build({3, 3, 1}, rng);
  auto params = conv.parameters();
  params[0]->value.copy_from(Tensor({4}, std::vector<float>{1, 2, 3, 4}));
  params[1]->value.fill(0.5f);
  Tensor x({1, 3, 3, 1}, std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8, 9});
  const Tensor y = infer(conv, x);
  EXPECT_EQ(y.to_vector(), (std::vector<float>{37.5f, 47.5f, 67.5f, 77.5f}));
}

TEST(Conv2DLayer, InferenceKeepsTheWinogradTransformUntilTheKernelChanges) {
  // 12x12x8 -> 16 channels at batch 1: 36 Winograd tiles, too few to transform the kernel
  // on every call, so inference transforms it once and keeps it (kernels/conv2d.h).
  Rng rng(4);
  Conv2D conv("conv", 16, {3, 3}, {1, 1}, "same");
  conv.build({12, 12, 8}, rng);
  const kernels::Conv2DGeometry g =
      kernels::make_geometry(1, 12, 12, 8, 3, 3, 1, 1, kernels::Padding::Same);
  ASSERT_TRUE(kernels::conv2d_winograd_transformed_pays(g, 16));
  ASSERT_FALSE(kernels::conv2d_forward_uses_winograd(g, 16));
  auto params = conv.parameters();
  params[1]->value.copy_from(random_tensor({16}, rng));
  const Tensor x = random_tensor({1, 12, 12, 8}, rng);
  // What the current weights give, by the reference loops.
  auto reference = [&] {
    std::vector<float> y(12 * 12 * 16);
    kernels::conv2d_forward_ref(g, 16, x.data(), conv.kernel().data(), conv.bias().data(),
                                y.data());
    return y;
  };
  auto expect_near_reference = [&](const Tensor& y, const std::string& what) {
    const std::vector<float> want = reference();
    ASSERT_EQ(y.numel(), static_cast<int64_t>(want.size())) << what;
    for (size_t i = 0; i < want.size(); ++i)
      ASSERT_NEAR(y.data()[i], want[i], 1e-4f * (1.f + std::fabs(want[i]))) << what << " at " << i;
  };
  const Tensor y1 = conv.forward(x, false);
  expect_near_reference(y1, "first inference");
  expect_near_reference(conv.forward(x, false), "second inference (transform kept)");
  expect_near_reference(conv.forward(x, true), "training mode (direct)");
  // The kernel changes as an optimizer changes it, through a writable pointer...
  params[0]->value.data()[5] += 1.f;
  const Tensor y2 = conv.forward(x, false);
  expect_near_reference(y2, "after a change of one weight");
  EXPECT_NE(y2.to_vector(), y1.to_vector());
  // ... or as a weight load does.
  params[0]->value.copy_from(random_tensor(params[0]->value.shape(), rng));
  expect_near_reference(conv.forward(x, false), "after copy_from");
}

TEST(Conv2DLayer, WrongInputShapeNamesTheLayer) {
  Rng rng(1);
  Conv2D conv("conv2", 32, {3, 3}, {1, 1}, "same");
  conv.build({24, 24, 32}, rng);
  EXPECT_EQ(error_of([&] { conv.forward(Tensor({8, 24, 24, 16}), false); }),
            "layer 'conv2' (Conv2D): expected input [N, 24, 24, 32], got [8, 24, 24, 16]");
  EXPECT_NE(error_of([&] { conv.forward(Tensor({24, 24, 32}), false); }).find("layer 'conv2'"),
            std::string::npos);
  // Building for a wrong rank or a too-small image, and bad arguments.
  EXPECT_NE(error_of([&] { Conv2D("c3", 4, {3, 3}).build({24, 24}, rng); }).find("layer 'c3' (Conv2D)"),
            std::string::npos);
  EXPECT_NE(error_of([&] { Conv2D("c4", 4, {5, 5}).build({3, 3, 1}, rng); }).find("does not fit"),
            std::string::npos);
  EXPECT_NE(error_of([&] { Conv2D("c5", 4, {3, 3}, {1, 1}, "full"); }).find("layer 'c5'"),
            std::string::npos);
  EXPECT_NE(error_of([&] { Conv2D("c6", 4, {3, 3}).forward(Tensor({1, 5, 5, 1}), false); })
                .find("before build"),
            std::string::npos);
}

TEST(Conv2DLayer, FrozenLayerGivesNoParameterGradient) {
  Rng rng(1);
  Conv2D conv("conv", 3, {3, 3}, {1, 1}, "same");
  Tensor x = input({2, 4, 4, 2}, 3);
  conv.build(example_shape(x), rng);
  conv.set_frozen(true);
  Tensor y = conv.forward(x, true);
  Tape::current().backward(y, Tensor(y.shape(), 1.f));
  EXPECT_FALSE(conv.parameters()[0]->value.has_grad());
  EXPECT_FALSE(conv.parameters()[1]->value.has_grad());
  ASSERT_TRUE(x.has_grad());  // the input still receives its gradient
  // Under NoGradGuard nothing is recorded.
  conv.set_frozen(false);
  NoGradGuard guard;
  EXPECT_FALSE(conv.forward(x, true).requires_grad());
  EXPECT_EQ(Tape::current().size(), 0u);
}

// ---- DepthwiseConv2D ----------------------------------------------------------------

TEST(DepthwiseConv2DLayer, OutputShapesParametersAndInit) {
  Rng rng(1);
  DepthwiseConv2D dw("dw1", {3, 3}, {2, 2}, "same");
  EXPECT_EQ(dw.build({48, 48, 16}, rng), (Shape{24, 24, 16}));
  auto params = dw.parameters();
  ASSERT_EQ(params.size(), 2u);
  EXPECT_EQ(params[0]->name, "dw1/depthwise_kernel");
  EXPECT_EQ(params[0]->value.shape(), (Shape{3, 3, 16, 1}));
  EXPECT_EQ(params[1]->name, "dw1/bias");
  EXPECT_EQ(params[1]->value.shape(), (Shape{16}));
  // Keras's fans for a [3, 3, 16, 1] kernel: fan_in = 9*16, fan_out = 9*1.
  const double limit = std::sqrt(6.0 / (144 + 9));
  float largest = 0;
  for (float k : params[0]->value.to_vector()) {
    EXPECT_LE(std::fabs(k), limit);
    largest = std::max(largest, std::fabs(k));
  }
  EXPECT_GT(largest, 0.8 * limit);
  EXPECT_EQ(DepthwiseConv2D("d", {3, 3}).build({5, 7, 4}, rng), (Shape{3, 5, 4}));
}

TEST(DepthwiseConv2DLayer, GradientsMatchFiniteDifferences) {
  struct Case { Shape x; std::array<int, 2> k, s; const char* padding; bool bias; };
  const Case cases[] = {
      {{2, 5, 5, 3}, {3, 3}, {1, 1}, "same", true},
      {{1, 6, 6, 4}, {3, 3}, {2, 2}, "same", true},
      {{2, 7, 5, 2}, {3, 2}, {2, 1}, "valid", false},
      {{1, 1, 1, 5}, {3, 3}, {2, 2}, "same", true},
  };
  int i = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE("case " + std::to_string(i));
    Rng rng(40 + i);
    DepthwiseConv2D dw("dw", c.k, c.s, c.padding, c.bias);
    Tensor x = input(c.x, 50 + i);
    dw.build(example_shape(x), rng);
    gradcheck_layer(dw, x, 60 + i);
    ++i;
  }
}

TEST(DepthwiseConv2DLayer, ErrorsNameTheLayer) {
  Rng rng(1);
  EXPECT_NE(error_of([] { DepthwiseConv2D("dw", {3, 3}, {1, 1}, "same", true, 0); })
                .find("layer 'dw' (DepthwiseConv2D): depth_multiplier must be >= 1, got 0"),
            std::string::npos);
  DepthwiseConv2D dw("dw2", {3, 3}, {1, 1}, "same");
  dw.build({12, 12, 8}, rng);
  EXPECT_EQ(error_of([&] { dw.forward(Tensor({2, 12, 12, 4}), false); }),
            "layer 'dw2' (DepthwiseConv2D): expected input [N, 12, 12, 8], got [2, 12, 12, 4]");
}

// ---- Dense --------------------------------------------------------------------------

TEST(DenseLayer, ShapesAndGradients) {
  Rng rng(1);
  Dense fc("fc", 5);
  EXPECT_EQ(fc.build({7}, rng), (Shape{5}));
  auto params = fc.parameters();
  ASSERT_EQ(params.size(), 2u);
  EXPECT_EQ(params[0]->name, "fc/kernel");
  EXPECT_EQ(params[0]->value.shape(), (Shape{7, 5}));
  EXPECT_EQ(params[1]->name, "fc/bias");
  const double limit = std::sqrt(6.0 / (7 + 5));
  for (float k : params[0]->value.to_vector()) EXPECT_LE(std::fabs(k), limit);
  for (int64_t n : {3, 1}) {
    Tensor x = input({n, 7}, 70 + n);
    gradcheck_layer(fc, x, 80 + n);
  }
  Dense no_bias("fc2", 3, false);
  no_bias.build({4}, rng);
  ASSERT_EQ(no_bias.parameters().size(), 1u);
  gradcheck_layer(no_bias, input({2, 4}, 90), 91);
}

TEST(DenseLayer, HandComputedForward) {
  Rng rng(1);
  Dense fc("fc", 2);
  fc.build({3}, rng);
  // kernel [3, 2] = [[1, 0], [0, 1], [1, -1]], bias = [0.5, -0.5]
  fc.parameters()[0]->value.copy_from(Tensor({6}, std::vector<float>{1, 0, 0, 1, 1, -1}));
  fc.parameters()[1]->value.copy_from(Tensor({2}, std::vector<float>{0.5f, -0.5f}));
  Tensor x({2, 3}, std::vector<float>{1, 2, 3, 4, 5, 6});
  EXPECT_EQ(infer(fc, x).to_vector(), (std::vector<float>{4.5f, -1.5f, 10.5f, -1.5f}));
}

TEST(DenseLayer, UnflattenedInputAsksForFlatten) {
  Rng rng(1);
  const std::string e = error_of([&] { Dense("fc", 7).build({6, 6, 64}, rng); });
  EXPECT_NE(e.find("layer 'fc' (Dense)"), std::string::npos) << e;
  EXPECT_NE(e.find("[N, 6, 6, 64]"), std::string::npos) << e;
  EXPECT_NE(e.find("Flatten"), std::string::npos) << e;
  Dense fc("fc", 7);
  fc.build({10}, rng);
  EXPECT_EQ(error_of([&] { fc.forward(Tensor({4, 12}), false); }),
            "layer 'fc' (Dense): expected input [N, 10], got [4, 12]");
}

// ---- Pooling and Flatten ------------------------------------------------------------

TEST(PoolingLayers, OutputShapes) {
  Rng rng(1);
  EXPECT_EQ(MaxPool2D("p").build({48, 48, 32}, rng), (Shape{24, 24, 32}));
  EXPECT_EQ(MaxPool2D("p", {3, 3}, {2, 2}).build({7, 7, 4}, rng), (Shape{3, 3, 4}));
  EXPECT_EQ(MaxPool2D("p", {2, 2}, {2, 2}, "same").build({7, 7, 4}, rng), (Shape{4, 4, 4}));
  EXPECT_EQ(AvgPool2D("p", {3, 3}, {1, 1}, "same").build({5, 6, 2}, rng), (Shape{5, 6, 2}));
  EXPECT_EQ(GlobalAveragePooling2D("g").build({6, 6, 64}, rng), (Shape{64}));
  EXPECT_EQ(Flatten("f").build({6, 6, 64}, rng), (Shape{6 * 6 * 64}));
  // strides default to pool_size
  EXPECT_EQ(MaxPool2D("p", {3, 3}).config().at("strides")[0].as_int(), 3);
  EXPECT_EQ(MaxPool2D("p").type(), "MaxPooling2D");
  EXPECT_EQ(AvgPool2D("p").type(), "AveragePooling2D");
}

TEST(PoolingLayers, MaxPoolGradients) {
  struct Case { Shape x; std::array<int, 2> pool, strides; const char* padding; };
  const Case cases[] = {
      {{2, 4, 4, 3}, {2, 2}, {0, 0}, "valid"},
      {{2, 5, 5, 3}, {2, 2}, {2, 2}, "same"},   // odd size: edge windows hang over
      {{1, 6, 6, 2}, {3, 3}, {2, 2}, "valid"},  // overlapping windows
      {{1, 5, 4, 2}, {3, 3}, {1, 1}, "same"},
  };
  int i = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE("case " + std::to_string(i));
    Rng rng(1);
    MaxPool2D pool("pool", c.pool, c.strides, c.padding);
    Tensor x = distinct_input(c.x, 100 + i);
    pool.build(example_shape(x), rng);
    gradcheck_layer(pool, x, 110 + i);
    ++i;
  }
}

TEST(PoolingLayers, AvgPoolGradients) {
  struct Case { Shape x; std::array<int, 2> pool, strides; const char* padding; };
  const Case cases[] = {
      {{2, 4, 4, 3}, {2, 2}, {0, 0}, "valid"},
      {{2, 5, 5, 3}, {2, 2}, {2, 2}, "same"},
      {{1, 5, 4, 2}, {3, 3}, {1, 1}, "same"},
  };
  int i = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE("case " + std::to_string(i));
    Rng rng(1);
    AvgPool2D pool("pool", c.pool, c.strides, c.padding);
    Tensor x = input(c.x, 120 + i);
    pool.build(example_shape(x), rng);
    gradcheck_layer(pool, x, 130 + i);
    ++i;
  }
}

TEST(PoolingLayers, GlobalAverageAndFlattenGradients) {
  Rng rng(1);
  GlobalAveragePooling2D gap("gap");
  Tensor x = input({2, 3, 4, 5}, 140);
  gap.build(example_shape(x), rng);
  EXPECT_EQ(infer(gap, x).shape(), (Shape{2, 5}));
  gradcheck_layer(gap, x, 141);

  Flatten flat("flat");
  flat.build(example_shape(x), rng);
  const Tensor y = infer(flat, x);
  ASSERT_EQ(y.shape(), (Shape{2, 60}));
  EXPECT_EQ(y.to_vector(), x.to_vector());  // NHWC order is kept
  gradcheck_layer(flat, x, 142);
}

TEST(PoolingLayers, ErrorsNameTheLayer) {
  Rng rng(1);
  MaxPool2D pool("pool1");
  pool.build({8, 8, 4}, rng);
  EXPECT_EQ(error_of([&] { pool.forward(Tensor({2, 8, 8, 3}), false); }),
            "layer 'pool1' (MaxPooling2D): expected input [N, 8, 8, 4], got [2, 8, 8, 3]");
  EXPECT_NE(error_of([&] { AvgPool2D("avg", {3, 3}).build({2, 2, 1}, rng); })
                .find("layer 'avg' (AveragePooling2D)"),
            std::string::npos);
  GlobalAveragePooling2D gap("gap");
  gap.build({4, 4, 8}, rng);
  EXPECT_NE(error_of([&] { gap.forward(Tensor({2, 8}), false); }).find("layer 'gap'"),
            std::string::npos);
  Flatten flat("flat");
  flat.build({4, 4, 8}, rng);
  EXPECT_EQ(error_of([&] { flat.forward(Tensor({2, 4, 8, 4}), false); }),
            "layer 'flat' (Flatten): expected input [N, 4, 4, 8], got [2, 4, 8, 4]");
}

// ---- Config round trips -------------------------------------------------------------

TEST(ConvLayersConfig, RoundTripRebuildsTheSameLayer) {
  std::vector<std::unique_ptr<Layer>> layers;
  layers.push_back(std::make_unique<Conv2D>("conv", 4, std::array<int, 2>{3, 2},
                                            std::array<int, 2>{2, 1}, "same", false));
  layers.push_back(std::make_unique<DepthwiseConv2D>("dw", std::array<int, 2>{3, 3},
                                                     std::array<int, 2>{2, 2}, "valid"));
  layers.push_back(std::make_unique<MaxPool2D>("max", std::array<int, 2>{3, 3},
                                               std::array<int, 2>{2, 2}, "same"));
  layers.push_back(std::make_unique<AvgPool2D>("avg", std::array<int, 2>{2, 2}));
  layers.push_back(std::make_unique<GlobalAveragePooling2D>("gap"));
  layers.push_back(std::make_unique<Flatten>("flat"));
  layers.push_back(std::make_unique<Dense>("fc", 6));
  for (auto& layer : layers) {
    const Json config = layer->config();
    SCOPED_TRACE(config.dump());
    const std::string type = config.at("type").as_string();
    std::unique_ptr<Layer> copy;
    if (type == "Conv2D") copy = Conv2D::from_config(config);
    if (type == "DepthwiseConv2D") copy = DepthwiseConv2D::from_config(config);
    if (type == "MaxPooling2D") copy = MaxPool2D::from_config(config);
    if (type == "AveragePooling2D") copy = AvgPool2D::from_config(config);
    if (type == "GlobalAveragePooling2D") copy = GlobalAveragePooling2D::from_config(config);
    if (type == "Flatten") copy = Flatten::from_config(config);
    if (type == "Dense") copy = Dense::from_config(config);
    ASSERT_TRUE(copy) << type;
    EXPECT_EQ(copy->type(), layer->type());
    EXPECT_EQ(copy->name(), layer->name());
    EXPECT_EQ(copy->config().dump(), config.dump());
    // Built from the same seed, both compute the same function.
    const Shape example = type == "Dense" ? Shape{10} : Shape{7, 8, 3};
    Rng r1(9), r2(9);
    EXPECT_EQ(layer->build(example, r1), copy->build(example, r2));
    Shape batch = example;
    batch.insert(batch.begin(), 2);
    Rng rx(1);
    const Tensor x = random_tensor(batch, rx);
    EXPECT_EQ(infer(*layer, x).to_vector(), infer(*copy, x).to_vector());
  }
}

TEST(ConvLayersConfig, ReadsKerasStyleConfigs) {
  // Keras writes integers or lists, strides=None for pools, and its own extra fields.
  auto conv = Conv2D::from_config(Json::parse(
      R"({"type": "Conv2D", "name": "c", "filters": 8, "kernel_size": 3, "strides": 2,
          "padding": "same", "activation": "linear", "dilation_rate": [1, 1]})"));
  Rng rng(1);
  EXPECT_EQ(conv->build({9, 9, 2}, rng), (Shape{5, 5, 8}));
  EXPECT_EQ(conv->parameters().size(), 2u);  // use_bias defaults to true, as in Keras
  auto pool = MaxPool2D::from_config(Json::parse(
      R"({"type": "MaxPooling2D", "name": "p", "pool_size": [2, 2], "strides": null})"));
  EXPECT_EQ(pool->build({9, 9, 2}, rng), (Shape{4, 4, 2}));
  const std::string e = error_of([] {
    Conv2D::from_config(Json::parse(
        R"({"type": "Conv2D", "name": "c1", "filters": 8, "kernel_size": [3, 3], "activation": "relu"})"));
  });
  EXPECT_NE(e.find("layer 'c1'"), std::string::npos) << e;
  EXPECT_NE(e.find("relu"), std::string::npos) << e;
  EXPECT_THROW(DepthwiseConv2D::from_config(Json::parse(
                   R"({"type": "DepthwiseConv2D", "name": "d", "kernel_size": [3, 3], "depth_multiplier": 0})")),
               Error);
  // A Keras depth multiplier is read, not dropped: the layer outputs C * M channels.
  auto dm = DepthwiseConv2D::from_config(Json::parse(
      R"({"type": "DepthwiseConv2D", "name": "d", "kernel_size": [3, 3], "padding": "same", "depth_multiplier": 3})"));
  Rng rng2(2);
  EXPECT_EQ(dm->build({5, 5, 4}, rng2), (Shape{5, 5, 12}));
}

}  // namespace
