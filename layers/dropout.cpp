#include "layers/dropout.h"

#include "fer/autograd.h"
#include "kernels/dropout.h"

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
  // The kernels hash 32-bit element indices (kernels/dropout.h).
  if (n >= (int64_t{1} << 32)) layer_error("tensor of ", n, " elements is too big for dropout");
  // One key per forward; the mask is a hash of (key, element), so the backward pass
  // recomputes it instead of keeping a mask tensor alive.
  const uint64_t key = rng_.next_u64();
  const float rate = rate_;
  Tensor y = Tensor::uninitialized(x.shape());
  kernels::dropout_forward(x.data(), n, key, rate, y.data());

  Tape& tape = Tape::current();
  if (tape.wants({&x})) {
    y.set_requires_grad(true);
    tape.record([x, y, n, key, rate]() {
      kernels::dropout_backward(y.grad(), n, key, rate, x.grad());
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
