// Sharpness-aware minimization. See optim/sam.h.
#include "optim/sam.h"

#include <algorithm>
#include <cmath>

#include "fer/error.h"

namespace fer::optim {

namespace {
bool moves(const Parameter* p) {
  return p->trainable && p->value.requires_grad() && p->value.has_grad() && p->value.numel() > 0;
}
// ASAM's T_w = |w| + eta; eta keeps weights at zero from being stuck there (the paper's
// value).
constexpr float kAsamEta = 0.01f;
}  // namespace

SharpnessAwareStep::SharpnessAwareStep(std::vector<Parameter*> params, float rho, bool adaptive)
    : params_(std::move(params)), rho_(rho), adaptive_(adaptive), saved_(params_.size()) {
  FER_CHECK(std::isfinite(rho) && rho > 0.f, "sharpness-aware minimization: rho must be > 0, got ",
            rho);
}

float SharpnessAwareStep::ascend() {
  FER_CHECK(!ascended_, "SharpnessAwareStep::ascend called twice without restore");
  // Save everything first: the weights to come back to, and the running statistics the
  // second forward pass will move.
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& v = params_[i]->value;
    saved_[i].assign(v.data(), v.data() + v.numel());
  }
  ascended_ = true;
  // ||g|| (or ||T g||) over all moving weights as one vector, summed in double.
  double sum_sq = 0;
  for (const Parameter* p : params_) {
    if (!moves(p)) continue;
    const float* g = p->value.grad();
    const float* w = std::as_const(p->value).data();
    for (int64_t j = 0, n = p->value.numel(); j < n; ++j) {
      const double t = adaptive_ ? std::abs(w[j]) + kAsamEta : 1.0;
      sum_sq += (t * g[j]) * (t * g[j]);
    }
  }
  const double norm = std::sqrt(sum_sq);
  if (!(norm > 0) || !std::isfinite(norm)) return static_cast<float>(norm);
  const double scale = rho_ / norm;
  for (Parameter* p : params_) {
    if (!moves(p)) continue;
    const float* g = p->value.grad();
    float* w = p->value.data();  // renews the version: cached weight transforms redo
    for (int64_t j = 0, n = p->value.numel(); j < n; ++j) {
      const double t = adaptive_ ? std::abs(w[j]) + kAsamEta : 1.0;
      w[j] = static_cast<float>(w[j] + scale * t * t * g[j]);
    }
  }
  return static_cast<float>(norm);
}

void SharpnessAwareStep::restore() {
  FER_CHECK(ascended_, "SharpnessAwareStep::restore called without ascend");
  for (size_t i = 0; i < params_.size(); ++i)
    std::copy(saved_[i].begin(), saved_[i].end(), params_[i]->value.data());
  ascended_ = false;
}

}  // namespace fer::optim
