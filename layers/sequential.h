// Sequential: a container that runs its children in order. Models are Sequentials of
// layers and of other containers (a MobileNet block is a Sequential too), so one
// mechanism builds, runs, names, saves and freezes them all.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "layers/layer.h"

namespace fer {

// Receives the time of each leaf layer's forward pass and of the backward closures it
// recorded, while installed with Sequential::set_profiler (`fer bench --profile`). When
// none is installed Sequential::forward tests one pointer and nothing else, so ordinary
// runs pay nothing measurable. A fused pair (see set_fusion) is one kernel that cannot be
// split: its time is reported under the first layer (the BatchNormalization), and the
// second (the ReLU) is reported with 0 s, so every leaf still appears once.
class LayerProfiler {
 public:
  virtual ~LayerProfiler() = default;
  virtual void record(const Layer& leaf, bool backward, double seconds) = 0;
};

class Sequential : public Layer {
 public:
  explicit Sequential(std::string name) : Layer(std::move(name)) {}

  std::string type() const override { return "Sequential"; }
  Sequential& add(std::unique_ptr<Layer> layer);

  Shape build(const Shape& input, Rng& rng) override;
  Tensor forward(const Tensor& x, bool training) override;
  // Runs the children in order and stops after the one named `name`, returning its output
  // (features from inside a network: `fer infer --layer`). Plain Sequential children are
  // entered, so any layer along the main path can be a stop point; a Residual (or other
  // subclass) is a stop point as a whole but is not entered, since stopping inside it
  // would skip the addition of its input. Sets *found; when the name is not on the path,
  // *found is false and the result is the full output.
  Tensor forward_until(const Tensor& x, const std::string& name, bool training, bool* found);
  std::vector<Parameter*> parameters() override;
  Json config() const override;  // {"type": "Sequential", "name", "layers": [...]}
  void set_frozen(bool frozen) override;
  void reseed(uint64_t seed) override;  // each child gets its own seed derived from `seed`

  static std::unique_ptr<Layer> from_config(const Json& config);

  size_t size() const { return layers_.size(); }
  Layer& layer(size_t i) { return *layers_[i]; }
  // Depth-first list of every non-container layer (for profiles and freezing by name).
  std::vector<Layer*> leaves();
  Shape output_shape() const { return output_shape_; }

  // Layer fusion (Layer::fuses_with): a child that fuses with the next one (a
  // BatchNormalization followed by a ReLU/ReLU6) runs the pair through forward_fused, and
  // the next child is not called. On by default; set_fusion(false), or the environment
  // variable FER_FUSION=0 at startup, runs every child on its own (for tests and
  // benchmarks: the results agree within float rounding). Applies to every thread.
  static void set_fusion(bool enabled);
  static bool fusion();

  // Installs `profiler` for the calling thread (nullptr removes it). It must stay alive
  // until the backward passes of every forward run under it have run: their closures call it.
  static void set_profiler(LayerProfiler* profiler);

 private:
  Tensor forward_profiled(const Tensor& x, bool training, LayerProfiler& profiler);
  // Whether child i runs fused with child i + 1 (found by build(), used while fusion is on).
  bool fused(size_t i) const;
  // Inference under NoGradGuard with fusion on: child i (a convolution) followed by a
  // BatchNormalization (and the ReLU/ReLU6 it fuses) run together on chunks of images,
  // threads taking chunks. Returns the number of children it ran (0: not applicable, h
  // untouched).
  size_t forward_chain(Tensor& h, size_t i);
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<bool> fuses_next_;
  Shape output_shape_;
};

}  // namespace fer
