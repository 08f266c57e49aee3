// Optimizer: turns the gradients the tape left on the parameters into weight updates.
//
// A training step is
//     opt.zero_grad();  loss = model(x);  backward(loss);  opt.step();
// step() updates every parameter that requires a gradient and has one; a parameter that
// does not (a frozen layer, a branch the loss never reached) is skipped entirely, so its
// weights stay bit-identical. The update rules themselves are plain loops in
// kernels/optimizer_update.h; this class does the bookkeeping around them: which
// parameters, which learning rate for each, the per-weight state ("slots", such as
// SGD's momentum buffer or Adam's moments) and saving that state for --resume.
//
// Layer groups: set_lr_scale("conv1/", 0.1f) trains every parameter whose name starts
// with "conv1/" at a tenth of the learning rate (the longest matching prefix wins), as
// PyTorch's parameter groups are used for fine-tuning a pretrained backbone gently.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "fer/json.h"
#include "fer/tensor.h"
#include "layers/layer.h"

namespace fer::optim {

class Optimizer {
 public:
  // Keeps the trainable parameters (statistics such as BatchNorm's moving mean are not
  // trained and are dropped here). Names must be unique: they key the saved state.
  Optimizer(std::vector<Parameter*> params, float lr);
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  virtual std::string type() const = 0;  // "sgd", "adam", "adamw"

  // One update of every parameter that requires_grad() and has_grad().
  void step();
  // Sets every existing gradient of the optimized parameters to zero.
  void zero_grad();

  float lr() const { return lr_; }
  void set_lr(float lr);
  // Effective learning rate of parameters named "<prefix>...": lr() * scale.
  void set_lr_scale(const std::string& param_name_prefix, float scale);
  // The scale of the longest prefix matching `param_name` (1 when none matches).
  float lr_scale(const std::string& param_name) const;

  int64_t steps() const { return steps_; }  // step() calls so far
  const std::vector<Parameter*>& parameters() const { return params_; }

  // --- checkpointing ------------------------------------------------------------------
  // The per-weight state as named tensors, "optimizer/<param name>/<slot>" (for example
  // "optimizer/conv1/kernel/momentum", ".../m", ".../v"). The tensors share storage with
  // the optimizer: save them, don't modify them.
  std::vector<std::pair<std::string, Tensor>> state_tensors() const;
  // Everything else: {"type", "lr", "steps", "hyperparameters": {...},
  //                   "lr_scales": {prefix: scale}, "param_steps": {param name: updates}}.
  Json state_json() const;
  // Restores what state_json() and state_tensors() saved (`tensors` may hold other
  // entries, such as model weights; they are ignored). The hyperparameters this
  // optimizer was constructed with are kept; lr, step counts, lr scales and slots are
  // restored. Throws fer::Error for a different optimizer type or a missing or
  // mis-shaped slot, naming the slot.
  void load_state(const Json& j, const std::map<std::string, Tensor>& tensors);

 protected:
  // What the optimizer keeps for one parameter.
  struct ParamState {
    Parameter* param = nullptr;
    std::vector<Tensor> slots;  // one per slot_names() entry, shaped like the parameter
    int64_t steps = 0;          // updates this parameter received (Adam's bias correction)
  };

  // Names of the per-weight slots ("momentum"; "m", "v"). Empty: no state.
  virtual std::vector<std::string> slot_names() const = 0;
  // Updates one parameter with its gradient at learning rate `lr` (already scaled).
  // state.steps has already been incremented for this update.
  virtual void update(ParamState& state, const float* grad, float lr) = 0;
  // The optimizer's own settings, for state_json().
  virtual Json hyperparameters() const = 0;

 private:
  void ensure_slots() const;  // allocates the slots (zeros) on first use

  std::vector<Parameter*> params_;
  mutable std::vector<ParamState> states_;  // parallel to params_, built lazily
  float lr_;
  std::vector<std::pair<std::string, float>> lr_scales_;  // prefix -> scale
  int64_t steps_ = 0;
};

// Builds "sgd", "adam" or "adamw" from options such as
//   {"lr": 0.01, "momentum": 0.9, "nesterov": true, "weight_decay": 5e-4}   (sgd)
//   {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7, "weight_decay": 0}  (adam/adamw)
// Missing options take the constructors' defaults; `options` may be null. Throws
// fer::Error for an unknown name or option, listing the known ones.
std::unique_ptr<Optimizer> make_optimizer(const std::string& name,
                                          std::vector<Parameter*> params,
                                          const Json& options);

}  // namespace fer::optim
