// The optimizer bookkeeping and the factory. See optim/optimizer.h.
#include "optim/optimizer.h"

#include <cmath>
#include <set>

#include "fer/error.h"
#include "optim/adam.h"
#include "optim/sgd.h"

namespace fer::optim {

Optimizer::Optimizer(std::vector<Parameter*> params, float lr) : lr_(lr) {
  set_lr(lr);
  std::set<std::string> names;
  std::set<const Parameter*> seen;
  for (Parameter* p : params) {
    FER_CHECK(p != nullptr, "optimizer: null parameter");
    if (!p->trainable) continue;      // running statistics are computed, not trained
    if (!seen.insert(p).second) continue;  // the same parameter listed twice
    FER_CHECK(names.insert(p->name).second, "optimizer: two parameters are named '", p->name,
              "'; names key the optimizer state and must be unique");
    params_.push_back(p);
  }
}

void Optimizer::set_lr(float lr) {
  FER_CHECK(std::isfinite(lr) && lr >= 0.f, "optimizer: learning rate must be >= 0, got ", lr);
  lr_ = lr;
}

void Optimizer::set_lr_scale(const std::string& prefix, float scale) {
  FER_CHECK(std::isfinite(scale) && scale >= 0.f, "optimizer: lr scale for '", prefix,
            "' must be >= 0, got ", scale);
  for (auto& [p, s] : lr_scales_)
    if (p == prefix) { s = scale; return; }
  lr_scales_.emplace_back(prefix, scale);
}

float Optimizer::lr_scale(const std::string& param_name) const {
  float scale = 1.f;
  size_t best = 0;
  bool found = false;
  for (const auto& [prefix, s] : lr_scales_) {
    const bool matches = param_name.compare(0, prefix.size(), prefix) == 0;
    if (matches && (!found || prefix.size() > best)) {
      scale = s;
      best = prefix.size();
      found = true;
    }
  }
  return scale;
}

void Optimizer::ensure_slots() const {
  if (states_.size() == params_.size()) return;
  const size_t num_slots = slot_names().size();
  states_.clear();
  for (Parameter* p : params_) {
    ParamState s;
    s.param = p;
    for (size_t k = 0; k < num_slots; ++k) s.slots.emplace_back(p->value.shape());
    states_.push_back(std::move(s));
  }
}

void Optimizer::step() {
  ensure_slots();
  for (ParamState& s : states_) {
    const Tensor& w = s.param->value;
    // Frozen (requires_grad false) or untouched by the loss (no gradient): leave alone,
    // weight decay and momentum included, as PyTorch skips parameters whose grad is None.
    if (!gets_gradient_step(*s.param)) continue;
    ++s.steps;
    update(s, w.grad(), lr_ * lr_scale(s.param->name));
  }
  ++steps_;
}

void Optimizer::zero_grad() {
  for (Parameter* p : params_) p->value.zero_grad();
}

std::vector<std::pair<std::string, Tensor>> Optimizer::state_tensors() const {
  ensure_slots();
  const std::vector<std::string> names = slot_names();
  std::vector<std::pair<std::string, Tensor>> out;
  for (const ParamState& s : states_)
    for (size_t k = 0; k < names.size(); ++k)
      out.emplace_back("optimizer/" + s.param->name + "/" + names[k], s.slots[k]);
  return out;
}

Json Optimizer::state_json() const {
  ensure_slots();
  Json j = Json::object();
  j["type"] = type();
  j["lr"] = lr_;
  j["steps"] = steps_;
  j["hyperparameters"] = hyperparameters();
  Json scales = Json::object();
  for (const auto& [prefix, s] : lr_scales_) scales[prefix] = s;
  j["lr_scales"] = scales;
  Json param_steps = Json::object();
  for (const ParamState& s : states_) param_steps[s.param->name] = s.steps;
  j["param_steps"] = param_steps;
  return j;
}

void Optimizer::load_state(const Json& j, const std::map<std::string, Tensor>& tensors) {
  ensure_slots();
  FER_CHECK(j.is_object(), "optimizer state: expected a JSON object");
  const std::string saved_type = j.at("type").as_string();
  FER_CHECK(saved_type == type(), "optimizer state: saved by '", saved_type,
            "' but this run uses '", type(), "'");
  const Json& param_steps = j.at("param_steps");
  const std::vector<std::string> names = slot_names();

  // Check everything before changing anything, so that a failed load leaves the
  // optimizer as it was.
  std::vector<std::vector<const Tensor*>> sources(states_.size());
  for (size_t i = 0; i < states_.size(); ++i) {
    const Parameter& p = *states_[i].param;
    FER_CHECK(param_steps.contains(p.name), "optimizer state: no step count for parameter '",
              p.name, "' (saved from a different model?)");
    for (const std::string& slot : names) {
      const std::string key = "optimizer/" + p.name + "/" + slot;
      auto it = tensors.find(key);
      FER_CHECK(it != tensors.end(), "optimizer state: missing tensor '", key,
                "' (saved from a different model or optimizer?)");
      FER_CHECK(it->second.defined() && it->second.shape() == p.value.shape(),
                "optimizer state '", key, "': expected shape ", shape_str(p.value.shape()),
                " (the parameter's), got ",
                it->second.defined() ? shape_str(it->second.shape()) : "an undefined tensor");
      sources[i].push_back(&it->second);
    }
  }
  const float lr = static_cast<float>(j.at("lr").as_number());
  const int64_t steps = j.at("steps").as_int();
  FER_CHECK(steps >= 0, "optimizer state: negative step count ", steps);

  set_lr(lr);
  steps_ = steps;
  if (j.contains("lr_scales")) {
    lr_scales_.clear();
    for (const auto& [prefix, s] : j.at("lr_scales").as_object())
      set_lr_scale(prefix, static_cast<float>(s.as_number()));
  }
  for (size_t i = 0; i < states_.size(); ++i) {
    ParamState& s = states_[i];
    s.steps = param_steps.at(s.param->name).as_int();
    for (size_t k = 0; k < names.size(); ++k) s.slots[k].copy_from(*sources[i][k]);
  }
}

// --- factory ---------------------------------------------------------------------------

namespace {

// Rejects option names the optimizer does not know (a typo would otherwise silently
// train with the default).
void check_option_names(const std::string& name, const Json& options,
                        const std::vector<std::string>& known) {
  if (options.is_null()) return;
  FER_CHECK(options.is_object(), "optimizer '", name, "': options must be a JSON object");
  for (const auto& [key, value] : options.as_object()) {
    bool ok = false;
    for (const std::string& k : known) ok = ok || k == key;
    if (!ok) {
      std::string list;
      for (const std::string& k : known) list += (list.empty() ? "" : ", ") + k;
      fail("optimizer '", name, "': unknown option '", key, "' (known: ", list, ")");
    }
  }
}

float option(const Json& options, const char* key, float fallback) {
  if (options.is_null() || !options.contains(key)) return fallback;
  return static_cast<float>(options.at(key).as_number());
}

double option(const Json& options, const char* key, double fallback) {
  if (options.is_null() || !options.contains(key)) return fallback;
  return options.at(key).as_number();
}

bool option(const Json& options, const char* key, bool fallback) {
  if (options.is_null() || !options.contains(key)) return fallback;
  return options.at(key).as_bool();
}

}  // namespace

std::unique_ptr<Optimizer> make_optimizer(const std::string& name,
                                          std::vector<Parameter*> params,
                                          const Json& options) {
  if (name == "sgd") {
    check_option_names(name, options, {"lr", "momentum", "nesterov", "weight_decay"});
    return std::make_unique<SGD>(std::move(params), option(options, "lr", 0.01f),
                                 option(options, "momentum", 0.f),
                                 option(options, "nesterov", false),
                                 option(options, "weight_decay", 0.f));
  }
  if (name == "adam" || name == "adamw") {
    check_option_names(name, options, {"lr", "beta1", "beta2", "eps", "weight_decay"});
    const float lr = option(options, "lr", 0.001f);
    const double beta1 = option(options, "beta1", 0.9);
    const double beta2 = option(options, "beta2", 0.999);
    const float eps = option(options, "eps", 1e-7f);
    if (name == "adam")
      return std::make_unique<Adam>(std::move(params), lr, beta1, beta2, eps,
                                    option(options, "weight_decay", 0.f));
    return std::make_unique<AdamW>(std::move(params), lr, beta1, beta2, eps,
                                   option(options, "weight_decay", 0.01f));
  }
  fail("unknown optimizer '", name, "' (known: sgd, adam, adamw)");
}

}  // namespace fer::optim
