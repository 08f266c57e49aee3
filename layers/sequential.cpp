#include "layers/sequential.h"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <set>

#include <omp.h>

#include "fer/autograd.h"
#include "layers/batchnorm.h"
#include "layers/registry.h"

namespace fer {

namespace {
thread_local LayerProfiler* active_profiler = nullptr;

// FER_FUSION=0 starts with fusion off (to time or check the unfused path from the CLI).
std::atomic<bool> fusion_enabled{on_unless_environment_says_0("FER_FUSION")};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}
}  // namespace

void Sequential::set_profiler(LayerProfiler* profiler) { active_profiler = profiler; }

void Sequential::set_fusion(bool enabled) { fusion_enabled = enabled; }
bool Sequential::fusion() { return fusion_enabled; }

bool Sequential::fused(size_t i) const {
  return i < fuses_next_.size() && fuses_next_[i] && fusion_enabled.load(std::memory_order_relaxed);
}

Sequential& Sequential::add(std::unique_ptr<Layer> layer) {
  layers_.push_back(std::move(layer));
  return *this;
}

Shape Sequential::build(const Shape& input, Rng& rng) {
  std::set<std::string> names;
  Shape shape = input;
  for (auto& layer : layers_) {
    if (!names.insert(layer->name()).second)
      layer_error("two children are named '", layer->name(), "'");
    shape = layer->build(shape, rng);
  }
  // Pairs that fuse, left to right: in BN, ReLU, ReLU only the first ReLU is absorbed.
  fuses_next_.assign(layers_.size(), false);
  for (size_t i = 0; i + 1 < layers_.size(); ++i)
    if (layers_[i]->fuses_with(*layers_[i + 1])) fuses_next_[i++] = true;
  output_shape_ = shape;
  return shape;
}

// Why chunks: at batch 64 a MobileNet activation is 10-30 MB, so a BatchNorm pass after
// its convolution reads it back from memory; one image's output (or a few) is still in
// the core's L2 when the normalization runs. Chunks hold about 2048 output pixels (and at
// least two per thread for balance); a batch with fewer chunks than threads runs whole.
// Measured (fer bench --mode infer, batch 64, 2 threads, four alternating runs, medians):
// against the build without chains, MobileNet V2 1582 -> 1649 img/s and MobileNet V1 equal
// within the noise (2166 vs 2146); later, with chains declined for one layer type at a
// time, MobileNet V1 lost 6% without them on the 1x1 convs (1951 -> 1841) and 5% without
// them on the depthwise convs (1965 -> 1865). The host's noise is of the same size.
size_t Sequential::forward_chain(Tensor& h, size_t i) {
  if (i + 1 >= layers_.size() || h.ndim() < 2 || h.dim(0) < 2) return 0;
  auto* bn = dynamic_cast<BatchNormalization*>(layers_[i + 1].get());
  if (!bn || bn->example_shape().empty()) return 0;
  const int64_t n = h.dim(0);
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  const Shape& example = bn->example_shape();
  int64_t per_out = 1;
  for (int64_t d : example) per_out *= d;
  const int64_t channels = example.back();
  const int64_t pixels = per_out / channels;
  const int64_t by_size = std::max<int64_t>(1, (2048 + pixels - 1) / pixels);
  const int64_t by_balance = std::max<int64_t>(1, n / (2 * threads));
  const int count = static_cast<int>(std::min(by_size, by_balance));
  const int64_t chunks = (n + count - 1) / count;
  if (threads < 2 || chunks < threads) return 0;
  Layer& conv = *layers_[i];
  if (!conv.can_forward_images(h, count)) return 0;
  const bool with_act = fused(i + 1);
  const kernels::Act act =
      with_act ? BatchNormalization::activation_of(*layers_[i + 2]) : kernels::Act::kNone;
  Shape out_shape = {n};
  out_shape.insert(out_shape.end(), example.begin(), example.end());
  Tensor y = Tensor::uninitialized(out_shape);
  const int64_t per_in = h.numel() / n;
  const float* x = h.data();
  float* out = y.data();
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t n0 = c * count;
    const int images = static_cast<int>(std::min<int64_t>(count, n - n0));
    conv.forward_images(x + n0 * per_in, images, out + n0 * per_out);
    bn->normalize_inference_in_place(out + n0 * per_out, images * pixels, act);
  }
  h = y;
  return with_act ? 3 : 2;
}

