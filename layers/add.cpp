#include "layers/add.h"

#include <cstring>

#include "fer/autograd.h"
#include "fer/error.h"

namespace fer {

Tensor add(const Tensor& a, const Tensor& b) {
  FER_CHECK(a.defined() && b.defined(), "add: undefined input");
  FER_CHECK(a.shape() == b.shape(), "add: shapes differ: ", shape_str(a.shape()), " + ",
            shape_str(b.shape()), " (a residual connection needs the block to keep the shape)");
  const int64_t n = a.numel();
  Tensor y = Tensor::uninitialized(a.shape());
  const float* pa = a.data();
  const float* pb = b.data();
  float* py = y.data();
  for (int64_t i = 0; i < n; ++i) py[i] = pa[i] + pb[i];

  Tape& tape = Tape::current();
  if (tape.wants({&a, &b})) {
    y.set_requires_grad(true);
    tape.record([a, b, y, n]() {
      // d(a+b)/da = d(a+b)/db = 1: both inputs receive dy as it is. (a and b may be the
      // same tensor, as in add(x, x); then it correctly receives 2 dy.)
      // When a has no gradient yet, y's gradient buffer simply becomes a's (no copy, no
      // zero-filled buffer; Tensor::take_grad_of); b then adds dy from it as usual --
      // for add(x, x) that reads and writes the same buffer, which gives 2 dy.
      const float* dy = y.grad();
      const auto receive = [&](const Tensor& t) {
        bool accumulate = true;
        float* g = t.grad_to_write(&accumulate);
        if (!accumulate) return (void)std::memcpy(g, dy, sizeof(float) * n);
        for (int64_t i = 0; i < n; ++i) g[i] += dy[i];
      };
      if (a.requires_grad() && !a.take_grad_of(y)) receive(a);
      if (b.requires_grad()) receive(b);
    });
  }
  return y;
}

}  // namespace fer
