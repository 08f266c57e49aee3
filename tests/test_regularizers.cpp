// RandomErasing, mixup (its Beta draws, its loss and gradient, and a training run that
// uses it with an interrupted-and-resumed run reproducing an uninterrupted one), training
// with a moving average of the weights (--ema), sharpness-aware steps (--sam), and
// knowledge distillation (offline, cross-validated and online teachers).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <utility>

#include <unistd.h>

#include "command.h"
#include "data/augment.h"
#include "data/dataset.h"
#include "error_of.h"
#include "gradcheck.h"
#include "fer/autograd.h"
#include "fer/evaluate.h"
#include "fer/json.h"
#include "fer/npz.h"
#include "fer/rng.h"
#include "fer/teachers.h"
#include "fer/trainer.h"
#include "layers/loss.h"

namespace fer {
namespace {

using testing::error_of;
using testing::run_fer;

TEST(RandomErasing, BoxesFollowTorchvisionsRanges) {
  Rng rng(1);
  int erased = 0;
  const int tries = 4000;
  for (int t = 0; t < tries; ++t) {
    const data::EraseBox b = data::draw_erasing(0.5f, 48, 40, rng);
    if (b.height == 0) continue;
    ++erased;
    ASSERT_GE(b.y, 0);
    ASSERT_GE(b.x, 0);
    ASSERT_LE(b.y + b.height, 48);
    ASSERT_LE(b.x + b.width, 40);
    ASSERT_LT(b.height, 48);
    ASSERT_LT(b.width, 40);
    // Area 2-33% of the image and aspect 0.3-3.3, up to the rounding of each side.
    const double area = double(b.height) * b.width / (48.0 * 40.0);
    EXPECT_GT(area, 0.02 * 0.5) << b.height << "x" << b.width;
    EXPECT_LT(area, 0.33 * 1.3) << b.height << "x" << b.width;
    const double aspect = double(b.height) / b.width;
    EXPECT_GT(aspect, 0.3 * 0.6);
    EXPECT_LT(aspect, 3.3 / 0.6);
  }
  // p = 0.5, less the rare draws where no box fits in 10 tries.
  EXPECT_NEAR(erased / double(tries), 0.5, 0.04);
  Rng never(2);
  for (int t = 0; t < 100; ++t) EXPECT_EQ(data::draw_erasing(0.f, 48, 48, never).height, 0);
}

TEST(RandomErasing, ZeroesExactlyTheBoxAndLeavesTheOtherDrawsAlone) {
  data::Image img;
  img.height = img.width = 48;
  img.channels = 1;
  img.pixels.assign(48 * 48, 200);
  data::Preprocess pre;
  pre.height = pre.width = 32;
  data::Augment plain;
  plain.horizontal_flip = true;
  plain.rotation_range = 10;
  data::Augment erasing = plain;
  erasing.erasing = 1;
  std::vector<float> a(32 * 32), b(32 * 32);
  int zeroed_total = 0;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    Rng r1(seed), r2(seed), r3(seed);
    data::augment_and_preprocess(img, plain, pre, r1, a.data());
    data::augment_and_preprocess(img, erasing, pre, r2, b.data());
    // Replay r3 to learn the box: the geometry draws come first, then the box.
    data::draw_augment(erasing, 48, 48, r3);
    const data::EraseBox box = data::draw_erasing(1, 32, 32, r3);
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 32; ++x) {
        const bool inside = y >= box.y && y < box.y + box.height && x >= box.x && x < box.x + box.width;
        if (inside) {
          ASSERT_EQ(b[y * 32 + x], 0.f);
          ++zeroed_total;
        } else {
          ASSERT_EQ(b[y * 32 + x], a[y * 32 + x]) << seed << " " << y << "," << x;
        }
      }
  }
  EXPECT_GT(zeroed_total, 0);
  // JSON round trip and checking.
  EXPECT_FLOAT_EQ(data::Augment::from_json(erasing.to_json()).erasing, 1.f);
  Json bad = Json::object();
  bad["erasing"] = 1.5;
  EXPECT_NE(error_of([&] { data::Augment::from_json(bad); }).find("erasing"), std::string::npos);
}

TEST(Mixup, BetaDrawsHaveTheRightMoments) {
  for (const double alpha : {0.2, 1.0, 2.0}) {
    Rng rng(7);
    const int n = 40000;
    double sum = 0, sq = 0;
    for (int i = 0; i < n; ++i) {
      const double x = rng.beta(alpha, alpha);
      ASSERT_GE(x, 0);
      ASSERT_LE(x, 1);
      sum += x;
      sq += x * x;
    }
    const double mean = sum / n, var = sq / n - mean * mean;
    EXPECT_NEAR(mean, 0.5, 0.01) << alpha;
    EXPECT_NEAR(var, 1 / (4 * (2 * alpha + 1)), 0.01) << alpha;  // Beta(a, a) variance
  }
  Rng rng(8);
  double sum = 0;
  for (int i = 0; i < 40000; ++i) sum += rng.gamma(0.5);
  EXPECT_NEAR(sum / 40000, 0.5, 0.02);  // Gamma(k, 1) has mean k
}

