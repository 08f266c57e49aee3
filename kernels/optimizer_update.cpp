// SGD and Adam/AdamW update rules. See kernels/optimizer_update.h.
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

// Below this many weights a tensor is updated on one thread: starting a parallel region
// costs a few microseconds, about what one core needs for ~30k elements.
static constexpr int64_t kMinParallel = 1 << 15;

void sgd_update(float* __restrict w, const float* __restrict g, float* __restrict buf,
                int64_t n, const SgdConfig& c) {
  // Same arithmetic as sgd_update_ref. The branches are hoisted out of the loops so that
  // each loop body is straight-line code the compiler turns into SIMD instructions
  // (adding wd * w with wd = 0 changes nothing, so that test needs no branch).
  const float lr = c.lr, mom = c.momentum, wd = c.weight_decay;
  if (mom == 0.f) {
#pragma omp parallel for simd schedule(static) if (parallel : n >= kMinParallel)
    for (int64_t i = 0; i < n; ++i) {
      const float d = g[i] + wd * w[i];
      w[i] = w[i] - lr * d;
    }
  } else if (c.nesterov) {
#pragma omp parallel for simd schedule(static) if (parallel : n >= kMinParallel)
    for (int64_t i = 0; i < n; ++i) {
      const float d = g[i] + wd * w[i];
      const float b = mom * buf[i] + d;
      buf[i] = b;
      w[i] = w[i] - lr * (d + mom * b);
    }
  } else {
#pragma omp parallel for simd schedule(static) if (parallel : n >= kMinParallel)
    for (int64_t i = 0; i < n; ++i) {
      const float d = g[i] + wd * w[i];
      const float b = mom * buf[i] + d;
      buf[i] = b;
      w[i] = w[i] - lr * b;
    }
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

namespace {
struct AdamScalars {
  float beta1, beta2;
  float decay;        // multiplier for w before the step (1 when no decoupled decay)
  float one_minus_b1, one_minus_b2;
  float step_size;    // lr / (1 - beta1^t)
  float bc2_sqrt;     // sqrt(1 - beta2^t)
};

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
}  // namespace

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

void adam_update(float* __restrict w, const float* __restrict g, float* __restrict m,
                 float* __restrict v, int64_t n, const AdamConfig& c) {
  // Same arithmetic as adam_update_ref; multiplying by decay = 1 and adding wd = 0 times
  // w change nothing, so one branch-free loop serves Adam and AdamW. (GCC still keeps
  // this loop scalar: std::sqrt may set errno, which it will not vectorize unless built
  // with -fno-math-errno. Explicit SIMD is a later step; the threads help meanwhile.)
  const AdamScalars s = adam_scalars(c);
  const float b1 = s.beta1, b2 = s.beta2, eps = c.eps, wd = c.weight_decay;
#pragma omp parallel for simd schedule(static) if (parallel : n >= kMinParallel)
  for (int64_t i = 0; i < n; ++i) {
    const float wi = w[i] * s.decay;
    const float d = g[i] + wd * wi;
    const float mi = b1 * m[i] + s.one_minus_b1 * d;
    const float vi = b2 * v[i] + s.one_minus_b2 * (d * d);
    m[i] = mi;
    v[i] = vi;
    const float denom = std::sqrt(vi) / s.bc2_sqrt + eps;
    w[i] = wi - s.step_size * (mi / denom);
  }
}

}  // namespace fer::kernels
