// Whole-network speed: a training step (forward, loss, backward, optimizer step) and
// inference (forward, no tape) of each registered architecture, in images per second.
//
//   build/bench/bench_models --benchmark_repetitions=5 --benchmark_report_aggregates_only
//
// Threads follow OMP_NUM_THREADS (default: all cores). Inputs are random: speed does not
// depend on the pixel values.
#include <benchmark/benchmark.h>

#include "fer/architectures.h"
#include "fer/autograd.h"
#include "fer/model.h"
#include "layers/loss.h"
#include "optim/optimizer.h"

namespace {

using namespace fer;

Tensor random_batch(const Model& m, int batch) {
  const Shape& in = m.input_shape();
  Tensor x({batch, in[0], in[1], in[2]});
  Rng rng(1);
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>(rng.uniform());
  return x;
}

void BM_TrainStep(benchmark::State& state, const std::string& name) {
  const int batch = static_cast<int>(state.range(0));
  Model model = Model::from_architecture(make_architecture(name));
  Tensor x = random_batch(model, batch);
  std::vector<int> labels(batch);
  for (int i = 0; i < batch; ++i) labels[i] = i % static_cast<int>(model.classes().size());
  Json opts = Json::object();
  opts["lr"] = 1e-3;
  auto optimizer = optim::make_optimizer("adam", model.parameters(), opts);
  for (auto _ : state) {
    Tensor logits = model.forward(x, true);
    Tensor loss = softmax_cross_entropy(logits, labels);
    backward(loss);
    optimizer->step();
    optimizer->zero_grad();
  }
  state.SetItemsProcessed(state.iterations() * batch);
}

void BM_Infer(benchmark::State& state, const std::string& name) {
  const int batch = static_cast<int>(state.range(0));
  Model model = Model::from_architecture(make_architecture(name));
  Tensor x = random_batch(model, batch);
  NoGradGuard no_grad;
  for (auto _ : state) {
    Tensor logits = model.forward(x, false);
    benchmark::DoNotOptimize(logits.data());
  }
  state.SetItemsProcessed(state.iterations() * batch);
}

BENCHMARK_CAPTURE(BM_TrainStep, cnn3, std::string("cnn3"))->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Infer, cnn3, std::string("cnn3"))->Arg(64)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
