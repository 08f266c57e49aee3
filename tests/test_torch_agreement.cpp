// fer against PyTorch: the same cnn3 weights and input give the same logits, loss and
// parameter gradients (to 1e-4 relative). PyTorch runs through tools/torch_reference.py,
// which rebuilds the network from the model file (tools/fer_torch.py). Skipped, with a
// message, when Debian's python3-torch is not installed.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>

#include "fer/architectures.h"
#include "fer/autograd.h"
#include "fer/model.h"
#include "fer/npy.h"
#include "fer/npz.h"
#include "layers/loss.h"
#include "tests/gradcheck.h"
#include "tests/command.h"

using namespace fer;

namespace {

using fer::testing::kPython;

bool torch_available() { return fer::testing::python_has("torch, numpy"); }

std::string temp(const std::string& name) {
  return std::string(FER_BINARY_DIR) + "/torch_agreement_" + name;
}

// max |a - b| / max |b|: the error relative to the tensor's scale.
double relative_error(const float* a, const float* b, int64_t n) {
  double diff = 0, scale = 1e-12;
  for (int64_t i = 0; i < n; ++i) {
    diff = std::max(diff, double(std::fabs(a[i] - b[i])));
    scale = std::max(scale, double(std::fabs(b[i])));
  }
  return diff / scale;
}

Model make_model(double dropout) {
  Json opts = Json::object();
  opts["dropout"] = dropout;
  opts["block_dropout"] = dropout;
  Model m = Model::from_architecture(make_architecture("cnn3", opts), 1234);
  // Non-trivial BatchNorm parameters and statistics, so each is exercised.
  Rng rng(99);
  for (Parameter* p : m.parameters()) {
    const std::string& n = p->name;
    float* v = p->value.data();
    for (int64_t i = 0; i < p->value.numel(); ++i) {
      if (n.find("/gamma") != std::string::npos) v[i] = float(rng.uniform(0.5, 1.5));
      if (n.find("/beta") != std::string::npos) v[i] = float(rng.uniform(-0.3, 0.3));
      if (n.find("/moving_mean") != std::string::npos) v[i] = float(rng.uniform(-0.2, 0.2));
      if (n.find("/moving_variance") != std::string::npos) v[i] = float(rng.uniform(0.5, 2.0));
    }
  }
  return m;
}

void run_torch(const std::string& args) {
  const std::string cmd = std::string(kPython) + " " + FER_SOURCE_DIR +
                          "/tools/torch_reference.py " + args;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

}  // namespace

TEST(TorchAgreement, Cnn3TrainingStepLogitsLossAndGradients) {
  if (!torch_available()) GTEST_SKIP() << "python3-torch not installed: skipping the PyTorch comparison";
  Model model = make_model(0.0);  // dropout off: PyTorch's masks would differ from ours
  const std::string model_path = temp("model.npz");
  model.save(model_path);

  Rng rng(7);
  Tensor x = fer::testing::random_tensor({6, 48, 48, 1}, rng, 0, 1);
  const std::vector<int> labels = {0, 3, 6, 2, 3, 1};
  const std::vector<float> weights = {1.0f, 2.5f, 0.8f, 0.5f, 1.2f, 1.0f, 0.9f};
  write_npy(temp("x.npy"), x);
  write_npy(temp("y.npy"), Tensor({6}, std::vector<float>(labels.begin(), labels.end())));
  write_npy(temp("w.npy"), Tensor({7}, weights));

  Tensor logits = model.forward(x, /*training=*/true);
  Tensor loss = softmax_cross_entropy(logits, labels, 0.1f, weights);
  backward(loss);

  run_torch("--model " + model_path + " --input " + temp("x.npy") + " --labels " + temp("y.npy") +
            " --class-weights " + temp("w.npy") + " --label-smoothing 0.1 --train --out " +
            temp("ref.npz"));
  const NpzArrays ref = read_npz(temp("ref.npz"));

  EXPECT_LT(relative_error(logits.data(), ref.tensors.at("logits").data(), logits.numel()), 1e-4);
  EXPECT_NEAR(loss.item(), ref.tensors.at("loss").item(), 1e-4 * std::fabs(loss.item()));
  int compared = 0;
  for (Parameter* p : model.parameters()) {
    if (!p->trainable) continue;
    ASSERT_TRUE(ref.tensors.count(p->name)) << "PyTorch gave no gradient for " << p->name;
    const Tensor& g = ref.tensors.at(p->name);
    ASSERT_EQ(g.shape(), p->value.shape()) << p->name;
    EXPECT_LT(relative_error(p->value.grad(), g.data(), g.numel()), 1e-4) << p->name;
    ++compared;
  }
  // 6 conv kernels, 7 BatchNorms x (gamma, beta), dense1 kernel, predictions kernel + bias.
  EXPECT_EQ(compared, 6 + 14 + 1 + 2);
}

TEST(TorchAgreement, Cnn3InferenceLogits) {
  if (!torch_available()) GTEST_SKIP() << "python3-torch not installed: skipping the PyTorch comparison";
  Model model = make_model(0.25);  // dropout is the identity at inference
  const std::string model_path = temp("model_inf.npz");
  model.save(model_path);
  Rng rng(8);
  Tensor x = fer::testing::random_tensor({5, 48, 48, 1}, rng, 0, 1);
  write_npy(temp("x_inf.npy"), x);
  write_npy(temp("y_inf.npy"), Tensor({5}, std::vector<float>{0, 1, 2, 3, 4}));
  NoGradGuard no_grad;
  const Tensor logits = model.forward(x, false);
  run_torch("--model " + model_path + " --input " + temp("x_inf.npy") + " --labels " +
            temp("y_inf.npy") + " --out " + temp("ref_inf.npz"));
  const NpzArrays ref = read_npz(temp("ref_inf.npz"));
  EXPECT_LT(relative_error(logits.data(), ref.tensors.at("logits").data(), logits.numel()), 1e-4);
}
