// `fer bench` as tools/bench_compare.py uses it: --json is one JSON object with the fields
// the comparison reads and values that hang together; --profile names the model's own
// leaf layers; bad flags are one-line errors. No timing is asserted (the machine is shared).
// Also the profiling hook underneath (Sequential::set_profiler, Tape::wrap_since): it sees
// every leaf forward and backward, and changes no result.
#include <gtest/gtest.h>

#include <omp.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "fer/architectures.h"
#include "fer/autograd.h"
#include "fer/json.h"
#include "fer/model.h"
#include "layers/loss.h"
#include "tests/gradcheck.h"
#include "tests/command.h"

using namespace fer;

namespace {

struct CommandResult {
  int status = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

std::string temp(const std::string& name) { return std::string(FER_BINARY_DIR) + "/bench_cli_" + name; }

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

CommandResult run(const std::string& args) {
  const std::string err_path = temp("stderr.txt");
  const fer::testing::CommandResult c =
      fer::testing::run_command(fer::testing::fer_binary() + " bench " + args + " 2>" + err_path);
  return {c.status, c.out, slurp(err_path)};
}

int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

Model make(const std::string& name, const Json& options) {
  return Model::from_architecture(make_architecture(name, options));
}

Json small_mobilenet_options() {
  Json o = Json::object();
  o["alpha"] = 0.25;
  o["size"] = 32;
  return o;
}

// The checks every --json result must pass, whatever the model.
void expect_consistent(const Json& j, const std::string& model, int size, int batch,
                       const std::string& mode, int64_t parameters) {
  for (const char* key : {"images_per_s", "ms_per_batch", "model", "size", "batch", "mode", "threads",
                          "alpha", "steps", "warmup", "min_ms", "p90_ms", "peak_rss_mib", "parameters"})
    EXPECT_TRUE(j.contains(key)) << key << " missing in " << j.dump();
  EXPECT_EQ(j.at("model").as_string(), model);
  EXPECT_EQ(j.at("size").as_int(), size);
  EXPECT_EQ(j.at("batch").as_int(), batch);
  EXPECT_EQ(j.at("mode").as_string(), mode);
  EXPECT_EQ(j.at("threads").as_int(), 1);
  EXPECT_EQ(j.at("steps").as_int(), 2);
  EXPECT_EQ(j.at("warmup").as_int(), 1);
  EXPECT_EQ(j.at("parameters").as_int(), parameters);
  const double ms = j.at("ms_per_batch").as_number();
  EXPECT_GT(ms, 0);
  EXPECT_LE(j.at("min_ms").as_number(), ms);
  EXPECT_GE(j.at("p90_ms").as_number(), ms);
  // images/s is the batch over the median step, not some other statistic.
  EXPECT_NEAR(j.at("images_per_s").as_number(), batch / (ms / 1e3), 1e-6 * batch / (ms / 1e3));
  EXPECT_GT(j.at("peak_rss_mib").as_number(), 1.0);
  EXPECT_LT(j.at("peak_rss_mib").as_number(), 64 * 1024.0);
}

// Counts what the hook reports, per layer name.
class CountingProfiler : public LayerProfiler {
 public:
  void record(const Layer& leaf, bool backward, double seconds) override {
    EXPECT_GE(seconds, 0.0);
    (backward ? backward_calls : forward_calls)[leaf.name()]++;
  }
  std::map<std::string, int> forward_calls, backward_calls;
};

}  // namespace

TEST(BenchCli, Cnn3TrainJson) {
  const CommandResult r = run("--model cnn3 --batch 4 --mode train --steps 2 --warmup 1 --threads 1 --json");
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_EQ(count_lines(r.out), 1) << "--json prints exactly one line: " << r.out;
  const Json j = Json::parse(r.out);
  expect_consistent(j, "cnn3", 48, 4, "train", make("cnn3", Json::object()).parameter_count(true));
  EXPECT_TRUE(j.at("alpha").is_null()) << "cnn3 has no width multiplier";
  EXPECT_FALSE(j.contains("profile"));
}

TEST(BenchCli, SmallMobileNetV1TrainAndInferJson) {
  const int64_t params = make("mobilenet_v1", small_mobilenet_options()).parameter_count(true);
  for (const std::string mode : {"train", "infer"}) {
    const CommandResult r = run("--model mobilenet_v1 --alpha 0.25 --size 32 --batch 3 --mode " + mode +
                                " --steps 2 --warmup 1 --threads 1 --json");
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    const Json j = Json::parse(r.out);
    expect_consistent(j, "mobilenet_v1", 32, 3, mode, params);
    EXPECT_DOUBLE_EQ(j.at("alpha").as_number(), 0.25);
  }
}

TEST(BenchCli, ProfileNamesTheModelsLeafLayers) {
  Model model = make("mobilenet_v1", small_mobilenet_options());
  std::set<std::string> leaves;
  for (Layer* l : model.net().leaves()) leaves.insert(l->name());

  const CommandResult r = run("--model mobilenet_v1 --alpha 0.25 --size 32 --batch 2 --steps 2 "
                              "--warmup 1 --threads 1 --json --profile");
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  const Json j = Json::parse(r.out);
  ASSERT_TRUE(j.contains("profile"));
  const auto& rows = j.at("profile").at("layers").as_array();
  std::set<std::string> seen;
  double percent = 0, previous_total = 1e300;
  bool some_backward = false;
  for (const Json& row : rows) {
    const std::string name = row.at("layer").as_string();
    EXPECT_TRUE(leaves.count(name)) << "profile names '" << name << "', not a layer of the model";
    EXPECT_TRUE(seen.insert(name).second) << name << " listed twice";
    const double total = row.at("forward_ms").as_number() + row.at("backward_ms").as_number();
    // The JSON holds each of the two times to 9 significant digits, so two rows whose
    // totals tie to ~1e-9 may come back in either order (seen in CI: 0.008481 vs 0.008481).
    EXPECT_LE(total, previous_total * (1 + 1e-8)) << "rows are sorted by total time, slowest first";
    previous_total = total;
    percent += row.at("percent").as_number();
    some_backward |= row.at("backward_ms").as_number() > 0;
  }
  EXPECT_EQ(seen, leaves) << "every leaf layer runs in a step, so every one is in the profile";
  EXPECT_TRUE(some_backward) << "train mode profiles the backward pass too";
  for (const Json& row : j.at("profile").at("other").as_array()) percent += row.at("percent").as_number();
  // Leaves plus the unattributed parts make up the step (timer reads add a little slack).
  EXPECT_GT(percent, 80.0);
  EXPECT_LT(percent, 101.0);

  // The human-readable profile lists layers by name too.
  const CommandResult text = run("--model mobilenet_v1 --alpha 0.25 --size 32 --batch 2 --steps 2 "
                                 "--warmup 1 --threads 1 --profile --top 5");
  ASSERT_EQ(text.status, 0) << text.out << text.err;
  EXPECT_NE(text.out.find("per-layer time"), std::string::npos) << text.out;
  int named = 0;
  for (const std::string& leaf : leaves) named += text.out.find("  " + leaf + " ") != std::string::npos;
  EXPECT_EQ(named, 5) << "--top 5 shows five layers:\n" << text.out;
  EXPECT_NE(text.out.find("more layers"), std::string::npos) << text.out;
}

TEST(BenchCli, SaveModelWritesTheInitializedNetwork) {
  const std::string path = temp("mobilenet.npz");
  std::remove(path.c_str());
  const CommandResult r = run("--model mobilenet_v1 --alpha 0.25 --size 32 --steps 0 --save-model " + path);
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  Model saved = Model::load(path);
  Model fresh = make("mobilenet_v1", small_mobilenet_options());
  EXPECT_EQ(saved.parameter_count(), fresh.parameter_count());
  // Same default seed: the saved weights are the ones `fer bench` times.
  const auto a = saved.parameters(), b = fresh.parameters();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i]->value.to_vector(), b[i]->value.to_vector()) << a[i]->name;
}

