// k x k convolution speed: im2col + GEMM (conv2d_*_im2col) against the direct Highway
// kernels (conv2d_*_direct), Winograd F(2x2, 3x3) (conv2d_*_winograd: 3x3 stride 1,
// forward and backward to the input; winograd_kept: forward with the kernel transformed once,
// as inference keeps it) and the default (conv2d_*, what the layers call), at every
// non-depthwise, non-1x1 convolution of the bench networks (bench/network_shapes.h: cnn3 at
// 48 px and MobileNet V1 alpha 0.75 at 96 px by default; $FER_BENCH_BATCHES, default 64
// and 1). 1x1 convolutions are one plain GEMM in every variant and are left out.
// Ops: fwd (no bias, as in cnn3), bwd_input, bwd_weights (no bias).
//
//   OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive build/bench/bench_conv2d
//     --benchmark_repetitions=5 --benchmark_enable_random_interleaving=true
//     --benchmark_report_aggregates_only --benchmark_min_time=0.2
//
// Counters: GFLOP = 2 * KH * KW * C * OC * N * OH * OW per second of wall time (nominal
// multiply-adds, padding included, the same for every variant -- Winograd does 2.25x
// fewer, so its figure is the direct-equivalent rate); GB = the tensors read
// and written once, per second (the col buffer of im2col is not counted).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <vector>

#include "bench/bench_arrays.h"
#include "bench/network_shapes.h"
#include "fer/rng.h"
#include "kernels/conv2d.h"

using namespace fer::kernels;

namespace {

enum class Op { Forward, BackwardInput, BackwardWeights };
enum class Variant { Default, Im2col, Direct, Winograd, WinogradKept };

using fer::bench::Array;  // 64-byte aligned, as fer's tensors
using fer::bench::random_values;

void run(benchmark::State& state, Conv2DGeometry g, int oc, Op op, Variant variant) {
  fer::Rng rng(1);
  const size_t taps_c = size_t(g.kh) * g.kw * g.c;
  const size_t xs = size_t(g.n) * g.h * g.w * g.c, ys = size_t(g.n) * g.oh * g.ow * oc;
  const auto x = random_values(xs, rng), k = random_values(taps_c * oc, rng);
  const auto dy = random_values(ys, rng);
  Array y(ys), dx(xs), dk(taps_c * oc);
  // winograd_kept: the kernel transformed once, outside the timed loop, as Conv2D keeps
  // it in inference (conv2d_forward_winograd_transformed).
  WinogradKernel kept;
  if (variant == Variant::WinogradKept) kept = conv2d_winograd_transform_kernel(k.data(), g.c, oc);
  for (auto _ : state) {
    switch (op) {
      case Op::Forward:
        if (variant == Variant::WinogradKept) {
          conv2d_forward_winograd_transformed(g, kept, x.data(), nullptr, y.data());
          benchmark::DoNotOptimize(y.data());
          break;
        }
        (variant == Variant::Default    ? conv2d_forward
         : variant == Variant::Im2col   ? conv2d_forward_im2col
         : variant == Variant::Winograd ? conv2d_forward_winograd
                                        : conv2d_forward_direct)(g, oc, x.data(), k.data(),
                                                                 nullptr, y.data());
        benchmark::DoNotOptimize(y.data());
        break;
      case Op::BackwardInput:
        (variant == Variant::Default    ? conv2d_backward_input
         : variant == Variant::Im2col   ? conv2d_backward_input_im2col
         : variant == Variant::Winograd ? conv2d_backward_input_winograd
                                        : conv2d_backward_input_direct)(g, oc, dy.data(),
                                                                        k.data(), dx.data(), true);
        benchmark::DoNotOptimize(dx.data());
        break;
      case Op::BackwardWeights:
        (variant == Variant::Default  ? conv2d_backward_weights
         : variant == Variant::Im2col ? conv2d_backward_weights_im2col
                                      : conv2d_backward_weights_direct)(g, oc, x.data(), dy.data(),
                                                                        dk.data(), nullptr);
        benchmark::DoNotOptimize(dk.data());
        break;
    }
    benchmark::ClobberMemory();
  }
  const double flops = 2.0 * double(taps_c) * oc * double(g.n) * g.oh * g.ow;
  state.counters["GFLOP"] =
      benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  // Nominal traffic: every tensor the op reads once, and the one it writes (read and
  // written when it accumulates).
  const double kernel_floats = double(taps_c) * oc;
  const double floats = op == Op::Forward         ? double(xs) + kernel_floats + double(ys)
                        : op == Op::BackwardInput ? double(ys) + kernel_floats + 2.0 * xs
                                                  : double(xs) + double(ys) + 2.0 * kernel_floats;
  state.counters["GB"] = benchmark::Counter(floats * sizeof(float) * 1e-9,
                                            benchmark::Counter::kIsIterationInvariantRate);
}

// Names: <network>/b<batch>/<layer>_<H>x<W>x<C>_<OC>_s<stride>/<op>/<variant>.
const int kRegistered = [] {
  const std::pair<Op, const char*> ops[] = {{Op::Forward, "fwd"},
                                            {Op::BackwardInput, "bwd_input"},
                                            {Op::BackwardWeights, "bwd_weights"}};
  const std::pair<Variant, const char*> variants[] = {
      {Variant::Default, "default"}, {Variant::Im2col, "im2col"}, {Variant::Direct, "direct"},
      {Variant::Winograd, "winograd"}, {Variant::WinogradKept, "winograd_kept"}};
  for (const fer_bench::ConvShape& c : fer_bench::bench_conv_shapes()) {
    if (c.depthwise || c.g.kh * c.g.kw == 1) continue;
    for (const auto& [op, op_name] : ops)
      for (const auto& [variant, variant_name] : variants) {
        if (variant == Variant::Direct && op == Op::BackwardInput &&
            !conv2d_direct_covers_backward_input(c.g))
          continue;
        if (variant == Variant::Winograd &&
            (op == Op::BackwardWeights || !conv2d_winograd_covers(c.g)))
          continue;
        if (variant == Variant::WinogradKept && (op != Op::Forward || !conv2d_winograd_covers(c.g)))
          continue;
        const std::string name = c.name + "_" + std::to_string(c.g.h) + "x" +
                                 std::to_string(c.g.w) + "x" + std::to_string(c.g.c) + "_" +
                                 std::to_string(c.out_channels) + "_s" +
                                 std::to_string(c.g.stride_h) + "/" + op_name + "/" +
                                 variant_name;
        benchmark::RegisterBenchmark(name.c_str(), run, c.g, c.out_channels, op, variant)
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
      }
  }
  return 0;
}();

}  // namespace

BENCHMARK_MAIN();
