// Sharpness-Aware Minimization (SAM, Foret et al. 2021) and its adaptive variant (ASAM,
// Kwon et al. 2021): instead of the gradient at the weights w, the optimizer is given the
// gradient at the worst nearby point w + e, found with one ascent step of length rho:
//
//     e = rho * g / ||g||                         (SAM)
//     e = rho * T^2 g / ||T g||, T = |w| + 0.01  (ASAM: the ball is scaled by |w|, so a
//                                                 weight's neighbourhood grows with it)
//
// where g is the gradient at w and the norm is over every trainable weight at once. A
// training step becomes: forward + backward at w, ascend() to w + e, forward + backward
// again (same batch, same targets), restore() back to exactly w, optimizer step with the
// second gradient. Flat minima generalize better, and SAM is robust to noisy labels (the
// paper's section 4.2), which FER2013 has plenty of. Twice the cost of a step.
//
// BatchNorm's running statistics: the second forward pass is at weights the network
// never keeps, so restore() also puts back every non-trainable parameter (the running
// statistics) as it was after the first pass -- what davda54/sam does by zeroing BN's
// momentum for the second pass.
//
// The saved copies live in buffers kept from step to step (no allocation after the
// first step).
#pragma once

#include <vector>

#include "layers/layer.h"

namespace fer::optim {

class SharpnessAwareStep {
 public:
  // rho > 0: the radius of the neighbourhood; adaptive selects ASAM (typical rho: 0.05
  // for SAM, 0.5 to 2 for ASAM).
  SharpnessAwareStep(std::vector<Parameter*> params, float rho, bool adaptive);

  // Saves the parameters a step can change, then moves each trainable one that has a
  // gradient to w + e (e as above, from the gradients now held). Returns ||g|| (||T_w g||
  // for ASAM). An all-zero or non-finite gradient moves nothing.
  float ascend();
  // Puts the saved parameters back, bit for bit: the moved weights at w, and the
  // non-trainable ones (BatchNorm's running statistics) as ascend() found them.
  void restore();

 private:
  std::vector<Parameter*> params_;
  float rho_;
  bool adaptive_;
  // One per parameter (empty for frozen weights), reused every step: clear() keeps the
  // capacity.
  std::vector<std::vector<float>> saved_;
  bool ascended_ = false;
};

}  // namespace fer::optim
