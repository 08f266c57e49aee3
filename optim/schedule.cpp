// Learning-rate schedules. See optim/schedule.h.
#include "optim/schedule.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "fer/error.h"

namespace fer::optim {

namespace {
void check_steps_per_epoch(const char* who, int64_t step, int64_t steps_per_epoch) {
  FER_CHECK(steps_per_epoch > 0, who, " schedule: steps_per_epoch must be > 0, got ",
            steps_per_epoch);
  FER_CHECK(step >= 0, who, " schedule: step must be >= 0, got ", step);
}
void check_lr(const char* who, float lr) {
  FER_CHECK(std::isfinite(lr) && lr >= 0.f, who, " schedule: lr must be >= 0, got ", lr);
}
}  // namespace

// --- Constant --------------------------------------------------------------------------

Constant::Constant(float base_lr) : base_lr_(base_lr) { check_lr("constant", base_lr); }

float Constant::lr(int64_t step, int64_t steps_per_epoch) const {
  check_steps_per_epoch("constant", step, steps_per_epoch);
  return base_lr_;
}

Json Constant::config() const {
  Json j = Json::object();
  j["type"] = type();
  j["lr"] = base_lr_;
  return j;
}

// --- StepDecay -------------------------------------------------------------------------

StepDecay::StepDecay(float base_lr, int64_t step_epochs, float gamma)
    : base_lr_(base_lr), step_epochs_(step_epochs), gamma_(gamma) {
  check_lr("step", base_lr);
  FER_CHECK(step_epochs > 0, "step schedule: step_epochs must be > 0, got ", step_epochs);
  FER_CHECK(std::isfinite(gamma) && gamma > 0.f, "step schedule: gamma must be > 0, got ",
            gamma);
}

float StepDecay::lr(int64_t step, int64_t steps_per_epoch) const {
  check_steps_per_epoch("step", step, steps_per_epoch);
  const int64_t epoch = step / steps_per_epoch;
  const int64_t decays = epoch / step_epochs_;
  return static_cast<float>(double(base_lr_) * std::pow(double(gamma_), double(decays)));
}

Json StepDecay::config() const {
  Json j = Json::object();
  j["type"] = type();
  j["lr"] = base_lr_;
  j["step_epochs"] = step_epochs_;
  j["gamma"] = gamma_;
  return j;
}

// --- CosineWarmup ----------------------------------------------------------------------

CosineWarmup::CosineWarmup(float base_lr, double warmup_epochs, double total_epochs,
                           float min_lr)
    : base_lr_(base_lr),
      warmup_epochs_(warmup_epochs),
      total_epochs_(total_epochs),
      min_lr_(min_lr) {
  check_lr("cosine", base_lr);
  FER_CHECK(std::isfinite(min_lr) && min_lr >= 0.f && min_lr <= base_lr,
            "cosine schedule: min_lr must be in [0, lr], got ", min_lr);
  FER_CHECK(warmup_epochs >= 0, "cosine schedule: warmup_epochs must be >= 0, got ",
            warmup_epochs);
  FER_CHECK(total_epochs > warmup_epochs, "cosine schedule: total_epochs (", total_epochs,
            ") must exceed warmup_epochs (", warmup_epochs, ")");
}

float CosineWarmup::lr(int64_t step, int64_t steps_per_epoch) const {
  check_steps_per_epoch("cosine", step, steps_per_epoch);
  const double spe = static_cast<double>(steps_per_epoch);
  const int64_t warmup = std::llround(warmup_epochs_ * spe);
  const int64_t total = std::max<int64_t>(std::llround(total_epochs_ * spe), warmup + 1);
  if (step < warmup) {
    // (step + 1) so that the first step already moves (lr 0 would waste it) and the
    // last warm-up step reaches base_lr exactly.
    return static_cast<float>(double(base_lr_) * double(step + 1) / double(warmup));
  }
  const double progress =
      std::min(1.0, double(step - warmup) / double(total - warmup));  // 0 -> 1
  const double pi = 3.14159265358979323846;
  const double cosine = 0.5 * (1.0 + std::cos(pi * progress));     // 1 -> 0
  return static_cast<float>(double(min_lr_) + (double(base_lr_) - min_lr_) * cosine);
}

Json CosineWarmup::config() const {
  Json j = Json::object();
  j["type"] = type();
  j["lr"] = base_lr_;
  j["warmup_epochs"] = warmup_epochs_;
  j["total_epochs"] = total_epochs_;
  j["min_lr"] = min_lr_;
  return j;
}

// --- factory ---------------------------------------------------------------------------

namespace {
std::string join(const std::vector<std::string>& names) {
  std::string s;
  for (const std::string& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

// Rejects unknown option names (a typo would silently fall back to a default). "type"
// is allowed so that config() can be passed back in.
void check_schedule_options(const std::string& name, const Json& options,
                            std::vector<std::string> known) {
  if (options.is_null()) return;
  FER_CHECK(options.is_object(), name, " schedule: options must be a JSON object");
  known.push_back("type");
  for (const auto& [key, value] : options.as_object())
    if (std::find(known.begin(), known.end(), key) == known.end())
      fail(name, " schedule: unknown option '", key, "' (known: ", join(known), ")");
}

double required(const std::string& name, const Json& options, const char* key) {
  FER_CHECK(!options.is_null() && options.contains(key), name, " schedule: option '", key,
            "' is required");
  return options.at(key).as_number();
}

double optional(const Json& options, const char* key, double fallback) {
  if (options.is_null() || !options.contains(key)) return fallback;
  return options.at(key).as_number();
}
}  // namespace

std::unique_ptr<LrSchedule> make_schedule(const std::string& name, const Json& options) {
  if (name == "constant") {
    check_schedule_options(name, options, {"lr"});
    return std::make_unique<Constant>(static_cast<float>(required(name, options, "lr")));
  }
  if (name == "step") {
    check_schedule_options(name, options, {"lr", "step_epochs", "gamma"});
    const double step_epochs = required(name, options, "step_epochs");
    FER_CHECK(std::floor(step_epochs) == step_epochs,
              "step schedule: step_epochs must be a whole number, got ", step_epochs);
    return std::make_unique<StepDecay>(static_cast<float>(required(name, options, "lr")),
                                       static_cast<int64_t>(step_epochs),
                                       static_cast<float>(optional(options, "gamma", 0.1)));
  }
  if (name == "cosine") {
    check_schedule_options(name, options, {"lr", "warmup_epochs", "total_epochs", "min_lr"});
    return std::make_unique<CosineWarmup>(
        static_cast<float>(required(name, options, "lr")),
        optional(options, "warmup_epochs", 0.0), required(name, options, "total_epochs"),
        static_cast<float>(optional(options, "min_lr", 0.0)));
  }
  fail("unknown learning-rate schedule '", name, "' (known: constant, step, cosine)");
}

// --- ReduceLROnPlateau -----------------------------------------------------------------

ReduceLROnPlateau::ReduceLROnPlateau(const std::string& mode, float factor, int patience,
                                     float min_lr, float min_delta, int cooldown)
    : mode_(mode),
      factor_(factor),
      patience_(patience),
      min_lr_(min_lr),
      min_delta_(min_delta),
      cooldown_(cooldown) {
  FER_CHECK(mode == "max" || mode == "min", "ReduceLROnPlateau: unknown mode '", mode,
            "' (known: max, min)");
  FER_CHECK(factor > 0.f && factor < 1.f, "ReduceLROnPlateau: factor must be in (0, 1), got ",
            factor);
  FER_CHECK(patience >= 0, "ReduceLROnPlateau: patience must be >= 0, got ", patience);
  FER_CHECK(min_lr >= 0.f, "ReduceLROnPlateau: min_lr must be >= 0, got ", min_lr);
  FER_CHECK(cooldown >= 0, "ReduceLROnPlateau: cooldown must be >= 0, got ", cooldown);
  // Keras uses |min_delta|, so a negative value means the same as a positive one.
  min_delta_ = std::fabs(min_delta);
  best_ = mode_ == "max" ? -std::numeric_limits<float>::infinity()
                         : std::numeric_limits<float>::infinity();
}

bool ReduceLROnPlateau::improved(float metric) const {
  // Better than the best by more than min_delta (in double, as Keras compares in numpy).
  // A NaN metric never improves.
  if (mode_ == "max") return double(metric) > double(best_) + min_delta_;
  return double(metric) < double(best_) - min_delta_;
}

float ReduceLROnPlateau::on_epoch_end(float metric, float current_lr) {
  // Keras's order: a cooldown epoch counts down and never counts as waiting; an
  // improvement always resets the wait; otherwise (outside cooldown) wait one more epoch
  // and reduce once the patience is used up.
  if (cooldown_counter_ > 0) {
    --cooldown_counter_;
    wait_ = 0;
  }
  if (improved(metric)) {
    best_ = metric;
    wait_ = 0;
    return current_lr;
  }
  if (cooldown_counter_ > 0) return current_lr;
  ++wait_;
  if (wait_ >= patience_ && current_lr > min_lr_) {
    const float reduced = static_cast<float>(double(current_lr) * factor_);
    cooldown_counter_ = cooldown_;
    wait_ = 0;
    return std::max(reduced, min_lr_);
  }
  // At min_lr already (or still patient): nothing to do. Like Keras, wait keeps growing.
  return current_lr;
}

Json ReduceLROnPlateau::state() const {
  Json j = Json::object();
  j["mode"] = mode_;
  // JSON has no infinity: "no best yet" is written as null.
  j["best"] = std::isfinite(best_) ? Json(best_) : Json(nullptr);
  j["wait"] = wait_;
  j["cooldown_counter"] = cooldown_counter_;
  return j;
}

void ReduceLROnPlateau::load_state(const Json& j) {
  FER_CHECK(j.is_object(), "ReduceLROnPlateau state: expected a JSON object");
  const std::string mode = j.at("mode").as_string();
  FER_CHECK(mode == mode_, "ReduceLROnPlateau state: saved with mode '", mode,
            "' but this run uses '", mode_, "'");
  const Json& best = j.at("best");
  const int64_t wait = j.at("wait").as_int();
  const int64_t cooldown_counter = j.at("cooldown_counter").as_int();
  FER_CHECK(wait >= 0 && cooldown_counter >= 0,
            "ReduceLROnPlateau state: negative wait or cooldown counter");
  best_ = best.is_null() ? (mode_ == "max" ? -std::numeric_limits<float>::infinity()
                                           : std::numeric_limits<float>::infinity())
                         : static_cast<float>(best.as_number());
  wait_ = static_cast<int>(wait);
  cooldown_counter_ = static_cast<int>(cooldown_counter);
}

}  // namespace fer::optim
