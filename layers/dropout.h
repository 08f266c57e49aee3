// Dropout: during training, zero each activation with probability `rate` and scale the
// survivors by 1/(1 - rate) ("inverted" dropout), so the expected activation is unchanged
// and inference is the plain identity with no rescaling.
//
// Randomness: the layer owns an Rng. With seed < 0 (the default) it is seeded at build()
// from the build rng, so a whole model's runs are reproducible from one seed; with
// seed >= 0 it is seeded with that seed, so two layers with the same seed draw the same
// masks. Each training forward draws one key; the mask is a hash of (key, element)
// (kernels/dropout.h), so the backward pass recomputes it rather than storing it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "layers/layer.h"

namespace fer {

class Dropout : public Layer {
 public:
  Dropout(std::string name, float rate, int64_t seed = -1);

  std::string type() const override { return "Dropout"; }
  Shape build(const Shape& input, Rng& rng) override;
  Tensor forward(const Tensor& x, bool training) override;
  Json config() const override;
  void reseed(uint64_t seed) override;  // {"rate", "seed"} (seed null when drawn from the build rng)
  static std::unique_ptr<Layer> from_config(const Json& config);

  float rate() const { return rate_; }

 private:
  float rate_;
  int64_t seed_;
  Rng rng_;
};

}  // namespace fer