// The loss is lambda * CE(a) + (1 - lambda) * CE(b), and its gradient matches finite
// differences of that loss.
TEST(Mixup, LossIsTheBlendAndItsGradientChecks) {
  Rng rng(3);
  const int n = 5, k = 4;
  Tensor logits({n, k});
  for (int64_t i = 0; i < logits.numel(); ++i) logits.data()[i] = static_cast<float>(rng.normal());
  const std::vector<int> a = {0, 1, 2, 3, 1}, b = {2, 2, 0, 3, 0};
  const float lambda = 0.3f, smoothing = 0.1f;
  const std::vector<float> weights = {1.f, 2.f, 0.5f, 1.f};
  {
    NoGradGuard no_grad;
    const double la = softmax_cross_entropy(logits, a, smoothing, weights).item();
    const double lb = softmax_cross_entropy(logits, b, smoothing, weights).item();
    EXPECT_NEAR(mixup_cross_entropy(logits, a, b, lambda, smoothing, weights).item(),
                lambda * la + (1 - lambda) * lb, 1e-6);
    EXPECT_NEAR(mixup_cross_entropy(logits, a, b, 1.f).item(), softmax_cross_entropy(logits, a).item(),
                1e-7);
  }
  Tensor z = logits.clone();
  z.set_requires_grad(true);
  Tensor loss = mixup_cross_entropy(z, a, b, lambda, smoothing, weights);
  backward(loss);
  const std::vector<float> grad = z.grad_tensor().to_vector();
  NoGradGuard no_grad;
  for (int64_t i = 0; i < z.numel(); ++i) {
    Tensor plus = logits.clone(), minus = logits.clone();
    plus.data()[i] += 1e-2f;
    minus.data()[i] -= 1e-2f;
    const double numeric = (mixup_cross_entropy(plus, a, b, lambda, smoothing, weights).item() -
                            mixup_cross_entropy(minus, a, b, lambda, smoothing, weights).item()) / 2e-2;
    EXPECT_NEAR(grad[i], numeric, 2e-3) << i;
  }
  EXPECT_NE(error_of([&] { mixup_cross_entropy(logits, a, b, 1.5f); }).find("lambda"),
            std::string::npos);
}

// Knowledge distillation's loss: the soft-target cross-entropy's gradient matches finite
// differences, the targets blend the smoothed label with the teacher, and bad targets
// are errors naming the row.
TEST(Distillation, TargetsAndSoftLossGradient) {
  const int n = 3, k = 4;
  const std::vector<int> labels = {2, 0, 3};
  const std::vector<float> teacher = {0.1f, 0.2f, 0.6f, 0.1f,  0.5f, 0.5f, 0.f, 0.f,
                                      0.25f, 0.25f, 0.25f, 0.25f};
  const std::vector<float> t = distillation_targets(labels, teacher.data(), k, 0.6f, 0.2f);
  ASSERT_EQ(t.size(), size_t(n * k));
  // Row 0: 0.4 * (0.8 * onehot(2) + 0.05) + 0.6 * teacher.
  EXPECT_NEAR(t[0], 0.4f * 0.05f + 0.6f * 0.1f, 1e-7);
  EXPECT_NEAR(t[2], 0.4f * 0.85f + 0.6f * 0.6f, 1e-7);
  for (int i = 0; i < n; ++i) {
    double sum = 0;
    for (int c = 0; c < k; ++c) sum += t[i * k + c];
    EXPECT_NEAR(sum, 1, 1e-6) << i;
  }
  // alpha 0: the smoothed label alone, so the loss is softmax_cross_entropy's.
  Rng rng(6);
  Tensor logits({n, k});
  for (int64_t i = 0; i < logits.numel(); ++i) logits.data()[i] = static_cast<float>(rng.normal());
  {
    NoGradGuard no_grad;
    EXPECT_NEAR(soft_target_cross_entropy(
                    logits, distillation_targets(labels, teacher.data(), k, 0.f, 0.2f)).item(),
                softmax_cross_entropy(logits, labels, 0.2f).item(), 1e-6);
  }
  Tensor z = logits.clone();
  z.set_requires_grad(true);
  testing::check_gradients([&] { return soft_target_cross_entropy(z, t); }, {{"logits", z}});
  std::vector<float> bad = t;
  bad[5] += 0.1f;  // row 1 sums to 1.1
  EXPECT_NE(error_of([&] { soft_target_cross_entropy(logits, bad); }).find("row 1"),
            std::string::npos);
  EXPECT_NE(error_of([&] { soft_target_cross_entropy(logits, std::vector<float>(5)); })
                .find("5 target values"),
            std::string::npos);
  EXPECT_NE(error_of([&] { distillation_targets(labels, teacher.data(), k, 1.5f, 0.f); })
                .find("alpha"),
            std::string::npos);
}

