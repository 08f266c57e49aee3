#include "optim/ema.h"

#include <algorithm>

#include "fer/error.h"
#include "kernels/parallel_chunks.h"

namespace fer::optim {

namespace {
const std::string kPrefix = "optimizer/ema/";
}

WeightEma::WeightEma(std::vector<Parameter*> params, float decay)
    : params_(std::move(params)), decay_(decay) {
  FER_CHECK(decay >= 0 && decay < 1, "EMA decay must be in [0, 1), got ", decay);
  averages_.reserve(params_.size());
  for (const Parameter* p : params_) averages_.push_back(p->value.clone());
}

float WeightEma::decay_at(int64_t t) const {
  return std::min(decay_, static_cast<float>(double(1 + t) / double(10 + t)));
}

void WeightEma::update(int64_t t) {
  const float d = decay_at(t), e = 1 - d;
  for (size_t i = 0; i < params_.size(); ++i) {
    const float* w = params_[i]->value.data();
    float* a = averages_[i].data();
    // Large tensors split over the threads, as the optimizer's own updates are.
    kernels::for_each_chunk(averages_[i].numel(), int64_t{1} << 15,
                            [w, a, d, e](int64_t begin, int64_t end) {
#pragma omp simd
                              for (int64_t j = begin; j < end; ++j) a[j] = d * a[j] + e * w[j];
                            });
  }
}

void WeightEma::swap() {
  for (size_t i = 0; i < params_.size(); ++i) {
    float* w = params_[i]->value.data();
    float* a = averages_[i].data();
    std::swap_ranges(w, w + averages_[i].numel(), a);
  }
}

std::vector<std::pair<std::string, Tensor>> WeightEma::state_tensors() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (size_t i = 0; i < params_.size(); ++i)
    out.emplace_back(kPrefix + params_[i]->name, averages_[i]);
  return out;
}

void WeightEma::load_state(const std::map<std::string, Tensor>& tensors,
                           const std::string& source) {
  // Every average is checked before any is copied: a failed load changes nothing.
  std::vector<const Tensor*> found;
  for (size_t i = 0; i < params_.size(); ++i) {
    const std::string key = kPrefix + params_[i]->name;
    const auto it = tensors.find(key);
    FER_CHECK(it != tensors.end(), source, ": no weight average '", key,
              "' (was the run started without --ema?)");
    FER_CHECK(it->second.shape() == averages_[i].shape(), source, ": weight average '", key,
              "' has shape ", shape_str(it->second.shape()), ", the parameter ",
              shape_str(averages_[i].shape()));
    found.push_back(&it->second);
  }
  for (size_t i = 0; i < params_.size(); ++i)
    std::copy(found[i]->data(), found[i]->data() + found[i]->numel(), averages_[i].data());
}

}  // namespace fer::optim
