// Layers BatchNormalization, ReLU/ReLU6, Softmax, Dropout, the add() residual and the
// softmax cross-entropy loss: finite-difference gradient checks, running statistics,
// frozen behaviour, errors and config round trips.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "fer/autograd.h"
#include "fer/error.h"
#include "layers/activation.h"
#include "layers/add.h"
#include "layers/batchnorm.h"
#include "layers/dropout.h"
#include "layers/loss.h"
#include "tests/gradcheck.h"

using namespace fer;
using fer::testing::check_gradients;
using fer::testing::GradCheckOptions;
using fer::testing::random_tensor;

namespace {

// The shape of one example (what build() takes) from a batch shape.
Shape example_shape(const Shape& batch) { return Shape(batch.begin() + 1, batch.end()); }

// Pushes every value at least `margin` away from each kink, so a finite-difference step
// never crosses one (the derivative jumps there).
void avoid_kinks(Tensor& t, std::vector<float> kinks, float margin) {
  for (int64_t i = 0; i < t.numel(); ++i)
    for (float k : kinks) {
      float& v = t.data()[i];
      if (std::fabs(v - k) < margin) v = v < k ? k - margin : k + margin;
    }
}

// Round trip through the JSON text, as a model file would do.
Json reparse(const Json& j) { return Json::parse(j.dump()); }

}  // namespace

// ======================================================================================
// BatchNormalization
// ======================================================================================

TEST(BatchNormalization, BuildCreatesKerasParameters) {
  BatchNormalization bn("bn1");
  Rng rng(1);
  EXPECT_EQ(bn.build({6, 6, 5}, rng), (Shape{6, 6, 5}));
  const std::vector<Parameter*> params = bn.parameters();
  ASSERT_EQ(params.size(), 4u);
  const char* names[] = {"bn1/gamma", "bn1/beta", "bn1/moving_mean", "bn1/moving_variance"};
  const float init[] = {1.f, 0.f, 0.f, 1.f};
  const bool trainable[] = {true, true, false, false};
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(params[i]->name, names[i]);
    EXPECT_EQ(params[i]->value.shape(), (Shape{5}));
    EXPECT_EQ(params[i]->trainable, trainable[i]) << names[i];
    EXPECT_EQ(params[i]->value.requires_grad(), trainable[i]) << names[i];
    for (float v : params[i]->value.to_vector()) EXPECT_EQ(v, init[i]) << names[i];
  }
  // Without center and scale only the statistics remain.
  BatchNormalization plain("bn2", 1e-3f, 0.99f, /*center=*/false, /*scale=*/false);
  plain.build({3}, rng);
  ASSERT_EQ(plain.parameters().size(), 2u);
  EXPECT_EQ(plain.parameters()[0]->name, "bn2/moving_mean");
}

TEST(BatchNormalization, GradientsInTrainingMode) {
  // 4-D, 2-D, and batch 1 with spatial extent (the statistics then come from H*W).
  const Shape shapes[] = {{2, 3, 3, 5}, {6, 7}, {1, 4, 4, 3}};
  uint64_t seed = 10;
  for (const Shape& shape : shapes) {
    SCOPED_TRACE("input " + shape_str(shape));
    Rng rng(seed++);
    BatchNormalization bn("bn");
    bn.build(example_shape(shape), rng);
    // Non-trivial gamma and beta, so that their gradients and gamma's scaling of dx count.
    bn.gamma().copy_from(random_tensor(bn.gamma().shape(), rng, 0.5f, 1.5f));
    bn.beta().copy_from(random_tensor(bn.beta().shape(), rng));
    Tensor x = random_tensor(shape, rng, -1.f, 2.f);
    x.set_requires_grad(true);
    check_gradients([&]() { return bn.forward(x, true); },
                    {{"x", x}, {"gamma", bn.gamma()}, {"beta", bn.beta()}}, seed);
  }
}

TEST(BatchNormalization, GradientsInInferenceMode) {
  Rng rng(20);
  BatchNormalization bn("bn");
  bn.build({3, 3, 4}, rng);
  bn.gamma().copy_from(random_tensor({4}, rng, 0.5f, 1.5f));
  bn.beta().copy_from(random_tensor({4}, rng));
  bn.moving_mean().copy_from(random_tensor({4}, rng));
  bn.moving_variance().copy_from(random_tensor({4}, rng, 0.2f, 2.f));
  Tensor x = random_tensor({2, 3, 3, 4}, rng);
  x.set_requires_grad(true);
  check_gradients([&]() { return bn.forward(x, false); },
                  {{"x", x}, {"gamma", bn.gamma()}, {"beta", bn.beta()}});
  // In inference the gradient wrt x is exactly gamma / sqrt(var + eps) times dy.
  x.zero_grad();
  Tensor y = bn.forward(x, false);
  Tape::current().backward(y, Tensor(y.shape(), 1.f));
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int64_t c = i % 4;
    EXPECT_NEAR(x.grad()[i],
                bn.gamma().data()[c] / std::sqrt(bn.moving_variance().data()[c] + 1e-3), 1e-6);
  }
}

