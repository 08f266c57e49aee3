// Stochastic gradient descent with optional momentum, Nesterov momentum and L2 weight
// decay, with torch.optim.SGD's update rule (dampening 0):
//
//   g   = grad + weight_decay * w
//   buf = momentum * buf + g          (the first step gives buf = g)
//   g   = nesterov ? g + momentum * buf : buf
//   w   = w - lr * g
//
// The loop itself is kernels::sgd_update (kernels/optimizer_update.h).
#pragma once

#include "optim/optimizer.h"

namespace fer::optim {

class SGD : public Optimizer {
 public:
  SGD(std::vector<Parameter*> params, float lr, float momentum = 0.f, bool nesterov = false,
      float weight_decay = 0.f);

  std::string type() const override { return "sgd"; }
  float momentum() const { return momentum_; }
  bool nesterov() const { return nesterov_; }
  float weight_decay() const { return weight_decay_; }

 protected:
  // One slot, "momentum", when momentum > 0; plain SGD keeps no state.
  std::vector<std::string> slot_names() const override;
  void update(ParamState& state, const float* grad, float lr) override;
  Json hyperparameters() const override;

 private:
  float momentum_;
  bool nesterov_;
  float weight_decay_;
};

}  // namespace fer::optim
