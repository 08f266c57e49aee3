// Elementwise sum of two same-shaped tensors, with autograd: the residual connection of
// MobileNetV2's inverted residual blocks (out = x + block(x)).
#pragma once

#include "fer/tensor.h"

namespace fer {

// y = a + b. Both shapes must be equal (no broadcasting); the error names both.
// Backward: the gradient of y is added unchanged into a and b (whichever requires one).
Tensor add(const Tensor& a, const Tensor& b);

}  // namespace fer
