#include "layers/sequential.h"

#include <set>

#include "layers/registry.h"

namespace fer {

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
  output_shape_ = shape;
  return shape;
}

Tensor Sequential::forward(const Tensor& x, bool training) {
  Tensor h = x;
  for (auto& layer : layers_) h = layer->forward(h, training);
  return h;
}

Tensor Sequential::forward_until(const Tensor& x, const std::string& name, bool training,
                                 bool* found) {
  *found = false;
  Tensor h = x;
  for (auto& layer : layers_) {
    auto* child = dynamic_cast<Sequential*>(layer.get());
    if (child && child->type() == "Sequential" && layer->name() != name) {
      h = child->forward_until(h, name, training, found);
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
