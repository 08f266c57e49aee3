// tools/average_weights.py (a "model soup"): the averaged model loads in fer, every array is
// the mean of the inputs' (BatchNorm moving statistics included), and mismatched inputs are
// one-line errors that leave nothing behind. Skips when /usr/bin/python3 lacks numpy.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "fer/json.h"
#include "fer/model.h"
#include "tests/command.h"

namespace fer {
namespace {

using testing::kPython;
using testing::run_command;

// A small cnn3 whose every array (BatchNorm statistics too) depends on `seed`.
Model small_cnn3(uint64_t seed, int classes = 7, double dropout = 0.5) {
  Json options = Json::object();
  options["size"] = 16;
  options["num_classes"] = classes;
  options["dropout"] = dropout;
  Json arch = Json::object();
  arch["name"] = "cnn3";
  arch["options"] = options;
  Model m = Model::from_architecture(arch, seed);
  for (Parameter* p : m.parameters())
    for (int64_t i = 0; i < p->value.numel(); ++i)
      p->value.data()[i] += 0.01f * static_cast<float>((i * 7 + seed * 13) % 11);
  return m;
}

testing::CommandResult average(const std::string& args) {
  return run_command(std::string(kPython) + " " + FER_SOURCE_DIR + "/tools/average_weights.py " +
                     args + " 2>&1");
}

TEST(AverageWeights, EveryArrayIsTheMeanAndBadInputsAreOneLineErrors) {
  if (!testing::python_has("numpy")) GTEST_SKIP() << kPython << " with numpy is not available: skipping";
  const std::string dir = std::string(FER_BINARY_DIR) + "/test_average_weights";
  run_command("rm -rf " + dir + " && mkdir -p " + dir);
  Model a = small_cnn3(1), b = small_cnn3(2), c = small_cnn3(3);
  a.save(dir + "/a.npz");
  b.save(dir + "/b.npz");
  c.save(dir + "/c.npz");

  const auto r = average(dir + "/soup.npz " + dir + "/a.npz " + dir + "/b.npz " + dir + "/c.npz");
  ASSERT_EQ(r.status, 0) << r.out;
  Model soup = Model::load(dir + "/soup.npz");
  const auto pa = a.parameters(), pb = b.parameters(), pc = c.parameters(), ps = soup.parameters();
  ASSERT_EQ(ps.size(), pa.size());
  float largest_gap = 0, inputs_differ = 0;
  bool saw_moving_variance = false;
  for (size_t k = 0; k < ps.size(); ++k) {
    ASSERT_EQ(ps[k]->name, pa[k]->name);
    ASSERT_EQ(ps[k]->value.numel(), pa[k]->value.numel());
    saw_moving_variance |= ps[k]->name.find("moving_variance") != std::string::npos;
    for (int64_t i = 0; i < ps[k]->value.numel(); ++i) {
      const float x = pa[k]->value.data()[i], y = pb[k]->value.data()[i], z = pc[k]->value.data()[i];
      largest_gap = std::max(largest_gap, std::fabs(ps[k]->value.data()[i] - (x + y + z) / 3));
      inputs_differ = std::max(inputs_differ, std::fabs(x - y));
    }
  }
  EXPECT_TRUE(saw_moving_variance);
  EXPECT_LT(largest_gap, 1e-6f);
  EXPECT_GT(inputs_differ, 1e-3f) << "the inputs are equal: the test could not see an average";

  // Same arrays, another dropout rate: averaged, with a note, in the first input's settings.
  small_cnn3(5, 7, 0.3).save(dir + "/dropout.npz");
  const auto d = average(dir + "/soup2.npz " + dir + "/a.npz " + dir + "/dropout.npz");
  ASSERT_EQ(d.status, 0) << d.out;
  EXPECT_NE(d.out.find("dropout.npz's architecture settings differ"), std::string::npos) << d.out;
  EXPECT_EQ(Model::load(dir + "/soup2.npz").architecture().at("options").get("dropout", 0.0), 0.5);

  // Another architecture, a missing input, one input only: status 1, one line, no traceback,
  // and no output file.
  small_cnn3(4, 5).save(dir + "/five_classes.npz");
  const std::pair<std::string, std::string> bad[] = {
      {dir + "/a.npz " + dir + "/five_classes.npz", "five_classes.npz"},
      {dir + "/a.npz " + dir + "/absent.npz", "absent.npz: cannot read it"},
      {dir + "/a.npz", "two or more inputs"}};
  for (const auto& [inputs, message] : bad) {
    const auto e = average(dir + "/bad.npz " + inputs);
    EXPECT_EQ(e.status, 1) << inputs << ": " << e.out;
    EXPECT_NE(e.out.find(message), std::string::npos) << inputs << ": " << e.out;
    EXPECT_EQ(e.out.find("Traceback"), std::string::npos) << e.out;
    EXPECT_EQ(std::count(e.out.begin(), e.out.end(), '\n'), 1) << e.out;
    EXPECT_NE(run_command("test -e " + dir + "/bad.npz").status, 0) << inputs;
  }
  run_command("rm -rf " + dir);
}

}  // namespace
}  // namespace fer
