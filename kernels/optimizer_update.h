// The per-element update rules of SGD and Adam/AdamW, on raw float buffers.
//
// An optimizer (optim/) walks its parameters and calls one of these once per parameter
// tensor with the weights w, the gradient g and the optimizer's own per-weight state
// ("slots": SGD's momentum buffer, Adam's first and second moments m and v). All arrays
// hold n floats and are updated in place; g is only read.
//
// The arithmetic follows PyTorch's torch.optim.SGD / Adam / AdamW exactly (same
// operations in the same order, float32 per element, scalars such as the bias
// correction computed once in double), so a run can be checked against PyTorch.
//
// Each rule comes twice: *_ref is the plain loop to read first; the unsuffixed version
// computes the same thing with OpenMP threads and loops the compiler vectorizes.
#pragma once

#include <cstdint>

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

}  // namespace fer::kernels
