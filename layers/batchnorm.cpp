#include "layers/batchnorm.h"

#include <atomic>

#include "fer/autograd.h"
#include "kernels/batchnorm.h"
#include "layers/activation.h"

namespace fer {

namespace {
// FER_BN_IN_PLACE=0 starts with the in-place backward off (to time the difference).
std::atomic<bool> in_place_enabled{on_unless_environment_says_0("FER_BN_IN_PLACE")};
}  // namespace

void BatchNormalization::set_in_place_backward(bool enabled) { in_place_enabled = enabled; }
bool BatchNormalization::in_place_backward() { return in_place_enabled; }

BatchNormalization::BatchNormalization(std::string name, float epsilon, float momentum,
                                       bool center, bool scale)
    : Layer(std::move(name)), epsilon_(epsilon), momentum_(momentum), center_(center),
      scale_(scale) {
  FER_CHECK(epsilon > 0, "layer '", name_, "' (BatchNormalization): epsilon must be > 0, got ",
            epsilon);
  FER_CHECK(momentum >= 0 && momentum <= 1, "layer '", name_,
            "' (BatchNormalization): momentum must be in [0, 1], got ", momentum);
}

Shape BatchNormalization::build(const Shape& input, Rng& /*rng: nothing random here*/) {
  if (input.empty() || input.back() <= 0)
    layer_error("cannot normalize the last axis of input shape ", shape_str(input));
  input_shape_ = input;
  channels_ = input.back();
  const Shape c{channels_};
  // The starting point is the identity map on normalized data: gamma 1, beta 0, and
  // running statistics of a standard normal (mean 0, variance 1).
  gamma_ = scale_ ? Parameter{name_ + "/gamma", Tensor(c, 1.f), true} : Parameter{};
  beta_ = center_ ? Parameter{name_ + "/beta", Tensor(c, 0.f), true} : Parameter{};
  moving_mean_ = Parameter{name_ + "/moving_mean", Tensor(c, 0.f), false};
  moving_variance_ = Parameter{name_ + "/moving_variance", Tensor(c, 1.f), false};
  if (scale_) gamma_.value.set_requires_grad(!frozen_);
  if (center_) beta_.value.set_requires_grad(!frozen_);
  ones_ = Tensor(c, 1.f);
  zeros_ = Tensor(c, 0.f);
  built_ = true;
  return input;
}

std::vector<Parameter*> BatchNormalization::parameters() {
  if (!built_) return {};
  std::vector<Parameter*> params;
  if (scale_) params.push_back(&gamma_);
  if (center_) params.push_back(&beta_);
  params.push_back(&moving_mean_);
  params.push_back(&moving_variance_);
  return params;
}

bool BatchNormalization::fuses_with(const Layer& next) const {
  return dynamic_cast<const ReLU*>(&next) != nullptr;
}

kernels::Act BatchNormalization::activation_of(const Layer& next) {
  const auto* relu = dynamic_cast<const ReLU*>(&next);
  if (!relu) return kernels::Act::kNone;
  return relu->max_value() == 6.f ? kernels::Act::kRelu6 : kernels::Act::kRelu;
}

Tensor BatchNormalization::forward_fused(const Tensor& x, bool training, Layer& next) {
  if (!dynamic_cast<const ReLU*>(&next)) return Layer::forward_fused(x, training, next);
  return run(x, training, activation_of(next));
}

void BatchNormalization::normalize_inference_in_place(float* y, int64_t rows,
                                                      kernels::Act act) const {
  const Tensor& gamma = scale_ ? gamma_.value : ones_;
  const Tensor& beta = center_ ? beta_.value : zeros_;
  kernels::batchnorm_forward_inference_fused(act, y, gamma.data(), beta.data(),
                                             moving_mean_.value.data(),
                                             moving_variance_.value.data(), rows, channels_,
                                             epsilon_, y);
}

Tensor BatchNormalization::forward(const Tensor& x, bool training) {
  return run(x, training, kernels::Act::kNone);
}

Tensor BatchNormalization::run(const Tensor& x, bool training, kernels::Act act) {
  if (!built_) layer_error("forward() called before build()");
  // x must be [N, <the example shape given to build>].
  bool fits = x.ndim() == static_cast<int>(input_shape_.size()) + 1 && x.dim(0) > 0;
  for (size_t i = 0; fits && i < input_shape_.size(); ++i)
    fits = x.shape()[i + 1] == input_shape_[i];
  if (!fits) {
    layer_error("expected input [N, ", shape_str(input_shape_).substr(1), " with N >= 1, got ",
                shape_str(x.shape()));
  }

  const int64_t C = channels_;
  const int64_t rows = x.numel() / C;
  const Tensor gamma = scale_ ? gamma_.value : ones_;
  const Tensor beta = center_ ? beta_.value : zeros_;
  Tensor y = Tensor::uninitialized(x.shape());
  Tape& tape = Tape::current();
  const bool record = tape.wants({&x, &gamma, &beta});

  if (training && !frozen_) {
    // Batch statistics; mean and inv_std are kept for the backward pass.
    Tensor mean({C}), var({C}), inv_std({C});
    kernels::batchnorm_forward_train_fused(act, x.data(), gamma.data(), beta.data(), rows, C,
                                           epsilon_, y.data(), mean.data(), var.data(),
                                           inv_std.data());
    kernels::batchnorm_update_running_stats(moving_mean_.value.data(),
                                            moving_variance_.value.data(), mean.data(),
                                            var.data(), rows, C, momentum_);
    if (record) {
      y.set_requires_grad(true);
      // With an activation, the activation's mask is recomputed from x, gamma and beta
      // (kernels/batchnorm.h): the backward reads neither y nor anything but x and dy.
      tape.record([x, y, gamma, beta, mean, inv_std, rows, C, act]() {
        const float* dy = y.grad();
        bool dx_accumulate = true;  // false: the first gradient into x, written not added
        float* dx = nullptr;
        if (x.requires_grad()) {
          // The first gradient into x is written over dy, in place (the kernel reads
          // dy[i] before it writes dx[i]): one fewer buffer, and no read for ownership of
          // fresh memory -- one of the backward's six passes over memory.
          if (in_place_backward() && x.take_grad_of(y)) {
            dx = x.grad();
            dx_accumulate = false;
          } else {
            dx = x.grad_to_write(&dx_accumulate);
          }
        }
        kernels::batchnorm_backward_train_fused(
            act, x.data(), dy, gamma.data(), beta.data(), mean.data(), inv_std.data(),
            rows, C, dx, gamma.requires_grad() ? gamma.grad() : nullptr,
            beta.requires_grad() ? beta.grad() : nullptr, dx_accumulate);
      });
    }
    return y;
  }

  // Running statistics: constants of this forward pass.
  kernels::batchnorm_forward_inference_fused(act, x.data(), gamma.data(), beta.data(),
                                             moving_mean_.value.data(),
                                             moving_variance_.value.data(), rows, C, epsilon_,
                                             y.data());
  if (record) {
    // Copies, so a later training step that moves the statistics cannot change what
    // this backward differentiates.
    const Tensor mean = moving_mean_.value.clone();
    Tensor inv_std({C});
    kernels::batchnorm_inv_std(moving_variance_.value.data(), C, epsilon_, inv_std.data());
    y.set_requires_grad(true);
    tape.record([x, y, gamma, beta, mean, inv_std, rows, C, act]() {
      kernels::batchnorm_backward_inference_fused(
          act, y.data(), x.data(), y.grad(), gamma.data(), mean.data(), inv_std.data(), rows, C,
          x.requires_grad() ? x.grad() : nullptr,
          gamma.requires_grad() ? gamma.grad() : nullptr,
          beta.requires_grad() ? beta.grad() : nullptr);
    });
  }
  return y;
}

Json BatchNormalization::config() const {
  Json j = Layer::config();
  j["epsilon"] = epsilon_;
  j["momentum"] = momentum_;
  j["center"] = center_;
  j["scale"] = scale_;
  return j;
}

std::unique_ptr<Layer> BatchNormalization::from_config(const Json& config) {
  return std::make_unique<BatchNormalization>(
      config.at("name").as_string(), static_cast<float>(config.get("epsilon", 1e-3)),
      static_cast<float>(config.get("momentum", 0.99)), config.get("center", true),
      config.get("scale", true));
}

}  // namespace fer
