// ZeroPadding2D: adds rows and columns of zeros around each image, Keras's layer of the
// same name. padding = {top, bottom, left, right}.
//
// Why it exists: TensorFlow's 'same' padding with stride 2 on an even input pads only
// bottom/right, while PyTorch pads symmetrically. A model trained in PyTorch (the
// torchvision MobileNetV2 weights) is reproduced exactly by ZeroPadding2D(1) followed by
// a 'valid' convolution, which is how architectures built with padding "torch" do it.
//
//   forward:  y[n, i + top, j + left, c] = x[n, i, j, c], zeros elsewhere
//   backward: dx[n, i, j, c] = dy[n, i + top, j + left, c] (the border gets no gradient)
#pragma once

#include <array>
#include <memory>
#include <string>

#include "layers/layer.h"

namespace fer {

class ZeroPadding2D : public Layer {
 public:
  ZeroPadding2D(std::string name, std::array<int, 4> padding);  // top, bottom, left, right
  static std::unique_ptr<Layer> from_config(const Json& config);

  std::string type() const override { return "ZeroPadding2D"; }
  Shape build(const Shape& input, Rng& rng) override;
  Tensor forward(const Tensor& x, bool training) override;
  Json config() const override;  // "padding": [[top, bottom], [left, right]] as Keras

 private:
  std::array<int, 4> pad_;
  Shape input_shape_;
};

}  // namespace fer
