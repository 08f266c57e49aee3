#include "fer/autograd.h"

#include "fer/error.h"

namespace fer {

Tape& Tape::current() {
  thread_local Tape tape;
  return tape;
}

bool Tape::wants(std::initializer_list<const Tensor*> inputs) const {
  if (!enabled()) return false;
  for (const Tensor* t : inputs)
    if (t && t->requires_grad()) return true;
  return false;
}

void Tape::backward(Tensor& loss) {
  FER_CHECK(loss.numel() == 1, "backward: the loss must have one element, got shape ",
            shape_str(loss.shape()));
  FER_CHECK(loss.requires_grad(),
            "backward: the loss does not depend on anything that requires a gradient");
  loss.grad()[0] += 1.0f;
  run_all();
}

void Tape::backward(Tensor& output, const Tensor& grad_output) {
  check_same_shape("backward", output.shape(), grad_output.shape());
  FER_CHECK(output.requires_grad(),
            "backward: the output does not depend on anything that requires a gradient");
  float* g = output.grad();
  const float* seed = grad_output.data();
  for (int64_t i = 0; i < output.numel(); ++i) g[i] += seed[i];
  run_all();
}

void Tape::run_all() {
  // Closures may be large (they hold activations): release each one as soon as it ran.
  for (size_t i = entries_.size(); i-- > 0;) {
    entries_[i]();
    entries_[i] = nullptr;
  }
  entries_.clear();
}

void Tape::wrap_since(size_t first, const std::function<Backward(Backward)>& wrap) {
  for (size_t i = first; i < entries_.size(); ++i) entries_[i] = wrap(std::move(entries_[i]));
}

void backward(Tensor& loss) { Tape::current().backward(loss); }

}  // namespace fer
