// SGD and Adam/AdamW update rules. See kernels/optimizer_update.h.
//
// No floating-point contraction in this file (-ffp-contract=off, set in CMakeLists.txt):
// every operation is rounded on its own, as written (see kernels/optimizer_update.h).

#include "kernels/optimizer_update.h"

#include <cmath>

namespace fer::kernels {

// ---------------------------------------------------------------------------------------
// SGD (torch.optim.SGD, dampening 0)
//
//   d   = g + wd * w                 L2 weight decay: the gradient of wd/2 |w|^2
//   buf = momentum * buf + d         running sum of past gradients, decaying by momentum
//   d   = nesterov ? d + momentum * buf : buf
//   w   = w - lr * d
//
// With momentum 0 the buffer is not used and this is plain gradient descent.

void sgd_update_ref(float* w, const float* g, float* buf, int64_t n, const SgdConfig& c) {
  for (int64_t i = 0; i < n; ++i) {
    float d = g[i];
    if (c.weight_decay != 0.f) d = d + c.weight_decay * w[i];
    if (c.momentum != 0.f) {
      buf[i] = c.momentum * buf[i] + d;
      // Nesterov evaluates the gradient "ahead", which amounts to adding one more
      // momentum-scaled buffer to the current gradient instead of using the buffer alone.
      d = c.nesterov ? d + c.momentum * buf[i] : buf[i];
    }
    w[i] = w[i] - c.lr * d;
  }
}

// ---------------------------------------------------------------------------------------
// Adam (torch.optim.Adam) and AdamW (torch.optim.AdamW)
//
//   w   = w * (1 - lr * wd_decoupled)     AdamW only: shrink the weights directly
//   d   = g + wd * w                      Adam's L2 (0 for AdamW)
//   m   = beta1 * m + (1 - beta1) * d     running mean of the gradient
//   v   = beta2 * v + (1 - beta2) * d^2   running mean of its square
//   w   = w - lr * m_hat / (sqrt(v_hat) + eps)
//
// m and v start at zero, so early on they are biased towards zero; dividing by
// 1 - beta^t (t = step) removes that bias: m_hat = m / (1 - beta1^t), v_hat likewise.
// PyTorch folds the corrections into two scalars, step_size = lr / (1 - beta1^t) and
// sqrt(1 - beta2^t), and so do we. (Keras adds eps to sqrt(v) before the correction
// instead; with eps this small the two differ only for near-zero gradients.)
//
// Why decoupled decay: with Adam's L2, the decay term passes through the division by
// sqrt(v), so weights with large gradients are barely decayed. AdamW applies the decay
// to the weights outside the adaptive step, so every weight shrinks at the same rate.

AdamScalars adam_scalars(const AdamConfig& c) {
  // In double, as PyTorch computes them in Python, then rounded once to float.
  const double t = static_cast<double>(c.step);
  const double bc1 = 1.0 - std::pow(c.beta1, t);
  const double bc2 = 1.0 - std::pow(c.beta2, t);
  AdamScalars s;
  s.beta1 = static_cast<float>(c.beta1);
  s.beta2 = static_cast<float>(c.beta2);
  s.decay = static_cast<float>(1.0 - double(c.lr) * double(c.decoupled_weight_decay));
  s.one_minus_b1 = static_cast<float>(1.0 - c.beta1);
  s.one_minus_b2 = static_cast<float>(1.0 - c.beta2);
  s.step_size = static_cast<float>(double(c.lr) / bc1);
  s.bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  return s;
}

void adam_update_ref(float* w, const float* g, float* m, float* v, int64_t n,
                     const AdamConfig& c) {
  const AdamScalars s = adam_scalars(c);
  for (int64_t i = 0; i < n; ++i) {
    if (c.decoupled_weight_decay != 0.f) w[i] = w[i] * s.decay;
    float d = g[i];
    if (c.weight_decay != 0.f) d = d + c.weight_decay * w[i];
    m[i] = s.beta1 * m[i] + s.one_minus_b1 * d;
    v[i] = s.beta2 * v[i] + s.one_minus_b2 * (d * d);
    const float denom = std::sqrt(v[i]) / s.bc2_sqrt + c.eps;  // sqrt(v_hat) + eps
    w[i] = w[i] - s.step_size * (m[i] / denom);                 // lr * m_hat / denom
  }
}

// The optimized versions are in kernels/optimizer_update_hwy.cpp.

}  // namespace fer::kernels
