#include "layers/zero_padding.h"

#include <cstring>

#include "fer/autograd.h"
#include "fer/error.h"
#include "layers/config_util.h"

namespace fer {

ZeroPadding2D::ZeroPadding2D(std::string name, std::array<int, 4> padding)
    : Layer(std::move(name)), pad_(padding) {
  for (int p : pad_)
    if (p < 0) layer_error("padding must be >= 0, got ", p);
}

// Keras accepts an int (all sides), a pair (symmetric rows, symmetric columns) or
// ((top, bottom), (left, right)).
std::unique_ptr<Layer> ZeroPadding2D::from_config(const Json& config) {
  const std::string name = config.at("name").as_string();
  const Json& p = config.at("padding");
  std::array<int, 4> pad{};
  if (p.is_number()) {
    pad.fill(static_cast<int>(p.as_int()));
  } else {
    FER_CHECK(p.is_array() && p.size() == 2, "layer '", name,
              "' (ZeroPadding2D): padding must be an int, [rows, cols] or "
              "[[top, bottom], [left, right]], got ", p.dump());
    for (int axis = 0; axis < 2; ++axis) {
      const Json& a = p.as_array()[axis];
      if (a.is_number()) {
        pad[2 * axis] = pad[2 * axis + 1] = static_cast<int>(a.as_int());
      } else {
        FER_CHECK(a.is_array() && a.size() == 2, "layer '", name,
                  "' (ZeroPadding2D): bad padding ", p.dump());
        pad[2 * axis] = static_cast<int>(a.as_array()[0].as_int());
        pad[2 * axis + 1] = static_cast<int>(a.as_array()[1].as_int());
      }
    }
  }
  return std::make_unique<ZeroPadding2D>(name, pad);
}

Shape ZeroPadding2D::build(const Shape& input, Rng& /*rng*/) {
  if (input.size() != 3 || input[0] <= 0 || input[1] <= 0 || input[2] <= 0)
    layer_error("expected one image [H, W, C] per example, got ", shape_str(input));
  input_shape_ = input;
  return {input[0] + pad_[0] + pad_[1], input[1] + pad_[2] + pad_[3], input[2]};
}

Tensor ZeroPadding2D::forward(const Tensor& x, bool /*training*/) {
  if (input_shape_.empty()) layer_error("forward() called before build()");
  if (x.ndim() != 4 || Shape(x.shape().begin() + 1, x.shape().end()) != input_shape_)
    layer_error("expected input ", batch_shape_str(input_shape_), ", got ", shape_str(x.shape()));
  const int64_t n = x.dim(0), h = x.dim(1), w = x.dim(2), c = x.dim(3);
  const int64_t oh = h + pad_[0] + pad_[1], ow = w + pad_[2] + pad_[3];
  const int top = pad_[0], left = pad_[2];
  Tensor y({n, oh, ow, c});  // zero-filled: the border stays 0
  // One input row (w * c contiguous floats) lands at one place in one output row.
  auto row_out = [=](float* base, int64_t b, int64_t i) {
    return base + ((b * oh + i + top) * ow + left) * c;
  };
  const float* px = x.data();
  float* py = y.data();
  for (int64_t b = 0; b < n; ++b)
    for (int64_t i = 0; i < h; ++i)
      std::memcpy(row_out(py, b, i), px + ((b * h + i) * w) * c, sizeof(float) * w * c);

  Tape& tape = Tape::current();
  if (tape.wants({&x})) {
    y.set_requires_grad(true);
    tape.record([x, y, n, h, w, c, row_out]() {
      float* dx = x.grad();
      float* dy = y.grad();
      for (int64_t b = 0; b < n; ++b)
        for (int64_t i = 0; i < h; ++i) {
          const float* src = row_out(dy, b, i);  // NOLINT: read only
          float* dst = dx + ((b * h + i) * w) * c;
          for (int64_t k = 0; k < w * c; ++k) dst[k] += src[k];
        }
    });
  }
  return y;
}

Json ZeroPadding2D::config() const {
  Json j = Layer::config();
  Json rows = Json::array_of(std::vector<int>{pad_[0], pad_[1]});
  Json cols = Json::array_of(std::vector<int>{pad_[2], pad_[3]});
  Json p = Json::array();
  p.push_back(rows);
  p.push_back(cols);
  j["padding"] = p;
  return j;
}

}  // namespace fer
