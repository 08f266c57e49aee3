// GEMM speed: fer's Highway SGEMM (sgemm_hwy) against Eigen (sgemm_eigen), the dispatcher
// the layers call (sgemm) and the three-loop reference, at the shapes fer's networks
// produce, next to this machine's measured limits (FMA peak, memory bandwidth).
//
//   OMP_NUM_THREADS=2 build/bench/bench_gemm --benchmark_repetitions=5
//     --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only
//     --benchmark_min_time=0.1 --benchmark_format=json
//
// (random interleaving spreads the noise of a shared machine over all variants; JSON
// because the CSV reporter rejects counters that differ between benchmarks.)
//
// Counters: GFLOP/s = 2*m*n*k per second of wall time. This machine is shared, so also
// GFLOP/s_cpu = per second of the process's CPU time divided by the thread count (what the
// cores do while they run, whoever else is waiting for them), and pct_peak = that as a
// percentage of the FMA peak measured the same way at start-up with as many threads as
// the GEMMs use (BM_FmaPeak reports both rates; the Stream ones wall-clock bandwidth).
// Shapes: every convolution of fer's networks as built by the architecture registry
// (bench/network_shapes.h; $FER_BENCH_NETWORKS=all adds MobileNet V1/V2 at 48, 96, 128 and
// 224 px, $FER_BENCH_BATCHES picks the batch sizes, default 64 and 1). Names are
// <network>/b<batch>/<layer>_<m>x<k>x<n>:
//   (plain)  forward [pixels, kh*kw*in] * [kh*kw*in, out], beta 0 (BatchNorm follows)
//   _dx      the input gradient  d(col) [pixels, kh*kw*in] += dY [pixels, out] * W^T  (trans_b)
//   _dw      the weight gradient dW [kh*kw*in, out] += col^T * dY                    (trans_a)
//   cnn3_dense1, cnn3_predictions  cnn3's classifier's Dense layers, forward, _dx and _dw
//                                  at batch 64, and forward at batch 1 (_1x...)
//   small_N, square_N   N x N x N (small_N also with the three-loop reference)
// Filter with --benchmark_filter, e.g. 'mbv1_0.75_96/b64/conv_pw_[1-3]_'.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <time.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "bench/network_shapes.h"

// Highway 1.0.3 fails to compile under -march=native on CPUs with AVX-512 VNNI/VBMI2
// unless AVX3_DL is among the wanted targets (detect_targets.h tests an undefined macro).
#define HWY_WANT_AVX3_DL
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "bench/bench_gemm.cpp"
#include <hwy/foreach_target.h>

#include <hwy/aligned_allocator.h>
#include <hwy/highway.h>

#include "kernels/gemm.h"

// The FMA-bound loop, once per SIMD target: 16 independent accumulator vectors, enough
// to cover FMA latency x throughput on any x86 core, so only the FMA units limit it.
HWY_BEFORE_NAMESPACE();
namespace fer_bench::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Runs `iters` rounds of 16 vector FMAs; returns the floating-point operations done.
double FmaLoop(int64_t iters, float seed) {
  const hn::ScalableTag<float> d;
  using V = hn::Vec<decltype(d)>;
  const V mul = hn::Set(d, 0.999999f), add = hn::Set(d, 1e-7f);
  V acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = hn::Set(d, seed + static_cast<float>(i));
  for (int64_t it = 0; it < iters; ++it) {
    for (int i = 0; i < 16; ++i) acc[i] = hn::MulAdd(acc[i], mul, add);
  }
  V sum = acc[0];
  for (int i = 1; i < 16; ++i) sum = hn::Add(sum, acc[i]);
  benchmark::DoNotOptimize(hn::GetLane(sum));
  return 2.0 * 16 * static_cast<double>(hn::Lanes(d)) * static_cast<double>(iters);
}

}  // namespace fer_bench::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace fer_bench {
HWY_EXPORT(FmaLoop);

