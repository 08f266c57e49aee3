// Depthwise 3x3 convolution speed: the Highway kernels (depthwise_conv2d_*, what the
// layers call) against the previous compiler-vectorized loops (depthwise_conv2d_*_loops),
// at the depthwise layers of MobileNet V1 alpha 0.75 at 96 px, batch 64 and batch 1:
//
//   dw1 48x48x24 s1   dw2 48x48x48 s2   dw3 24x24x96 s1   dw4 24x24x96 s2
//   dw5 12x12x192 s1  dw6 12x12x192 s2  dw7_11 6x6x384 s1 (five identical layers)
//   dw12 6x6x384 s2   dw13 3x3x768 s1                     (sizes are the layer inputs)
//
// 'same' padding (for the stride-2 layers on even sizes that is Keras's ZeroPadding2D
// ((0, 1), (0, 1)) + 'valid'). Ops: fwd (with bias), bwd_input, bwd_weights (with bias).
//
//   OMP_WAIT_POLICY=passive build/bench/bench_depthwise --benchmark_repetitions=5
//     --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only
//     --benchmark_min_time=0.05 --benchmark_format=json
//
// Counters, both rates per second of wall time (printed as GFLOP=.../s, GB=.../s):
//   GFLOP  2 * 9 * N * OH * OW * C (nominal taps, padding included);
//   GB     the big arrays each op streams, once each: fwd x + y, bwd_input dy + dx (dx is
//          read and written but counted once), bwd_weights x + dy.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <vector>

#include "fer/rng.h"
#include "kernels/depthwise_conv2d.h"

using namespace fer::kernels;

namespace {

struct Layer {
  const char* name;
  int hw, c, stride;
};

const Layer kLayers[] = {
    {"dw1", 48, 24, 1},   {"dw2", 48, 48, 2},   {"dw3", 24, 96, 1},
    {"dw4", 24, 96, 2},   {"dw5", 12, 192, 1},  {"dw6", 12, 192, 2},
    {"dw7_11", 6, 384, 1}, {"dw12", 6, 384, 2}, {"dw13", 3, 768, 1},
};

enum class Op { Forward, BackwardInput, BackwardWeights };

std::vector<float> random_values(size_t n, fer::Rng& rng) {
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(rng.uniform(-1.0, 1.0));
  return v;
}

void run(benchmark::State& state, Layer layer, int batch, Op op, bool hwy) {
  const Conv2DGeometry g = make_geometry(batch, layer.hw, layer.hw, layer.c, 3, 3, layer.stride,
                                         layer.stride, Padding::Same);
  fer::Rng rng(1);
  const size_t xs = size_t(batch) * g.h * g.w * g.c, ys = size_t(batch) * g.oh * g.ow * g.c;
  const auto x = random_values(xs, rng), k = random_values(9 * size_t(g.c), rng);
  const auto b = random_values(g.c, rng), dy = random_values(ys, rng);
  std::vector<float> y(ys), dx(xs, 0.f), dk(9 * size_t(g.c), 0.f), db(g.c, 0.f);
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
  const double flops = 2.0 * 9 * double(ys);
  const double bytes = 4.0 * double(xs + ys);
  state.counters["GFLOP"] =
      benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GB"] =
      benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// Names: <layer>/<op>/b<batch>/<hwy|loops>, so that the two variants sort side by side.
const int kRegistered = [] {
  const std::pair<Op, const char*> ops[] = {{Op::Forward, "fwd"},
                                            {Op::BackwardInput, "bwd_input"},
                                            {Op::BackwardWeights, "bwd_weights"}};
  for (int batch : {64, 1})
    for (const Layer& layer : kLayers)
      for (const auto& [op, op_name] : ops)
        for (bool hwy : {true, false}) {
          const std::string name = std::string(layer.name) + "/" + op_name + "/b" +
                                   std::to_string(batch) + (hwy ? "/hwy" : "/loops");
          benchmark::RegisterBenchmark(name.c_str(), run, layer, batch, op, hwy)
              ->UseRealTime()
              ->Unit(benchmark::kMicrosecond);
        }
  return 0;
}();

}  // namespace

BENCHMARK_MAIN();
