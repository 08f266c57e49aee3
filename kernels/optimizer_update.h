// The per-element update rules of SGD and Adam/AdamW, on raw float buffers.
//
// An optimizer (optim/) walks its parameters and calls one of these once per parameter
// tensor with the weights w, the gradient g and the optimizer's own per-weight state
// ("slots": SGD's momentum buffer, Adam's first and second moments m and v). All arrays
// hold n floats and are updated in place; g is only read.
//
// The arithmetic follows PyTorch's torch.optim.SGD / Adam / AdamW (same operations in
// the same order, float32 per element, scalars such as the bias correction computed once
// in double), so a run can be checked against PyTorch.
//
// Every multiply, add, divide and square root is rounded on its own: both files are
// compiled without floating-point contraction (GCC's default -ffp-contract=fast would fuse
// a * b + c into one FMA wherever the target has FMA, so the reference built with
// -march=native would round differently from the same loop on an SSE4 machine, and the
// SIMD targets from one another). With that, the two versions of each rule give the same
// bits on every CPU and SIMD target. PyTorch 1.13 on an AVX-512 CPU does fuse the steps
// it writes with `alpha=` into FMAs (for torch.optim.SGD: g + wd * w, Nesterov's
// d + momentum * buf and the final w - lr * d; a float32 model with exactly those three
// fused reproduces its steps bit for bit), so fer agrees with PyTorch to an ulp or so per
// step, not bit for bit (tests/test_optim.cpp checks against PyTorch's numbers).
//
// Each rule comes twice: *_ref is the plain loop to read first; the unsuffixed version is
// a Google Highway SIMD kernel (kernels/optimizer_update_hwy.cpp, dispatched at run time,
// OpenMP threads on large tensors) that returns the same bits as *_ref.
#pragma once

#include <cstdint>
#include <vector>

namespace fer::kernels {

struct SgdConfig {
  float lr = 0.01f;
  float momentum = 0.f;      // 0: plain SGD, no buffer needed
  bool nesterov = false;     // look ahead along the momentum (needs momentum > 0)
  float weight_decay = 0.f;  // L2 penalty wd/2 |w|^2, i.e. g += wd * w
};

// buf (the momentum buffer) may be null when momentum == 0. A zero buffer behaves like
// PyTorch's "first step: buf = g", since momentum * 0 + g == g.
void sgd_update_ref(float* w, const float* g, float* buf, int64_t n, const SgdConfig& c);
void sgd_update(float* w, const float* g, float* buf, int64_t n, const SgdConfig& c);

struct AdamConfig {
  float lr = 0.001f;
  // The betas are doubles because 1 - beta matters: as a float, 1 - 0.999f is
  // 0.000999987, 1.3e-5 away from the 0.001 PyTorch computes from the double 0.999.
  double beta1 = 0.9;   // decay of the first moment (mean of g)
  double beta2 = 0.999; // decay of the second moment (mean of g^2)
  float eps = 1e-7f;    // added to sqrt(v_hat) so that the step stays finite
  float weight_decay = 0.f;            // Adam's L2: g += wd * w (torch.optim.Adam)
  float decoupled_weight_decay = 0.f;  // AdamW: w *= 1 - lr * wd first (torch.optim.AdamW)
  int64_t step = 1;  // 1 for this tensor's first update, 2 for the next...: bias correction
};

void adam_update_ref(float* w, const float* g, float* m, float* v, int64_t n,
                     const AdamConfig& c);
void adam_update(float* w, const float* g, float* m, float* v, int64_t n, const AdamConfig& c);

// The per-tensor constants of an Adam step, shared by both versions: computed in double
// (as PyTorch computes them in Python) and rounded once to float.
struct AdamScalars {
  float beta1, beta2;
  float decay;  // multiplier for w before the step (1 when no decoupled decay)
  float one_minus_b1, one_minus_b2;
  float step_size;  // lr / (1 - beta1^t)
  float bc2_sqrt;   // sqrt(1 - beta2^t)
};
AdamScalars adam_scalars(const AdamConfig& c);

// For tests and benchmarks, as batchnorm_hwy_* in kernels/batchnorm.h: the Highway
// targets compiled and supported by this CPU (best first), forcing one (0 undoes), the
// target the next call runs, and a target's name.
std::vector<int64_t> optimizer_hwy_targets();
void optimizer_hwy_force_target(int64_t target);
int64_t optimizer_hwy_dispatched_target();
const char* optimizer_hwy_target_name(int64_t target);

}  // namespace fer::kernels
