// Layer: the unit a model is built from. A layer owns its parameters, computes its
// forward pass by calling kernels (kernels/), and records its backward pass on the
// autograd tape (fer/autograd.h) when a gradient is wanted.
//
// Shapes: a layer is built for the shape of ONE example (H, W, C for images, or {F} for
// features), like Keras's build(); forward() takes a batch whose first axis is N.
//
// Parameters are named "<layer name>/<what>" with Keras's words (kernel, bias, gamma,
// beta, moving_mean, moving_variance), so that Keras weights map by name.
#pragma once

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "fer/json.h"
#include "fer/rng.h"
#include "fer/tensor.h"

namespace fer {

struct Parameter {
  std::string name;      // "conv2d_1/kernel"
  Tensor value;          // requires_grad is true for trainable parameters
  bool trainable = true; // false for BatchNorm's running statistics
};

// Whether a step moves `p`: it requires a gradient (not frozen, not a statistic) and the
// loss reached it (a gradient buffer exists), as PyTorch skips parameters whose grad is
// None. Optimizers, gradient clipping and SAM's ascent all use this.
inline bool gets_gradient_step(const Parameter& p) {
  return p.value.requires_grad() && p.value.has_grad() && p.value.numel() > 0;
}

class Layer {
 public:
  explicit Layer(std::string name) : name_(std::move(name)) {}
  virtual ~Layer() = default;
  Layer(const Layer&) = delete;
  Layer& operator=(const Layer&) = delete;

  const std::string& name() const { return name_; }
  virtual std::string type() const = 0;  // Keras class name: "Conv2D", "BatchNormalization"

  // Creates the parameters for one example of shape `input` (initialized from `rng`)
  // and returns the shape of one output example. Throws fer::Error naming the layer
  // when the input shape does not fit.
  virtual Shape build(const Shape& input, Rng& rng) = 0;

  // Runs the layer on a batch. `training` selects training behaviour (Dropout active,
  // BatchNorm on batch statistics). Records the backward pass when a gradient is wanted.
  virtual Tensor forward(const Tensor& x, bool training) = 0;

  // Every parameter and statistic the layer owns (what a model file saves), in a stable
  // order. Containers return their children's.
  virtual std::vector<Parameter*> parameters() { return {}; }

  // The layer's configuration: {"type": ..., "name": ..., plus its own fields}. Enough
  // for make_layer() (layers/registry.h) to rebuild it.
  virtual Json config() const {
    Json j = Json::object();
    j["type"] = type();
    j["name"] = name_;
    return j;
  }

  // Fusion with the next child of a container (Sequential). When fuses_with(next) is true,
  // forward_fused(x, training, next) computes next.forward(forward(x, training), training)
  // in one go: the same values, gradients and side effects (running statistics), with
  // fewer passes over memory. BatchNormalization fuses a following ReLU/ReLU6 this way.
  // `next` is left untouched and keeps its name, config and (no) parameters.
  virtual bool fuses_with(const Layer& next) const { return false; }
  virtual Tensor forward_fused(const Tensor& x, bool training, Layer& next) {
    return next.forward(forward(x, training), training);
  }

  // Inference image by image (Sequential runs Conv -> BatchNorm -> activation a few images
  // at a time under NoGradGuard, so that the normalization reads the convolution's output
  // from cache rather than memory). A layer whose output image depends only on the same
  // input image may implement both: can_forward_images(x, count) says whether it will run
  // chunks of `count` images of a batch shaped like x (false: Sequential runs it whole),
  // and forward_images writes `count` output images to y from `count` input images at x,
  // recording nothing on the tape.
  virtual bool can_forward_images(const Tensor& /*x*/, int /*count*/) const { return false; }
  virtual void forward_images(const float* /*x*/, int /*count*/, float* /*y*/) const {}

  // A frozen layer's parameters are not updated (they stop requiring gradients) and a
  // frozen BatchNorm runs on its running statistics even in training.
  virtual void set_frozen(bool frozen) {
    frozen_ = frozen;
    for (Parameter* p : parameters())
      if (p->trainable) p->value.set_requires_grad(!frozen);
  }
  bool frozen() const { return frozen_; }

  // Restarts the layer's own randomness (Dropout's masks) from `seed`. The trainer calls
  // it at the start of every epoch with (run seed, epoch), so a resumed run draws exactly
  // the masks an uninterrupted one would have. Layers without randomness ignore it.
  virtual void reseed(uint64_t seed) {}

 protected:
  // Throws "layer 'name' (Type): message" -- the standard error for a bad input.
  template <typename... Parts>
  [[noreturn]] void layer_error(Parts&&... parts) const;

  std::string name_;
  bool frozen_ = false;
};

// Switches that start on and that NAME=0 in the environment turns off (FER_FUSION,
// FER_BN_IN_PLACE): to time or check the plain path from the command line.
inline bool on_unless_environment_says_0(const char* name) {
  const char* v = std::getenv(name);
  return !(v && std::string(v) == "0");
}

}  // namespace fer

#include "fer/error.h"

template <typename... Parts>
[[noreturn]] void fer::Layer::layer_error(Parts&&... parts) const {
  fail("layer '", name_, "' (", type(), "): ", std::forward<Parts>(parts)...);
}
