// Adam and AdamW, with PyTorch's update rules (torch.optim.Adam / torch.optim.AdamW):
//
//   w   = w * (1 - lr * weight_decay)        AdamW only ("decoupled" weight decay)
//   g   = grad + weight_decay * w            Adam only (L2 penalty through the gradient)
//   m   = beta1 * m + (1 - beta1) * g        slot "m": running mean of the gradient
//   v   = beta2 * v + (1 - beta2) * g^2      slot "v": running mean of its square
//   w   = w - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
//
// t counts the updates this parameter received (PyTorch's per-parameter "step"), so a
// layer unfrozen late in training starts its bias correction afresh. eps defaults to
// Keras's 1e-7 (PyTorch uses 1e-8). The loop is kernels::adam_update.
#pragma once

#include "optim/optimizer.h"

namespace fer::optim {

class Adam : public Optimizer {
 public:
  // The betas are doubles so that 1 - beta is computed as PyTorch does (see
  // kernels/optimizer_update.h).
  Adam(std::vector<Parameter*> params, float lr = 1e-3f, double beta1 = 0.9,
       double beta2 = 0.999, float eps = 1e-7f, float weight_decay = 0.f);

  std::string type() const override { return decoupled_ ? "adamw" : "adam"; }
  double beta1() const { return beta1_; }
  double beta2() const { return beta2_; }
  float eps() const { return eps_; }
  float weight_decay() const { return weight_decay_; }

 protected:
  // For AdamW: the same optimizer with the weight decay applied to the weights directly.
  Adam(std::vector<Parameter*> params, float lr, double beta1, double beta2, float eps,
       float weight_decay, bool decoupled);

  std::vector<std::string> slot_names() const override { return {"m", "v"}; }
  void update(ParamState& state, const float* grad, float lr) override;
  Json hyperparameters() const override;

 private:
  double beta1_, beta2_;
  float eps_, weight_decay_;
  bool decoupled_;
};

// Adam with decoupled weight decay (Loshchilov & Hutter): the decay shrinks every weight
// by the same factor lr * weight_decay per step instead of being rescaled by Adam's
// per-weight step size, which is what makes it a real regularizer under Adam.
class AdamW : public Adam {
 public:
  AdamW(std::vector<Parameter*> params, float lr = 1e-3f, double beta1 = 0.9,
        double beta2 = 0.999, float eps = 1e-7f, float weight_decay = 0.01f)
      : Adam(std::move(params), lr, beta1, beta2, eps, weight_decay, /*decoupled=*/true) {}
};

}  // namespace fer::optim
