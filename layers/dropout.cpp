#include "layers/dropout.h"

#include "fer/autograd.h"

namespace fer {

Dropout::Dropout(std::string name, float rate, int64_t seed)
    : Layer(std::move(name)), rate_(rate), seed_(seed) {
  // rate = 1 would drop everything and divide by zero.
  if (!(rate >= 0.f && rate < 1.f)) layer_error("rate must be in [0, 1), got ", rate);
}

void Dropout::reseed(uint64_t seed) {
  // A layer with its own seed keeps its own stream of masks, shifted by the run's seed.
  rng_.reseed(seed_ >= 0 ? static_cast<uint64_t>(seed_) ^ seed : seed);
}

Shape Dropout::build(const Shape& input, Rng& rng) {
  // Always draw from the build rng, so the layers built after this one get the same
  // initialization whether or not this one has its own seed.
  const uint64_t drawn = rng.next_u64();
  rng_.reseed(seed_ >= 0 ? static_cast<uint64_t>(seed_) : drawn);
  return input;
}

Tensor Dropout::forward(const Tensor& x, bool training) {
  if (!x.defined()) layer_error("undefined input");
  // Inference (or nothing to drop): the identity, and the same tensor, so the gradient
  // passes straight through without a tape entry.
  if (!training || rate_ == 0.f) return x;

  const int64_t n = x.numel();
  const float keep_scale = 1.f / (1.f - rate_);
  // mask[i] is 0 (dropped) or 1/(1-rate) (kept): forward and backward are one multiply.
  Tensor mask(x.shape());
  for (int64_t i = 0; i < n; ++i) mask.data()[i] = rng_.bernoulli(rate_) ? 0.f : keep_scale;
  Tensor y(x.shape());
  for (int64_t i = 0; i < n; ++i) y.data()[i] = x.data()[i] * mask.data()[i];

  Tape& tape = Tape::current();
  if (tape.wants({&x})) {
    y.set_requires_grad(true);
    tape.record([x, y, mask, n]() {
      float* dx = x.grad();
      const float* dy = y.grad();
      for (int64_t i = 0; i < n; ++i) dx[i] += dy[i] * mask.data()[i];
    });
  }
  return y;
}

Json Dropout::config() const {
  Json j = Layer::config();
  j["rate"] = rate_;
  j["seed"] = seed_ >= 0 ? Json(seed_) : Json(nullptr);
  return j;
}

std::unique_ptr<Layer> Dropout::from_config(const Json& config) {
  int64_t seed = -1;
  if (config.contains("seed") && !config.at("seed").is_null()) seed = config.at("seed").as_int();
  return std::make_unique<Dropout>(config.at("name").as_string(),
                                   static_cast<float>(config.at("rate").as_number()), seed);
}

}  // namespace fer
