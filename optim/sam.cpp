// Sharpness-aware minimization. See optim/sam.h.
#include "optim/sam.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "fer/error.h"

namespace fer::optim {

namespace {
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
  // Save first what the second pass changes: the weights to come back to, and the
  // running statistics its forward pass will move. Frozen weights are left alone (so
  // their cached transforms, keyed by version, stay valid).
  for (size_t i = 0; i < params_.size(); ++i) {
    const Parameter& p = *params_[i];
    saved_[i].clear();
    if (gets_gradient_step(p) || !p.trainable)
      saved_[i].assign(std::as_const(p.value).data(),
                       std::as_const(p.value).data() + p.value.numel());
  }
  ascended_ = true;
  // ||g|| (or ||T g||) over all moving weights as one vector, summed in double.
  double sum_sq = 0;
  for (const Parameter* p : params_) {
    if (!gets_gradient_step(*p)) continue;
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
    if (!gets_gradient_step(*p)) continue;
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
    if (!saved_[i].empty()) std::copy(saved_[i].begin(), saved_[i].end(), params_[i]->value.data());
  ascended_ = false;
}

}  // namespace fer::optim
