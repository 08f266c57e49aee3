// BatchNorm + ReLU6 speed in training: the fused Highway kernels (what a
// BatchNormalization -> ReLU6 pair runs now) against the same pair run as two layers
// (Highway BatchNorm, then the ReLU6 kernels of kernels/activation.h) and against the
// previous code (the OpenMP `_loops` BatchNorm, then ReLU6), at the BatchNorm inputs of
// MobileNet V1 alpha 0.75 at 96 px, batch 64 and batch 1:
//
//   c48  48x48x24    c24_48 24x24x48   c24 24x24x96   c12 12x12x192
//   c6   6x6x384     c3     3x3x768                   (rows = batch * H * W)
//
// Ops: fwd (statistics, normalize, activation), bwd (activation mask, the two sums, dx),
// step (fwd + bwd, one training step's worth). The unfused backward includes what the
// tape does between the two layers: a zeroed gradient buffer for the intermediate.
//
//   OMP_WAIT_POLICY=passive build/bench/bench_batchnorm --benchmark_repetitions=5
//     --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only
//     --benchmark_min_time=0.05
//
// Counter GB (printed as GB=.../s): the four big arrays x, y, dy, dx counted once each per
// step (fwd: x and y; bwd: x, dy, dx), divided by wall time. The same numerator for every
// variant, so the rates compare like the times. The traffic is larger: the fused forward
// reads x twice (statistics, then normalize) and writes y; the fused backward reads x and
// dy twice (the sums, then dx; its activation mask is recomputed from x, not read from y)
// and writes dx.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "bench/bench_arrays.h"
#include "fer/rng.h"
#include "fer/tensor.h"
#include "kernels/activation.h"
#include "kernels/batchnorm.h"

using namespace fer::kernels;

namespace {

struct Shape {
  const char* name;
  int hw, c;
};

const Shape kShapes[] = {{"c48", 48, 24}, {"c24_48", 24, 48}, {"c24", 24, 96},
                         {"c12", 12, 192}, {"c6", 6, 384},     {"c3", 3, 768}};

enum class Op { Forward, Backward, Step };
enum class Variant { Fused, Unfused, Loops };

using fer::bench::Array;  // 64-byte aligned, as fer's tensors
using fer::bench::random_values;

// Everything one BatchNorm + ReLU6 pair holds during a training step.
struct Buffers {
  int64_t rows, C;
  fer::Rng rng{1};
  Array x, gamma, beta, dy;
  Array z, y, dz, dx;  // z: BatchNorm's output before ReLU6 (unfused only)
  Array mean, var, inv_std, dgamma, dbeta;
  Buffers(int64_t r, int64_t c)
      : rows(r), C(c), x(random_values(r * c, rng, -1, 2)),
        gamma(random_values(c, rng, 0.5, 3)), beta(random_values(c, rng, -1, 3)),
        dy(random_values(r * c, rng, -1, 1)), z(r * c), y(r * c), dz(r * c), dx(r * c),
        mean(c), var(c), inv_std(c), dgamma(c), dbeta(c) {}
};

void forward(Buffers& b, Variant v) {
  const int64_t n = b.rows * b.C;
  switch (v) {
    case Variant::Fused:
      batchnorm_forward_train_fused(Act::kRelu6, b.x.data(), b.gamma.data(), b.beta.data(),
                                    b.rows, b.C, 1e-3f, b.y.data(), b.mean.data(), b.var.data(),
                                    b.inv_std.data());
      break;
    case Variant::Unfused:
    case Variant::Loops:
      (v == Variant::Unfused ? batchnorm_forward_train : batchnorm_forward_train_loops)(
          b.x.data(), b.gamma.data(), b.beta.data(), b.rows, b.C, 1e-3f, b.z.data(),
          b.mean.data(), b.var.data(), b.inv_std.data());
      relu6_forward(b.z.data(), n, b.y.data());
      break;
  }
}

void backward(Buffers& b, Variant v) {
  const int64_t n = b.rows * b.C;
  switch (v) {
    case Variant::Fused:
      batchnorm_backward_train_fused(Act::kRelu6, b.x.data(), b.dy.data(), b.gamma.data(),
                                     b.beta.data(), b.mean.data(), b.inv_std.data(), b.rows,
                                     b.C, b.dx.data(), b.dgamma.data(), b.dbeta.data());
      break;
    case Variant::Unfused:
    case Variant::Loops:
      // The tape's fresh, zeroed gradient of the intermediate, which ReLU6 adds into.
      std::memset(b.dz.data(), 0, sizeof(float) * size_t(n));
      relu6_backward(b.z.data(), b.dy.data(), n, b.dz.data());
      (v == Variant::Unfused ? batchnorm_backward_train : batchnorm_backward_train_loops)(
          b.x.data(), b.dz.data(), b.gamma.data(), b.mean.data(), b.inv_std.data(), b.rows, b.C,
          b.dx.data(), b.dgamma.data(), b.dbeta.data());
      break;
  }
}

void run(benchmark::State& state, Shape shape, int batch, Op op, Variant v) {
  Buffers b(int64_t(batch) * shape.hw * shape.hw, shape.c);
  forward(b, v);  // the backward needs the forward's statistics and output
  for (auto _ : state) {
    if (op != Op::Backward) forward(b, v);
    if (op != Op::Forward) backward(b, v);
    benchmark::DoNotOptimize(b.y.data());
    benchmark::DoNotOptimize(b.dx.data());
    benchmark::ClobberMemory();
  }
  const double n = double(b.rows) * b.C;
  const double arrays = op == Op::Forward ? 2 : op == Op::Backward ? 3 : 4;
  state.counters["GB"] = benchmark::Counter(4.0 * arrays * n * 1e-9,
                                            benchmark::Counter::kIsIterationInvariantRate);
}

// Names: <shape>/<op>/b<batch>/<fused|unfused|loops>, so the variants sort side by side.
const int kRegistered = [] {
  const std::pair<Op, const char*> ops[] = {
      {Op::Forward, "fwd"}, {Op::Backward, "bwd"}, {Op::Step, "step"}};
  const std::pair<Variant, const char*> variants[] = {
      {Variant::Fused, "fused"}, {Variant::Unfused, "unfused"}, {Variant::Loops, "loops"}};
  for (int batch : {64, 1})
    for (const Shape& shape : kShapes)
      for (const auto& [op, op_name] : ops)
        for (const auto& [v, v_name] : variants) {
          const std::string name = std::string(shape.name) + "/" + op_name + "/b" +
                                   std::to_string(batch) + "/" + v_name;
          benchmark::RegisterBenchmark(name.c_str(), run, shape, batch, op, v)
              ->UseRealTime()
              ->Unit(benchmark::kMicrosecond);
        }
  return 0;
}();

}  // namespace

BENCHMARK_MAIN();