// Trains 2 epochs on the sample faces with `flags` twice: once in one go (into dir + "b"),
// once as 1 epoch then --resume to 2 (dir + "a"); expects identical last.npz files, every
// array, and returns them (resumed, straight). `dir` is a per-process prefix.
// The flags of those runs: the sample faces at 32 px, batch 32, one thread.
std::string sample_run_flags() {
  const std::string sample = std::string(FER_SOURCE_DIR) + "/data/sample_faces";
  return "--data " + sample + "/train --val " + sample +
         "/val --batch 32 --seed 5 --threads 1 --workers 1 --quiet --size 32 ";
}

std::pair<NpzArrays, NpzArrays> resumed_and_straight(const std::string& flags,
                                                      const std::string& dir) {
  const std::string common = sample_run_flags() + flags;
  testing::run_command("rm -rf " + dir + "a " + dir + "b");
  auto r = run_fer("train " + common + " --epochs 1 --out " + dir + "a");
  EXPECT_EQ(r.status, 0) << r.out;
  r = run_fer("train --resume " + dir + "a --epochs 2 --threads 1");
  EXPECT_EQ(r.status, 0) << r.out;
  r = run_fer("train " + common + " --epochs 2 --out " + dir + "b");
  EXPECT_EQ(r.status, 0) << r.out;
  NpzArrays x = read_npz(dir + "a/last.npz"), y = read_npz(dir + "b/last.npz");
  EXPECT_EQ(x.tensors.size(), y.tensors.size());
  for (const auto& [name, t] : x.tensors) {
    EXPECT_EQ(y.tensors.count(name), 1u) << name;
    if (y.tensors.count(name)) {
      EXPECT_EQ(t.to_vector(), y.tensors.at(name).to_vector()) << name;
    }
  }
  return {std::move(x), std::move(y)};
}

std::string run_dir(const std::string& name) {
  return std::string(FER_BINARY_DIR) + "/test_" + name + "_" + std::to_string(getpid());
}

// One training run on the sample faces with `flags` into `out`; its last.npz (empty when
// the run failed, which is reported).
NpzArrays trained(const std::string& flags, const std::string& out) {
  const auto r = run_fer("train " + sample_run_flags() + flags + " --out " + out);
  EXPECT_EQ(r.status, 0) << flags << "\n" << r.out;
  return r.status == 0 ? read_npz(out + "/last.npz") : NpzArrays{};
}

// A run with mixup and RandomErasing trains, records both settings, and resumes to the
// same weights as a straight run (the blends are seeded by the step).
TEST(Mixup, TrainingRunWithMixupAndErasingResumesBitIdentically) {
  const std::string dir = run_dir("regularizers");
  const auto [x, y] = resumed_and_straight("--mixup 0.4 --erasing 0.5", dir);
  const Json config = Json::parse(x.strings.at("training")).at("config");
  EXPECT_DOUBLE_EQ(config.get("mixup", 0.0), 0.4);
  EXPECT_DOUBLE_EQ(config.at("augment").get("erasing", 0.0), 0.5);
  const auto bad = run_fer("train " + sample_run_flags() + "--mixup -1 --epochs 1 --out " + dir + "c");
  EXPECT_NE(bad.out.find("--mixup"), std::string::npos) << bad.out;
  testing::run_command("rm -rf " + dir + "a " + dir + "b " + dir + "c");
}

// --ema: validation and best.npz use the averaged weights, last.npz keeps the trained
// weights and the averages ("optimizer/ema/..."), and a resumed run continues the average
// bit for bit.
TEST(Ema, TrainingRunValidatesTheAverageAndResumesBitIdentically) {
  const std::string dir = run_dir("ema");
  const auto [x, y] = resumed_and_straight("--ema 0.9", dir);
  int averages = 0;
  for (const auto& named : x.tensors) averages += named.first.rfind("optimizer/ema/", 0) == 0;
  EXPECT_GT(averages, 0);
  EXPECT_DOUBLE_EQ(Json::parse(x.strings.at("training")).at("config").get("ema", 0.0), 0.9);

  // best.npz holds the averages of its epoch, not the trained weights.
  const NpzArrays best = read_npz(dir + "b/best.npz");
  const int best_epoch = Json::parse(best.strings.at("training")).get("epoch", 0);
  ASSERT_GE(best_epoch, 1);
  int compared = 0;
  for (const auto& [name, t] : best.tensors) {
    if (best_epoch == 2) {  // the last epoch's: equal to last.npz's averages
      ASSERT_EQ(y.tensors.count("optimizer/ema/" + name), 1u) << name;
      EXPECT_EQ(t.to_vector(), y.tensors.at("optimizer/ema/" + name).to_vector()) << name;
    }
    compared += t.to_vector() != y.tensors.at(name).to_vector();
  }
  EXPECT_GT(compared, 0) << "best.npz equals the trained weights";
  const auto bad = run_fer("train " + sample_run_flags() + "--ema 1 --epochs 1 --out " + dir + "c");
  EXPECT_NE(bad.out.find("--ema"), std::string::npos) << bad.out;
  testing::run_command("rm -rf " + dir + "a " + dir + "b " + dir + "c");
}

