// Reverse-mode automatic differentiation on a tape (define-by-run).
//
// How it works, in three sentences. Every layer computes its forward pass immediately
// and, if some input needs a gradient, appends a closure to the tape that knows how to
// push the output's gradient back to its inputs and parameters. backward(loss) seeds
// d(loss)/d(loss) = 1 and runs the closures newest-first, each one reading the gradient
// of its output (complete by then, since every consumer of that output ran later) and
// adding into the gradients of its inputs. The tape is then cleared, which releases the
// activations the closures kept alive.
//
// Gradients accumulate (+=) like PyTorch's; call zero_grad on the parameters (the
// optimizer does) before the next step. Under NoGradGuard nothing is recorded, so
// inference keeps no activation alive beyond the layer that consumes it.
#pragma once

#include <functional>
#include <initializer_list>
#include <vector>

#include "fer/tensor.h"

namespace fer {

class Tape {
 public:
  using Backward = std::function<void()>;

  // The tape of the calling thread (training runs on one thread; kernels use OpenMP inside).
  static Tape& current();

  // True when recording is on (not under NoGradGuard).
  bool enabled() const { return no_grad_depth_ == 0; }

  // True when recording is on and any of the tensors requires a gradient: the test a
  // layer makes before recording its backward closure.
  bool wants(std::initializer_list<const Tensor*> inputs) const;

  void record(Backward fn) { entries_.push_back(std::move(fn)); }

  // Runs the tape from a one-element loss: seeds its gradient with 1 (added to any
  // gradient already there), runs every closure newest-first, then clears the tape.
  void backward(Tensor& loss);
  // Same, seeding the gradient of any-shaped `output` with `grad_output` (used by
  // gradient checks: d/dx of sum(output * grad_output)).
  void backward(Tensor& output, const Tensor& grad_output);

  void clear() { entries_.clear(); }
  size_t size() const { return entries_.size(); }

  // Replaces every entry recorded since index `first` (first = size() before some code
  // ran) by wrap(entry). The profiler of `fer bench --profile` uses it to time the
  // backward closures a layer recorded; the returned closure must call the one it got.
  void wrap_since(size_t first, const std::function<Backward(Backward)>& wrap);

 private:
  friend class NoGradGuard;
  void run_all();
  std::vector<Backward> entries_;
  int no_grad_depth_ = 0;
};

// Convenience: Tape::current().backward(loss).
void backward(Tensor& loss);

// While alive, nothing is recorded on the current thread's tape (inference mode).
class NoGradGuard {
 public:
  NoGradGuard() { ++Tape::current().no_grad_depth_; }
  ~NoGradGuard() { --Tape::current().no_grad_depth_; }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;
};

}  // namespace fer
