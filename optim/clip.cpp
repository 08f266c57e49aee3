// Gradient clipping. See optim/clip.h.
#include "optim/clip.h"

#include <algorithm>
#include <cmath>

#include "fer/error.h"

namespace fer::optim {

float clip_grad_norm(const std::vector<Parameter*>& params, float max_norm) {
  FER_CHECK(max_norm > 0.f, "clip_grad_norm: max_norm must be > 0, got ", max_norm);
  // Sum of squares in double: millions of small float squares would lose their low bits.
  double sum_sq = 0.0;
  for (const Parameter* p : params) {
    if (!gets_gradient_step(*p)) continue;
    const float* g = p->value.grad();
    for (int64_t i = 0, n = p->value.numel(); i < n; ++i) sum_sq += double(g[i]) * g[i];
  }
  const double norm = std::sqrt(sum_sq);
  if (!std::isfinite(norm)) return static_cast<float>(norm);
  // The 1e-6 keeps the division finite for an all-zero gradient (PyTorch's choice).
  const double factor = double(max_norm) / (norm + 1e-6);
  if (factor < 1.0) {
    const float f = static_cast<float>(factor);
    for (const Parameter* p : params) {
      if (!gets_gradient_step(*p)) continue;
      float* g = p->value.grad();
      for (int64_t i = 0, n = p->value.numel(); i < n; ++i) g[i] *= f;
    }
  }
  return static_cast<float>(norm);
}

void clip_grad_value(const std::vector<Parameter*>& params, float clip) {
  FER_CHECK(clip > 0.f, "clip_grad_value: clip must be > 0, got ", clip);
  for (const Parameter* p : params) {
    if (!gets_gradient_step(*p)) continue;
    float* g = p->value.grad();
    for (int64_t i = 0, n = p->value.numel(); i < n; ++i) g[i] = std::clamp(g[i], -clip, clip);
  }
}

}  // namespace fer::optim
