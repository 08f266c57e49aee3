#include "layers/dense.h"

#include <cmath>

#include "fer/autograd.h"
#include "fer/error.h"
#include "kernels/gemm.h"

namespace fer {

Dense::Dense(std::string name, int units, bool use_bias)
    : Layer(std::move(name)), units_(units), use_bias_(use_bias) {
  if (units <= 0) layer_error("units must be positive, got ", units);
}

std::unique_ptr<Layer> Dense::from_config(const Json& config) {
  const std::string name = config.at("name").as_string();
  const std::string activation = config.get("activation", "linear");
  FER_CHECK(activation == "linear", "layer '", name, "' (Dense): fused activation '",
            activation, "' is not supported; use a separate activation layer");
  return std::make_unique<Dense>(name, static_cast<int>(config.at("units").as_int()),
                                 config.get("use_bias", true));
}

Shape Dense::build(const Shape& input, Rng& rng) {
  if (input.size() != 1)
    layer_error("expected a flat input [N, F], got [N, ", shape_str(input).substr(1),
                "; add a Flatten (or GlobalAveragePooling2D) layer before it");
  if (input[0] <= 0) layer_error("expected a positive number of input features, got ", input[0]);
  in_features_ = input[0];

  // Glorot uniform (Keras's default): limit = sqrt(6 / (fan_in + fan_out)).
  const double limit = std::sqrt(6.0 / double(in_features_ + units_));
  Tensor kernel({in_features_, units_});
  float* k = kernel.data();
  for (int64_t i = 0; i < kernel.numel(); ++i)
    k[i] = static_cast<float>(rng.uniform(-limit, limit));
  kernel.set_requires_grad(!frozen_);
  kernel_ = Parameter{name_ + "/kernel", kernel, true};
  if (use_bias_) {
    Tensor bias({units_});
    bias.set_requires_grad(!frozen_);
    bias_ = Parameter{name_ + "/bias", bias, true};
  }
  return {units_};
}

Tensor Dense::forward(const Tensor& x, bool /*training*/) {
  if (in_features_ == 0) layer_error("forward() called before build()");
  if (x.ndim() != 2 || x.dim(1) != in_features_)
    layer_error("expected input [N, ", in_features_, "], got ", shape_str(x.shape()));
  const int n = static_cast<int>(x.dim(0));
  const int f = static_cast<int>(in_features_);
  const int units = units_;
  const Tensor& kernel = kernel_.value;
  const Tensor& bias = bias_.value;  // undefined without use_bias

  // y [N, units] = x [N, F] * kernel [F, units] (+ bias on every row)
  Tensor y = Tensor::uninitialized({int64_t(n), int64_t(units)});
  if (use_bias_) kernels::broadcast_rows(n, units, bias.data(), y.data());
  kernels::sgemm(false, false, n, units, f, 1.f, x.data(), f, kernel.data(), units,
                 use_bias_ ? 1.f : 0.f, y.data(), units);

  Tape& tape = Tape::current();
  if (tape.wants({&x, &kernel, &bias})) {
    y.set_requires_grad(true);
    tape.record([n, f, units, x, y, kernel, bias]() {
      const float* dy = y.grad();
      // dx [N, F] += dy [N, units] * kernel^T [units, F]
      if (x.requires_grad())
        kernels::sgemm(false, true, n, f, units, 1.f, dy, units, kernel.data(), units, 1.f,
                       x.grad(), f);
      // dkernel [F, units] += x^T [F, N] * dy [N, units]: each weight w[i][j] multiplied
      // x[:, i] into y[:, j], so it collects x[:, i] . dy[:, j] over the batch.
      if (kernel.requires_grad())
        kernels::sgemm(true, false, f, units, n, 1.f, x.data(), f, dy, units, 1.f,
                       kernel.grad(), units);
      // dbias [units] += column sums of dy: the bias was added to every row.
      if (bias.requires_grad()) kernels::add_column_sums(n, units, dy, bias.grad());
    });
  }
  return y;
}

std::vector<Parameter*> Dense::parameters() {
  if (!kernel_.value.defined()) return {};
  if (use_bias_) return {&kernel_, &bias_};
  return {&kernel_};
}

Json Dense::config() const {
  Json j = Layer::config();
  j["units"] = units_;
  j["use_bias"] = use_bias_;
  return j;
}

}  // namespace fer