TEST(BenchCli, BadFlagsAreOneLineErrors) {
  const std::map<std::string, std::string> cases = {
      {"--model cnn3 --mode fast", "--mode must be train or infer"},
      {"--model cnn3 --batch 0", "--batch must be >= 1"},
      {"--model cnn3 --steps 0", "--steps must be >= 1"},
      {"--model cnn3 --warmup -1", "--warmup must be >= 0"},
      {"--model cnn3 --threads 0", "--threads must be >= 1"},
      {"--model nosuch", "unknown model 'nosuch'"},
      {"--batch 8", "--model NAME is required"},
      {"--model cnn3 --stpes 3", "unknown flag --stpes"},
      {"--model cnn3 --top 3", "--top applies to --profile"},
      {"--model mobilenet_v1 --size 8", "input size must be >= 32"},
  };
  for (const auto& [args, message] : cases) {
    const CommandResult r = run(args);
    EXPECT_EQ(r.status, 1) << args;
    EXPECT_EQ(r.out, "") << args;
    EXPECT_EQ(count_lines(r.err), 1) << args << ": " << r.err;
    EXPECT_NE(r.err.find("fer bench"), std::string::npos) << args << ": " << r.err;
    EXPECT_NE(r.err.find(message), std::string::npos) << args << ": " << r.err;
  }
}

