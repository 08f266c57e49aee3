#include "layers/activation.h"

#include "fer/autograd.h"
#include "kernels/activation.h"
#include "kernels/softmax.h"

namespace fer {

// --- ReLU / ReLU6 ----------------------------------------------------------------------

ReLU::ReLU(std::string name, float max_value) : Layer(std::move(name)), max_value_(max_value) {
  if (max_value != 0.f && max_value != 6.f)
    layer_error("max_value must be 0 (none) or 6 (ReLU6), got ", max_value);
}

std::unique_ptr<ReLU> make_relu(const std::string& name) { return std::make_unique<ReLU>(name); }
std::unique_ptr<ReLU> make_relu6(const std::string& name) {
  return std::make_unique<ReLU>(name, 6.f);
}

Shape ReLU::build(const Shape& input, Rng&) { return input; }

Tensor ReLU::forward(const Tensor& x, bool /*training: same in both modes*/) {
  if (!x.defined() || x.numel() == 0) layer_error("empty input");
  const bool capped = max_value_ == 6.f;
  Tensor y = Tensor::uninitialized(x.shape());
  if (capped)
    kernels::relu6_forward(x.data(), x.numel(), y.data());
  else
    kernels::relu_forward(x.data(), x.numel(), y.data());
  Tape& tape = Tape::current();
  if (tape.wants({&x})) {
    y.set_requires_grad(true);
    tape.record([x, y, capped]() {
      if (capped)
        kernels::relu6_backward(x.data(), y.grad(), x.numel(), x.grad());
      else
        kernels::relu_backward(x.data(), y.grad(), x.numel(), x.grad());
    });
  }
  return y;
}

Json ReLU::config() const {
  Json j = Layer::config();
  j["max_value"] = max_value_ > 0 ? Json(max_value_) : Json(nullptr);
  return j;
}

std::unique_ptr<Layer> ReLU::from_config(const Json& config) {
  float max_value = 0.f;
  if (config.contains("max_value") && !config.at("max_value").is_null())
    max_value = static_cast<float>(config.at("max_value").as_number());
  return std::make_unique<ReLU>(config.at("name").as_string(), max_value);
}

// --- Softmax ---------------------------------------------------------------------------

Shape Softmax::build(const Shape& input, Rng&) {
  if (input.empty() || input.back() <= 0)
    layer_error("needs a non-empty last axis, got input shape ", shape_str(input));
  return input;
}

Tensor Softmax::forward(const Tensor& x, bool /*training*/) {
  if (!x.defined() || x.ndim() < 1 || x.numel() == 0) layer_error("empty input");
  const int64_t K = x.dim(-1);
  const int64_t rows = x.numel() / K;
  Tensor y = Tensor::uninitialized(x.shape());
  kernels::softmax_rows(x.data(), rows, K, y.data());
  Tape& tape = Tape::current();
  if (tape.wants({&x})) {
    y.set_requires_grad(true);
    // The backward needs only the output y, not x.
    tape.record([x, y, rows, K]() {
      kernels::softmax_rows_backward(y.data(), y.grad(), rows, K, x.grad());
    });
  }
  return y;
}

Json Softmax::config() const {
  Json j = Layer::config();
  j["axis"] = -1;
  return j;
}

std::unique_ptr<Layer> Softmax::from_config(const Json& config) {
  const std::string name = config.at("name").as_string();
  const int64_t axis = config.get("axis", int64_t{-1});
  FER_CHECK(axis == -1, "layer '", name, "' (Softmax): only axis -1 (the last) is supported, got ",
            axis);
  return std::make_unique<Softmax>(name);
}

}  // namespace fer
