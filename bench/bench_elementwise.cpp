// Elementwise kernels: ReLU / ReLU6 forward and backward (kernels/activation.h) and the SGD
// and Adam/AdamW updates (kernels/optimizer_update.h), the plain reference loops against
// the Highway kernels, at the sizes a training step of MobileNet V1 alpha 0.75 at 96 px,
// batch 64, hands them:
//
//   activations  48x48x24 and 24x24x96 (3.5M floats, the largest), 3x3x768 (0.44M, the
//                smallest), times batch 64
//   optimizer    all 1.8M parameters as one array ("all"), and the largest tensor
//                (768x768 = 0.59M, the last pointwise convolution)
//
// Variants: ref (the `_ref` loop, one thread; compiled with -march=native, so GCC has
// vectorized what it could), hwy (the dispatched Highway kernel, OpenMP threads as in
// training) and hwy1 (the same on one thread, to compare with ref core for core).
//
//   OMP_WAIT_POLICY=passive build/bench/bench_elementwise --benchmark_repetitions=5
//     --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only
//     --benchmark_min_time=0.05
//
// Counter GB (printed as GB=.../s): the bytes each call must move, every array read once
// and every written array written once (relu forward: x, y; backward: x, dy, dx read and
// dx written; SGD with momentum: w, g, buf read, w, buf written; Adam: w, g, m, v read,
// w, m, v written), divided by wall time.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cstdint>
#include <string>

#include "bench/bench_arrays.h"
#include "fer/rng.h"
#include "fer/tensor.h"
#include "kernels/activation.h"
#include "kernels/optimizer_update.h"

using namespace fer::kernels;

namespace {

using fer::bench::Array;  // 64-byte aligned, as fer's tensors
using fer::bench::random_values;

enum class Variant { kRef, kHwy, kHwy1 };

// Runs `call` in the benchmark loop; kHwy1 on one OpenMP thread.
template <class Call>
void loop(benchmark::State& state, Variant v, double bytes, const Call& call) {
  const int threads = omp_get_max_threads();
  if (v == Variant::kHwy1) omp_set_num_threads(1);
  for (auto _ : state) {
    call();
    benchmark::ClobberMemory();
  }
  omp_set_num_threads(threads);
  state.counters["GB"] =
      benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

enum class ActOp { kRelu, kRelu6, kReluBack, kRelu6Back };

void activation(benchmark::State& state, int64_t n, ActOp op, Variant v) {
  fer::Rng rng(1);
  Array x = random_values(n, rng, -3, 9), dy = random_values(n, rng, -1, 1), out(n);
  const bool ref = v == Variant::kRef;
  const bool backward = op == ActOp::kReluBack || op == ActOp::kRelu6Back;
  float* o = out.data();
  loop(state, v, 4.0 * n * (backward ? 4 : 2), [&] {
    switch (op) {
      case ActOp::kRelu: (ref ? relu_forward_ref : relu_forward)(x.data(), n, o); break;
      case ActOp::kRelu6: (ref ? relu6_forward_ref : relu6_forward)(x.data(), n, o); break;
      case ActOp::kReluBack:
        (ref ? relu_backward_ref : relu_backward)(x.data(), dy.data(), n, o);
        break;
      case ActOp::kRelu6Back:
        (ref ? relu6_backward_ref : relu6_backward)(x.data(), dy.data(), n, o);
        break;
    }
  });
}

enum class OptOp { kSgdMomentum, kSgdNesterovWd, kAdam, kAdamW };

void optimizer(benchmark::State& state, int64_t n, OptOp op, Variant v) {
  fer::Rng rng(2);
  // Tiny steps keep the weights in range however many iterations run.
  Array w = random_values(n, rng, -1, 1), g = random_values(n, rng, -1e-3, 1e-3);
  Array m = random_values(n, rng, -1e-3, 1e-3), s = random_values(n, rng, 0, 1e-6);
  const bool ref = v == Variant::kRef;
  SgdConfig sc;
  sc.lr = 1e-4f;
  sc.momentum = 0.9f;
  sc.nesterov = op == OptOp::kSgdNesterovWd;
  sc.weight_decay = op == OptOp::kSgdNesterovWd ? 5e-4f : 0.f;
  AdamConfig ac;
  ac.lr = 1e-6f;
  ac.step = 100;
  ac.decoupled_weight_decay = op == OptOp::kAdamW ? 1e-2f : 0.f;
  const bool adam = op == OptOp::kAdam || op == OptOp::kAdamW;
  loop(state, v, 4.0 * n * (adam ? 7 : 5), [&] {
    if (adam)
      (ref ? adam_update_ref : adam_update)(w.data(), g.data(), m.data(), s.data(), n, ac);
    else
      (ref ? sgd_update_ref : sgd_update)(w.data(), g.data(), m.data(), n, sc);
  });
}

const char* variant_name(Variant v) {
  return v == Variant::kRef ? "ref" : v == Variant::kHwy ? "hwy" : "hwy1";
}

// Names: <op>/<size>/<variant>, so the variants sort side by side.
const int kRegistered = [] {
  const Variant variants[] = {Variant::kRef, Variant::kHwy, Variant::kHwy1};
  const std::pair<const char*, int64_t> act_sizes[] = {{"48x48x24", 64 * 48 * 48 * 24},
                                                       {"24x24x96", 64 * 24 * 24 * 96},
                                                       {"3x3x768", 64 * 3 * 3 * 768}};
  const std::pair<ActOp, const char*> act_ops[] = {{ActOp::kRelu, "relu_fwd"},
                                                   {ActOp::kRelu6, "relu6_fwd"},
                                                   {ActOp::kReluBack, "relu_bwd"},
                                                   {ActOp::kRelu6Back, "relu6_bwd"}};
  for (const auto& [op, op_name] : act_ops)
    for (const auto& [size_name, n] : act_sizes)
      for (Variant v : variants)
        benchmark::RegisterBenchmark(
            (std::string(op_name) + "/" + size_name + "/" + variant_name(v)).c_str(),
            [op = op, n = n, v](benchmark::State& s) { activation(s, n, op, v); })
            ->Unit(benchmark::kMicrosecond)
            ->UseRealTime();
  const std::pair<const char*, int64_t> opt_sizes[] = {{"all1.8M", 1800000}, {"pw768", 768 * 768}};
  const std::pair<OptOp, const char*> opt_ops[] = {{OptOp::kSgdMomentum, "sgd_momentum"},
                                                   {OptOp::kSgdNesterovWd, "sgd_nesterov_wd"},
                                                   {OptOp::kAdam, "adam"},
                                                   {OptOp::kAdamW, "adamw"}};
  for (const auto& [op, op_name] : opt_ops)
    for (const auto& [size_name, n] : opt_sizes)
      for (Variant v : variants)
        benchmark::RegisterBenchmark(
            (std::string(op_name) + "/" + size_name + "/" + variant_name(v)).c_str(),
            [op = op, n = n, v](benchmark::State& s) { optimizer(s, n, op, v); })
            ->Unit(benchmark::kMicrosecond)
            ->UseRealTime();
  return 0;
}();

}  // namespace

BENCHMARK_MAIN();
