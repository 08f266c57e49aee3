#include "layers/depthwise_conv2d.h"

#include <cmath>

#include "fer/autograd.h"
#include "fer/error.h"
#include "layers/config_util.h"
#include "kernels/depthwise_conv2d.h"

namespace fer {

DepthwiseConv2D::DepthwiseConv2D(std::string name, std::array<int, 2> kernel_size,
                                 std::array<int, 2> strides, const std::string& padding,
                                 bool use_bias, int depth_multiplier)
    : Layer(std::move(name)),
      kernel_size_(kernel_size),
      strides_(strides),
      padding_(kernels::Padding::Valid),
      use_bias_(use_bias) {
  if (depth_multiplier != 1)
    layer_error("depth_multiplier ", depth_multiplier, " is not supported (only 1)");
  padding_ = check_window(name_, type(), kernel_size, strides, padding);
}

std::unique_ptr<Layer> DepthwiseConv2D::from_config(const Json& config) {
  const std::string name = config.at("name").as_string();
  const std::string activation = config.get("activation", "linear");
  FER_CHECK(activation == "linear", "layer '", name, "' (DepthwiseConv2D): fused activation '",
            activation, "' is not supported; use a separate activation layer");
  const std::array<int, 2> dilation = read_pair(config, "dilation_rate", {1, 1});
  FER_CHECK(dilation[0] == 1 && dilation[1] == 1, "layer '", name,
            "' (DepthwiseConv2D): dilation_rate other than 1 is not supported");
  return std::make_unique<DepthwiseConv2D>(
      name, read_pair(config, "kernel_size", {0, 0}), read_pair(config, "strides", {1, 1}),
      config.get("padding", "valid"), config.get("use_bias", true),
      config.get("depth_multiplier", 1));
}

Shape DepthwiseConv2D::build(const Shape& input, Rng& rng) {
  if (input.size() != 3 || input[0] <= 0 || input[1] <= 0 || input[2] <= 0)
    layer_error("expected one image [H, W, C] per example, got ", shape_str(input));
  const int c = static_cast<int>(input[2]);
  const auto [kh, kw] = kernel_size_;
  const kernels::Conv2DGeometry g =
      kernels::make_geometry(1, static_cast<int>(input[0]), static_cast<int>(input[1]), c, kh,
                             kw, strides_[0], strides_[1], padding_);
  if (g.oh <= 0 || g.ow <= 0)
    layer_error("a ", kh, "x", kw, " kernel with 'valid' padding does not fit input ",
                shape_str(input));
  input_shape_ = input;

  // Glorot uniform with Keras's fans for a [kh, kw, C, 1] kernel: Keras computes them as
  // for any conv kernel (receptive field * input dim, receptive field * output dim), so
  // fan_in = kh*kw*C and fan_out = kh*kw*1, although each output sees only kh*kw inputs.
  const double fan_in = double(kh) * kw * c;
  const double fan_out = double(kh) * kw;
  const double limit = std::sqrt(6.0 / (fan_in + fan_out));
  Tensor kernel({kh, kw, c, 1});
  for (int64_t i = 0; i < kernel.numel(); ++i)
    kernel.data()[i] = static_cast<float>(rng.uniform(-limit, limit));
  kernel.set_requires_grad(!frozen_);
  kernel_ = Parameter{name_ + "/depthwise_kernel", kernel, true};
  if (use_bias_) {
    Tensor bias({c});
    bias.set_requires_grad(!frozen_);
    bias_ = Parameter{name_ + "/bias", bias, true};
  }
  return {g.oh, g.ow, c};
}

Tensor DepthwiseConv2D::forward(const Tensor& x, bool /*training*/) {
  if (input_shape_.empty()) layer_error("forward() called before build()");
  if (x.ndim() != 4 || Shape(x.shape().begin() + 1, x.shape().end()) != input_shape_)
    layer_error("expected input ", batch_shape_str(input_shape_), ", got ", shape_str(x.shape()));
  const kernels::Conv2DGeometry g = kernels::make_geometry(
      static_cast<int>(x.dim(0)), static_cast<int>(x.dim(1)), static_cast<int>(x.dim(2)),
      static_cast<int>(x.dim(3)), kernel_size_[0], kernel_size_[1], strides_[0], strides_[1],
      padding_);
  const Tensor& kernel = kernel_.value;
  const Tensor& bias = bias_.value;  // undefined without use_bias

  Tensor y({g.n, g.oh, g.ow, g.c});
  kernels::depthwise_conv2d_forward(g, x.data(), kernel.data(),
                                    use_bias_ ? bias.data() : nullptr, y.data());

  Tape& tape = Tape::current();
  if (tape.wants({&x, &kernel, &bias})) {
    y.set_requires_grad(true);
    tape.record([g, x, y, kernel, bias]() {
      const float* dy = y.grad();
      if (x.requires_grad())
        kernels::depthwise_conv2d_backward_input(g, dy, kernel.data(), x.grad());
      float* dkernel = kernel.requires_grad() ? kernel.grad() : nullptr;
      float* dbias = bias.requires_grad() ? bias.grad() : nullptr;
      if (dkernel || dbias)
        kernels::depthwise_conv2d_backward_weights(g, x.data(), dy, dkernel, dbias);
    });
  }
  return y;
}

std::vector<Parameter*> DepthwiseConv2D::parameters() {
  if (!kernel_.value.defined()) return {};
  if (use_bias_) return {&kernel_, &bias_};
  return {&kernel_};
}

Json DepthwiseConv2D::config() const {
  Json j = Layer::config();
  j["kernel_size"] = Json::array_of(std::vector<int>{kernel_size_[0], kernel_size_[1]});
  j["strides"] = Json::array_of(std::vector<int>{strides_[0], strides_[1]});
  j["padding"] = kernels::padding_name(padding_);
  j["depth_multiplier"] = 1;
  j["use_bias"] = use_bias_;
  return j;
}

}  // namespace fer