namespace {

using namespace fer::kernels;

constexpr int64_t kFmaIters = 1'000'000;

double seconds(clockid_t clock) {
  timespec ts;
  clock_gettime(clock, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

// One run of the FMA loop on `threads` threads at once. Returns the operations done;
// *per_cpu_second gets the sum over threads of each thread's operations per second of
// its own CPU time: the rate of the cores while they run, which other processes on this
// shared machine cannot lower by taking turns on them.
double fma_round(int threads, double* per_cpu_second = nullptr) {
  double flops = 0, rate = 0;
#pragma omp parallel num_threads(threads) reduction(+ : flops, rate)
  {
    const double t0 = seconds(CLOCK_THREAD_CPUTIME_ID);
    const double f = HWY_DYNAMIC_DISPATCH(FmaLoop)(kFmaIters, 1.f + omp_get_thread_num());
    flops += f;
    rate += f / (seconds(CLOCK_THREAD_CPUTIME_ID) - t0);
  }
  if (per_cpu_second) *per_cpu_second = rate;
  return flops;
}

// The FMA peak of all the threads the GEMMs use, in FLOP per second of CPU time (see
// fma_round): the best of a few runs.
double measured_peak() {
  static const double peak = [] {
    double best = 0;
    for (int i = 0; i < 10; ++i) {
      double rate;
      fma_round(omp_get_max_threads(), &rate);
      best = std::max(best, rate);
    }
    return best;
  }();
  return peak;
}

void BM_FmaPeak(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  double flops = 0, rate = 0, best_rate = 0;
  for (auto _ : state) {
    flops += fma_round(threads, &rate);
    best_rate = std::max(best_rate, rate);
  }
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsRate);
  state.counters["GFLOP/s_cpu"] = best_rate * 1e-9;
}

// STREAM-style bandwidth over arrays far larger than the caches (3 x 128 MiB): copy moves
// 8 bytes per element (read a, write b), triad 12 (read b and c, write a).
constexpr int64_t kStreamFloats = int64_t{32} << 20;

void BM_Stream(benchmark::State& state, bool triad) {
  const int threads = static_cast<int>(state.range(0));
  auto a = hwy::AllocateAligned<float>(kStreamFloats);
  auto b = hwy::AllocateAligned<float>(kStreamFloats);
  auto c = hwy::AllocateAligned<float>(kStreamFloats);
  float* pa = a.get();
  float* pb = b.get();
  float* pc = c.get();
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < kStreamFloats; ++i) pa[i] = 1.f, pb[i] = 2.f, pc[i] = 3.f;
  for (auto _ : state) {
    if (triad) {
#pragma omp parallel for num_threads(threads) schedule(static)
      for (int64_t i = 0; i < kStreamFloats; ++i) pa[i] = pb[i] + 0.5f * pc[i];
    } else {
#pragma omp parallel for num_threads(threads) schedule(static)
      for (int64_t i = 0; i < kStreamFloats; ++i) pb[i] = pa[i];
    }
    benchmark::ClobberMemory();
  }
  const double bytes = (triad ? 12.0 : 8.0) * kStreamFloats * state.iterations();
  state.counters["GB/s"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsRate);
}

struct Shape {
  std::string name;
  bool ta, tb;
  int m, n, k;
  float beta;
};

using Gemm = void (*)(bool, bool, int, int, int, float, const float*, int, const float*, int,
                      float, float*, int);

void BM_Gemm(benchmark::State& state, Shape s, Gemm gemm) {
  // op(A) is m x k, op(B) is k x n, all contiguous (lda = number of stored columns).
  const int lda = s.ta ? s.m : s.k, ldb = s.tb ? s.k : s.n;
  auto a = hwy::AllocateAligned<float>(int64_t{s.m} * s.k);
  auto b = hwy::AllocateAligned<float>(int64_t{s.k} * s.n);
  auto c = hwy::AllocateAligned<float>(int64_t{s.m} * s.n);
  for (int64_t i = 0; i < int64_t{s.m} * s.k; ++i) a[i] = float(i % 17) * 0.01f;
  for (int64_t i = 0; i < int64_t{s.k} * s.n; ++i) b[i] = float(i % 13) * 0.01f;
  std::fill(c.get(), c.get() + int64_t{s.m} * s.n, 0.f);
  const double cpu0 = seconds(CLOCK_PROCESS_CPUTIME_ID);
  for (auto _ : state) {
    gemm(s.ta, s.tb, s.m, s.n, s.k, 1.f, a.get(), lda, b.get(), ldb, s.beta, c.get(), s.n);
    benchmark::ClobberMemory();
  }
  // The process's CPU time over the threads it ran on: the wall time the GEMM would take
  // with the cores to itself (time other processes held them does not count; time our
  // threads spent waiting for each other does).
  const double cpu_per_thread = (seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu0) / omp_get_max_threads();
  const double flops = 2.0 * s.m * s.n * s.k * state.iterations();
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsRate);
  state.counters["GFLOP/s_cpu"] = flops * 1e-9 / cpu_per_thread;
  state.counters["pct_peak"] = 100.0 * flops / cpu_per_thread / measured_peak();
}