Tensor Sequential::forward(const Tensor& x, bool training) {
  if (active_profiler) return forward_profiled(x, training, *active_profiler);
  Tensor h = x;
  const bool chains = !training && fusion_enabled.load(std::memory_order_relaxed) &&
                      !Tape::current().enabled();
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (chains) {
      if (const size_t ran = forward_chain(h, i)) {
        i += ran - 1;
        continue;
      }
    }
    if (fused(i)) {
      h = layers_[i]->forward_fused(h, training, *layers_[i + 1]);
      ++i;  // the next child ran inside
    } else {
      h = layers_[i]->forward(h, training);
    }
  }
  return h;
}

// Times each leaf child's forward call, and wraps the tape entries that call recorded so
// that their backward time is reported under the same layer. Container children time
// their own leaves (what a Residual adds outside its body is counted by nobody).
Tensor Sequential::forward_profiled(const Tensor& x, bool training, LayerProfiler& profiler) {
  Tape& tape = Tape::current();
  Tensor h = x;
  for (size_t i = 0; i < layers_.size(); ++i) {
    Layer* child = layers_[i].get();
    if (dynamic_cast<const Sequential*>(child)) {
      h = child->forward(h, training);
      continue;
    }
    // A fused pair is timed as one call, reported under its first layer; the second is
    // reported with 0 s (see LayerProfiler).
    const Layer* leaf = child;
    const Layer* absorbed = nullptr;
    const size_t first = tape.size();
    const auto start = std::chrono::steady_clock::now();
    if (fused(i)) {
      absorbed = layers_[i + 1].get();
      h = child->forward_fused(h, training, *layers_[i + 1]);
      ++i;
    } else {
      h = child->forward(h, training);
    }
    profiler.record(*leaf, false, seconds_since(start));
    if (absorbed) profiler.record(*absorbed, false, 0.0);
    LayerProfiler* p = &profiler;
    tape.wrap_since(first, [p, leaf, absorbed](Tape::Backward fn) -> Tape::Backward {
      return [p, leaf, absorbed, fn = std::move(fn)]() {
        const auto t0 = std::chrono::steady_clock::now();
        fn();
        p->record(*leaf, true, seconds_since(t0));
        if (absorbed) p->record(*absorbed, true, 0.0);
      };
    });
  }
  return h;
}

Tensor Sequential::forward_until(const Tensor& x, const std::string& name, bool training,
                                 bool* found) {
  *found = false;
  Tensor h = x;
  for (size_t i = 0; i < layers_.size(); ++i) {
    Layer* layer = layers_[i].get();
    auto* child = dynamic_cast<Sequential*>(layer);
    if (child && child->type() == "Sequential" && layer->name() != name) {
      h = child->forward_until(h, name, training, found);
    } else if (fused(i) && layer->name() != name) {
      // A fused pair. (When the stop is its first layer, whose own output is wanted, the
      // branch below runs that layer alone.)
      h = layer->forward_fused(h, training, *layers_[i + 1]);
      *found = layers_[++i]->name() == name;
    } else {
      h = layer->forward(h, training);
      *found = layer->name() == name;
    }
    if (*found) return h;
  }
  return h;
}

std::vector<Parameter*> Sequential::parameters() {
  std::vector<Parameter*> all;
  for (auto& layer : layers_)
    for (Parameter* p : layer->parameters()) all.push_back(p);
  return all;
}

Json Sequential::config() const {
  Json j = Layer::config();
  Json children = Json::array();
  for (const auto& layer : layers_) children.push_back(layer->config());
  j["layers"] = children;
  return j;
}

void Sequential::set_frozen(bool frozen) {
  frozen_ = frozen;
  for (auto& layer : layers_) layer->set_frozen(frozen);
}

void Sequential::reseed(uint64_t seed) {
  Rng seeds(seed);
  for (auto& layer : layers_) layer->reseed(seeds.next_u64());
}

std::vector<Layer*> Sequential::leaves() {
  std::vector<Layer*> out;
  for (auto& layer : layers_) {
    if (auto* child = dynamic_cast<Sequential*>(layer.get())) {
      for (Layer* leaf : child->leaves()) out.push_back(leaf);
    } else {
      out.push_back(layer.get());
    }
  }
  return out;
}

std::unique_ptr<Layer> Sequential::from_config(const Json& config) {
  auto seq = std::make_unique<Sequential>(config.at("name").as_string());
  for (const Json& child : config.at("layers").as_array()) seq->add(make_layer(child));
  return seq;
}

}  // namespace fer
