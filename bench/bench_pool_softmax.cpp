// Pooling and softmax speed: the Highway kernels (kernels/pool_hwy.cpp,
// kernels/softmax_hwy.cpp: what the layers call) against the `_ref` loops and the
// previous OpenMP loops (`_loops`).
//
// Shapes come from the architecture registry (bench/network_shapes.h's networks and
// batch sizes: cnn3 at 48 px and MobileNet V1 alpha 0.75 at 96 px by default, batches 64
// and 1):
//   every MaxPooling2D / AveragePooling2D: max and average pooling with its geometry
//     (cnn3's three 2x2/2 pools, 48x48x32, 24x24x64, 12x12x128; cnn3 has no average pool,
//     so the average pool runs at the max pools' geometry);
//   every GlobalAveragePooling2D (MobileNet V1 0.75 @96's last map, 3x3x768);
//   softmax cross-entropy (loss and dlogits, no smoothing or weights) and softmax rows at
//     [64, 7] (FER) and [64, 1000] (ImageNet).
// Names: <network>/b<batch>/<layer>/<op>/<variant> and softmax/<N>x<K>/<op>/<variant>.
//
//   OMP_WAIT_POLICY=passive build/bench/bench_pool_softmax --benchmark_repetitions=5
//     --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only
//     --benchmark_min_time=0.05
//
// Counter GB (printed as GB=.../s): the big arrays each op streams, once each, divided by
// wall time (the same numerator for every variant, so the rates compare like the times):
//   pool fwd x + y;  max bwd x + dy + dx;  avg and global bwd dy + dx  (dx is read and
//   written but counted once);  ce logits + dlogits;  softmax x + y.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "bench/network_shapes.h"
#include "fer/rng.h"
#include "fer/tensor.h"
#include "kernels/pool.h"
#include "kernels/softmax.h"

using namespace fer::kernels;