TEST(BatchNormalization, RunningStatisticsAfterOneTrainingStep) {
  // The 4 x 2 example of the kernel test: channel 0 = {1, 3, 5, 7} (mean 4, biased
  // variance 5), channel 1 = {0, 0, 2, 2} (mean 1, variance 1). From (0, 1), momentum
  // 0.99, unbiased variance = biased * 4/3:
  //   moving_mean = 0.01 * mean           = (0.04, 0.01)
  //   moving_var  = 0.99 + 0.01 * var*4/3 = (1.0566667, 1.0033333)
  Rng rng(1);
  BatchNormalization bn("bn");
  bn.build({2}, rng);
  const Tensor x({4, 2}, std::vector<float>{1, 0, 3, 0, 5, 2, 7, 2});
  // Inference leaves them alone.
  bn.forward(x, false);
  EXPECT_EQ(bn.moving_mean().to_vector(), (std::vector<float>{0, 0}));
  EXPECT_EQ(bn.moving_variance().to_vector(), (std::vector<float>{1, 1}));

  const Tensor y = bn.forward(x, true);
  EXPECT_NEAR(bn.moving_mean().data()[0], 0.04, 1e-7);
  EXPECT_NEAR(bn.moving_mean().data()[1], 0.01, 1e-7);
  EXPECT_NEAR(bn.moving_variance().data()[0], 0.99 + 0.01 * 5 * 4 / 3.0, 1e-6);
  EXPECT_NEAR(bn.moving_variance().data()[1], 0.99 + 0.01 * 1 * 4 / 3.0, 1e-6);
  // The output used the batch statistics: (1 - 4) / sqrt(5 + 0.001) for gamma 1, beta 0.
  EXPECT_NEAR(y.data()[0], -3 / std::sqrt(5.001), 1e-6);

  // A second step moves them again (and also under NoGradGuard: training is the switch).
  {
    NoGradGuard no_grad;
    bn.forward(x, true);
  }
  EXPECT_NEAR(bn.moving_mean().data()[0], 0.04 * 0.99 + 0.04, 1e-6);

  // 4-D: N=1, H=W=2, C=1 -- the four pixels are the M = 4 samples of the channel.
  BatchNormalization bn4("bn4", 1e-3f, 0.9f);
  bn4.build({2, 2, 1}, rng);
  bn4.forward(Tensor({1, 2, 2, 1}, std::vector<float>{1, 3, 5, 7}), true);
  EXPECT_NEAR(bn4.moving_mean().data()[0], 0.1 * 4, 1e-6);
  EXPECT_NEAR(bn4.moving_variance().data()[0], 0.9 + 0.1 * 5 * 4 / 3.0, 1e-6);
}

TEST(BatchNormalization, FrozenUsesRunningStatisticsAndNeverUpdatesThem) {
  Rng rng(30);
  BatchNormalization bn("bn");
  bn.build({3, 3, 4}, rng);
  bn.moving_mean().copy_from(random_tensor({4}, rng));
  bn.moving_variance().copy_from(random_tensor({4}, rng, 0.2f, 2.f));
  bn.set_frozen(true);
  EXPECT_FALSE(bn.gamma().requires_grad());
  EXPECT_FALSE(bn.beta().requires_grad());

  const std::vector<float> mean_before = bn.moving_mean().to_vector();
  const std::vector<float> var_before = bn.moving_variance().to_vector();
  Tensor x = random_tensor({2, 3, 3, 4}, rng, -2.f, 3.f);
  x.set_requires_grad(true);
  const Tensor y_train = bn.forward(x, true);
  Tape::current().clear();
  // Bit-identical statistics.
  ASSERT_EQ(std::memcmp(mean_before.data(), bn.moving_mean().data(), 4 * sizeof(float)), 0);
  ASSERT_EQ(std::memcmp(var_before.data(), bn.moving_variance().data(), 4 * sizeof(float)), 0);
  // Training output equals the inference output.
  const Tensor y_infer = bn.forward(x, false);
  Tape::current().clear();
  EXPECT_EQ(y_train.to_vector(), y_infer.to_vector());
  // And the gradient is the fixed affine map's.
  check_gradients([&]() { return bn.forward(x, true); }, {{"x", x}});
  ASSERT_EQ(std::memcmp(mean_before.data(), bn.moving_mean().data(), 4 * sizeof(float)), 0);

  // Unfreezing restores trainable gradients and batch statistics.
  bn.set_frozen(false);
  EXPECT_TRUE(bn.gamma().requires_grad());
  bn.forward(x, true);
  Tape::current().clear();
  EXPECT_NE(bn.moving_mean().to_vector(), mean_before);
}

