// `fer bench`: whole-network speed of one architecture -- a training step (forward, loss,
// backward, Adam step, zero_grad) or inference (forward without a tape) -- on random
// inputs, as median / min / p90 milliseconds per batch and images per second. `--json`
// prints the fields tools/bench_torch.py prints for the same network in PyTorch, so
// tools/bench_compare.py can put them side by side. `--profile` splits the step into its
// leaf layers (forward and backward separately) through Sequential's profiler hook.
#include <omp.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "fer/architectures.h"
#include "fer/autograd.h"
#include "fer/cli.h"
#include "fer/cli_args.h"
#include "fer/cli_model_flags.h"
#include "fer/error.h"
#include "fer/model.h"
#include "layers/loss.h"
#include "optim/optimizer.h"

namespace fer::cli {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// Median (mean of the two middle values for an even count) and nearest-rank percentile;
// tools/bench_torch.py computes them the same way so the two outputs compare.
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * v.size()));
  return v[std::max<size_t>(rank, 1) - 1];
}

long minor_page_faults() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
}

double peak_rss_mib() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;  // Linux reports KiB
}

// Per-leaf totals over the timed steps, in the order the layers first ran.
class Profile : public LayerProfiler {
 public:
  struct Row {
    std::string name, type;
    double forward_ms = 0, backward_ms = 0;
  };

  void record(const Layer& leaf, bool backward, double seconds) override {
    auto it = index_.find(&leaf);
    if (it == index_.end()) {
      it = index_.emplace(&leaf, rows_.size()).first;
      rows_.push_back({leaf.name(), leaf.type()});
    }
    (backward ? rows_[it->second].backward_ms : rows_[it->second].forward_ms) += seconds * 1e3;
  }
  const std::vector<Row>& rows() const { return rows_; }

 private:
  std::map<const Layer*, size_t> index_;
  std::vector<Row> rows_;
};

// Where the time of the timed steps went, summed over those steps.
struct Phases {
  double forward = 0, loss = 0, backward = 0, optimizer = 0;
};

const std::vector<FlagSpec>& bench_flags() {
  static const std::vector<FlagSpec> flags = [] {
    std::vector<FlagSpec> f = {
        {"model", "NAME|FILE", "architecture name (cnn3, mobilenet_v1, ...) or a model file (.npz)"},
        {"batch", "B", "images per batch (default 64)"},
        {"mode", "MODE", "train (forward, loss, backward, Adam step) or infer (default train)"},
        {"threads", "N", "compute threads (default: OMP_NUM_THREADS or all cores)"},
        {"steps", "N", "timed steps (default 20; 0 with --save-model: only save)"},
        {"warmup", "N", "untimed steps first (default 3)"},
        {"seed", "S", "initialization seed (default 42)"},
        {"json", "", "print one JSON object instead of the report"},
        {"profile", "", "time every leaf layer, forward and backward separately"},
        {"top", "K", "with --profile: show only the K slowest layers"},
        {"save-model", "FILE", "write the freshly initialized model (.npz) before timing"},
    };
    for (const FlagSpec& m : model_option_flags()) f.push_back(m);
    return f;
  }();
  return flags;
}

bool is_model_file(const std::string& s) {
  return s.size() > 4 && s.compare(s.size() - 4, 4, ".npz") == 0;
}

Tensor random_inputs(const Model& m, int batch, Rng& rng) {
  const Shape& in = m.input_shape();
  Tensor x({batch, in[0], in[1], in[2]});
  float* d = x.data();
  for (int64_t i = 0; i < x.numel(); ++i) d[i] = static_cast<float>(rng.uniform());
  return x;
}

// The profile as rows sorted by total time, plus the parts of the step no leaf owns.
Json profile_json(const Profile& prof, const Phases& ph, int steps, double step_ms, bool train) {
  std::vector<Profile::Row> rows = prof.rows();
  std::stable_sort(rows.begin(), rows.end(), [](const Profile::Row& a, const Profile::Row& b) {
    return a.forward_ms + a.backward_ms > b.forward_ms + b.backward_ms;
  });
  double leaf_fwd = 0, leaf_bwd = 0;
  for (const auto& r : rows) leaf_fwd += r.forward_ms, leaf_bwd += r.backward_ms;
  Json layers = Json::array();
  auto add = [&](const std::string& name, const std::string& type, double f, double b) {
    Json j = Json::object();
    j["layer"] = name;
    j["type"] = type;
    j["forward_ms"] = f / steps;
    j["backward_ms"] = b / steps;
    j["percent"] = step_ms > 0 ? 100.0 * (f + b) / steps / step_ms : 0.0;
    layers.push_back(j);
  };
  for (const auto& r : rows) add(r.name, r.type, r.forward_ms, r.backward_ms);
  Json other = Json::array();
  // Time inside a phase but outside every leaf: Residual additions, the loss's own
  // backward closure, tape bookkeeping.
  auto add_other = [&](const std::string& name, double f, double b) {
    const size_t before = layers.size();
    add(name, "", std::max(0.0, f), std::max(0.0, b));
    other.push_back(layers.as_array()[before]);
  };
  Json result = Json::object();
  add_other("(forward outside leaves)", ph.forward - leaf_fwd, 0);
  if (train) {
    add_other("(loss)", ph.loss, 0);
    add_other("(backward outside leaves)", 0, ph.backward - leaf_bwd);
    add_other("(optimizer step + zero_grad)", ph.optimizer, 0);
  }
  Json only_leaves = Json::array();
  for (size_t i = 0; i < rows.size(); ++i) only_leaves.push_back(layers.as_array()[i]);
  result["layers"] = only_leaves;
  result["other"] = other;
  result["step_ms"] = step_ms;
  return result;
}