// --sam: sharpness-aware steps (optim/sam.h). A run records rho, resumes bit for bit (both
// passes of a step draw their dropout masks from the step's seed), and learns something
// else than the same run without --sam. With the learning rate at 0 the weights never
// move, so the BatchNorm running statistics can only come from the first passes: runs
// with rho 0.05 and rho 1 (second passes at very different weights) must end with the
// same statistics bit for bit, which holds only if each second pass's updates are undone.
// Bad settings are one-line errors.
TEST(Sam, TrainingRunResumesBitIdenticallyAndKeepsOnlyTheFirstPassStatistics) {
  const std::string dir = run_dir("sam");
  const auto [x, y] = resumed_and_straight("--sam 0.05", dir);
  const Json config = Json::parse(x.strings.at("training")).at("config");
  EXPECT_DOUBLE_EQ(config.get("sam", 0.0), 0.05);
  EXPECT_FALSE(config.get("sam_adaptive", true));

  auto r = run_fer("train " + sample_run_flags() + "--epochs 2 --out " + dir + "c");
  ASSERT_EQ(r.status, 0) << r.out;
  const NpzArrays plain = read_npz(dir + "c/last.npz");
  int differing = 0, kernels = 0;
  for (const auto& [name, t] : plain.tensors) {
    if (name.find("/kernel") == std::string::npos || name.rfind("optimizer/", 0) == 0) continue;
    ++kernels;
    differing += t.to_vector() != y.tensors.at(name).to_vector();
  }
  EXPECT_GT(kernels, 0);
  EXPECT_EQ(differing, kernels) << "--sam left some kernels as plain steps train them";

  const std::string frozen = "--optimizer sgd --momentum 0 --lr 0 --epochs 1 ";
  const NpzArrays small = trained(frozen + "--sam 0.05", dir + "d");
  const NpzArrays large = trained(frozen + "--sam 1 --sam-adaptive", dir + "e");
  ASSERT_FALSE(small.tensors.empty() || large.tensors.empty());
  int statistics = 0;
  for (const auto& [name, t] : small.tensors) {
    if (name.find("moving_") == std::string::npos || name.rfind("optimizer/", 0) == 0) continue;
    ++statistics;
    EXPECT_EQ(t.to_vector(), large.tensors.at(name).to_vector()) << name;
    // ...and they did move from their initial values (ones for the variances).
    if (name.find("moving_variance") != std::string::npos) {
      EXPECT_NE(t.to_vector(), std::vector<float>(t.numel(), 1.f)) << name;
    }
  }
  EXPECT_GT(statistics, 0);

  for (const char* bad : {"--sam -1", "--sam-adaptive"}) {
    r = run_fer("train " + sample_run_flags() + std::string(bad) + " --epochs 1 --out " + dir + "f");
    EXPECT_NE(r.status, 0) << bad;
    EXPECT_NE(r.out.find("--sam"), std::string::npos) << r.out;
  }
  testing::run_command("rm -rf " + dir + "a " + dir + "b " + dir + "c " + dir + "d " + dir +
                       "e " + dir + "f");
}

// --teacher: a run distilled from the shipped model trains, records its teacher settings,
// and resumes bit-identically (the soft labels are recomputed the same on --resume); the
// soft labels change what is learned (the weights differ from a run without them); bad
// settings are one-line errors.
TEST(Distillation, TrainingRunWithATeacherResumesBitIdentically) {
  const std::string dir = run_dir("distill");
  const std::string teacher = std::string(FER_SOURCE_DIR) + "/models/fer2013.npz";
  const auto [x, y] = resumed_and_straight(
      "--teacher " + teacher + " --distill 0.7 --teacher-temperature 2 --label-smoothing 0.1", dir);
  const Json config = Json::parse(x.strings.at("training")).at("config");
  ASSERT_EQ(config.at("teachers").size(), 1u);
  EXPECT_EQ(config.at("teachers")[0].as_string(), teacher);
  EXPECT_DOUBLE_EQ(config.get("distill", 0.0), 0.7);
  EXPECT_DOUBLE_EQ(config.get("teacher_temperature", 0.0), 2.0);
  EXPECT_EQ(config.get("teacher_tta", ""), "flip");

  auto r = run_fer("train " + sample_run_flags() + "--label-smoothing 0.1 --epochs 2 --out " + dir + "c");
  ASSERT_EQ(r.status, 0) << r.out;
  const NpzArrays plain = read_npz(dir + "c/last.npz");
  int differ = 0;
  for (const auto& [name, t] : plain.tensors)
    differ += y.tensors.count(name) && t.to_vector() != y.tensors.at(name).to_vector();
  EXPECT_GT(differ, 0) << "the teacher changed nothing";

  r = run_fer("train " + sample_run_flags() + "--teacher " + teacher + " --class-weights balanced --epochs 1 --out " + dir + "d");
  EXPECT_NE(r.out.find("--teacher does not combine with --class-weights"), std::string::npos) << r.out;
  r = run_fer("train " + sample_run_flags() + "--distill 0.5 --epochs 1 --out " + dir + "d");
  EXPECT_NE(r.out.find("go with --teacher"), std::string::npos) << r.out;
  r = run_fer("train " + sample_run_flags() + "--teacher /nonexistent/t.npz --epochs 1 --out " + dir + "d");
  EXPECT_NE(r.out.find("/nonexistent/t.npz"), std::string::npos) << r.out;
  testing::run_command("rm -rf " + dir + "a " + dir + "b " + dir + "c " + dir + "d");
}

