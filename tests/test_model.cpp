// The cnn3 architecture, model files (save/load/rebuild from the file alone), and the
// errors a user sees for weights that do not fit.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "fer/architectures.h"
#include "fer/autograd.h"
#include "fer/error.h"
#include "fer/model.h"
#include "fer/npz.h"
#include "layers/loss.h"
#include "tests/gradcheck.h"

using namespace fer;

namespace {
std::string temp_path(const std::string& name) {
  return std::string(FER_BINARY_DIR) + "/test_model_" + name;
}
}  // namespace

TEST(Cnn3, ShapesAndParameterCount) {
  Model m = Model::from_architecture(make_architecture("cnn3"));
  EXPECT_EQ(m.input_shape(), (Shape{48, 48, 1}));
  ASSERT_EQ(m.classes().size(), 7u);
  EXPECT_EQ(m.classes()[3], "happy");
  // Counted by hand: convs 288 + 9216 + 18432 + 36864 + 73728 + 147456 (no bias),
  // BatchNorms 4 x (32+32+64+64+128+128+256), Dense 4608*256 (no bias), head 256*7 + 7.
  const int64_t convs = 288 + 9216 + 18432 + 36864 + 73728 + 147456;
  const int64_t bns = 4 * (32 + 32 + 64 + 64 + 128 + 128 + 256);
  const int64_t dense = 4608 * 256 + 256 * 7 + 7;
  EXPECT_EQ(m.parameter_count(), convs + bns + dense);
  // Trainable: everything but the moving mean and variance.
  EXPECT_EQ(m.parameter_count(true), convs + bns / 2 + dense);

  Rng rng(3);
  Tensor x = fer::testing::random_tensor({2, 48, 48, 1}, rng, 0, 1);
  NoGradGuard no_grad;
  Tensor y = m.forward(x, false);
  EXPECT_EQ(y.shape(), (Shape{2, 7}));
}

TEST(Cnn3, WrongInputIsAClearError) {
  Model m = Model::from_architecture(make_architecture("cnn3"));
  Tensor x({2, 32, 32, 1});
  try {
    m.check_input(x);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[N, 48, 48, 1]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(make_architecture("resnet9000"), Error);
}

TEST(ModelFile, SaveLoadRoundTripRebuildsFromTheFileAlone) {
  Json opts = Json::object();
  opts["size"] = 40;
  Model a = Model::from_architecture(make_architecture("cnn3", opts), 7);
  // Give the BatchNorm statistics non-default values so they are checked too.
  for (Parameter* p : a.parameters())
    for (int64_t i = 0; i < p->value.numel(); ++i) p->value.data()[i] += 0.001f * (i % 13);
  const std::string path = temp_path("roundtrip.npz");
  a.save(path);
  Model b = Model::load(path);
  EXPECT_EQ(b.input_shape(), (Shape{40, 40, 1}));
  auto pa = a.parameters(), pb = b.parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (size_t i = 0; i < pa.size(); ++i) {
    EXPECT_EQ(pa[i]->name, pb[i]->name);
    EXPECT_EQ(pa[i]->value.to_vector(), pb[i]->value.to_vector()) << pa[i]->name;
  }
  Rng rng(5);
  Tensor x = fer::testing::random_tensor({3, 40, 40, 1}, rng, 0, 1);
  NoGradGuard no_grad;
  EXPECT_EQ(a.forward(x, false).to_vector(), b.forward(x, false).to_vector());
  std::remove(path.c_str());
}

TEST(ModelFile, WeightsThatDoNotFitAreListed) {
  Model a = Model::from_architecture(make_architecture("cnn3"));
  Json opts = Json::object();
  opts["num_classes"] = 5;
  Model b = Model::from_architecture(make_architecture("cnn3", opts));
  const std::string path = temp_path("five.npz");
  b.save(path);
  const NpzArrays arrays = read_npz(path);
  try {
    a.load_weights(arrays, path, false);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("predictions/kernel"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[256, 5]"), std::string::npos) << msg;
  }
  // --skip-mismatched: the backbone loads, the new head keeps its initialization.
  const Tensor head_before = a.parameters().back()->value.clone();
  const int loaded = a.load_weights(arrays, path, true);
  EXPECT_EQ(loaded, static_cast<int>(a.parameters().size()) - 2);
  EXPECT_EQ(a.parameters().back()->value.to_vector(), head_before.to_vector());
  EXPECT_EQ(a.parameters().front()->value.to_vector(), b.parameters().front()->value.to_vector());
  std::remove(path.c_str());
}

TEST(ModelFile, NotAModelFile) {
  const std::string path = temp_path("plain.npz");
  write_npz(path, {{"x", Tensor({2}, 1.f)}}, {});
  try {
    Model::load(path);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a fer model file"), std::string::npos) << e.what();
  }
  std::remove(path.c_str());
}

TEST(Cnn3, TrainingStepLowersTheLossOnAFixedBatch) {
  // The whole stack on one batch: forward in training mode, backward, and plain gradient
  // descent on the parameters must fit 8 random images to 8 labels.
  Json opts = Json::object();
  opts["dropout"] = 0.0;
  opts["block_dropout"] = 0.0;
  opts["size"] = 24;
  Model m = Model::from_architecture(make_architecture("cnn3", opts));
  Rng rng(11);
  Tensor x = fer::testing::random_tensor({8, 24, 24, 1}, rng, 0, 1);
  std::vector<int> labels = {0, 1, 2, 3, 4, 5, 6, 0};
  double first = 0, last = 0;
  for (int step = 0; step < 30; ++step) {
    Tensor logits = m.forward(x, true);
    Tensor loss = softmax_cross_entropy(logits, labels);
    if (step == 0) first = loss.item();
    last = loss.item();
    backward(loss);
    for (Parameter* p : m.parameters()) {
      if (!p->trainable) continue;
      for (int64_t i = 0; i < p->value.numel(); ++i) p->value.data()[i] -= 0.05f * p->value.grad()[i];
      p->value.zero_grad();
    }
  }
  EXPECT_LT(last, first * 0.3) << "first " << first << " last " << last;
}
