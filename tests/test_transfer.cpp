// Transfer learning: a frozen backbone really stays fixed (weights AND BatchNorm running
// statistics, bit for bit) through an optimizer step, while the head trains; and the
// `fer train` flags built on it: --weights, --freeze-backbone, --unfreeze-epoch,
// --skip-mismatched.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "fer/architectures.h"
#include "fer/autograd.h"
#include "fer/model.h"
#include "fer/npz.h"
#include "layers/loss.h"
#include "optim/optimizer.h"
#include "tests/gradcheck.h"
#include "tests/command.h"

using namespace fer;

namespace {

// ---- one training step in-process -------------------------------------------------

// A small model whose BatchNorm statistics look trained. A fresh one's (mean 0, variance
// 1) are far from its activations' real ones (Keras's Glorot fans make the depthwise
// kernels small), and a frozen backbone running on them shrinks its output to ~1e-17 --
// too little signal for the head to change. So the statistics are first calibrated, as
// pretrained weights would bring them: a copy with BatchNorm momentum 0 takes one
// batch's statistics in a single training-mode pass, and every array is copied over.
Model small_model(const std::string& name) {
  Json o = Json::object();
  o["size"] = 32;
  o["alpha"] = name == "mobilenet_v1" ? 0.25 : 0.35;
  Model model = Model::from_architecture(make_architecture(name, o), 7);
  o["bn_momentum"] = 0.0;
  Model calibrate = Model::from_architecture(make_architecture(name, o), 7);
  {
    NoGradGuard no_grad;
    Rng rng(3);
    calibrate.forward(fer::testing::random_tensor({8, 32, 32, 3}, rng), /*training=*/true);
  }
  auto from = calibrate.parameters(), to = model.parameters();
  EXPECT_EQ(from.size(), to.size());
  for (size_t i = 0; i < from.size() && i < to.size(); ++i) to[i]->value.copy_from(from[i]->value);
  return model;
}

Json optimizer_options(const std::string& optimizer) {
  Json o = Json::object();
  o["lr"] = optimizer == "sgd" ? 0.1 : 0.01;
  if (optimizer == "sgd") o["momentum"] = 0.9;
  return o;
}

// Forward in training mode, softmax cross-entropy, backward, one optimizer step -- what
// fer/trainer.cpp does for each batch.
void training_step(Model& model, const std::string& optimizer) {
  Rng rng(5);
  const Tensor x = fer::testing::random_tensor({4, 32, 32, 3}, rng);
  const std::vector<int> labels = {0, 3, 6, 2};
  auto opt = optim::make_optimizer(optimizer, model.parameters(), optimizer_options(optimizer));
  Tensor logits = model.forward(x, /*training=*/true);
  Tensor loss = softmax_cross_entropy(logits, labels);
  backward(loss);
  opt->step();
  opt->zero_grad();
}

using Snapshot = std::map<std::string, std::vector<float>>;

Snapshot snapshot(Layer& layer) {
  Snapshot s;
  for (Parameter* p : layer.parameters()) s[p->name] = p->value.to_vector();
  return s;
}

bool bit_identical(const std::vector<float>& a, const float* b, size_t n) {
  return a.size() == n && std::memcmp(a.data(), b, n * sizeof(float)) == 0;
}

bool is_statistic(const std::string& name) {
  return name.find("/moving_mean") != std::string::npos ||
         name.find("/moving_variance") != std::string::npos;
}

struct FreezeCase {
  const char* model;
  const char* optimizer;
};

class FrozenBackbone : public ::testing::TestWithParam<FreezeCase> {};

TEST_P(FrozenBackbone, StepLeavesEveryBackboneArrayBitIdenticalAndTrainsTheHead) {
  Model model = small_model(GetParam().model);
  Layer& backbone = model.net().layer(0);
  Layer& head = model.net().layer(1);
  ASSERT_EQ(backbone.name(), "backbone");
  backbone.set_frozen(true);
  const Snapshot before = snapshot(backbone), head_before = snapshot(head);
  int statistics = 0;
  for (const auto& [name, v] : before) statistics += is_statistic(name);
  ASSERT_GT(statistics, 20) << "expected the BatchNorm statistics among the backbone's arrays";

  training_step(model, GetParam().optimizer);

  for (Parameter* p : backbone.parameters())
    EXPECT_TRUE(bit_identical(before.at(p->name), p->value.data(), p->value.numel()))
        << p->name << " changed although the backbone is frozen";
  for (Parameter* p : head.parameters())
    EXPECT_FALSE(bit_identical(head_before.at(p->name), p->value.data(), p->value.numel()))
        << p->name << " (head) did not train";
  EXPECT_FALSE(head.parameters().empty());
}

TEST_P(FrozenBackbone, UnfrozenBackboneTrainsAndUpdatesItsStatistics) {
  Model model = small_model(GetParam().model);
  Layer& backbone = model.net().layer(0);
  backbone.set_frozen(true);
  backbone.set_frozen(false);  // unfreezing restores training (the --unfreeze-epoch path)
  const Snapshot before = snapshot(backbone);
  training_step(model, GetParam().optimizer);
  int changed_weights = 0, changed_statistics = 0;
  for (Parameter* p : backbone.parameters()) {
    const bool changed = !bit_identical(before.at(p->name), p->value.data(), p->value.numel());
    EXPECT_TRUE(changed) << p->name << " did not change in a training step";
    (is_statistic(p->name) ? changed_statistics : changed_weights) += changed;
  }
  EXPECT_GT(changed_weights, 20);
  EXPECT_GT(changed_statistics, 20);
}

INSTANTIATE_TEST_SUITE_P(Models, FrozenBackbone,
                         ::testing::Values(FreezeCase{"mobilenet_v1", "adam"},
                                           FreezeCase{"mobilenet_v1", "sgd"},
                                           FreezeCase{"mobilenet_v2", "adam"},
                                           FreezeCase{"mobilenet_v2", "sgd"}),
                         [](const auto& info) {
                           return std::string(info.param.model) + "_" + info.param.optimizer;
                         });

// ---- through the CLI --------------------------------------------------------------

using fer::testing::CommandResult;
CommandResult fer_command(const std::string& args) { return fer::testing::run_fer(args); }

// Per process: ctest runs each test in its own process, two at a time, and every process
// makes the suite's initial run; a shared directory would be emptied under the other one.
std::string run_root() {
  return std::string(FER_BINARY_DIR) + "/transfer_test_" + std::to_string(::getpid());
}

std::string run_dir(const std::string& name) {
  std::system(("mkdir -p '" + run_root() + "'").c_str());
  const std::string d = run_root() + "/" + name;
  std::system(("rm -rf '" + d + "'").c_str());
  return d;
}

// A tiny MobileNet V1 on the committed sample: 56 training images, 7 steps an epoch.
std::string train_args(const std::string& extra) {
  const std::string sample = std::string(FER_SOURCE_DIR) + "/data/sample_faces";
  return "train --model mobilenet_v1 --alpha 0.25 --size 32 --data " + sample + "/train --val " +
         sample + "/val --max-per-class 8 --val-max-per-class 4 --batch 8 --seed 11 --quiet " +
         extra;
}

// The names of the backbone's arrays (weights and statistics) of a saved model.
std::vector<std::string> backbone_names(const std::string& model_path) {
  Model m = Model::load(model_path);
  std::vector<std::string> names;
  for (Parameter* p : m.net().layer(0).parameters()) names.push_back(p->name);
  return names;
}

bool same_array(const NpzArrays& a, const NpzArrays& b, const std::string& name) {
  const Tensor& x = a.tensors.at(name);
  const Tensor& y = b.tensors.at(name);
  return x.shape() == y.shape() &&
         std::memcmp(x.data(), y.data(), x.numel() * sizeof(float)) == 0;
}

// Run A (fresh, 1 epoch) gives the initial weights of the other runs. Made once.
class TransferCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    initial_ = run_dir("initial");
    const CommandResult r = fer_command(train_args("--epochs 1 --out " + initial_));
    ASSERT_EQ(r.status, 0) << r.out;
  }
  static void TearDownTestSuite() { std::system(("rm -rf '" + run_root() + "'").c_str()); }
  static std::string weights() { return initial_ + "/last.npz"; }
  static std::string initial_;
};
std::string TransferCli::initial_;