TEST(BatchNormalization, WithoutCenterAndScale) {
  Rng rng(40);
  BatchNormalization bn("bn", 1e-3f, 0.99f, false, false);
  bn.build({5}, rng);
  Tensor x = random_tensor({8, 5}, rng);
  x.set_requires_grad(true);
  check_gradients([&]() { return bn.forward(x, true); }, {{"x", x}});
  // Normalized output: zero mean per channel.
  NoGradGuard no_grad;
  const Tensor y = bn.forward(x, true);
  for (int c = 0; c < 5; ++c) {
    double s = 0;
    for (int r = 0; r < 8; ++r) s += y.data()[r * 5 + c];
    EXPECT_NEAR(s, 0, 1e-5);
  }
}

TEST(BatchNormalization, ErrorsNameTheLayerAndShapes) {
  Rng rng(1);
  BatchNormalization bn("bn_block3");
  EXPECT_THROW(bn.forward(Tensor({2, 3}), true), Error);  // not built
  bn.build({4, 4, 8}, rng);
  try {
    bn.forward(Tensor({2, 4, 4, 7}), true);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("bn_block3"), std::string::npos) << msg;
    EXPECT_NE(msg.find("BatchNormalization"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[N, 4, 4, 8]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[2, 4, 4, 7]"), std::string::npos) << msg;
  }
  EXPECT_THROW(bn.build({}, rng), Error);
  EXPECT_THROW(BatchNormalization("bad", 0.f), Error);
  EXPECT_THROW(BatchNormalization("bad", 1e-3f, 1.5f), Error);
}

TEST(BatchNormalization, ConfigRoundTrip) {
  BatchNormalization bn("bn7", 1e-5f, 0.9f, false, true);
  const Json j = reparse(bn.config());
  EXPECT_EQ(j.at("type").as_string(), "BatchNormalization");
  const std::unique_ptr<Layer> copy = BatchNormalization::from_config(j);
  auto* b = dynamic_cast<BatchNormalization*>(copy.get());
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->name(), "bn7");
  EXPECT_EQ(b->epsilon(), 1e-5f);
  EXPECT_EQ(b->momentum(), 0.9f);
  EXPECT_EQ(b->config().dump(), bn.config().dump());
  // Missing fields take the Keras defaults.
  Json minimal = Json::object();
  minimal["name"] = "bn8";
  auto* d = dynamic_cast<BatchNormalization*>(BatchNormalization::from_config(minimal).release());
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->epsilon(), 1e-3f);
  EXPECT_EQ(d->momentum(), 0.99f);
  EXPECT_TRUE(d->config().at("center").as_bool());
  delete d;
}

// ======================================================================================
// ReLU, ReLU6, Softmax
// ======================================================================================

TEST(ReLU, ForwardAndGradients) {
  Rng rng(50);
  std::unique_ptr<ReLU> relu = make_relu("relu");
  EXPECT_EQ(relu->build({4, 4, 3}, rng), (Shape{4, 4, 3}));
  EXPECT_EQ(relu->max_value(), 0.f);
  const Tensor probe({1, 4}, std::vector<float>{-2, 0, 3, 9});
  EXPECT_EQ(relu->forward(probe, false).to_vector(), (std::vector<float>{0, 0, 3, 9}));

  GradCheckOptions opt;
  Tensor x = random_tensor({2, 4, 4, 3}, rng, -3.f, 3.f);
  avoid_kinks(x, {0.f}, 5 * float(opt.step));
  x.set_requires_grad(true);
  check_gradients([&]() { return relu->forward(x, true); }, {{"x", x}}, 1, opt);
}

