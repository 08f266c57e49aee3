// Gradient clipping: call between backward() and Optimizer::step() to keep one bad
// batch (an exploding loss) from throwing the weights far away.
//
// Only parameters that require a gradient and have one take part, as in PyTorch where
// parameters whose grad is None are ignored.
#pragma once

#include <vector>

#include "layers/layer.h"

namespace fer::optim {

// Scales all gradients together so that their global L2 norm (over every element of
// every gradient, as one long vector) is at most max_norm, like
// torch.nn.utils.clip_grad_norm_: factor = max_norm / (norm + 1e-6), applied only when
// below 1, which keeps the direction of the update. Returns the norm BEFORE clipping
// (worth logging). A non-finite norm (inf/nan gradients) is returned as is and the
// gradients are left alone, so the caller can notice and skip the step.
float clip_grad_norm(const std::vector<Parameter*>& params, float max_norm);

// Clamps every gradient element into [-clip, clip] (torch.nn.utils.clip_grad_value_).
void clip_grad_value(const std::vector<Parameter*>& params, float clip);

}  // namespace fer::optim
