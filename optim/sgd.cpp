// SGD. See optim/sgd.h.
#include "optim/sgd.h"

#include <cmath>

#include "fer/error.h"
#include "kernels/optimizer_update.h"

namespace fer::optim {

SGD::SGD(std::vector<Parameter*> params, float lr, float momentum, bool nesterov,
         float weight_decay)
    : Optimizer(std::move(params), lr),
      momentum_(momentum),
      nesterov_(nesterov),
      weight_decay_(weight_decay) {
  FER_CHECK(std::isfinite(momentum) && momentum >= 0.f && momentum < 1.f,
            "sgd: momentum must be in [0, 1), got ", momentum);
  FER_CHECK(!nesterov || momentum > 0.f, "sgd: nesterov momentum needs momentum > 0");
  FER_CHECK(std::isfinite(weight_decay) && weight_decay >= 0.f,
            "sgd: weight_decay must be >= 0, got ", weight_decay);
}

std::vector<std::string> SGD::slot_names() const {
  if (momentum_ == 0.f) return {};
  return {"momentum"};
}

void SGD::update(ParamState& state, const float* grad, float lr) {
  kernels::SgdConfig c;
  c.lr = lr;
  c.momentum = momentum_;
  c.nesterov = nesterov_;
  c.weight_decay = weight_decay_;
  float* buf = state.slots.empty() ? nullptr : state.slots[0].data();
  kernels::sgd_update(state.param->value.data(), grad, buf, state.param->value.numel(), c);
}

Json SGD::hyperparameters() const {
  Json j = Json::object();
  j["momentum"] = momentum_;
  j["nesterov"] = nesterov_;
  j["weight_decay"] = weight_decay_;
  return j;
}

}  // namespace fer::optim