std::vector<Shape> shapes() {
  std::vector<Shape> out;
  // Every convolution of the bench networks (bench/network_shapes.h), as the GEMMs fer
  // runs for it: [pixels, kh*kw*in] * [kh*kw*in, out] forward (a 1x1 stride-1 layer needs
  // no im2col copy), the input gradient d(col) = dY * W^T and the weight gradient
  // dW = col^T * dY. Depthwise layers are not GEMMs (bench_depthwise).
  for (const ConvShape& c : bench_conv_shapes()) {
    if (c.depthwise) continue;
    const int pixels = c.g.n * c.g.oh * c.g.ow, k = c.g.kh * c.g.kw * c.g.c, n = c.out_channels;
    const std::string name = c.name + "_" + std::to_string(pixels) + "x" + std::to_string(k) +
                             "x" + std::to_string(n);
    out.push_back({name, false, false, pixels, n, k, 0.f});
    out.push_back({name + "_dx", false, true, pixels, k, n, 1.f});
    out.push_back({name + "_dw", true, false, k, n, pixels, 1.f});
  }
  // cnn3's classifier: Flatten (6*6*128) -> Dense 256 -> Dense 7, forward and backward.
  struct Fc {
    const char* name;
    int in, out;
  };
  for (const Fc& fc : {Fc{"cnn3_dense1", 4608, 256}, Fc{"cnn3_predictions", 256, 7}}) {
    const std::string name = std::string(fc.name) + "_64x" + std::to_string(fc.in) + "x" +
                             std::to_string(fc.out);
    out.push_back({name, false, false, 64, fc.out, fc.in, 1.f});
    out.push_back({name + "_dx", false, true, 64, fc.in, fc.out, 1.f});
    out.push_back({name + "_dw", true, false, fc.in, fc.out, 64, 1.f});
    // Batch 1 (inference latency): one row of C, a matrix-vector product bound by
    // reading the weights once.
    out.push_back({std::string(fc.name) + "_1x" + std::to_string(fc.in) + "x" +
                       std::to_string(fc.out),
                   false, false, 1, fc.out, fc.in, 1.f});
  }
  out.push_back({"square_512", false, false, 512, 512, 512, 0.f});
  out.push_back({"square_1024", false, false, 1024, 1024, 1024, 0.f});
  return out;
}

void register_all() {
  const int threads = omp_get_max_threads();
  benchmark::RegisterBenchmark("BM_FmaPeak", BM_FmaPeak)->Arg(1)->Arg(threads)->UseRealTime();
  benchmark::RegisterBenchmark("BM_StreamCopy", BM_Stream, false)
      ->Arg(1)->Arg(threads)->UseRealTime()->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("BM_StreamTriad", BM_Stream, true)
      ->Arg(1)->Arg(threads)->UseRealTime()->Unit(benchmark::kMillisecond);
  // Small squares: per-call overheads (packing, dispatch, threads), and the reference.
  std::vector<Shape> all;
  for (int size : {16, 32, 64, 128}) {
    all.push_back({"small_" + std::to_string(size), false, false, size, size, size, 0.f});
    benchmark::RegisterBenchmark(("BM_Gemm/" + all.back().name + "/ref").c_str(), BM_Gemm,
                                 all.back(), &sgemm_ref)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  }
  for (const Shape& s : shapes()) all.push_back(s);
  for (const Shape& s : all) {
    for (auto [impl, fn] : {std::pair<const char*, Gemm>{"hwy", &sgemm_hwy},
                            {"eigen", &sgemm_eigen},
                            {"sgemm", &sgemm}}) {
      benchmark::RegisterBenchmark(("BM_Gemm/" + s.name + "/" + impl).c_str(), BM_Gemm, s, fn)
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
    }
  }
}

}  // namespace
}  // namespace fer_bench

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  fer_bench::register_all();
  benchmark::AddCustomContext("sgemm_hwy target",
                              fer::kernels::sgemm_hwy_target_name(
                                  fer::kernels::sgemm_hwy_dispatched_target()));
  benchmark::AddCustomContext("OpenMP threads", std::to_string(omp_get_max_threads()));
  benchmark::AddCustomContext(
      "FMA peak GFLOP/s per CPU second (all threads, best of 10)",
      std::to_string(fer_bench::measured_peak() * 1e-9));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
#endif  // HWY_ONCE
