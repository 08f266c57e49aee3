#include "layers/conv2d.h"

#include <cmath>

#include "fer/autograd.h"
#include "fer/error.h"
#include "layers/config_util.h"
#include "kernels/conv2d.h"

namespace fer {

Conv2D::Conv2D(std::string name, int filters, std::array<int, 2> kernel_size,
               std::array<int, 2> strides, const std::string& padding, bool use_bias)
    : Layer(std::move(name)),
      filters_(filters),
      kernel_size_(kernel_size),
      strides_(strides),
      padding_(kernels::Padding::Valid),
      use_bias_(use_bias) {
  if (filters <= 0) layer_error("filters must be positive, got ", filters);
  padding_ = check_window(name_, type(), kernel_size, strides, padding);
}

std::unique_ptr<Layer> Conv2D::from_config(const Json& config) {
  const std::string name = config.at("name").as_string();
  // fer keeps activations in their own layers; refuse a fused one rather than drop it.
  const std::string activation = config.get("activation", "linear");
  FER_CHECK(activation == "linear", "layer '", name, "' (Conv2D): fused activation '",
            activation, "' is not supported; use a separate activation layer");
  const std::array<int, 2> dilation = read_pair(config, "dilation_rate", {1, 1});
  FER_CHECK(dilation[0] == 1 && dilation[1] == 1, "layer '", name,
            "' (Conv2D): dilation_rate other than 1 is not supported");
  return std::make_unique<Conv2D>(name, static_cast<int>(config.at("filters").as_int()),
                                  read_pair(config, "kernel_size", {0, 0}),
                                  read_pair(config, "strides", {1, 1}),
                                  config.get("padding", "valid"), config.get("use_bias", true));
}

Shape Conv2D::build(const Shape& input, Rng& rng) {
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

  // Glorot (Xavier) uniform, Keras's default: U(-limit, limit) with
  // limit = sqrt(6 / (fan_in + fan_out)), which keeps the activations' variance roughly
  // constant from layer to layer in both the forward and the backward pass.
  const double fan_in = double(kh) * kw * c;
  const double fan_out = double(kh) * kw * filters_;
  const double limit = std::sqrt(6.0 / (fan_in + fan_out));
  Tensor kernel({kh, kw, c, filters_});
  float* k = kernel.data();
  for (int64_t i = 0; i < kernel.numel(); ++i)
    k[i] = static_cast<float>(rng.uniform(-limit, limit));
  kernel.set_requires_grad(!frozen_);
  kernel_ = Parameter{name_ + "/kernel", kernel, true};
  if (use_bias_) {
    Tensor bias({filters_});  // zeros
    bias.set_requires_grad(!frozen_);
    bias_ = Parameter{name_ + "/bias", bias, true};
  }
  return {g.oh, g.ow, filters_};
}

bool Conv2D::fits(const Tensor& x) const {
  return x.ndim() == 4 && Shape(x.shape().begin() + 1, x.shape().end()) == input_shape_;
}

kernels::Conv2DGeometry Conv2D::geometry(int n) const {
  return kernels::make_geometry(n, static_cast<int>(input_shape_[0]),
                                static_cast<int>(input_shape_[1]),
                                static_cast<int>(input_shape_[2]), kernel_size_[0],
                                kernel_size_[1], strides_[0], strides_[1], padding_);
}

bool Conv2D::can_forward_images(const Tensor& x, int count) const {
  // Winograd transforms its kernel once per call: chunks would repeat that. And where
  // inference takes Winograd with the kept transform, that beats chunks of direct
  // convolution (2-2.5x fewer multiply-adds).
  if (input_shape_.empty() || !fits(x) || count <= 0) return false;
  const kernels::Conv2DGeometry g = geometry(static_cast<int>(x.dim(0)));
  return !kernels::conv2d_forward_uses_winograd(g, filters_) &&
         !infers_by_transformed_winograd(g);
}

bool Conv2D::infers_by_transformed_winograd(const kernels::Conv2DGeometry& g) const {
  // The transform is 16/9 the size of the kernel: kept up to 8 MB per layer (cnn3's
  // largest is 1 MB; VGG16's 512-channel convs, 16.8 MB, transform per call instead).
  constexpr int64_t kMaxTransformFloats = int64_t(1) << 21;
  return kernels::conv2d_winograd_transformed_pays(g, filters_) &&
         16 * int64_t(g.c) * filters_ <= kMaxTransformFloats;
}

std::shared_ptr<const kernels::WinogradKernel> Conv2D::transformed_kernel() {
  const Tensor& kernel = kernel_.value;
  std::lock_guard<std::mutex> lock(winograd_mutex_);
  if (!winograd_kernel_ || winograd_version_ != kernel.version()) {
    winograd_kernel_ = std::make_shared<const kernels::WinogradKernel>(
        kernels::conv2d_winograd_transform_kernel(kernel.data(),
                                                  static_cast<int>(input_shape_[2]), filters_));
    winograd_version_ = kernel.version();
  }
  return winograd_kernel_;
}

void Conv2D::forward_images(const float* x, int count, float* y) const {
  kernels::conv2d_forward(geometry(count), filters_, x, kernel_.value.data(),
                          use_bias_ ? bias_.value.data() : nullptr, y);
}

Tensor Conv2D::forward(const Tensor& x, bool training) {
  if (input_shape_.empty()) layer_error("forward() called before build()");
  if (!fits(x))
    layer_error("expected input ", batch_shape_str(input_shape_), ", got ", shape_str(x.shape()));
  const kernels::Conv2DGeometry g = geometry(static_cast<int>(x.dim(0)));
  const int oc = filters_;
  const Tensor& kernel = kernel_.value;
  const Tensor& bias = bias_.value;  // undefined without use_bias

  Tensor y = Tensor::uninitialized({g.n, g.oh, g.ow, oc});
  if (!training && infers_by_transformed_winograd(g)) {
    // In training the kernel changes every step, so its transform would not be reused.
    const auto transformed = transformed_kernel();
    kernels::conv2d_forward_winograd_transformed(g, *transformed, x.data(),
                                                 use_bias_ ? bias.data() : nullptr, y.data());
  } else {
    kernels::conv2d_forward(g, oc, x.data(), kernel.data(), use_bias_ ? bias.data() : nullptr,
                            y.data());
  }

  Tape& tape = Tape::current();
  if (tape.wants({&x, &kernel, &bias})) {
    y.set_requires_grad(true);
    tape.record([g, oc, x, y, kernel, bias]() {
      const float* dy = y.grad();
      if (x.requires_grad()) {
        bool accumulate = true;  // false: the first gradient into x, written not added
        float* dx = x.grad_to_write(&accumulate);
        kernels::conv2d_backward_input(g, oc, dy, kernel.data(), dx, accumulate);
      }
      // A frozen layer's parameters do not require gradients: skip their work entirely.
      float* dkernel = kernel.requires_grad() ? kernel.grad() : nullptr;
      float* dbias = bias.requires_grad() ? bias.grad() : nullptr;
      if (dkernel || dbias) kernels::conv2d_backward_weights(g, oc, x.data(), dy, dkernel, dbias);
    });
  }
  return y;
}

std::vector<Parameter*> Conv2D::parameters() {
  if (!kernel_.value.defined()) return {};
  if (use_bias_) return {&kernel_, &bias_};
  return {&kernel_};
}

Json Conv2D::config() const {
  Json j = Layer::config();
  j["filters"] = filters_;
  j["kernel_size"] = Json::array_of(std::vector<int>{kernel_size_[0], kernel_size_[1]});
  j["strides"] = Json::array_of(std::vector<int>{strides_[0], strides_[1]});
  j["padding"] = kernels::padding_name(padding_);
  j["use_bias"] = use_bias_;
  return j;
}

}  // namespace fer
