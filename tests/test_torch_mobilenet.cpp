// fer against PyTorch on the ImageNet architectures: a small MobileNet V2 (inverted
// residual blocks, ReLU6, linear bottlenecks) and a MobileNet V1 with depth_multiplier 2,
// Keras's own classifier (Reshape -> 1x1 conv_preds -> Reshape) and PyTorch-style
// padding (ZeroPadding2D + 'valid'). Same weights and input give the same inference
// logits (to 1e-4 relative), and in one training step the same logits, loss and gradient
// for every parameter -- to 1e-4 of the exact (float64) answer where float32 allows it,
// else to within PyTorch float32's own rounding (see expect_agreement: these deep
// networks on batch statistics of 4 examples are ill-conditioned). PyTorch runs through
// tools/torch_reference.py, which rebuilds the network from the model file
// (tools/fer_torch.py). Skipped when python3-torch is absent.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

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
  return std::string(FER_BINARY_DIR) + "/torch_mobilenet_" + name;
}

// A model with non-trivial BatchNorm scales and shifts, and running statistics taken
// from a batch (BatchNorm momentum 0 makes one training-mode pass set them), so that
// inference-mode activations keep their scale through the whole depth instead of
// shrinking towards 0 as they do on the fresh statistics (mean 0, variance 1).
Model make_model(const std::string& name, Json options, uint64_t seed) {
  options["size"] = 32;
  options["bn_momentum"] = 0.0;
  Model m = Model::from_architecture(make_architecture(name, options), seed);
  Rng rng(seed + 1);
  for (Parameter* p : m.parameters()) {
    float* v = p->value.data();
    for (int64_t i = 0; i < p->value.numel(); ++i) {
      if (p->name.find("/gamma") != std::string::npos) v[i] = float(rng.uniform(0.5, 1.5));
      if (p->name.find("/beta") != std::string::npos) v[i] = float(rng.uniform(-0.3, 0.3));
      if (p->name.find("/bias") != std::string::npos) v[i] = float(rng.uniform(-0.1, 0.1));
    }
  }
  NoGradGuard no_grad;
  m.forward(fer::testing::random_tensor({8, 32, 32, 3}, rng), /*training=*/true);
  return m;
}

