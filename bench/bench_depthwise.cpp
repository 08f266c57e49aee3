// Depthwise convolution speed: the Highway kernels (depthwise_conv2d_*, what the layers
// call) against the previous compiler-vectorized loops (depthwise_conv2d_*_loops), at
// every depthwise layer of the bench networks (bench/network_shapes.h: MobileNet V1
// alpha 0.75 at 96 px by default; $FER_BENCH_NETWORKS=all adds V1 and V2 at 48, 96, 128
// and 224 px; $FER_BENCH_BATCHES, default 64 and 1). Identical shapes run once.
// Ops: fwd (with bias), bwd_input, bwd_weights (with bias).
//
//   OMP_WAIT_POLICY=passive build/bench/bench_depthwise --benchmark_repetitions=5
//     --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only
//     --benchmark_min_time=0.05 --benchmark_format=json
//
// Counters, both rates per second of wall time (printed as GFLOP=.../s, GB=.../s):
//   GFLOP  2 * KH * KW * N * OH * OW * C (nominal taps, padding included);
//   GB     the big arrays each op streams, once each: fwd x + y, bwd_input dy + dx (dx is
//          read and written but counted once), bwd_weights x + dy.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <vector>

#include "bench/network_shapes.h"
#include "fer/rng.h"
#include "kernels/depthwise_conv2d.h"

using namespace fer::kernels;

namespace {

enum class Op { Forward, BackwardInput, BackwardWeights };

std::vector<float> random_values(size_t n, fer::Rng& rng) {
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(rng.uniform(-1.0, 1.0));
  return v;
}

void run(benchmark::State& state, Conv2DGeometry g, Op op, bool hwy) {
  fer::Rng rng(1);
  const int batch = g.n, taps = g.kh * g.kw;
  const size_t xs = size_t(batch) * g.h * g.w * g.c, ys = size_t(batch) * g.oh * g.ow * g.c;
  const auto x = random_values(xs, rng), k = random_values(taps * size_t(g.c), rng);
  const auto b = random_values(g.c, rng), dy = random_values(ys, rng);
  std::vector<float> y(ys), dx(xs, 0.f), dk(taps * size_t(g.c), 0.f), db(g.c, 0.f);
  for (auto _ : state) {
    switch (op) {
      case Op::Forward:
        (hwy ? depthwise_conv2d_forward : depthwise_conv2d_forward_loops)(
            g, x.data(), k.data(), b.data(), y.data());
        benchmark::DoNotOptimize(y.data());
        break;
      case Op::BackwardInput:
        (hwy ? depthwise_conv2d_backward_input : depthwise_conv2d_backward_input_loops)(
            g, dy.data(), k.data(), dx.data());
        benchmark::DoNotOptimize(dx.data());
        break;
      case Op::BackwardWeights:
        (hwy ? depthwise_conv2d_backward_weights : depthwise_conv2d_backward_weights_loops)(
            g, x.data(), dy.data(), dk.data(), db.data());
        benchmark::DoNotOptimize(dk.data());
        break;
    }
    benchmark::ClobberMemory();
  }
  const double flops = 2.0 * taps * double(ys);
  const double bytes = 4.0 * double(xs + ys);
  state.counters["GFLOP"] =
      benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GB"] =
      benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// Names: <network>/b<batch>/<layer>/<op>/<hwy|loops>, the two variants side by side.
const int kRegistered = [] {
  const std::pair<Op, const char*> ops[] = {{Op::Forward, "fwd"},
                                            {Op::BackwardInput, "bwd_input"},
                                            {Op::BackwardWeights, "bwd_weights"}};
  for (const fer_bench::ConvShape& c : fer_bench::bench_conv_shapes()) {
    if (!c.depthwise || c.out_channels != c.g.c) continue;  // depth multiplier 1 only
    for (const auto& [op, op_name] : ops)
      for (bool hwy : {true, false}) {
        const std::string name = c.name + "_" + std::to_string(c.g.h) + "x" +
                                 std::to_string(c.g.w) + "x" + std::to_string(c.g.c) + "_s" +
                                 std::to_string(c.g.stride_h) + "/" + op_name +
                                 (hwy ? "/hwy" : "/loops");
        benchmark::RegisterBenchmark(name.c_str(), run, c.g, op, hwy)
            ->UseRealTime()
            ->Unit(benchmark::kMicrosecond);
      }
  }
  return 0;
}();

}  // namespace

BENCHMARK_MAIN();