// The hook itself, in process: each leaf reports one forward and (in training) its
// backward closures; results are bit-identical with and without it; nothing is reported
// once it is removed.
TEST(BenchProfiler, SeesEveryLeafAndChangesNothing) {
  Json o = Json::object();
  o["size"] = 32;
  o["alpha"] = 0.25;
  Rng rng(5);
  const Tensor x = fer::testing::random_tensor({2, 32, 32, 3}, rng, 0, 1);
  const std::vector<int> labels = {1, 4};
  omp_set_num_threads(1);  // one summation order, so "bit-identical" is a fair demand

  auto step = [&](Model& m) {
    Tensor loss = softmax_cross_entropy(m.forward(x, true), labels);
    backward(loss);
    std::vector<std::vector<float>> grads;
    for (Parameter* p : m.parameters())
      if (p->value.requires_grad()) grads.push_back(p->value.grad_tensor().to_vector());
    return std::make_pair(loss.to_vector(), grads);
  };

  // mobilenet_v2 has Residual blocks: containers inside containers, plus the additions.
  for (const std::string name : {"mobilenet_v1", "mobilenet_v2"}) {
    Model plain = make(name, o), profiled = make(name, o);
    const auto expected = step(plain);
    CountingProfiler prof;
    Sequential::set_profiler(&prof);
    const auto got = step(profiled);
    Sequential::set_profiler(nullptr);
    EXPECT_EQ(got.first, expected.first) << name;
    EXPECT_EQ(got.second, expected.second) << name << ": profiling changed a gradient";

    // Every leaf ran once forward, and every one recorded a backward closure (after the
    // first convolution every input requires a gradient).
    for (Layer* leaf : profiled.net().leaves()) {
      EXPECT_EQ(prof.forward_calls[leaf->name()], 1) << name << " " << leaf->name();
      EXPECT_GE(prof.backward_calls[leaf->name()], 1) << name << " " << leaf->name();
    }
    EXPECT_EQ(prof.forward_calls.size(), profiled.net().leaves().size()) << name;

    const size_t before = prof.forward_calls.size() + prof.backward_calls.size();
    step(profiled);  // no profiler installed: nothing more is counted
    EXPECT_EQ(prof.forward_calls.size() + prof.backward_calls.size(), before);
    int total = 0;
    for (const auto& kv : prof.forward_calls) total += kv.second;
    EXPECT_EQ(total, static_cast<int>(profiled.net().leaves().size())) << name;
  }
}

TEST(BenchProfiler, TapeWrapSinceWrapsOnlyTheNewEntries) {
  Tape& tape = Tape::current();
  tape.clear();
  std::vector<std::string> ran;
  tape.record([&] { ran.push_back("a"); });
  const size_t mark = tape.size();
  tape.record([&] { ran.push_back("b"); });
  tape.record([&] { ran.push_back("c"); });
  tape.wrap_since(mark, [&](Tape::Backward fn) -> Tape::Backward {
    return [&ran, fn] { ran.push_back("<"); fn(); ran.push_back(">"); };
  });
  EXPECT_EQ(tape.size(), 3u);
  Tensor out({1}, 0.f);
  out.set_requires_grad(true);
  tape.backward(out, Tensor({1}, 1.f));
  EXPECT_EQ(ran, (std::vector<std::string>{"<", "c", ">", "<", "b", ">", "a"}));
  EXPECT_EQ(tape.size(), 0u);
}