void run_torch(const std::string& args) {
  const std::string cmd = std::string(kPython) + " " + FER_SOURCE_DIR +
                          "/tools/torch_reference.py " + args;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

// PyTorch's answers for one mode: in float32 (rounded as fer rounds) and in float64 (the
// exact answer, to rounding far below float32's).
struct Reference {
  NpzArrays f32, f64;
};

Reference torch_reference(const std::string& model_path, const std::string& tag,
                          const std::string& mode_flags) {
  const std::string common = "--model " + model_path + " --input " + temp(tag + "_x.npy") +
                             " --labels " + temp(tag + "_y.npy") + mode_flags;
  Reference r;
  run_torch(common + " --out " + temp(tag + "_ref32.npz"));
  run_torch(common + " --float64 --out " + temp(tag + "_ref64.npz"));
  r.f32 = read_npz(temp(tag + "_ref32.npz"));
  r.f64 = read_npz(temp(tag + "_ref64.npz"));
  return r;
}

// A deep network in training mode on batch statistics of 4 examples is ill-conditioned:
// forward rounding grows to ~1e-4 by the last blocks, flips the ReLU6 mask of values
// within that of 0, and moves some gradients by up to ~1% -- PyTorch's own float32
// differs that much from its float64. So fer is compared with the exact (float64)
// answer: within 1e-4, or within 4x PyTorch float32's error where that is larger, and
// never more than 2% (a wrong formula is off by O(1)); and over all gradients fer must
// be about as accurate as PyTorch's float32 (median error at most 2x its median).
// `floor` keeps tensors whose exact value is ~0 (a BatchNorm shift followed by another
// BatchNorm) from dividing rounding by zero.
struct Agreement {
  int tight = 0, loose = 0;  // comparisons held to 1e-4, and to 4x PyTorch's error
  std::vector<double> fer_errors, torch_errors;
};

void expect_agreement(const std::string& what, const float* fer, const Tensor& ref32,
                      const Tensor& ref64, double floor, Agreement& a) {
  const int64_t n = ref64.numel();
  double scale = floor;
  for (int64_t i = 0; i < n; ++i) scale = std::max(scale, double(std::fabs(ref64.data()[i])));
  double fer_error = 0, torch_error = 0;
  for (int64_t i = 0; i < n; ++i) {
    fer_error = std::max(fer_error, double(std::fabs(fer[i] - ref64.data()[i])));
    torch_error = std::max(torch_error, double(std::fabs(ref32.data()[i] - ref64.data()[i])));
  }
  fer_error /= scale;
  torch_error /= scale;
  const double tolerance = std::min(2e-2, std::max(1e-4, 4 * torch_error));
  (tolerance > 1e-4 ? a.loose : a.tight) += 1;
  a.fer_errors.push_back(fer_error);
  a.torch_errors.push_back(torch_error);
  EXPECT_LE(fer_error, tolerance) << what << ": fer's error " << fer_error
                                  << ", PyTorch float32's " << torch_error;
  if (getenv("FER_TORCH_VERBOSE"))
    std::printf("%-44s fer %.2e  torch32 %.2e\n", what.c_str(), fer_error, torch_error);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// The inference-mode logits, then one training step's logits, loss and every trainable
// parameter's gradient, each against PyTorch's. Returns the agreement counts.
Agreement compare_with_torch(Model& model, const std::string& tag) {
  const std::string model_path = temp(tag + ".npz");
  model.save(model_path);
  Rng rng(11);
  const int n = 4;
  Tensor x = fer::testing::random_tensor({n, 32, 32, 3}, rng);
  const std::vector<int> labels = {0, 3, 6, 2};
  write_npy(temp(tag + "_x.npy"), x);
  write_npy(temp(tag + "_y.npy"), Tensor({n}, std::vector<float>(labels.begin(), labels.end())));
  Agreement a;

  // Inference mode first: BatchNorm on the running statistics the file holds (the
  // training-mode pass below replaces them, momentum being 0).
  Tensor inference;
  {
    NoGradGuard no_grad;
    inference = model.forward(x, /*training=*/false);
  }
  const Reference eval = torch_reference(model_path, tag, "");
  EXPECT_EQ(eval.f64.tensors.at("logits").shape(), inference.shape());
  expect_agreement("inference logits", inference.data(), eval.f32.tensors.at("logits"),
                   eval.f64.tensors.at("logits"), 0, a);
  // Inference is well conditioned: fer and PyTorch's float32 agree to 1e-4 directly.
  const Tensor& eval32 = eval.f32.tensors.at("logits");
  double diff = 0, scale = 0;
  for (int64_t i = 0; i < eval32.numel(); ++i) {
    diff = std::max(diff, double(std::fabs(inference.data()[i] - eval32.data()[i])));
    scale = std::max(scale, double(std::fabs(eval32.data()[i])));
  }
  EXPECT_LT(diff, 1e-4 * scale) << "inference logits";

  // Training mode: BatchNorm on batch statistics.
  Tensor logits = model.forward(x, /*training=*/true);
  Tensor loss = softmax_cross_entropy(logits, labels);
  backward(loss);
  const Reference train = torch_reference(model_path, tag, " --train");
  EXPECT_EQ(train.f64.tensors.at("logits").shape(), logits.shape());
  expect_agreement("training logits", logits.data(), train.f32.tensors.at("logits"),
                   train.f64.tensors.at("logits"), 0, a);
  expect_agreement("loss", loss.data(), train.f32.tensors.at("loss"),
                   train.f64.tensors.at("loss"), 0, a);
  double largest = 0;  // the largest gradient of any parameter
  for (const auto& [name, g] : train.f64.tensors)
    if (name != "logits" && name != "loss")
      for (int64_t i = 0; i < g.numel(); ++i) largest = std::max(largest, double(std::fabs(g.data()[i])));
  for (Parameter* p : model.parameters()) {
    if (!p->trainable) continue;
    if (!train.f64.tensors.count(p->name)) {
      ADD_FAILURE() << "PyTorch gave no gradient for " << p->name;
      continue;
    }
    const Tensor& g = train.f64.tensors.at(p->name);
    if (g.shape() != p->value.shape()) {
      ADD_FAILURE() << p->name << ": PyTorch's gradient is " << shape_str(g.shape());
      continue;
    }
    expect_agreement(p->name, p->value.grad(), train.f32.tensors.at(p->name), g, 1e-3 * largest, a);
  }

  // Over all gradients fer is about as accurate as PyTorch's own float32.
  const std::vector<double> fer_errors(a.fer_errors.begin() + 3, a.fer_errors.end());
  const std::vector<double> torch_errors(a.torch_errors.begin() + 3, a.torch_errors.end());
  EXPECT_LE(median(fer_errors), 2 * median(torch_errors))
      << "median gradient error: fer " << median(fer_errors) << ", PyTorch float32 "
      << median(torch_errors);

  // The two modes really differ (else the inference comparison would repeat the other).
  double mode_difference = 0, logit_scale = 0;
  for (int64_t i = 0; i < logits.numel(); ++i) {
    mode_difference = std::max(mode_difference, double(std::fabs(logits.data()[i] - inference.data()[i])));
    logit_scale = std::max(logit_scale, double(std::fabs(logits.data()[i])));
  }
  EXPECT_GT(mode_difference, 1e-2 * logit_scale);
  return a;
}

int count_trainable(Model& m) {
  int n = 0;
  for (Parameter* p : m.parameters()) n += p->trainable;
  return n;
}

}  // namespace

TEST(TorchMobileNet, V2TrainingStepAndInference) {
  if (!torch_available()) GTEST_SKIP() << "python3-torch not installed: skipping the PyTorch comparison";
  Json o = Json::object();
  o["alpha"] = 0.35;
  o["bn_epsilon"] = 1e-5;  // torchvision's: the epsilon must travel through the config
  Model model = make_model("mobilenet_v2", o, 21);
  const Agreement a = compare_with_torch(model, "v2");
  // 52 convolutions and 52 BatchNorms (gamma, beta) in the backbone, the Dense head; plus
  // the logits of both modes and the loss.
  EXPECT_EQ(a.tight + a.loose, count_trainable(model) + 3);
  EXPECT_EQ(count_trainable(model), 52 + 2 * 52 + 2);
  std::printf("%d comparisons held to 1e-4, %d to PyTorch float32's rounding\n", a.tight,
              a.loose);
}

TEST(TorchMobileNet, V1DepthMultiplierKerasTopTorchPadding) {
  if (!torch_available()) GTEST_SKIP() << "python3-torch not installed: skipping the PyTorch comparison";
  Json o = Json::object();
  o["alpha"] = 0.25;
  o["depth_multiplier"] = 2;
  o["include_top"] = true;
  o["num_classes"] = 7;
  o["dropout"] = 0.0;       // PyTorch's masks would differ from ours
  o["padding"] = "torch";   // ZeroPadding2D + 'valid' before each stride-2 conv
  Model model = make_model("mobilenet_v1", o, 31);
  const Agreement a = compare_with_torch(model, "v1");
  // conv1, 13 depthwise and 13 pointwise convs, 27 BatchNorms (gamma, beta), conv_preds
  // kernel and bias; plus the logits of both modes and the loss.
  EXPECT_EQ(a.tight + a.loose, count_trainable(model) + 3);
  EXPECT_EQ(count_trainable(model), 27 + 2 * 27 + 2);
  std::printf("%d comparisons held to 1e-4, %d to PyTorch float32's rounding\n", a.tight,
              a.loose);
}
