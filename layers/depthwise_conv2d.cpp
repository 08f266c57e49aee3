#include "layers/depthwise_conv2d.h"

#include <cmath>

#include "fer/autograd.h"
#include "fer/error.h"
#include "layers/config_util.h"
#include "kernels/depthwise_conv2d.h"

namespace fer {

namespace {
// [N, H, W, C] -> [N, H, W, C*M] with y[.., c*M + m] = x[.., c]; backward sums the copies.
Tensor repeat_channels(const Tensor& x, int m) {
  const int64_t pixels = x.numel() / x.dim(3), c = x.dim(3);
  Tensor y = Tensor::uninitialized({x.dim(0), x.dim(1), x.dim(2), c * m});
  const float* px = x.data();
  float* py = y.data();
  for (int64_t p = 0; p < pixels; ++p)
    for (int64_t k = 0; k < c; ++k)
      for (int j = 0; j < m; ++j) py[(p * c + k) * m + j] = px[p * c + k];
  Tape& tape = Tape::current();
  if (tape.wants({&x})) {
    y.set_requires_grad(true);
    tape.record([x, y, pixels, c, m]() {
      const float* dy = y.grad();
      float* dx = x.grad();
      for (int64_t p = 0; p < pixels; ++p)
        for (int64_t k = 0; k < c; ++k)
          for (int j = 0; j < m; ++j) dx[p * c + k] += dy[(p * c + k) * m + j];
    });
  }
  return y;
}
}  // namespace

DepthwiseConv2D::DepthwiseConv2D(std::string name, std::array<int, 2> kernel_size,
                                 std::array<int, 2> strides, const std::string& padding,
                                 bool use_bias, int depth_multiplier)
    : Layer(std::move(name)),
      kernel_size_(kernel_size),
      strides_(strides),
      padding_(kernels::Padding::Valid),
      use_bias_(use_bias),
      depth_multiplier_(depth_multiplier) {
  if (depth_multiplier < 1) layer_error("depth_multiplier must be >= 1, got ", depth_multiplier);
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

  // Glorot uniform with Keras's fans for a [kh, kw, C, M] kernel: Keras computes them as
  // for any conv kernel (receptive field * input dim, receptive field * output dim), so
  // fan_in = kh*kw*C and fan_out = kh*kw*M, although each output sees only kh*kw inputs.
  const int m = depth_multiplier_;
  const double fan_in = double(kh) * kw * c;
  const double fan_out = double(kh) * kw * m;
  const double limit = std::sqrt(6.0 / (fan_in + fan_out));
  Tensor kernel({kh, kw, c, m});
  float* k = kernel.data();
  for (int64_t i = 0; i < kernel.numel(); ++i)
    k[i] = static_cast<float>(rng.uniform(-limit, limit));
  kernel.set_requires_grad(!frozen_);
  kernel_ = Parameter{name_ + "/depthwise_kernel", kernel, true};
  if (use_bias_) {
    Tensor bias({int64_t(c) * m});
    bias.set_requires_grad(!frozen_);
    bias_ = Parameter{name_ + "/bias", bias, true};
  }
  return {g.oh, g.ow, int64_t(c) * m};
}

bool DepthwiseConv2D::fits(const Tensor& input) const {
  return input.ndim() == 4 &&
         Shape(input.shape().begin() + 1, input.shape().end()) == input_shape_;
}

kernels::Conv2DGeometry DepthwiseConv2D::geometry(int n) const {
  return kernels::make_geometry(n, static_cast<int>(input_shape_[0]),
                                static_cast<int>(input_shape_[1]),
                                static_cast<int>(input_shape_[2]) * depth_multiplier_,
                                kernel_size_[0], kernel_size_[1], strides_[0], strides_[1],
                                padding_);
}

bool DepthwiseConv2D::can_forward_images(const Tensor& x, int count) const {
  return !input_shape_.empty() && depth_multiplier_ == 1 && count > 0 && fits(x);
}

void DepthwiseConv2D::forward_images(const float* x, int count, float* y) const {
  kernels::depthwise_conv2d_forward(geometry(count), x, kernel_.value.data(),
                                    use_bias_ ? bias_.value.data() : nullptr, y);
}

Tensor DepthwiseConv2D::forward(const Tensor& input, bool /*training*/) {
  if (input_shape_.empty()) layer_error("forward() called before build()");
  if (!fits(input))
    layer_error("expected input ", batch_shape_str(input_shape_), ", got ",
                shape_str(input.shape()));
  const Tensor x = depth_multiplier_ == 1 ? input : repeat_channels(input, depth_multiplier_);
  const kernels::Conv2DGeometry g = geometry(static_cast<int>(x.dim(0)));
  const Tensor& kernel = kernel_.value;
  const Tensor& bias = bias_.value;  // undefined without use_bias

  Tensor y = Tensor::uninitialized({g.n, g.oh, g.ow, g.c});
  kernels::depthwise_conv2d_forward(g, x.data(), kernel.data(),
                                    use_bias_ ? bias.data() : nullptr, y.data());

  Tape& tape = Tape::current();
  if (tape.wants({&x, &kernel, &bias})) {
    y.set_requires_grad(true);
    tape.record([g, x, y, kernel, bias]() {
      const float* dy = y.grad();
      if (x.requires_grad()) {
        bool accumulate = true;  // false: the first gradient into x, written not added
        float* dx = x.grad_to_write(&accumulate);
        kernels::depthwise_conv2d_backward_input(g, dy, kernel.data(), dx, accumulate);
      }
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
  j["depth_multiplier"] = depth_multiplier_;
  j["use_bias"] = use_bias_;
  return j;
}

}  // namespace fer
