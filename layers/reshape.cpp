#include "layers/reshape.h"

#include "fer/autograd.h"
#include "fer/error.h"
#include "layers/config_util.h"

namespace fer {

Tensor reshape_examples(const Tensor& x, const Shape& per_example) {
  Shape batch_shape = {x.dim(0)};
  batch_shape.insert(batch_shape.end(), per_example.begin(), per_example.end());
  // NHWC memory already is row-major in every shape: only the shape changes (reshape
  // copies the data; the framework has no views).
  Tensor y = x.reshape(batch_shape);
  Tape& tape = Tape::current();
  if (tape.wants({&x})) {
    y.set_requires_grad(true);
    // Same elements in the same order: the gradient passes straight through.
    tape.record([x, y]() {
      const float* dy = y.grad();
      float* dx = x.grad();
      for (int64_t i = 0; i < x.numel(); ++i) dx[i] += dy[i];
    });
  }
  return y;
}

Reshape::Reshape(std::string name, Shape target_shape)
    : Layer(std::move(name)), target_shape_(std::move(target_shape)) {
  int inferred = 0;
  for (int64_t d : target_shape_) {
    if (d == -1) ++inferred;
    else if (d <= 0) layer_error("target_shape ", shape_str(target_shape_), " has a dimension <= 0");
  }
  if (target_shape_.empty() || inferred > 1)
    layer_error("target_shape ", shape_str(target_shape_),
                " must be non-empty with at most one -1");
}

std::unique_ptr<Layer> Reshape::from_config(const Json& config) {
  Shape target;
  for (const Json& d : config.at("target_shape").as_array()) target.push_back(d.as_int());
  return std::make_unique<Reshape>(config.at("name").as_string(), target);
}

Shape Reshape::build(const Shape& input, Rng& /*rng*/) {
  const int64_t n = shape_numel(input);
  int64_t known = 1;
  for (int64_t d : target_shape_)
    if (d != -1) known *= d;
  Shape out = target_shape_;
  bool fits = n > 0;
  for (int64_t& d : out)
    if (d == -1) {
      fits = fits && known > 0 && n % known == 0;
      d = fits ? n / known : 1;
    }
  // (shape_numel of a shape still holding -1 would throw without naming the layer.)
  if (!fits || shape_numel(out) != n)
    layer_error("cannot reshape ", shape_str(input), " (", n, " elements) to ",
                shape_str(target_shape_));
  input_shape_ = input;
  output_shape_ = out;
  return out;
}

Tensor Reshape::forward(const Tensor& x, bool /*training*/) {
  if (input_shape_.empty()) layer_error("forward() called before build()");
  if (x.ndim() != static_cast<int>(input_shape_.size()) + 1 ||
      Shape(x.shape().begin() + 1, x.shape().end()) != input_shape_)
    layer_error("expected input ", batch_shape_str(input_shape_), ", got ", shape_str(x.shape()));
  return reshape_examples(x, output_shape_);
}

Json Reshape::config() const {
  Json j = Layer::config();
  Json shape = Json::array();
  for (int64_t d : target_shape_) shape.push_back(static_cast<int>(d));
  j["target_shape"] = shape;
  return j;
}

}  // namespace fer