// The largest |a - b| over the model arrays two checkpoints share (optimizer state left
// out; BatchNorm's moving statistics too unless `statistics`, so that what is compared is
// where the gradient steps went). Fails the test if b lacks one of a's arrays.
float largest_change(const NpzArrays& a, const NpzArrays& b, bool statistics) {
  float largest = 0;
  for (const auto& [name, t] : a.tensors) {
    if (name.rfind("optimizer/", 0) == 0) continue;
    if (!statistics && name.find("moving_") != std::string::npos) continue;
    EXPECT_EQ(b.tensors.count(name), 1u) << name;
    if (!b.tensors.count(name)) continue;
    const std::vector<float> x = t.to_vector(), y = b.tensors.at(name).to_vector();
    for (size_t i = 0; i < x.size(); ++i) largest = std::max(largest, std::fabs(x[i] - y[i]));
  }
  return largest;
}

// RUN/teachers.npz keeps the soft labels: the first run writes them with a key naming
// their inputs; a later run into the same directory (--resume) reads them back -- shown by
// planting uniform probabilities under the right key, which changes what epoch 2 learns;
// a key that no longer matches (the teacher file changed in place) or a damaged file is a
// note, and the labels are computed again, to the same weights as a run that never had a
// copy.
TEST(Distillation, SoftLabelsAreKeptInTheRunAndComputedAgainWhenTheirInputsChange) {
  const std::string dir = run_dir("teachers_npz");
  testing::run_command("rm -rf " + dir + "*");
  testing::run_command("mkdir -p " + dir + "t && cp " + std::string(FER_SOURCE_DIR) +
                       "/models/fer2013.npz " + dir + "t/teacher.npz");
  const std::string teacher = dir + "t/teacher.npz";
  const std::string flags = sample_run_flags() + "--teacher " + teacher + " --distill 0.7 ";
  auto r = run_fer("train " + flags + "--epochs 1 --out " + dir + "a");
  ASSERT_EQ(r.status, 0) << r.out;
  const NpzArrays kept = read_npz(dir + "a/teachers.npz");
  const Tensor& p = kept.tensor("probabilities");
  ASSERT_EQ(p.ndim(), 2);
  const int64_t n = p.dim(0), k = p.dim(1);
  EXPECT_EQ(k, 7);
  EXPECT_GT(n, 100);  // the sample faces
  const std::vector<float> probs = p.to_vector();
  for (int64_t i = 0; i < n; ++i) {
    double sum = 0;
    for (int64_t c = 0; c < k; ++c) sum += probs[i * k + c];
    ASSERT_NEAR(sum, 1.0, 1e-4) << "row " << i;
  }
  const std::string key = kept.string("key");
  EXPECT_NE(key.find(teacher), std::string::npos) << key;
  EXPECT_NE(key.find("crc32"), std::string::npos) << key;

  // Read back: the same key over uniform rows. Epoch 2 then learns from those.
  write_npz(dir + "a/teachers.npz",
            {{"probabilities", Tensor(Shape{n, k}, std::vector<float>(n * k, 1.f / k))}},
            {{"key", key}});
  testing::run_command("cp -r " + dir + "a " + dir + "a2");  // the 1-epoch run, untouched
  r = run_fer("train --resume " + dir + "a --epochs 2 --threads 1");
  ASSERT_EQ(r.status, 0) << r.out;
  r = run_fer("train " + flags + "--epochs 2 --out " + dir + "b");
  ASSERT_EQ(r.status, 0) << r.out;
  const NpzArrays planted = read_npz(dir + "a/last.npz"), straight = read_npz(dir + "b/last.npz");
  EXPECT_GT(largest_change(planted, straight, /*statistics=*/false), 1e-4f)
      << "the resumed run did not use RUN/teachers.npz";
  EXPECT_EQ(read_npz(dir + "a/teachers.npz").tensor("probabilities").to_vector(),
            std::vector<float>(n * k, 1.f / k));

  // A damaged copy: a note, computed again, the straight run's weights bit for bit.
  {
    std::ofstream damaged(dir + "a2/teachers.npz", std::ios::trunc);
    damaged << "not a zip file";
  }
  std::string loud = "train --resume " + dir + "a2 --epochs 2 --threads 1";
  r = run_fer(loud);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("teachers: not using " + dir + "a2/teachers.npz"), std::string::npos)
      << r.out;
  EXPECT_EQ(largest_change(read_npz(dir + "a2/last.npz"), straight, /*statistics=*/true), 0.f);
  EXPECT_EQ(read_npz(dir + "a2/teachers.npz").string("key"), key);

  // The teacher file replaced in place (same path, other weights): the key no longer
  // matches, so the labels are the new teacher's and the file is rewritten.
  testing::run_command("cp " + std::string(FER_SOURCE_DIR) + "/models/ensemble/mnv1_16ep.npz " +
                       teacher);
  r = run_fer("train " + flags + "--epochs 1 --out " + dir + "a2");
  ASSERT_EQ(r.status, 0) << r.out;
  const NpzArrays renewed = read_npz(dir + "a2/teachers.npz");
  EXPECT_NE(renewed.string("key"), key);
  EXPECT_NE(renewed.tensor("probabilities").to_vector(), probs);
  testing::run_command("rm -rf " + dir + "*");
}

