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
// bandwidth/<level>: the GB/s of a plain read-one-write-one pass whose working set fits
// each cache level, the yardstick for the depthwise kernels' GB counter.
#include <benchmark/benchmark.h>

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "bench/bench_arrays.h"
#include "bench/network_shapes.h"
#include "fer/rng.h"
#include "kernels/depthwise_conv2d.h"

using namespace fer::kernels;

namespace {

enum class Op { Forward, BackwardInput, BackwardWeights };

using fer::bench::Array;  // 64-byte aligned, as fer's tensors
using fer::bench::random_values;

void run(benchmark::State& state, Conv2DGeometry g, Op op, bool hwy) {
  fer::Rng rng(1);
  const int batch = g.n, taps = g.kh * g.kw;
  const size_t xs = size_t(batch) * g.h * g.w * g.c, ys = size_t(batch) * g.oh * g.ow * g.c;
  const auto x = random_values(xs, rng), k = random_values(taps * size_t(g.c), rng);
  const auto b = random_values(g.c, rng), dy = random_values(ys, rng);
  Array y(ys), dx(xs), dk(taps * g.c), db(g.c);
  for (auto _ : state) {
    switch (op) {
      case Op::Forward:
        (hwy ? depthwise_conv2d_forward : depthwise_conv2d_forward_loops)(
            g, x.data(), k.data(), b.data(), y.data());
        benchmark::DoNotOptimize(y.data());
        break;
      case Op::BackwardInput:
        if (hwy) depthwise_conv2d_backward_input(g, dy.data(), k.data(), dx.data());
        else depthwise_conv2d_backward_input_loops(g, dy.data(), k.data(), dx.data());
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

// The yardstick for the GB counter: the bandwidth of each cache level for the same kind
// of pass (read one array, write another: y = a * x + b), with a working set that fits
// the level (per thread for the private L1 and L2, in all for the shared L3 and memory).
// Each thread streams its own contiguous part, as the depthwise kernels split rows.
void bandwidth(benchmark::State& state, int64_t bytes_per_thread) {
  const int threads = omp_get_max_threads();
  const int64_t floats = bytes_per_thread / 8 * threads;  // x and y: 4 bytes each
  // Small sets are passed over many times in one parallel region, so that starting the
  // threads (a few microseconds) does not count: about 64 MiB of traffic per iteration.
  const int64_t passes = std::max<int64_t>(1, (int64_t{64} << 20) / (8 * floats));
  Array x = fer::bench::filled(floats, 1.f), y(floats);
  for (auto _ : state) {
#pragma omp parallel num_threads(threads)
    {
      const int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
      const int64_t begin = floats * t / T, end = floats * (t + 1) / T;
      const float* xs = x.data();
      float* ys = y.data();
      for (int64_t p = 0; p < passes; ++p) {
#pragma omp simd
        for (int64_t i = begin; i < end; ++i) ys[i] = 1.0001f * xs[i] + 0.5f;
        benchmark::ClobberMemory();
      }
    }
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GB"] = benchmark::Counter(8.0 * double(floats) * passes * 1e-9,
                                            benchmark::Counter::kIsIterationInvariantRate);
}

// Names: <network>/b<batch>/<layer>/<op>/<hwy|loops>, the two variants side by side.
const int kRegistered = [] {
  // Cache levels of this machine's EPYC (L1d 48 KiB, L2 1 MiB per core; L3 shared):
  // working sets of about half of each private level, 32 MiB in all for L3, 2 GiB beyond.
  const int threads = omp_get_max_threads();
  for (const auto& [name, per_thread] :
       {std::pair<const char*, int64_t>{"L1_24KiB_per_thread", int64_t{24} << 10},
        {"L2_512KiB_per_thread", int64_t{512} << 10},
        {"L3_32MiB", (int64_t{32} << 20) / threads},
        {"memory_2GiB", (int64_t{2} << 30) / threads}})
    benchmark::RegisterBenchmark((std::string("bandwidth/") + name).c_str(), bandwidth,
                                 per_thread)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
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