TEST_F(TransferCli, FreezeBackboneKeepsTheLoadedBackboneAndTrainsTheHead) {
  const std::string out = run_dir("frozen");
  const CommandResult r =
      fer_command(train_args("--weights " + weights() + " --freeze-backbone --epochs 1 --out " + out));
  ASSERT_EQ(r.status, 0) << r.out;
  const NpzArrays a = read_npz(weights()), b = read_npz(out + "/last.npz");
  const std::vector<std::string> names = backbone_names(weights());
  ASSERT_GT(names.size(), 100u);
  for (const std::string& name : names) EXPECT_TRUE(same_array(a, b, name)) << name;
  EXPECT_FALSE(same_array(a, b, "predictions/kernel"));
  EXPECT_FALSE(same_array(a, b, "predictions/bias"));
}

TEST_F(TransferCli, UnfreezeEpochFineTunesTheBackboneAfterwards) {
  const std::string out = run_dir("staged");
  const CommandResult r = fer_command(train_args(
      "--weights " + weights() + " --freeze-backbone --unfreeze-epoch 1 --epochs 2 --out " + out));
  ASSERT_EQ(r.status, 0) << r.out;
  const NpzArrays a = read_npz(weights()), b = read_npz(out + "/last.npz");
  int changed = 0;
  const std::vector<std::string> names = backbone_names(weights());
  for (const std::string& name : names) changed += !same_array(a, b, name);
  // Epoch 2 trains everything: every weight and statistic moves.
  EXPECT_EQ(changed, static_cast<int>(names.size()));
}