void print_profile(const Json& profile, int top, bool train) {
  const auto& layers = profile.at("layers").as_array();
  std::printf("\nper-layer time, mean per timed step (the step is %.2f ms = 100%%):\n",
              profile.at("step_ms").as_number());
  // Timing each layer on its own turns off what crosses layers: in inference, the chunked
  // convolution + BatchNorm chains (Sequential::forward_chain), so there a BatchNorm is a
  // pass of its own over memory, which an unprofiled step does not make.
  if (!train)
    std::printf("  (profiled steps run layer by layer, without the convolution + BatchNorm "
                "chunk chains of an unprofiled inference step)\n");
  std::printf("  %-32s %-24s %10s %11s %10s %6s\n", "layer", "type", "forward ms",
              "backward ms", "total ms", "%");
  const size_t shown = top > 0 ? std::min<size_t>(top, layers.size()) : layers.size();
  auto line = [](const Json& r) {
    const double f = r.at("forward_ms").as_number(), b = r.at("backward_ms").as_number();
    std::printf("  %-32s %-24s %10.3f %11.3f %10.3f %6.1f\n", r.at("layer").as_string().c_str(),
                r.at("type").as_string().c_str(), f, b, f + b, r.at("percent").as_number());
  };
  for (size_t i = 0; i < shown; ++i) line(layers[i]);
  if (shown < layers.size()) {
    double f = 0, b = 0, pct = 0;
    for (size_t i = shown; i < layers.size(); ++i) {
      f += layers[i].at("forward_ms").as_number();
      b += layers[i].at("backward_ms").as_number();
      pct += layers[i].at("percent").as_number();
    }
    std::printf("  %-32s %-24s %10.3f %11.3f %10.3f %6.1f\n",
                ("(" + std::to_string(layers.size() - shown) + " more layers)").c_str(), "", f, b,
                f + b, pct);
  }
  for (const Json& r : profile.at("other").as_array()) line(r);
}

}  // namespace