TEST(ReLU, Relu6ForwardAndGradients) {
  Rng rng(51);
  std::unique_ptr<ReLU> relu6 = make_relu6("relu6");
  relu6->build({10}, rng);
  EXPECT_EQ(relu6->max_value(), 6.f);
  const Tensor probe({1, 4}, std::vector<float>{-2, 0, 3, 9});
  EXPECT_EQ(relu6->forward(probe, false).to_vector(), (std::vector<float>{0, 0, 3, 6}));

  GradCheckOptions opt;
  // Inputs on both flat parts and the slope, none within 5 steps of 0 or 6.
  Tensor x = random_tensor({6, 10}, rng, -2.f, 8.f);
  avoid_kinks(x, {0.f, 6.f}, 5 * float(opt.step));
  x.set_requires_grad(true);
  check_gradients([&]() { return relu6->forward(x, true); }, {{"x", x}}, 2, opt);
  // The flat parts pass exactly nothing.
  x.zero_grad();
  Tensor y = relu6->forward(x, true);
  Tape::current().backward(y, Tensor(y.shape(), 1.f));
  for (int64_t i = 0; i < x.numel(); ++i) {
    const float v = x.data()[i];
    EXPECT_EQ(x.grad()[i], (v > 0 && v < 6) ? 1.f : 0.f) << "x = " << v;
  }
}

TEST(ReLU, ConfigRoundTripAndErrors) {
  for (float max_value : {0.f, 6.f}) {
    ReLU relu("act", max_value);
    const Json j = reparse(relu.config());
    EXPECT_EQ(j.at("type").as_string(), "ReLU");
    // Keras writes null for "no cap".
    EXPECT_EQ(j.at("max_value").is_null(), max_value == 0.f);
    auto copy = ReLU::from_config(j);
    auto* r = dynamic_cast<ReLU*>(copy.get());
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r->name(), "act");
    EXPECT_EQ(r->max_value(), max_value);
  }
  EXPECT_THROW(ReLU("act", 3.f), Error);
}

TEST(Softmax, ForwardAndGradients) {
  Rng rng(60);
  Softmax softmax("probs");
  EXPECT_EQ(softmax.build({7}, rng), (Shape{7}));
  for (const Shape& shape : {Shape{3, 7}, Shape{2, 2, 2, 4}}) {
    SCOPED_TRACE("input " + shape_str(shape));
    Tensor x = random_tensor(shape, rng, -3.f, 3.f);
    x.set_requires_grad(true);
    check_gradients([&]() { return softmax.forward(x, true); }, {{"x", x}});
    // Rows sum to one.
    NoGradGuard no_grad;
    const Tensor y = softmax.forward(x, false);
    const int64_t K = shape.back();
    for (int64_t r = 0; r < y.numel() / K; ++r) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) s += y.data()[r * K + k];
      EXPECT_NEAR(s, 1.0, 1e-6);
    }
  }
  const Json j = reparse(softmax.config());
  EXPECT_EQ(j.at("type").as_string(), "Softmax");
  EXPECT_EQ(Softmax::from_config(j)->config().dump(), softmax.config().dump());
  Json other_axis = j;
  other_axis["axis"] = 1;
  EXPECT_THROW(Softmax::from_config(other_axis), Error);
}

// ======================================================================================
// Dropout
// ======================================================================================

TEST(Dropout, InvertedScalingAndIdentityInInference) {
  Rng rng(70);
  const float rate = 0.3f;
  Dropout drop("drop", rate);
  drop.build({100, 200}, rng);
  const Tensor x = random_tensor({1, 100, 200}, rng, 0.5f, 1.5f);  // no zeros in x
  // Inference: the identity (the very same tensor).
  EXPECT_EQ(drop.forward(x, false).impl(), x.impl());
  // Training: each value is dropped (0) or scaled by 1/(1 - rate).
  const Tensor y = drop.forward(x, true);
  const float keep_scale = 1.f / (1.f - rate);
  int64_t kept = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    if (y.data()[i] == 0.f) continue;
    ++kept;
    ASSERT_EQ(y.data()[i], x.data()[i] * keep_scale) << i;
  }
  // 20000 Bernoulli(0.7) draws: the kept fraction is 0.7 within a few standard
  // deviations (0.0032).
  EXPECT_NEAR(double(kept) / x.numel(), 1 - rate, 0.015);
  // A new forward draws a new mask.
  EXPECT_NE(drop.forward(x, true).to_vector(), y.to_vector());
  // rate 0: the identity even in training.
  Dropout none("none", 0.f);
  none.build({3}, rng);
  const Tensor small({2, 3}, 1.f);
  EXPECT_EQ(none.forward(small, true).impl(), small.impl());
}