// --teacher with --mixup: a blended image's target is the blend of the two faces'
// distillation targets. With --distill 0 that is exactly mixup's blend of the (smoothed)
// labels, so one SGD step must land where plain --mixup's lands -- which checks that the
// partners' labels and the blend weight reach the targets. (One step: the two losses
// round differently in the last bits, and over many steps training amplifies that.) With
// the teacher weighted in, the weights differ from both plain mixup and distillation
// without mixup. Resumes bit for bit (the blends are seeded by the step).
TEST(Distillation, MixupBlendsTheTargetsOfBothFaces) {
  const std::string dir = run_dir("distill_mixup");
  const std::string teacher = std::string(FER_SOURCE_DIR) + "/models/fer2013.npz";
  // 4 faces per class, 28 in all: one batch, one step.
  const std::string mix = "--mixup 0.4 --label-smoothing 0.1 --epochs 1 --max-per-class 4 "
                          "--optimizer sgd --lr 0.5 ";
  auto r = run_fer("train " + sample_run_flags() + mix + "--out " + dir + "c");
  ASSERT_EQ(r.status, 0) << r.out;
  r = run_fer("train " + sample_run_flags() + mix + "--teacher " + teacher +
              " --distill 0 --out " + dir + "d");
  ASSERT_EQ(r.status, 0) << r.out;
  const NpzArrays plain_mixup = read_npz(dir + "c/last.npz");
  const NpzArrays no_teacher_weight = read_npz(dir + "d/last.npz");
  const float largest = largest_change(plain_mixup, no_teacher_weight, /*statistics=*/true);
  EXPECT_LT(largest, 1e-5) << "--distill 0 with --mixup is not plain mixup";
  // And the step itself is not too small to tell: without mixup it lands elsewhere.
  r = run_fer("train " + sample_run_flags() + "--label-smoothing 0.1 --epochs 1 --max-per-class 4 "
              "--optimizer sgd --lr 0.5 --out " + dir + "f");
  ASSERT_EQ(r.status, 0) << r.out;
  const NpzArrays unmixed_step = read_npz(dir + "f/last.npz");
  const float moved = largest_change(plain_mixup, unmixed_step, /*statistics=*/false);
  EXPECT_GT(moved, 1e-3f) << "mixup's step is indistinguishable from an unmixed one";
  r = run_fer("train " + sample_run_flags() + mix + "--teacher " + teacher +
              " --distill 0.7 --out " + dir + "g");
  ASSERT_EQ(r.status, 0) << r.out;
  const NpzArrays taught = read_npz(dir + "g/last.npz");
  const float teacher_moved = largest_change(taught, no_teacher_weight, /*statistics=*/false);
  EXPECT_GT(teacher_moved, 1e-3f) << "the teacher changed nothing in a mixup step";

  const auto [x, y] = resumed_and_straight(
      "--teacher " + teacher + " --distill 0.7 --mixup 0.4 --label-smoothing 0.1", dir);
  EXPECT_DOUBLE_EQ(Json::parse(x.strings.at("training")).at("config").get("mixup", 0.0), 0.4);
  r = run_fer("train " + sample_run_flags() + "--teacher " + teacher +
              " --distill 0.7 --label-smoothing 0.1 --epochs 2 --out " + dir + "e");
  ASSERT_EQ(r.status, 0) << r.out;
  const NpzArrays unmixed = read_npz(dir + "e/last.npz");
  int differ = 0;
  for (const auto& [name, t] : y.tensors)
    if (name.rfind("optimizer/", 0) != 0)
      differ += t.to_vector() != unmixed.tensors.at(name).to_vector();
  EXPECT_GT(differ, 0) << "mixup changed nothing in a distilled run";
  testing::run_command("rm -rf " + dir + "a " + dir + "b " + dir + "c " + dir + "d " + dir + "e " +
                       dir + "f " + dir + "g");
}