int bench(int argc, char** argv) {
  Args args("bench", bench_flags(), argc, argv);
  if (args.help()) {
    std::printf("usage: fer bench --model NAME [model options] --batch B --mode train|infer "
                "[--threads T] [--steps N] [--warmup W] [--json] [--profile]\n\n%s",
                args.usage().c_str());
    return 0;
  }
  FER_CHECK(args.has("model"), "fer bench: --model NAME is required (known: ", [] {
    std::string s;
    for (const auto& n : known_architectures()) s += (s.empty() ? "" : ", ") + n;
    return s;
  }(), ")");
  const int batch = args.integer("batch", 64);
  FER_CHECK(batch >= 1, "fer bench: --batch must be >= 1, got ", batch);
  const std::string mode = args.str("mode", "train");
  FER_CHECK(mode == "train" || mode == "infer", "fer bench: --mode must be train or infer, got '",
            mode, "'");
  const bool train = mode == "train";
  const int steps = args.integer("steps", 20);
  const int warmup = args.integer("warmup", 3);
  FER_CHECK(steps >= 1 || (steps == 0 && args.has("save-model")),
            "fer bench: --steps must be >= 1 (0 only with --save-model), got ", steps);
  FER_CHECK(warmup >= 0, "fer bench: --warmup must be >= 0, got ", warmup);
  if (args.has("threads"))
    FER_CHECK(args.integer("threads", 0) >= 1, "fer bench: --threads must be >= 1, got ",
              args.str("threads"));
  set_threads(args.integer("threads", 0));
  const int threads = omp_get_max_threads();
  const bool profile = args.flag("profile");
  FER_CHECK(!args.has("top") || profile, "fer bench: --top applies to --profile");

  const std::string what = args.str("model");
  Json options = Json::object();
  read_model_options(args, options);
  FER_CHECK(!is_model_file(what) || options.size() == 0,
            "fer bench: architecture options apply to a name, not to a model file");
  Model model = is_model_file(what)
                    ? Model::load(what)
                    : Model::from_architecture(make_architecture(what, options),
                                               static_cast<uint64_t>(args.integer("seed", 42)));
  if (args.has("save-model")) {
    model.save(args.str("save-model"));
    if (!args.flag("json"))
      std::fprintf(stderr, "wrote %s (%lld parameters)\n", args.str("save-model").c_str(),
                   (long long)model.parameter_count());
    if (steps == 0) return 0;
  }

  Rng rng(1);
  const Tensor x = random_inputs(model, batch, rng);
  const int num_classes = static_cast<int>(model.classes().size());
  std::vector<int> labels(batch);
  for (int i = 0; i < batch; ++i) labels[i] = static_cast<int>(rng.next_u64() % num_classes);
  std::unique_ptr<optim::Optimizer> optimizer;
  if (train) {
    Json opts = Json::object();
    opts["lr"] = 1e-3;
    optimizer = optim::make_optimizer("adam", model.parameters(), opts);
  }

  Profile prof;
  Profile warmup_prof;  // discarded: the warm-up must run the profiled steps' code path
  Phases phases;
  std::vector<double> step_ms;
  long faults_before = 0;
  for (int s = 0; s < warmup + steps; ++s) {
    const bool timed = s >= warmup;
    if (s == warmup) faults_before = minor_page_faults();
    // Profiled steps run layer by layer (no inference chains), which needs buffers of other
    // sizes: warming up unprofiled left their allocation, and page faults, to the first
    // timed step (~7,100 faults, a 28 MB BatchNorm output of MobileNet V1 inference).
    if (profile) Sequential::set_profiler(timed ? &prof : &warmup_prof);
    const auto start = Clock::now();
    if (train) {
      Tensor logits = model.forward(x, true);
      const double forward_ms = ms_since(start);
      const auto t_loss = Clock::now();
      Tensor loss = softmax_cross_entropy(logits, labels);
      const double loss_ms = ms_since(t_loss);
      const auto t_backward = Clock::now();
      backward(loss);
      const double backward_ms = ms_since(t_backward);
      const auto t_opt = Clock::now();
      optimizer->step();
      optimizer->zero_grad();
      const double opt_ms = ms_since(t_opt);
      if (timed) {
        phases.forward += forward_ms, phases.loss += loss_ms;
        phases.backward += backward_ms, phases.optimizer += opt_ms;
      }
    } else {
      NoGradGuard no_grad;
      Tensor logits = model.forward(x, false);
      if (timed) phases.forward += ms_since(start);
    }
    const double ms = ms_since(start);
    Sequential::set_profiler(nullptr);
    if (timed) step_ms.push_back(ms);
  }

  // Page faults per step: memory handed back to the OS and faulted in again each step.
  const double faults_per_step = double(minor_page_faults() - faults_before) / steps;
  const double med = median(step_ms);
  const double mean = std::accumulate(step_ms.begin(), step_ms.end(), 0.0) / step_ms.size();
  const Json& opts = model.architecture().at("options");
  Json j = Json::object();
  j["tool"] = "fer";
  j["model"] = model.name();
  j["size"] = static_cast<int64_t>(model.input_shape()[0]);
  j["channels"] = static_cast<int64_t>(model.input_shape()[2]);
  // alpha only means something for the MobileNets; null elsewhere (bench_torch.py agrees).
  j["alpha"] = model.name().rfind("mobilenet", 0) == 0 ? Json(opts.get("alpha", 1.0)) : Json();
  j["batch"] = batch;
  j["mode"] = mode;
  j["threads"] = threads;
  j["steps"] = steps;
  j["warmup"] = warmup;
  j["ms_per_batch"] = med;
  j["min_ms"] = *std::min_element(step_ms.begin(), step_ms.end());
  j["p90_ms"] = percentile(step_ms, 90);
  j["mean_ms"] = mean;
  j["images_per_s"] = batch / (med / 1e3);
  j["peak_rss_mib"] = peak_rss_mib();
  j["page_faults_per_step"] = faults_per_step;
  j["parameters"] = model.parameter_count(true);  // trainable, as PyTorch counts them
  Json prof_json;
  if (profile) {
    prof_json = profile_json(prof, phases, steps, mean, train);
    j["profile"] = prof_json;
  }
  if (args.flag("json")) {
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::string alpha;
  if (!j.at("alpha").is_null()) {
    char buf[32];
    std::snprintf(buf, sizeof buf, " alpha %g", j.at("alpha").as_number());
    alpha = buf;
  }
  std::printf("fer bench: %s%s %s, %s, batch %d, %d thread%s, %d steps after %d warm-up\n",
              model.name().c_str(), alpha.c_str(), shape_str(model.input_shape()).c_str(),
              mode.c_str(), batch, threads, threads == 1 ? "" : "s", steps, warmup);
  std::printf("  %.2f ms/batch median (min %.2f, p90 %.2f), %.1f images/s, peak RSS %.0f MiB, "
              "%.0f page faults/step, %lld trainable parameters\n",
              med, j.at("min_ms").as_number(), j.at("p90_ms").as_number(),
              j.at("images_per_s").as_number(), j.at("peak_rss_mib").as_number(), faults_per_step,
              (long long)model.parameter_count(true));
  if (profile) print_profile(prof_json, args.integer("top", 0), train);
  return 0;
}

}  // namespace fer::cli