TEST(Dropout, SeedsMakeMasksReproducible) {
  const Tensor x({4, 50}, 1.f);
  auto mask_of = [&](int64_t seed, uint64_t build_seed) {
    Dropout drop("drop", 0.5f, seed);
    Rng rng(build_seed);
    drop.build({50}, rng);
    return drop.forward(x, true).to_vector();
  };
  // Own seed: same mask whatever the build rng.
  EXPECT_EQ(mask_of(7, 1), mask_of(7, 2));
  EXPECT_NE(mask_of(7, 1), mask_of(8, 1));
  // No seed: the mask follows the build rng.
  EXPECT_EQ(mask_of(-1, 3), mask_of(-1, 3));
  EXPECT_NE(mask_of(-1, 3), mask_of(-1, 4));
}

TEST(Dropout, GradientWithAFixedMask) {
  Rng rng(71);
  Tensor x = random_tensor({3, 4, 4, 2}, rng);
  x.set_requires_grad(true);
  // A fresh layer with the same seed for every evaluation: the same mask each time.
  auto forward = [&]() {
    Dropout drop("drop", 0.4f, 11);
    Rng build_rng(0);
    drop.build({4, 4, 2}, build_rng);
    return drop.forward(x, true);
  };
  check_gradients(forward, {{"x", x}});
  // dx = dy * mask exactly: 0 or 1/(1 - 0.4) for dy = 1.
  x.zero_grad();
  Tensor y = forward();
  Tape::current().backward(y, Tensor(y.shape(), 1.f));
  for (int64_t i = 0; i < x.numel(); ++i) {
    const float expected = y.data()[i] == 0.f ? 0.f : 1.f / (1.f - 0.4f);
    EXPECT_EQ(x.grad()[i], expected) << i;
  }
}

TEST(Dropout, ConfigRoundTripAndErrors) {
  for (int64_t seed : {int64_t{-1}, int64_t{3}}) {
    Dropout drop("dropout_1", 0.25f, seed);
    const Json j = reparse(drop.config());
    EXPECT_EQ(j.at("type").as_string(), "Dropout");
    EXPECT_EQ(j.at("seed").is_null(), seed < 0);
    auto copy = Dropout::from_config(j);
    auto* d = dynamic_cast<Dropout*>(copy.get());
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(d->rate(), 0.25f);
    EXPECT_EQ(d->config().dump(), drop.config().dump());
  }
  EXPECT_THROW(Dropout("d", 1.f), Error);
  EXPECT_THROW(Dropout("d", -0.1f), Error);
}

// ======================================================================================
// add (residual connection)
// ======================================================================================

TEST(Add, ValuesGradientsAndErrors) {
  Rng rng(80);
  Tensor a = random_tensor({2, 3, 3, 4}, rng);
  Tensor b = random_tensor({2, 3, 3, 4}, rng);
  const Tensor y = add(a, b);
  for (int64_t i = 0; i < a.numel(); ++i) EXPECT_EQ(y.data()[i], a.data()[i] + b.data()[i]);
  EXPECT_FALSE(y.requires_grad());

  a.set_requires_grad(true);
  b.set_requires_grad(true);
  check_gradients([&]() { return add(a, b); }, {{"a", a}, {"b", b}});
  // Only one side requiring a gradient, and the same tensor on both sides.
  Tensor c = random_tensor({5}, rng);
  c.set_requires_grad(true);
  const Tensor constant = random_tensor({5}, rng);
  Tensor y2 = add(c, constant);
  Tape::current().backward(y2, Tensor({5}, 1.f));
  EXPECT_FALSE(constant.has_grad());
  c.zero_grad();
  Tensor y3 = add(c, c);
  Tape::current().backward(y3, Tensor({5}, 1.f));
  for (int64_t i = 0; i < 5; ++i) EXPECT_EQ(c.grad()[i], 2.f);
  // The first gradient into a is y's buffer itself (moved, not copied); b's a copy. With
  // the same fresh tensor on both sides: 2 dy again.
  const Tensor seed = random_tensor({5}, rng);
  Tensor d = random_tensor({5}, rng), e = random_tensor({5}, rng);
  d.set_requires_grad(true);
  e.set_requires_grad(true);
  Tensor y4 = add(d, e);
  Tape::current().backward(y4, seed);
  EXPECT_FALSE(y4.has_grad());
  EXPECT_EQ(d.grad_tensor().to_vector(), seed.to_vector());
  EXPECT_EQ(e.grad_tensor().to_vector(), seed.to_vector());
  Tensor f = random_tensor({5}, rng);
  f.set_requires_grad(true);
  Tensor y5 = add(f, f);
  Tape::current().backward(y5, seed);
  for (int64_t i = 0; i < 5; ++i) EXPECT_EQ(f.grad()[i], 2.f * seed.data()[i]);

  try {
    add(Tensor({2, 4, 4, 8}), Tensor({2, 4, 4, 16}));
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("[2, 4, 4, 8]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[2, 4, 4, 16]"), std::string::npos) << msg;
  }
}