// --teacher-online: the teachers score every batch as the model sees it. Without
// augmentation that batch is the plain image the offline pass scores (with --teacher-tta
// none), so both runs train to the same weights up to float rounding; with flips the
// online teachers see the mirrored faces and the runs part. Resumes bit for bit.
TEST(Distillation, OnlineTeachersScoreTheModelsOwnBatches) {
  const std::string dir = run_dir("distill_online");
  // A teacher that takes the sample runs' input (32 x 32 gray): one epoch of the same net.
  auto r = run_fer("train " + sample_run_flags() + "--epochs 1 --out " + dir + "t");
  ASSERT_EQ(r.status, 0) << r.out;
  const std::string teacher = dir + "t/best.npz";

  const auto [x, y] = resumed_and_straight(
      "--teacher " + teacher + " --teacher " + teacher + " --teacher-online --distill 0.8", dir);
  const Json config = Json::parse(x.strings.at("training")).at("config");
  EXPECT_TRUE(config.get("teacher_online", false));
  EXPECT_EQ(config.get("teacher_tta", ""), "none");

  r = run_fer("train " + sample_run_flags() + "--teacher " + teacher + " --teacher " + teacher +
              " --teacher-tta none --distill 0.8 --epochs 2 --out " + dir + "c");
  ASSERT_EQ(r.status, 0) << r.out;
  const NpzArrays offline = read_npz(dir + "c/last.npz");
  EXPECT_LT(largest_change(y, offline, /*statistics=*/true), 1e-4) << "online and offline teachers disagree on un-augmented batches";

  const std::string flip = " --flip --distill 0.8 --epochs 1 --teacher " + teacher;
  const NpzArrays online_flip = trained(flip + " --teacher-online", dir + "d");
  const NpzArrays offline_flip = trained(flip + " --teacher-tta none", dir + "e");
  ASSERT_FALSE(online_flip.tensors.empty() || offline_flip.tensors.empty());
  int differ = 0;
  for (const auto& [name, t] : online_flip.tensors)
    differ += t.to_vector() != offline_flip.tensors.at(name).to_vector();
  EXPECT_GT(differ, 0) << "the online teachers did not see the flipped batches";

  r = run_fer("train " + sample_run_flags() + "--teacher-online --epochs 1 --out " + dir + "f");
  EXPECT_NE(r.out.find("go with --teacher"), std::string::npos) << r.out;
  r = run_fer("train " + sample_run_flags() + "--teacher " + teacher +
              " --teacher-online --teacher-tta flip --epochs 1 --out " + dir + "f");
  EXPECT_NE(r.out.find("--teacher-tta must be none"), std::string::npos) << r.out;
  const std::string shipped = std::string(FER_SOURCE_DIR) + "/models/fer2013.npz";
  r = run_fer("train " + sample_run_flags() + "--teacher " + shipped +
              " --teacher-online --epochs 1 --out " + dir + "f");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find(shipped + " takes 96x96x3"), std::string::npos) << r.out;
  testing::run_command("rm -rf " + dir + "a " + dir + "b " + dir + "c " + dir + "d " + dir +
                       "e " + dir + "f " + dir + "t");
}

