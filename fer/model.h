// Model: a network plus everything needed to use it on images -- input shape, class
// names and preprocessing -- and its file format.
//
// The file is a .npz that numpy.load reads: every parameter and BatchNorm statistic as
// its own float32 array under its stable name ("block1_conv1/kernel"), and the
// architecture as JSON text under "architecture". The JSON holds the full layer tree, so
// FILE.npz alone rebuilds the model. Checkpoints add "training" (JSON) and
// "optimizer/..." arrays, which a plain load ignores.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "fer/json.h"
#include "fer/tensor.h"
#include "layers/sequential.h"

namespace fer {

struct NpzArrays;

class Model {
 public:
  // A model from an architecture description (see architectures.h for where these come
  // from): {"name", "options", "input_shape", "classes", "preprocess", "network"}, or
  // just {"name", "options"}, which make_architecture() expands.
  // Builds the network and initializes its parameters from `seed`.
  static Model from_architecture(const Json& architecture, uint64_t seed = 42);
  // Loads FILE.npz: rebuilds the network from its JSON and loads every array, checking
  // names and shapes (error lists missing, unexpected and mismatched arrays).
  static Model load(const std::string& path);

  // Saves atomically. `extra_tensors`/`extra_strings` carry checkpoint state.
  void save(const std::string& path,
            const std::vector<std::pair<std::string, Tensor>>& extra_tensors = {},
            const std::vector<std::pair<std::string, std::string>>& extra_strings = {},
            bool float16 = false) const;

  // Copies the named arrays of `arrays` into the parameters. With skip_mismatched, arrays
  // whose shape differs (a new head) are left at their initial values; otherwise any
  // missing, unexpected or mismatched array is an error listing all of them. Arrays whose
  // names start with "optimizer/" are ignored. Returns how many were loaded.
  int load_weights(const NpzArrays& arrays, const std::string& source, bool skip_mismatched);

  Tensor forward(const Tensor& x, bool training) { return net_->forward(x, training); }
  std::vector<Parameter*> parameters() { return net_->parameters(); }
  int64_t parameter_count(bool trainable_only = false);

  Sequential& net() { return *net_; }
  const Json& architecture() const { return architecture_; }  // as saved, network included
  const std::string& name() const { return name_; }
  const Shape& input_shape() const { return input_shape_; }   // one example: {H, W, C}
  const std::vector<std::string>& classes() const { return classes_; }
  const Json& preprocess() const { return architecture_.at("preprocess"); }

  // Throws "model 'cnn3': expected input [N, 48, 48, 1], got [...]" unless x fits.
  void check_input(const Tensor& x) const;

  Model(Model&&) = default;
  Model& operator=(Model&&) = default;

 private:
  Model() = default;
  std::string name_;
  Shape input_shape_;
  std::vector<std::string> classes_;
  Json architecture_;
  std::unique_ptr<Sequential> net_;
};

}  // namespace fer
