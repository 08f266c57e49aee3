// The `fer` command end to end, as a user runs it: errors are one clear line with a
// non-zero exit, and cnn3 trained briefly on a subset of FER2013 learns (loss falls,
// validation accuracy clearly beats always answering the majority class).
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "fer/autograd.h"
#include "fer/json.h"
#include "fer/model.h"
#include "fer/npy.h"
#include "fer/npz.h"
#include "tests/command.h"

namespace {

using fer::testing::CommandResult;
CommandResult run(const std::string& args) { return fer::testing::run_fer(args); }

std::string shared_fer2013() { return std::string(FER_SOURCE_DIR) + "/../shared/datasets/fer2013"; }

bool exists(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0;
}

std::string tmp_dir(const std::string& name) {
  const std::string d = std::string(FER_BINARY_DIR) + "/cli_test_" + name;
  std::system(("rm -rf '" + d + "'").c_str());
  return d;
}

int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

}  // namespace

TEST(Cli, UnknownCommandAndFlagAreOneLineErrors) {
  CommandResult r = run("frobnicate");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("unknown command 'frobnicate'"), std::string::npos) << r.out;

  r = run("train --epoch 3");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("unknown flag --epoch (did you mean --epochs?)"), std::string::npos) << r.out;
  EXPECT_EQ(count_lines(r.out), 1) << r.out;

  r = run("train --epochs three");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("--epochs expects an integer"), std::string::npos) << r.out;
}

TEST(Cli, MissingFilesAreNamed) {
  CommandResult r = run("eval --model /nonexistent/model.npz --data /tmp");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("/nonexistent/model.npz"), std::string::npos) << r.out;
  EXPECT_EQ(count_lines(r.out), 1) << r.out;

  r = run("train --data /nonexistent/train --val /nonexistent/val --epochs 1");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("/nonexistent/train"), std::string::npos) << r.out;
}

TEST(Cli, TrainResumeEvalPredictInferOnTheCommittedSample) {
  const std::string sample = std::string(FER_SOURCE_DIR) + "/data/sample_faces";
  const std::string out = tmp_dir("sample");
  // One compute thread: sums then happen in one fixed order, so runs are bit-reproducible.
  const std::string common = "--data " + sample + "/train --val " + sample +
                             "/val --batch 32 --seed 3 --threads 1 --workers 1 --flip --quiet";
  CommandResult r = run("train " + common + " --epochs 2 --out " + out);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_TRUE(exists(out + "/best.npz"));
  EXPECT_TRUE(exists(out + "/last.npz"));
  std::ifstream h(out + "/history.csv");
  std::stringstream hs;
  hs << h.rdbuf();
  EXPECT_EQ(count_lines(hs.str()), 3) << hs.str();  // header + 2 epochs

  // --resume continues to epoch 3 from last.npz, and only --epochs/--threads may be given.
  r = run("train --resume " + out + " --epochs 3 --lr 0.1");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("--lr cannot be changed on --resume"), std::string::npos) << r.out;
  r = run("train --resume " + out + " --epochs 3 --threads 1");
  ASSERT_EQ(r.status, 0) << r.out;
  // The interrupted-and-resumed run ends bit-identical to an uninterrupted one: weights,
  // BatchNorm statistics and Adam's moments (dropout masks, shuffling, augmentation and
  // optimizer state are all restored).
  const std::string straight = tmp_dir("sample_straight");
  r = run("train " + common + " --epochs 3 --out " + straight);
  ASSERT_EQ(r.status, 0) << r.out;
  {
    const fer::NpzArrays a = fer::read_npz(out + "/last.npz");
    const fer::NpzArrays b = fer::read_npz(straight + "/last.npz");
    ASSERT_EQ(a.tensors.size(), b.tensors.size());
    int optimizer_slots = 0;
    for (const auto& [name, t] : a.tensors) {
      ASSERT_TRUE(b.tensors.count(name)) << name;
      EXPECT_EQ(t.to_vector(), b.tensors.at(name).to_vector()) << name;
      optimizer_slots += name.rfind("optimizer/", 0) == 0;
    }
    EXPECT_GT(optimizer_slots, 0) << "last.npz holds no optimizer state";
  }
  std::ifstream h2(out + "/history.csv");
  std::stringstream hs2;
  hs2 << h2.rdbuf();
  EXPECT_EQ(count_lines(hs2.str()), 4) << hs2.str();
  EXPECT_EQ(hs2.str().substr(0, hs.str().size()), hs.str());  // earlier rows kept

  r = run("eval --model " + out + "/best.npz --data " + sample + "/val --json");
  ASSERT_EQ(r.status, 0) << r.out;
  const fer::Json j = fer::Json::parse(r.out);
  for (const char* key : {"accuracy", "macro_f1", "per_class", "confusion_matrix", "classes"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j.at("classes").size(), 7u);
  int64_t total = 0;
  for (const auto& row : j.at("confusion_matrix").as_array())
    for (const auto& v : row.as_array()) total += v.as_int();
  EXPECT_EQ(total, 7 * 15);

  r = run("predict --model " + out + "/best.npz --top 3 " + sample + "/val/happy/" +
          "$(ls " + sample + "/val/happy | head -1)");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find(".jpg: "), std::string::npos) << r.out;

  r = run("predict --model " + out + "/best.npz /nonexistent.jpg");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("/nonexistent.jpg"), std::string::npos) << r.out;

  // fer infer gives the logits of an in-process forward pass.
  fer::Model model = fer::Model::load(out + "/best.npz");
  fer::Rng rng(4);
  fer::Tensor x({3, 48, 48, 1});
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>(rng.uniform());
  fer::write_npy(out + "/x.npy", x);
  r = run("infer --model " + out + "/best.npz --input " + out + "/x.npy --output " + out + "/y.npy");
  ASSERT_EQ(r.status, 0) << r.out;
  const fer::Tensor y = fer::read_npy(out + "/y.npy");
  fer::NoGradGuard no_grad;
  const fer::Tensor want = model.forward(x, false);
  ASSERT_EQ(y.shape(), want.shape());
  for (int64_t i = 0; i < y.numel(); ++i) EXPECT_NEAR(y.data()[i], want.data()[i], 1e-5);
  // A batch of the wrong size is one line naming the file and both shapes.
  fer::write_npy(out + "/bad.npy", fer::Tensor({2, 32, 32, 1}));
  r = run("infer --model " + out + "/best.npz --input " + out + "/bad.npy --output " + out + "/z.npy");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(count_lines(r.out), 1) << r.out;
  EXPECT_NE(r.out.find("bad.npy"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[2, 32, 32, 1]"), std::string::npos) << r.out;

  r = run("summary --model " + out + "/best.npz");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("parameters: 1470247"), std::string::npos) << r.out;

  // --expect-size: a 48x48 dataset checked against 40x40 is an error naming a file.
  r = run("eval --model " + out + "/best.npz --data " + sample + "/val --expect-size 40x40");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find(".jpg"), std::string::npos) << r.out;
}

