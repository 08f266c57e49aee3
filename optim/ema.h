// Exponential moving average of the weights: Keras's optimizer option `use_ema` /
// `ema_momentum`, PyTorch's torch.optim.swa_utils.AveragedModel with an EMA, timm's
// ModelEma. After every optimizer step
//
//     average = decay * average + (1 - decay) * weight
//
// for every parameter, BatchNorm's running statistics included (they are weights of the
// network that evaluation uses). Evaluating with the averages instead of the last
// weights smooths out the noise of the last ~1 / (1 - decay) steps, which is worth a
// fraction of a point of accuracy late in a run, at the cost of one pass over the
// weights per step.
//
// The first updates would otherwise average mostly the initial weights, so the decay
// ramps up as TensorFlow's ExponentialMovingAverage(num_updates) does: update t (0, 1, ...)
// uses min(decay, (1 + t) / (10 + t)).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "fer/tensor.h"
#include "layers/layer.h"

namespace fer::optim {

class WeightEma {
 public:
  // The averages start as copies of the parameters' current values.
  WeightEma(std::vector<Parameter*> params, float decay);

  // The decay update t uses (the warm-up above).
  float decay_at(int64_t t) const;
  // After optimizer step number t (counting from 0 over the whole run).
  void update(int64_t t);
  // Exchanges every parameter's value with its average; a second call undoes it.
  void swap();

  // For checkpoints: the averages as "optimizer/ema/<param name>" (ignored by
  // Model::load_weights like the optimizer's own slots), sharing storage -- save them,
  // don't modify them.
  std::vector<std::pair<std::string, Tensor>> state_tensors() const;
  // Restores what state_tensors() saved; throws fer::Error naming a missing or mis-shaped
  // average.
  void load_state(const std::map<std::string, Tensor>& tensors, const std::string& source);

 private:
  std::vector<Parameter*> params_;
  std::vector<Tensor> averages_;
  float decay_;
};

// Swaps the averages in for the lifetime of the guard (evaluation, saving best.npz), and
// back out when it ends, exception or not. A null `ema` does nothing.
class EmaSwap {
 public:
  explicit EmaSwap(WeightEma* ema) : ema_(ema) {
    if (ema_) ema_->swap();
  }
  ~EmaSwap() {
    if (ema_) ema_->swap();
  }
  EmaSwap(const EmaSwap&) = delete;
  EmaSwap& operator=(const EmaSwap&) = delete;

 private:
  WeightEma* ema_;
};

}  // namespace fer::optim
