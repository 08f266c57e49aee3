// Adam and AdamW. See optim/adam.h.
#include "optim/adam.h"

#include <cmath>

#include "fer/error.h"
#include "kernels/optimizer_update.h"

namespace fer::optim {

Adam::Adam(std::vector<Parameter*> params, float lr, double beta1, double beta2, float eps,
           float weight_decay)
    : Adam(std::move(params), lr, beta1, beta2, eps, weight_decay, /*decoupled=*/false) {}

Adam::Adam(std::vector<Parameter*> params, float lr, double beta1, double beta2, float eps,
           float weight_decay, bool decoupled)
    : Optimizer(std::move(params), lr),
      beta1_(beta1),
      beta2_(beta2),
      eps_(eps),
      weight_decay_(weight_decay),
      decoupled_(decoupled) {
  const char* who = decoupled ? "adamw" : "adam";
  FER_CHECK(beta1 >= 0.0 && beta1 < 1.0, who, ": beta1 must be in [0, 1), got ", beta1);
  FER_CHECK(beta2 >= 0.0 && beta2 < 1.0, who, ": beta2 must be in [0, 1), got ", beta2);
  FER_CHECK(std::isfinite(eps) && eps >= 0.f, who, ": eps must be >= 0, got ", eps);
  FER_CHECK(std::isfinite(weight_decay) && weight_decay >= 0.f, who,
            ": weight_decay must be >= 0, got ", weight_decay);
}

void Adam::update(ParamState& state, const float* grad, float lr) {
  kernels::AdamConfig c;
  c.lr = lr;
  c.beta1 = beta1_;
  c.beta2 = beta2_;
  c.eps = eps_;
  c.weight_decay = decoupled_ ? 0.f : weight_decay_;
  c.decoupled_weight_decay = decoupled_ ? weight_decay_ : 0.f;
  c.step = state.steps;
  kernels::adam_update(state.param->value.data(), grad, state.slots[0].data(),
                       state.slots[1].data(), state.param->value.numel(), c);
}

Json Adam::hyperparameters() const {
  Json j = Json::object();
  j["beta1"] = beta1_;
  j["beta2"] = beta2_;
  j["eps"] = eps_;
  j["weight_decay"] = weight_decay_;
  return j;
}

}  // namespace fer::optim
