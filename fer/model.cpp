#include "fer/model.h"

#include <set>

#include "fer/architectures.h"
#include "fer/error.h"
#include "fer/npz.h"
#include "layers/registry.h"

namespace fer {

Model Model::from_architecture(const Json& description, uint64_t seed) {
  // A short description {"name", "options"} (what tools/convert_weights.py writes) is
  // expanded by the registry; a full one (what fer saves) is used as it is.
  const Json architecture = description.contains("network")
                                ? description
                                : make_architecture(description.get("name", ""),
                                                    description.contains("options")
                                                        ? description.at("options")
                                                        : Json::object());
  Model m;
  m.architecture_ = architecture;
  m.name_ = architecture.get("name", "model");
  for (const Json& d : architecture.at("input_shape").as_array()) m.input_shape_.push_back(d.as_int());
  FER_CHECK(m.input_shape_.size() == 3, "model '", m.name_, "': input_shape must be [H, W, C], got ",
            architecture.at("input_shape").dump());
  for (const Json& c : architecture.at("classes").as_array()) m.classes_.push_back(c.as_string());
  std::unique_ptr<Layer> net = make_layer(architecture.at("network"));
  m.net_.reset(dynamic_cast<Sequential*>(net.release()));
  FER_CHECK(m.net_, "model '", m.name_, "': the network must be a Sequential");
  Rng rng(seed);
  const Shape out = m.net_->build(m.input_shape_, rng);
  FER_CHECK(out.size() == 1 && out[0] == static_cast<int64_t>(m.classes_.size()), "model '",
            m.name_, "': the network outputs ", shape_str(out), " per example but there are ",
            m.classes_.size(), " classes");
  return m;
}

Model Model::load(const std::string& path) {
  const NpzArrays arrays = read_npz(path);
  FER_CHECK(arrays.strings.count("architecture"), path,
            ": not a fer model file (no 'architecture' entry)");
  Json architecture;
  try {
    architecture = Json::parse(arrays.strings.at("architecture"));
  } catch (const Error& e) {
    fail(path, ": bad architecture JSON: ", e.what());
  }
  Model m;
  try {
    m = from_architecture(architecture);
  } catch (const Error& e) {
    fail(path, ": ", e.what());
  }
  m.load_weights(arrays, path, /*skip_mismatched=*/false);
  return m;
}

int Model::load_weights(const NpzArrays& arrays, const std::string& source, bool skip_mismatched) {
  std::vector<std::string> missing, mismatched, unexpected;
  std::set<std::string> known;
  int loaded = 0;
  for (Parameter* p : parameters()) {
    known.insert(p->name);
    auto it = arrays.tensors.find(p->name);
    if (it == arrays.tensors.end()) {
      missing.push_back(p->name);
      continue;
    }
    if (it->second.shape() != p->value.shape()) {
      mismatched.push_back(p->name + " (file " + shape_str(it->second.shape()) + ", model " +
                           shape_str(p->value.shape()) + ")");
      continue;
    }
    p->value.copy_from(it->second);
    ++loaded;
  }
  for (const auto& kv : arrays.tensors)
    if (!known.count(kv.first) && kv.first.rfind("optimizer/", 0) != 0)
      unexpected.push_back(kv.first);
  const bool bad = !missing.empty() || !unexpected.empty() || !mismatched.empty();
  if (bad && !(skip_mismatched)) {
    std::string msg = source + ": weights do not fit model '" + name_ + "'";
    auto list = [&](const char* what, const std::vector<std::string>& names) {
      if (names.empty()) return;
      msg += std::string("; ") + what + " (" + std::to_string(names.size()) + "): ";
      for (size_t i = 0; i < names.size() && i < 12; ++i) msg += (i ? ", " : "") + names[i];
      if (names.size() > 12) msg += ", ...";
    };
    list("missing", missing);
    list("unexpected", unexpected);
    list("shape mismatch", mismatched);
    fail(msg);
  }
  return loaded;
}

void Model::save(const std::string& path,
                 const std::vector<std::pair<std::string, Tensor>>& extra_tensors,
                 const std::vector<std::pair<std::string, std::string>>& extra_strings,
                 bool float16) const {
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (Parameter* p : net_->parameters()) tensors.emplace_back(p->name, p->value);
  for (const auto& t : extra_tensors) tensors.push_back(t);
  Json arch = architecture_;
  arch["network"] = net_->config();
  std::vector<std::pair<std::string, std::string>> strings = {{"architecture", arch.dump(1)}};
  for (const auto& s : extra_strings) strings.push_back(s);
  write_npz(path, tensors, strings, float16);
}

int64_t Model::parameter_count(bool trainable_only) {
  int64_t n = 0;
  for (Parameter* p : parameters())
    if (!trainable_only || p->trainable) n += p->value.numel();
  return n;
}

void Model::check_input(const Tensor& x) const {
  if (x.ndim() != 4 || x.dim(1) != input_shape_[0] || x.dim(2) != input_shape_[1] ||
      x.dim(3) != input_shape_[2]) {
    fail("model '", name_, "': expected input [N, ", input_shape_[0], ", ", input_shape_[1], ", ",
         input_shape_[2], "], got ", shape_str(x.shape()));
  }
}

}  // namespace fer
