// Conv2D: Keras's 2-D convolution layer (without a fused activation: fer uses separate
// activation layers). Learns `filters` kernels of size kh x kw over all input channels.
//
//   input  [N, H, W, C]  ->  output [N, OH, OW, filters]   (OH, OW from kernels/padding.h)
//   params "<name>/kernel" [kh, kw, C, filters], "<name>/bias" [filters] (if use_bias)
//
// The arithmetic is in kernels/conv2d.h; this class owns the weights, checks shapes and
// records the backward pass on the tape.
#pragma once

#include <array>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "kernels/conv2d.h"
#include "kernels/padding.h"
#include "layers/layer.h"

namespace fer {

class Conv2D : public Layer {
 public:
  Conv2D(std::string name, int filters, std::array<int, 2> kernel_size,
         std::array<int, 2> strides = {1, 1}, const std::string& padding = "valid",
         bool use_bias = true);
  // Rebuilds the layer from config(); accepts Keras-style integers for kernel_size and
  // strides too ("kernel_size": 3 means [3, 3]).
  static std::unique_ptr<Layer> from_config(const Json& config);

  std::string type() const override { return "Conv2D"; }
  Shape build(const Shape& input, Rng& rng) override;
  Tensor forward(const Tensor& x, bool training) override;
  bool can_forward_images(const Tensor& x, int count) const override;
  void forward_images(const float* x, int count, float* y) const override;
  std::vector<Parameter*> parameters() override;
  Json config() const override;

  // The parameter tensors (undefined until build(); bias undefined without use_bias).
  const Tensor& kernel() const { return kernel_.value; }
  const Tensor& bias() const { return bias_.value; }

 private:
  // Whether x is a batch of the example shape given to build(), and the kernels'
  // geometry for n such examples.
  bool fits(const Tensor& x) const;
  kernels::Conv2DGeometry geometry(int n) const;

  // Inference by Winograd with the kernel transformed once (kernels/conv2d.h): whether
  // this layer takes that path for n examples, and the transform of the current kernel --
  // recomputed only when the kernel's version (fer/tensor.h) has moved, i.e. after a
  // training step or a weight load. Guarded by a mutex: inference may run on several
  // threads at once; each call keeps its own reference to the transform it used.
  bool infers_by_transformed_winograd(const kernels::Conv2DGeometry& g) const;
  std::shared_ptr<const kernels::WinogradKernel> transformed_kernel();

  int filters_;
  std::array<int, 2> kernel_size_;
  std::array<int, 2> strides_;
  kernels::Padding padding_;
  bool use_bias_;
  Shape input_shape_;  // one example [H, W, C], set by build()
  Parameter kernel_;
  Parameter bias_;
  std::mutex winograd_mutex_;
  std::shared_ptr<const kernels::WinogradKernel> winograd_kernel_;
  uint64_t winograd_version_ = 0;  // the kernel's version it was computed from
};

}  // namespace fer
