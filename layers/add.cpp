#include "layers/add.h"

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
      const float* dy = y.grad();
      if (a.requires_grad()) {
        float* da = a.grad();
        for (int64_t i = 0; i < n; ++i) da[i] += dy[i];
      }
      if (b.requires_grad()) {
        float* db = b.grad();
        for (int64_t i = 0; i < n; ++i) db[i] += dy[i];
      }
    });
  }
  return y;
}

}  // namespace fer
