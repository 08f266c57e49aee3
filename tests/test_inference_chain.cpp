// Image-chunked inference (Sequential::forward_chain): under NoGradGuard a convolution,
// the BatchNormalization after it and the ReLU/ReLU6 that one fuses run together on a few
// images at a time, threads taking chunks. Checked here:
// - it runs exactly when it should: inference, no gradient recording, fusion on, a batch
//   with at least as many chunks as threads (a counting layer sees every image once);
// - it gives what the layers give one by one (fusion off), for whole networks (MobileNet
//   V1 and V2, cnn3) with non-trivial BatchNorm statistics, at odd batch sizes.
#include <gtest/gtest.h>

#include <omp.h>

#include <atomic>
#include <cmath>
#include <memory>
#include <string>

#include "fer/architectures.h"
#include "fer/autograd.h"
#include "fer/model.h"
#include "fer/rng.h"
#include "layers/activation.h"
#include "layers/batchnorm.h"
#include "layers/sequential.h"

using namespace fer;

namespace {

// Restores the fusion switch and thread count however the test ends.
struct Restore {
  bool fusion = Sequential::fusion();
  int threads = omp_get_max_threads();
  ~Restore() {
    Sequential::set_fusion(fusion);
    omp_set_num_threads(threads);
  }
};

Tensor random_tensor(const Shape& shape, Rng& rng, double lo = -1.0, double hi = 1.0) {
  Tensor t(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<float>(rng.uniform(lo, hi));
  return t;
}

// y = 2x, image by image; counts the images and calls it ran chunked.
class Doubler : public Layer {
 public:
  explicit Doubler(std::string name) : Layer(std::move(name)) {}
  std::string type() const override { return "Doubler"; }
  Shape build(const Shape& input, Rng&) override { return shape_ = input; }
  Tensor forward(const Tensor& x, bool) override {
    Tensor y(x.shape());
    for (int64_t i = 0; i < x.numel(); ++i) y.data()[i] = 2 * x.data()[i];
    return y;
  }
  bool can_forward_images(const Tensor& x, int) const override { return x.ndim() == 4; }
  void forward_images(const float* x, int count, float* y) const override {
    int64_t per = 1;
    for (int64_t d : shape_) per *= d;
    for (int64_t i = 0; i < count * per; ++i) y[i] = 2 * x[i];
    images += count;
    ++calls;
  }
  mutable std::atomic<int> images{0}, calls{0};

 private:
  Shape shape_;
};

struct Chain {
  Sequential net{"chain"};
  Doubler* doubler;
  BatchNormalization* bn;
  Chain() {
    auto d = std::make_unique<Doubler>("double");
    doubler = d.get();
    auto b = std::make_unique<BatchNormalization>("bn");
    bn = b.get();
    net.add(std::move(d)).add(std::move(b)).add(std::make_unique<ReLU>("relu6", 6.f));
    Rng rng(3);
    net.build({5, 4, 3}, rng);
    bn->moving_mean() = random_tensor({3}, rng);
    bn->moving_variance() = random_tensor({3}, rng, 0.2, 2.0);
    bn->gamma() = random_tensor({3}, rng, 0.5, 4.0);
    bn->beta() = random_tensor({3}, rng);
  }
};

TEST(InferenceChain, RunsChunkedOnlyForInferenceWithoutGradients) {
  Restore restore;
  omp_set_num_threads(2);
  Sequential::set_fusion(true);
  Chain c;
  Rng rng(4);
  const Tensor x = random_tensor({9, 5, 4, 3}, rng, -3, 3);
  Sequential::set_fusion(false);
  const Tensor want = [&] { NoGradGuard g; return c.net.forward(x, false); }();
  Sequential::set_fusion(true);
  {
    NoGradGuard g;
    const Tensor y = c.net.forward(x, false);
    EXPECT_EQ(c.doubler->images.load(), 9);  // every image once, in chunks
    EXPECT_GE(c.doubler->calls.load(), 2);
    ASSERT_EQ(y.shape(), want.shape());
    for (int64_t i = 0; i < y.numel(); ++i) {
      ASSERT_NEAR(y.data()[i], want.data()[i], 1e-5f) << i;
      ASSERT_GE(y.data()[i], 0.f);  // the ReLU6 ran inside the chain
      ASSERT_LE(y.data()[i], 6.f);
    }
  }
  c.doubler->images = 0;
  {  // recording gradients: the layers run one by one (the backward needs their tape)
    const Tensor y = c.net.forward(x, false);
    NoGradGuard g;
    const Tensor y2 = c.net.forward(random_tensor({9, 5, 4, 3}, rng), true);  // training
    EXPECT_EQ(c.doubler->images.load(), 0);
  }
  {  // one thread, or a batch of one: nothing to share out, the layers run whole
    NoGradGuard g;
    omp_set_num_threads(1);
    c.net.forward(x, false);
    omp_set_num_threads(2);
    c.net.forward(random_tensor({1, 5, 4, 3}, rng), false);
    EXPECT_EQ(c.doubler->images.load(), 0);
  }
}

Json options(std::initializer_list<std::pair<const char*, Json>> kv) {
  Json j = Json::object();
  for (const auto& [k, v] : kv) j[k] = v;
  return j;
}

// Non-trivial running statistics everywhere, so a skipped or doubled normalization shows.
void randomize_batchnorm(Layer& layer, Rng& rng) {
  if (auto* s = dynamic_cast<Sequential*>(&layer)) {
    for (size_t i = 0; i < s->size(); ++i) randomize_batchnorm(s->layer(i), rng);
    return;
  }
  if (auto* bn = dynamic_cast<BatchNormalization*>(&layer)) {
    const int64_t c = bn->moving_mean().numel();
    bn->moving_mean() = random_tensor({c}, rng, -0.2, 0.2);
    bn->moving_variance() = random_tensor({c}, rng, 0.5, 2.0);
    bn->beta() = random_tensor({c}, rng, -0.5, 0.5);
  }
}

void expect_same_with_and_without_chains(const std::string& name, const Json& opts, int batch) {
  Restore restore;
  omp_set_num_threads(2);
  Model m = Model::from_architecture(make_architecture(name, opts), 7);
  Rng rng(5);
  randomize_batchnorm(m.net(), rng);
  const Shape in = m.input_shape();
  Shape shape = {batch};
  shape.insert(shape.end(), in.begin(), in.end());
  const Tensor x = random_tensor(shape, rng, 0, 1);
  NoGradGuard g;
  Sequential::set_fusion(false);
  const Tensor want = m.forward(x, false);
  Sequential::set_fusion(true);
  const Tensor got = m.forward(x, false);
  ASSERT_EQ(got.shape(), want.shape());
  float scale = 1.f;
  for (int64_t i = 0; i < want.numel(); ++i) scale = std::max(scale, std::fabs(want.data()[i]));
  for (int64_t i = 0; i < want.numel(); ++i)
    ASSERT_NEAR(got.data()[i], want.data()[i], 1e-4f * scale) << name << " at " << i;
}

TEST(InferenceChain, MobileNetV1MatchesTheUnfusedLayers) {
  expect_same_with_and_without_chains("mobilenet_v1", options({{"size", 64}, {"alpha", 0.25}}), 7);
}

TEST(InferenceChain, MobileNetV2MatchesTheUnfusedLayers) {
  expect_same_with_and_without_chains("mobilenet_v2", options({{"size", 64}, {"alpha", 0.35}}), 5);
}

TEST(InferenceChain, Cnn3MatchesTheUnfusedLayers) {
  expect_same_with_and_without_chains("cnn3", Json::object(), 6);
}

}  // namespace
