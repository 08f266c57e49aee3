// Dropout speed: the Highway kernels (kernels/dropout_hwy.cpp) against the reference loop,
// and against what the layer did before them (one Rng::bernoulli draw per element into a
// stored mask tensor, then y = x * mask), at cnn3's dropout inputs, batch 64:
//
//   b1 24x24x32   b2 12x12x64   b3 6x6x128   (after each block's 2x2 max pool)
//
//   OMP_WAIT_POLICY=passive build/bench/bench_dropout --benchmark_repetitions=5
//     --benchmark_report_aggregates_only --benchmark_min_time=0.1
//
// Counter GB (GB=.../s): the arrays a step must touch, x and y forward, dy and dx
// (read + write) backward, divided by wall time. The old layer also wrote and read its
// mask, so it moved more bytes than it is credited with here.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include "fer/rng.h"
#include "fer/tensor.h"
#include "kernels/dropout.h"

using namespace fer::kernels;

namespace {

struct Shape {
  const char* name;
  int hw, c;
};
const Shape kShapes[] = {{"b1", 24, 32}, {"b2", 12, 64}, {"b3", 6, 128}};
constexpr int kBatch = 64;
constexpr float kRate = 0.25f;

enum class Variant { Highway, Reference, StoredMask };

void BM_DropoutStep(benchmark::State& state, Shape s, Variant variant) {
  const int64_t n = int64_t{kBatch} * s.hw * s.hw * s.c;
  fer::Rng rng(1);
  fer::AlignedBuffer x(n), y(n), dy(n), dx(n), mask(n);
  for (int64_t i = 0; i < n; ++i) x.data()[i] = dy.data()[i] = static_cast<float>(rng.uniform());
  uint64_t key = 1;
  for (auto _ : state) {
    ++key;
    switch (variant) {
      case Variant::Highway:
        dropout_forward(x.data(), n, key, kRate, y.data());
        dropout_backward(dy.data(), n, key, kRate, dx.data());
        break;
      case Variant::Reference:
        dropout_forward_ref(x.data(), n, key, kRate, y.data());
        dropout_backward_ref(dy.data(), n, key, kRate, dx.data());
        break;
      case Variant::StoredMask: {
        const float keep_scale = 1.f / (1.f - kRate);
        for (int64_t i = 0; i < n; ++i) mask.data()[i] = rng.bernoulli(kRate) ? 0.f : keep_scale;
        for (int64_t i = 0; i < n; ++i) y.data()[i] = x.data()[i] * mask.data()[i];
        for (int64_t i = 0; i < n; ++i) dx.data()[i] += dy.data()[i] * mask.data()[i];
        break;
      }
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::DoNotOptimize(dx.data());
    benchmark::ClobberMemory();
  }
  state.counters["GB"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * n * 4 * sizeof(float) * 1e-9,
      benchmark::Counter::kIsRate);
}

const int registered = [] {
  for (const Shape& s : kShapes) {
    const std::string shape = std::string(s.name) + "_b64";
    benchmark::RegisterBenchmark(("dropout_step/highway/" + shape).c_str(), BM_DropoutStep, s,
                                 Variant::Highway)->UseRealTime();
    benchmark::RegisterBenchmark(("dropout_step/ref/" + shape).c_str(), BM_DropoutStep, s,
                                 Variant::Reference)->UseRealTime();
    benchmark::RegisterBenchmark(("dropout_step/stored_mask/" + shape).c_str(), BM_DropoutStep,
                                 s, Variant::StoredMask)->UseRealTime();
  }
  return 0;
}();

}  // namespace

BENCHMARK_MAIN();