// ======================================================================================
// softmax cross-entropy loss
// ======================================================================================

TEST(Loss, ValueAndGradientByHand) {
  // Logits (0, 0, 0) with label 1: loss ln 3, gradient (p - onehot) / N = (1/3, -2/3, 1/3).
  Tensor z({1, 3}, 0.f);
  z.set_requires_grad(true);
  Tensor loss = softmax_cross_entropy(z, {1});
  EXPECT_EQ(loss.shape(), Shape{});
  EXPECT_NEAR(loss.item(), std::log(3.0), 1e-6);
  backward(loss);
  EXPECT_NEAR(z.grad()[0], 1 / 3.0, 1e-6);
  EXPECT_NEAR(z.grad()[1], -2 / 3.0, 1e-6);
  EXPECT_NEAR(z.grad()[2], 1 / 3.0, 1e-6);
  // Without a gradient wanted nothing is recorded.
  NoGradGuard no_grad;
  EXPECT_FALSE(softmax_cross_entropy(z, {1}).requires_grad());
  EXPECT_EQ(Tape::current().size(), 0u);
}

TEST(Loss, GradientsWithSmoothingAndClassWeights) {
  Rng rng(90);
  const std::vector<int> labels = {0, 3, 6, 2, 2, 5, 1, 4};
  const std::vector<float> weights = {1.f, 2.5f, 0.5f, 1.f, 3.f, 0.7f, 1.2f};  // 7 classes
  for (float eps : {0.f, 0.1f}) {
    for (bool weighted : {false, true}) {
      SCOPED_TRACE("eps " + std::to_string(eps) + (weighted ? " weighted" : ""));
      Tensor z = random_tensor({8, 7}, rng, -3.f, 3.f);
      z.set_requires_grad(true);
      GradCheckOptions opt;
      opt.step = 1e-3;  // a scalar output: float rounding of the loss is the limit
      opt.atol = 1e-3;
      check_gradients(
          [&]() {
            return softmax_cross_entropy(z, labels, eps,
                                         weighted ? weights : std::vector<float>{});
          },
          {{"logits", z}}, 3, opt);
    }
  }
}

TEST(Loss, ErrorsNameWhatIsWrong) {
  const Tensor z({3, 4}, 0.f);
  try {
    softmax_cross_entropy(z, {0, 1, 7});
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("labels[2] = 7"), std::string::npos) << msg;
    EXPECT_NE(msg.find("4 classes"), std::string::npos) << msg;
  }
  EXPECT_THROW(softmax_cross_entropy(z, {0, -1, 2}), Error);
  EXPECT_THROW(softmax_cross_entropy(z, {0, 1}), Error);                     // count
  EXPECT_THROW(softmax_cross_entropy(z, {0, 1, 2}, 0.f, {1.f, 1.f}), Error);  // weights size
  EXPECT_THROW(softmax_cross_entropy(z, {0, 1, 2}, 1.f), Error);             // smoothing
  EXPECT_THROW(softmax_cross_entropy(z, {0, 0, 0}, 0.f, {0.f, 1.f, 1.f, 1.f}), Error);  // W = 0
  EXPECT_THROW(softmax_cross_entropy(Tensor({12}), std::vector<int>(12, 0)), Error);    // rank
}

TEST(Loss, SoftmaxProbabilities) {
  const Tensor z({2, 3}, std::vector<float>{0, 1, 2, 5, 5, 5});
  const std::vector<float> p = softmax_probabilities(z);
  ASSERT_EQ(p.size(), 6u);
  const double e = std::exp(1.0), total = 1 + e + e * e;
  EXPECT_NEAR(p[0], 1 / total, 1e-7);
  EXPECT_NEAR(p[2], e * e / total, 1e-7);
  for (int k = 3; k < 6; ++k) EXPECT_NEAR(p[k], 1 / 3.0, 1e-7);
  EXPECT_THROW(softmax_probabilities(Tensor({3})), Error);
}