TEST(Cli, Cnn3LearnsOnASubsetOfFer2013) {
  const std::string root = shared_fer2013();
  if (!exists(root + "/train") || !exists(root + "/val"))
    GTEST_SKIP() << "FER2013 not found at " << root << ": skipping the end-to-end training test";
  const std::string out = tmp_dir("fer2013");
  CommandResult r = run("train --data " + root + "/train --val " + root + "/val --max-per-class 500 " +
              "--val-max-per-class 100 --epochs 4 --batch 64 --lr 1e-3 --quiet --seed 1 --threads 2 " +
                        "--out " + out);
  ASSERT_EQ(r.status, 0) << r.out;

  std::ifstream h(out + "/history.csv");
  std::string line;
  std::vector<double> loss;
  std::getline(h, line);  // header
  while (std::getline(h, line)) {
    std::stringstream ss(line);
    std::string epoch, l;
    std::getline(ss, epoch, ',');
    std::getline(ss, l, ',');
    loss.push_back(std::stod(l));
  }
  ASSERT_EQ(loss.size(), 4u);
  EXPECT_LT(loss.back(), loss.front() * 0.95) << "training loss did not fall";

  r = run("eval --model " + out + "/best.npz --data " + root + "/val --json");
  ASSERT_EQ(r.status, 0) << r.out;
  const fer::Json j = fer::Json::parse(r.out);
  // The majority class of PublicTest (happy) is 895 of 3,589 images: 24.9%.
  int64_t majority = 0, total = 0;
  const auto& cm = j.at("confusion_matrix").as_array();
  for (const auto& row : cm) {
    int64_t n = 0;
    for (const auto& v : row.as_array()) n += v.as_int();
    majority = std::max(majority, n);
    total += n;
  }
  const double acc = j.at("accuracy").as_number();
  std::printf("cnn3 on 3,500 training faces, 4 epochs: val accuracy %.4f (majority %.4f)\n", acc,
              double(majority) / total);
  EXPECT_GT(acc, double(majority) / total + 0.05);
}