TEST_F(TransferCli, MismatchedWeightsAreListedUnlessSkipped) {
  // Weights of the gap head (predictions [256, 7]) into the mlp head (head_dense1,
  // head_dense2, predictions [512, 7]).
  const std::string refused = run_dir("mlp_refused");
  CommandResult r = fer_command(
      train_args("--weights " + weights() + " --head mlp --epochs 1 --out " + refused));
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find(weights() + ": weights do not fit model 'mobilenet_v1'"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("missing (4): head_dense1/kernel, head_dense1/bias, head_dense2/kernel, "
                       "head_dense2/bias"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("shape mismatch (1): predictions/kernel (file [256, 7], model [512, 7])"),
            std::string::npos)
      << r.out;

  // With --skip-mismatched the backbone loads (frozen here, so it must still equal the
  // file's after training) and the new head starts fresh.
  const std::string mlp = run_dir("mlp");
  r = fer_command(train_args("--weights " + weights() +
                             " --head mlp --skip-mismatched --freeze-backbone --epochs 1 --out " + mlp));
  ASSERT_EQ(r.status, 0) << r.out;
  const NpzArrays a = read_npz(weights()), b = read_npz(mlp + "/last.npz");
  for (const std::string& name : backbone_names(weights()))
    EXPECT_TRUE(same_array(a, b, name)) << name;
  EXPECT_EQ(b.tensors.at("predictions/kernel").shape(), (Shape{512, 7}));

  // The other way round: the mlp run's extra arrays are "unexpected" in a gap model.
  r = fer_command(train_args("--weights " + mlp + "/last.npz --epochs 1 --out " +
                             run_dir("gap_refused")));
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("unexpected (4): head_dense1/bias, head_dense1/kernel, head_dense2/bias, "
                       "head_dense2/kernel"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("shape mismatch (1): predictions/kernel (file [512, 7], model [256, 7])"),
            std::string::npos)
      << r.out;
}

TEST_F(TransferCli, FreezingNeedsABackbone) {
  const std::string sample = std::string(FER_SOURCE_DIR) + "/data/sample_faces";
  const CommandResult r = fer_command(
      "train --model cnn3 --data " + sample + "/train --val " + sample +
      "/val --max-per-class 2 --epochs 1 --freeze-backbone --quiet --out " + run_dir("cnn3"));
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("has no backbone"), std::string::npos) << r.out;
}

}  // namespace
