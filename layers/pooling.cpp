#include "layers/pooling.h"

#include "fer/autograd.h"
#include "fer/error.h"
#include "layers/config_util.h"
#include "kernels/pool.h"

namespace fer {

namespace {

template <typename Pool>
std::unique_ptr<Layer> pool_from_config(const Json& config) {
  return std::make_unique<Pool>(config.at("name").as_string(),
                                read_pair(config, "pool_size", {2, 2}),
                                read_pair(config, "strides", {0, 0}),
                                config.get("padding", "valid"));
}

}  // namespace

// ---- Pool2D: shared window logic ----------------------------------------------------

Pool2D::Pool2D(std::string type, std::string name, std::array<int, 2> pool_size,
               std::array<int, 2> strides, const std::string& padding)
    : Layer(std::move(name)),
      type_(std::move(type)),
      pool_size_(pool_size),
      strides_(strides),
      padding_(kernels::Padding::Valid) {
  if (strides_[0] == 0 && strides_[1] == 0) strides_ = pool_size_;  // Keras: strides=None
  if (pool_size_[0] <= 0 || pool_size_[1] <= 0)
    layer_error("pool_size must be positive, got [", pool_size_[0], ", ", pool_size_[1], "]");
  if (strides_[0] <= 0 || strides_[1] <= 0)
    layer_error("strides must be positive, got [", strides_[0], ", ", strides_[1], "]");
  try {
    padding_ = kernels::parse_padding(padding);
  } catch (const Error& e) {
    layer_error(e.what());
  }
}

Shape Pool2D::build(const Shape& input, Rng& /*rng*/) {
  if (input.size() != 3 || input[0] <= 0 || input[1] <= 0 || input[2] <= 0)
    layer_error("expected one image [H, W, C] per example, got ", shape_str(input));
  const kernels::Conv2DGeometry g = kernels::make_geometry(
      1, static_cast<int>(input[0]), static_cast<int>(input[1]), static_cast<int>(input[2]),
      pool_size_[0], pool_size_[1], strides_[0], strides_[1], padding_);
  if (g.oh <= 0 || g.ow <= 0)
    layer_error("a ", pool_size_[0], "x", pool_size_[1],
                " pool with 'valid' padding does not fit input ", shape_str(input));
  input_shape_ = input;
  return {g.oh, g.ow, input[2]};
}

kernels::Conv2DGeometry Pool2D::geometry_for(const Tensor& x) const {
  if (input_shape_.empty()) layer_error("forward() called before build()");
  if (x.ndim() != 4 || Shape(x.shape().begin() + 1, x.shape().end()) != input_shape_)
    layer_error("expected input ", batch_shape_str(input_shape_), ", got ", shape_str(x.shape()));
  return kernels::make_geometry(static_cast<int>(x.dim(0)), static_cast<int>(x.dim(1)),
                                static_cast<int>(x.dim(2)), static_cast<int>(x.dim(3)),
                                pool_size_[0], pool_size_[1], strides_[0], strides_[1],
                                padding_);
}

Json Pool2D::config() const {
  Json j = Layer::config();
  j["pool_size"] = Json::array_of(std::vector<int>{pool_size_[0], pool_size_[1]});
  j["strides"] = Json::array_of(std::vector<int>{strides_[0], strides_[1]});
  j["padding"] = kernels::padding_name(padding_);
  return j;
}

// ---- MaxPool2D ----------------------------------------------------------------------

MaxPool2D::MaxPool2D(std::string name, std::array<int, 2> pool_size,
                     std::array<int, 2> strides, const std::string& padding)
    : Pool2D("MaxPooling2D", std::move(name), pool_size, strides, padding) {}

std::unique_ptr<Layer> MaxPool2D::from_config(const Json& config) {
  return pool_from_config<MaxPool2D>(config);
}

Tensor MaxPool2D::forward(const Tensor& x, bool /*training*/) {
  const kernels::Conv2DGeometry g = geometry_for(x);
  Tensor y = Tensor::uninitialized({g.n, g.oh, g.ow, g.c});
  kernels::max_pool2d_forward(g, x.data(), y.data());
  Tape& tape = Tape::current();
  if (tape.wants({&x})) {
    y.set_requires_grad(true);
    // Keeps x alive: backward finds each window's winner again from x.
    tape.record([g, x, y]() { kernels::max_pool2d_backward(g, x.data(), y.grad(), x.grad()); });
  }
  return y;
}

// ---- AvgPool2D ----------------------------------------------------------------------

AvgPool2D::AvgPool2D(std::string name, std::array<int, 2> pool_size,
                     std::array<int, 2> strides, const std::string& padding)
    : Pool2D("AveragePooling2D", std::move(name), pool_size, strides, padding) {}

std::unique_ptr<Layer> AvgPool2D::from_config(const Json& config) {
  return pool_from_config<AvgPool2D>(config);
}

Tensor AvgPool2D::forward(const Tensor& x, bool /*training*/) {
  const kernels::Conv2DGeometry g = geometry_for(x);
  Tensor y = Tensor::uninitialized({g.n, g.oh, g.ow, g.c});
  kernels::avg_pool2d_forward(g, x.data(), y.data());
  Tape& tape = Tape::current();
  if (tape.wants({&x})) {
    y.set_requires_grad(true);
    // The gradient of a mean does not depend on x: only y's gradient is needed. The
    // closure still holds x's handle, to have somewhere to accumulate.
    tape.record([g, x, y]() { kernels::avg_pool2d_backward(g, y.grad(), x.grad()); });
  }
  return y;
}

// ---- GlobalAveragePooling2D ---------------------------------------------------------

std::unique_ptr<Layer> GlobalAveragePooling2D::from_config(const Json& config) {
  const std::string name = config.at("name").as_string();
  FER_CHECK(!config.get("keepdims", false), "layer '", name,
            "' (GlobalAveragePooling2D): keepdims=true is not supported");
  return std::make_unique<GlobalAveragePooling2D>(name);
}

Shape GlobalAveragePooling2D::build(const Shape& input, Rng& /*rng*/) {
  if (input.size() != 3 || input[0] <= 0 || input[1] <= 0 || input[2] <= 0)
    layer_error("expected one image [H, W, C] per example, got ", shape_str(input));
  input_shape_ = input;
  return {input[2]};
}

Tensor GlobalAveragePooling2D::forward(const Tensor& x, bool /*training*/) {
  if (input_shape_.empty()) layer_error("forward() called before build()");
  if (x.ndim() != 4 || Shape(x.shape().begin() + 1, x.shape().end()) != input_shape_)
    layer_error("expected input ", batch_shape_str(input_shape_), ", got ", shape_str(x.shape()));
  const int n = static_cast<int>(x.dim(0));
  const int hw = static_cast<int>(x.dim(1) * x.dim(2));
  const int c = static_cast<int>(x.dim(3));
  Tensor y = Tensor::uninitialized({int64_t(n), int64_t(c)});
  kernels::global_avg_pool2d_forward(n, hw, c, x.data(), y.data());
  Tape& tape = Tape::current();
  if (tape.wants({&x})) {
    y.set_requires_grad(true);
    tape.record([n, hw, c, x, y]() {
      kernels::global_avg_pool2d_backward(n, hw, c, y.grad(), x.grad());
    });
  }
  return y;
}

}  // namespace fer