// --cv-teacher: model k (trained with --holdout-fold k/N, which leaves fold k out of its
// training set and records it) answers only for the examples of fold k. The soft labels
// are checked row by row against each model's own probabilities on its fold, and weighed
// against a --teacher beside them (a teacher named twice weighs twice); a model in
// the wrong place, or one that trained on every fold, is refused before anything runs. A
// student distilled from them resumes bit for bit.
TEST(Distillation, CrossValidatedTeachersScoreOnlyTheImagesTheyNeverSaw) {
  const std::string dir = run_dir("distill_cv");
  const std::string sample = std::string(FER_SOURCE_DIR) + "/data/sample_faces/train";
  std::string models[2];
  for (int k = 0; k < 2; ++k) {
    const std::string out = dir + "m" + std::to_string(k);
    std::string flags = sample_run_flags();  // not quiet: the "train:" line names the fold
    flags.erase(flags.find("--quiet "), 8);
    const auto r = run_fer("train " + flags + "--epochs 1 --holdout-fold " + std::to_string(k) +
                           "/2 --seed " + std::to_string(7 + k) + " --out " + out);
    ASSERT_EQ(r.status, 0) << r.out;
    // The sample has 420 faces, 60 per class: each fold holds half of every class.
    EXPECT_NE(r.out.find("train: 210 images from " + sample + " (fold " + std::to_string(k) +
                         "/2 held out: 210 images)"),
              std::string::npos)
        << r.out;
    models[k] = out + "/best.npz";
    EXPECT_EQ(Json::parse(read_npz(models[k]).strings.at("training")).get("holdout_fold", ""),
              std::to_string(k) + "/2");
  }
  Model student = Model::load(models[0]);
  const data::Dataset train_set = load_dataset_for(student, sample, "Training", false);
  const std::vector<int> fold = data::cross_validation_folds(train_set, 2);
  const int64_t K = static_cast<int64_t>(student.classes().size());

  TrainConfig cfg;
  cfg.data = sample;
  cfg.teacher_tta = "none";
  cfg.quiet = true;
  cfg.workers = 1;
  cfg.cv_teachers = {models[0] + "," + models[1]};
  const std::vector<float> soft = teacher_probabilities(cfg, student, train_set);
  ASSERT_EQ(soft.size(), train_set.size() * K);
  // Each model on every example, to compare with.
  std::vector<float> everything[2];
  for (int k = 0; k < 2; ++k) {
    Model m = Model::load(models[k]);
    everything[k] = class_probabilities(m, train_set, 256, "none", 1);
  }
  float largest_gap = 0, models_differ = 0;
  for (size_t i = 0; i < train_set.size(); ++i)
    for (int64_t c = 0; c < K; ++c) {
      const float own = everything[fold[i]][i * K + c], other = everything[1 - fold[i]][i * K + c];
      largest_gap = std::max(largest_gap, std::fabs(soft[i * K + c] - own));
      models_differ = std::max(models_differ, std::fabs(own - other));
    }
  EXPECT_LT(largest_gap, 1e-5f) << "a row is not its fold's model's opinion";
  EXPECT_GT(models_differ, 1e-3f) << "the two models agree: the test could not tell them apart";

  // With a --teacher beside it, the two weigh the same.
  cfg.teachers = {models[0]};
  const std::vector<float> mixed = teacher_probabilities(cfg, student, train_set);
  float mixed_gap = 0;
  for (size_t i = 0; i < soft.size(); ++i)
    mixed_gap = std::max(mixed_gap, std::fabs(mixed[i] - 0.5f * (soft[i] + everything[0][i])));
  EXPECT_LT(mixed_gap, 1e-5f);
  // Named twice, the cross-validated teacher weighs twice as much.
  cfg.cv_teachers = {models[0] + "," + models[1], models[0] + "," + models[1]};
  const std::vector<float> twice = teacher_probabilities(cfg, student, train_set);
  float twice_gap = 0;
  for (size_t i = 0; i < soft.size(); ++i)
    twice_gap = std::max(twice_gap, std::fabs(twice[i] - (2 * soft[i] + everything[0][i]) / 3));
  EXPECT_LT(twice_gap, 1e-5f);
  cfg.teachers.clear();

  cfg.cv_teachers = {models[1] + "," + models[0]};
  EXPECT_NE(error_of([&] { teacher_probabilities(cfg, student, train_set); })
                .find("must be trained with --holdout-fold 0/2, but it held out fold 1/2"),
            std::string::npos);
  const std::string shipped = std::string(FER_SOURCE_DIR) + "/models/fer2013.npz";
  cfg.cv_teachers = {shipped + "," + models[1]};
  EXPECT_NE(error_of([&] { teacher_probabilities(cfg, student, train_set); })
                .find("it trained on every fold"),
            std::string::npos);

  const std::string cv = " --cv-teacher " + models[0] + "," + models[1];
  const auto [x, y] = resumed_and_straight(cv + " --distill 0.7", dir);
  const Json config = Json::parse(x.strings.at("training")).at("config");
  ASSERT_EQ(config.at("cv_teachers").size(), 1u);
  EXPECT_EQ(config.at("cv_teachers")[0].as_string(), models[0] + "," + models[1]);

  const std::pair<std::string, std::string> bad[] = {
      {"--cv-teacher " + models[0], "2 or more folds"},
      {"--cv-teacher " + models[0] + ",/nonexistent/m.npz", "/nonexistent/m.npz: no such file"},
      {cv + " --teacher-online", "does not combine with --teacher-online"},
      {cv + " --holdout-fold 0/2", "do not combine"},
      {"--holdout-fold 2/2", "0 <= K < N, got 2/2"},
      {"--holdout-fold 1", "expected K/N"},
      {"--holdout-fold 0/3x", "expected K/N"}};
  for (const auto& [flags, message] : bad) {
    const auto r = run_fer("train " + sample_run_flags() + flags + " --epochs 1 --out " + dir + "c");
    EXPECT_NE(r.status, 0) << flags;
    EXPECT_NE(r.out.find(message), std::string::npos) << flags << ": " << r.out;
  }
  testing::run_command("rm -rf " + dir + "a " + dir + "b " + dir + "c " + dir + "m0 " + dir + "m1");
}

}  // namespace
}  // namespace fer
