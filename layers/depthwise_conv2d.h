// DepthwiseConv2D: Keras's depthwise convolution -- depth_multiplier (M) kh x kw filters
// per input channel, channels never mixed (MobileNet pairs it with a 1x1 Conv2D).
//
//   input  [N, H, W, C]  ->  output [N, OH, OW, C*M], output channel c*M + m filtering
//                            input channel c with filter m (Keras's order)
//   params "<name>/depthwise_kernel" [kh, kw, C, M] (Keras's name and layout),
//          "<name>/bias" [C*M] (if use_bias)
//
// The arithmetic is in kernels/depthwise_conv2d.h, which works on one filter per
// channel. With M > 1 the layer first repeats every input channel M times
// ([.., c] -> [.., c*M + m]); the kernel [kh, kw, C, M] read as [kh, kw, C*M] then is
// exactly one filter per repeated channel, and the backward of the repeat sums the M
// gradients of each channel.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "kernels/padding.h"
#include "layers/layer.h"

namespace fer {

class DepthwiseConv2D : public Layer {
 public:
  DepthwiseConv2D(std::string name, std::array<int, 2> kernel_size,
                  std::array<int, 2> strides = {1, 1}, const std::string& padding = "valid",
                  bool use_bias = true, int depth_multiplier = 1);
  static std::unique_ptr<Layer> from_config(const Json& config);

  std::string type() const override { return "DepthwiseConv2D"; }
  Shape build(const Shape& input, Rng& rng) override;
  Tensor forward(const Tensor& x, bool training) override;
  bool can_forward_images(const Tensor& x, int count) const override;
  void forward_images(const float* x, int count, float* y) const override;
  std::vector<Parameter*> parameters() override;
  Json config() const override;

  const Tensor& kernel() const { return kernel_.value; }
  const Tensor& bias() const { return bias_.value; }

 private:
  // Whether `input` is a batch of the example shape given to build(), and the kernels'
  // geometry for n examples (channels after the depth multiplier's repetition).
  bool fits(const Tensor& input) const;
  kernels::Conv2DGeometry geometry(int n) const;

  std::array<int, 2> kernel_size_;
  std::array<int, 2> strides_;
  kernels::Padding padding_;
  bool use_bias_;
  int depth_multiplier_;
  Shape input_shape_;  // one example [H, W, C], set by build()
  Parameter kernel_;
  Parameter bias_;
};

}  // namespace fer
