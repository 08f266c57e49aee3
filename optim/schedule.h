// Learning-rate schedules: the learning rate as a function of training progress.
//
// An LrSchedule is a pure function of the step: before each optimizer step the trainer
// sets  opt.set_lr(schedule.lr(opt.steps(), steps_per_epoch)),  where `step` is the
// number of steps already taken (0 for the very first) and steps_per_epoch the number of
// batches in one epoch. Being stateless, a schedule needs nothing saved for --resume:
// the restored step count puts it back where it was.
//
// ReduceLROnPlateau is different: it reacts to a validation metric once per epoch, so
// it has state (best value so far, epochs waited), which state()/load_state() save.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "fer/json.h"

namespace fer::optim {

class LrSchedule {
 public:
  virtual ~LrSchedule() = default;
  virtual std::string type() const = 0;  // "constant", "step", "cosine"
  // The learning rate for the step with 0-based index `step`.
  virtual float lr(int64_t step, int64_t steps_per_epoch) const = 0;
  // {"type": ..., and the schedule's settings}: enough for make_schedule to rebuild it.
  virtual Json config() const = 0;
};

// The same learning rate throughout.
class Constant : public LrSchedule {
 public:
  explicit Constant(float base_lr);
  std::string type() const override { return "constant"; }
  float lr(int64_t step, int64_t steps_per_epoch) const override;
  Json config() const override;

 private:
  float base_lr_;
};

// Multiplies the learning rate by gamma every step_epochs epochs (torch StepLR):
//   lr = base_lr * gamma^floor(epoch / step_epochs),  epoch = floor(step / steps_per_epoch).
class StepDecay : public LrSchedule {
 public:
  StepDecay(float base_lr, int64_t step_epochs, float gamma = 0.1f);
  std::string type() const override { return "step"; }
  float lr(int64_t step, int64_t steps_per_epoch) const override;
  Json config() const override;

 private:
  float base_lr_;
  int64_t step_epochs_;
  float gamma_;
};

// Linear warm-up, then half a cosine down to min_lr, evaluated per step:
//   W = warmup_epochs * steps_per_epoch, T = total_epochs * steps_per_epoch (rounded)
//   step <  W:  lr = base_lr * (step + 1) / W          (from ~0 up to base_lr)
//   step >= W:  p = (step - W) / (T - W), capped at 1
//               lr = min_lr + (base_lr - min_lr) * (1 + cos(pi * p)) / 2
// Warm-up lets Adam's moment estimates and BatchNorm statistics settle before the
// largest steps; the cosine spends the last epochs at small learning rates.
class CosineWarmup : public LrSchedule {
 public:
  CosineWarmup(float base_lr, double warmup_epochs, double total_epochs, float min_lr = 0.f);
  std::string type() const override { return "cosine"; }
  float lr(int64_t step, int64_t steps_per_epoch) const override;
  Json config() const override;

 private:
  float base_lr_;
  double warmup_epochs_, total_epochs_;
  float min_lr_;
};

// Builds a schedule from its name and options (the keys of config(), without "type"):
//   "constant": {"lr"}
//   "step":     {"lr", "step_epochs", "gamma" (0.1)}
//   "cosine":   {"lr", "warmup_epochs" (0), "total_epochs", "min_lr" (0)}
// "lr" is required. Throws fer::Error for an unknown name or option, listing the known ones.
std::unique_ptr<LrSchedule> make_schedule(const std::string& name, const Json& options);

// Keras's ReduceLROnPlateau: when the monitored metric has not improved for `patience`
// epochs, multiply the learning rate by `factor` (not below min_lr), then wait `cooldown`
// epochs before counting again.
//   mode "max" (accuracy): improved when metric > best + min_delta
//   mode "min" (loss):     improved when metric < best - min_delta
class ReduceLROnPlateau {
 public:
  explicit ReduceLROnPlateau(const std::string& mode = "max", float factor = 0.1f,
                             int patience = 10, float min_lr = 0.f, float min_delta = 1e-4f,
                             int cooldown = 0);

  // Call once per epoch with the epoch's metric and the current learning rate; returns
  // the learning rate to use from now on (current_lr or a reduced one).
  float on_epoch_end(float metric, float current_lr);

  float best() const { return best_; }   // -inf ("max") or +inf ("min") before any epoch
  int wait() const { return wait_; }      // epochs without improvement
  int cooldown_counter() const { return cooldown_counter_; }

  // {"mode", "best" (null while infinite), "wait", "cooldown_counter"}. The settings
  // (factor, patience, ...) come from the run's configuration, not from the state.
  Json state() const;
  void load_state(const Json& j);

 private:
  bool improved(float metric) const;

  std::string mode_;
  float factor_;
  int patience_;
  float min_lr_, min_delta_;
  int cooldown_;
  float best_;
  int wait_ = 0;
  int cooldown_counter_ = 0;
};

}  // namespace fer::optim