namespace {

enum class Variant { Ref, Loops, Hwy };
const std::pair<Variant, const char*> kVariants[] = {
    {Variant::Ref, "ref"}, {Variant::Loops, "loops"}, {Variant::Hwy, "hwy"}};

// A float array with the alignment of fer's tensors (64 bytes), uniform in [lo, hi).
fer::AlignedBuffer random_values(int64_t n, fer::Rng& rng, double lo = -1, double hi = 1) {
  fer::AlignedBuffer v(n);
  for (int64_t i = 0; i < n; ++i) v.data()[i] = static_cast<float>(rng.uniform(lo, hi));
  return v;
}

// ---- pooling shapes from the registry ---------------------------------------------------

struct PoolShape {
  std::string name;  // "<network>/b<batch>/<layer>"
  bool global = false;
  Conv2DGeometry g;  // for a global pool: n, h, w, c only
};

// Walks a layer description, building each leaf to learn its output shape (as
// network_shapes.h does for convolutions); records the pooling layers with their input.
fer::Shape walk_pools(const fer::Json& config, fer::Shape shape, int batch,
                      const std::string& prefix, std::vector<PoolShape>& out) {
  const std::string type = config.at("type").as_string();
  if (config.contains("layers")) {
    for (const fer::Json& child : config.at("layers").as_array())
      shape = walk_pools(child, shape, batch, prefix, out);
    return shape;
  }
  fer::Rng rng(1);
  auto layer = fer::make_layer(config);
  const fer::Shape next = layer->build(shape, rng);
  const std::string name = prefix + config.at("name").as_string();
  if (type == "MaxPooling2D" || type == "AveragePooling2D") {
    const fer::Json& k = config.at("pool_size");
    const fer::Json& s = config.at("strides");
    out.push_back({name, false,
                   make_geometry(batch, int(shape[0]), int(shape[1]), int(shape[2]),
                                 k[0].as_int(), k[1].as_int(), s[0].as_int(), s[1].as_int(),
                                 parse_padding(config.get("padding", "valid")))});
  } else if (type == "GlobalAveragePooling2D") {
    PoolShape p{name, true, {}};
    p.g.n = batch, p.g.h = int(shape[0]), p.g.w = int(shape[1]), p.g.c = int(shape[2]);
    out.push_back(p);
  }
  return next;
}

std::vector<PoolShape> pool_shapes() {
  std::vector<PoolShape> out;
  std::set<std::tuple<bool, int, int, int, int, int, int, int, int>> seen;
  for (const fer_bench::BenchNetwork& net : fer_bench::bench_networks()) {
    const fer::Json arch = fer::make_architecture(net.model, net.options);
    const fer::Json& shape = arch.at("input_shape");
    const fer::Shape input = {shape[0].as_int(), shape[1].as_int(), shape[2].as_int()};
    for (int batch : fer_bench::bench_batches()) {
      std::vector<PoolShape> pools;
      walk_pools(arch.at("network"), input, batch,
                 net.label + "/b" + std::to_string(batch) + "/", pools);
      for (const PoolShape& p : pools) {
        const Conv2DGeometry& g = p.g;
        if (seen.insert({p.global, g.n, g.h, g.w, g.c, g.kh, g.kw, g.stride_h, g.pad_top})
                .second)
          out.push_back(p);
      }
    }
  }
  return out;
}

// ---- pooling ------------------------------------------------------------------------------

enum class PoolOp { MaxFwd, MaxBwd, AvgFwd, AvgBwd };

void run_pool(benchmark::State& state, Conv2DGeometry g, PoolOp op, Variant v) {
  fer::Rng rng(1);
  const int64_t xs = int64_t(g.n) * g.h * g.w * g.c, ys = int64_t(g.n) * g.oh * g.ow * g.c;
  auto x = random_values(xs, rng), dy = random_values(ys, rng);
  fer::AlignedBuffer y(ys), dx(xs);
  for (auto _ : state) {
    switch (op) {
      case PoolOp::MaxFwd:
        (v == Variant::Ref    ? max_pool2d_forward_ref
         : v == Variant::Loops ? max_pool2d_forward_loops
                               : max_pool2d_forward)(g, x.data(), y.data());
        break;
      case PoolOp::MaxBwd:
        (v == Variant::Ref    ? max_pool2d_backward_ref
         : v == Variant::Loops ? max_pool2d_backward_loops
                               : max_pool2d_backward)(g, x.data(), dy.data(), dx.data());
        break;
      case PoolOp::AvgFwd:
        (v == Variant::Ref    ? avg_pool2d_forward_ref
         : v == Variant::Loops ? avg_pool2d_forward_loops
                               : avg_pool2d_forward)(g, x.data(), y.data());
        break;
      case PoolOp::AvgBwd:
        (v == Variant::Ref    ? avg_pool2d_backward_ref
         : v == Variant::Loops ? avg_pool2d_backward_loops
                               : avg_pool2d_backward)(g, dy.data(), dx.data());
        break;
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::DoNotOptimize(dx.data());
    benchmark::ClobberMemory();
  }
  const double floats = op == PoolOp::MaxFwd || op == PoolOp::AvgFwd ? xs + ys
                        : op == PoolOp::MaxBwd                       ? 2 * xs + ys
                                                                     : xs + ys;
  state.counters["GB"] =
      benchmark::Counter(4.0 * floats * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void run_global(benchmark::State& state, Conv2DGeometry g, bool backward, Variant v) {
  fer::Rng rng(1);
  const int hw = g.h * g.w;
  const int64_t xs = int64_t(g.n) * hw * g.c, ys = int64_t(g.n) * g.c;
  auto x = random_values(xs, rng), dy = random_values(ys, rng);
  fer::AlignedBuffer y(ys), dx(xs);
  for (auto _ : state) {
    if (backward)
      (v == Variant::Ref    ? global_avg_pool2d_backward_ref
       : v == Variant::Loops ? global_avg_pool2d_backward_loops
                             : global_avg_pool2d_backward)(g.n, hw, g.c, dy.data(), dx.data());
    else
      (v == Variant::Ref    ? global_avg_pool2d_forward_ref
       : v == Variant::Loops ? global_avg_pool2d_forward_loops
                             : global_avg_pool2d_forward)(g.n, hw, g.c, x.data(), y.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::DoNotOptimize(dx.data());
    benchmark::ClobberMemory();
  }
  state.counters["GB"] = benchmark::Counter(4.0 * double(xs + ys) * 1e-9,
                                            benchmark::Counter::kIsIterationInvariantRate);
}

// ---- softmax ------------------------------------------------------------------------------

void run_ce(benchmark::State& state, int64_t N, int64_t K, Variant v) {
  fer::Rng rng(1);
  auto z = random_values(N * K, rng, -6, 6);
  fer::AlignedBuffer g(N * K);
  std::vector<int> labels(N);
  for (int& y : labels) y = int(rng.below(K));
  for (auto _ : state) {
    const double loss = (v == Variant::Ref    ? softmax_cross_entropy_ref
                         : v == Variant::Loops ? softmax_cross_entropy_loops
                                               : softmax_cross_entropy)(
        z.data(), labels.data(), N, K, 0.f, nullptr, g.data());
    benchmark::DoNotOptimize(loss);
    benchmark::ClobberMemory();
  }
  state.counters["GB"] = benchmark::Counter(4.0 * 2 * double(N * K) * 1e-9,
                                            benchmark::Counter::kIsIterationInvariantRate);
}

void run_softmax(benchmark::State& state, int64_t N, int64_t K, Variant v) {
  fer::Rng rng(1);
  auto x = random_values(N * K, rng, -6, 6);
  fer::AlignedBuffer y(N * K);
  for (auto _ : state) {
    (v == Variant::Ref    ? softmax_rows_ref
     : v == Variant::Loops ? softmax_rows_loops
                           : softmax_rows)(x.data(), N, K, y.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.counters["GB"] = benchmark::Counter(4.0 * 2 * double(N * K) * 1e-9,
                                            benchmark::Counter::kIsIterationInvariantRate);
}

template <class Fn, class... Args>
void add(const std::string& name, Fn fn, Args... args) {
  benchmark::RegisterBenchmark(name.c_str(), fn, args...)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
}

// Variants innermost, so that they sort side by side.
const int kRegistered = [] {
  for (const PoolShape& p : pool_shapes()) {
    if (p.global) {
      for (bool backward : {false, true})
        for (const auto& [v, v_name] : kVariants)
          add(p.name + (backward ? "/gap_bwd/" : "/gap_fwd/") + v_name, run_global, p.g,
              backward, v);
      continue;
    }
    const std::pair<PoolOp, const char*> ops[] = {{PoolOp::MaxFwd, "max_fwd"},
                                                  {PoolOp::MaxBwd, "max_bwd"},
                                                  {PoolOp::AvgFwd, "avg_fwd"},
                                                  {PoolOp::AvgBwd, "avg_bwd"}};
    for (const auto& [op, op_name] : ops)
      for (const auto& [v, v_name] : kVariants)
        add(p.name + "/" + op_name + "/" + v_name, run_pool, p.g, op, v);
  }
  for (int64_t K : {7, 1000}) {
    const std::string shape = "softmax/64x" + std::to_string(K);
    for (const auto& [v, v_name] : kVariants) add(shape + "/ce/" + v_name, run_ce, int64_t{64}, K, v);
    for (const auto& [v, v_name] : kVariants)
      add(shape + "/softmax/" + v_name, run_softmax, int64_t{64}, K, v);
  }
  return 0;
}();

}  // namespace

BENCHMARK_MAIN();
