// Dataset helpers: option checks, class counts, dispatch on the dataset's form, subsets
// and class weights. The loaders themselves are in image_folder.cpp and fer2013_csv.cpp.
#include "data/dataset.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <system_error>

#include "fer/error.h"
#include "fer/rng.h"

namespace fer::data {

namespace fs = std::filesystem;

void LoadOptions::check() const {
  FER_CHECK(channels == 1 || channels == 3, "load options: channels must be 1 or 3, got ",
            channels);
  FER_CHECK(expect_height >= 0 && expect_width >= 0,
            "load options: expected image size must be >= 0 (0 = any), got ", expect_height,
            "x", expect_width);
}

std::vector<int64_t> Dataset::class_counts() const {
  std::vector<int64_t> counts(classes.size(), 0);
  for (int label : labels) {
    FER_CHECK(label >= 0 && label < static_cast<int>(classes.size()), "dataset: label ", label,
              " is outside the ", classes.size(), " classes");
    ++counts[label];
  }
  return counts;
}

Dataset load_dataset(const std::string& path, const std::string& csv_usage,
                     const LoadOptions& options) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (!fs::exists(status)) fail("dataset '", path, "' does not exist");
  if (fs::is_directory(status)) return load_image_folder(path, options);
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (fs::is_regular_file(status) && ext == ".csv")
    return load_fer2013_csv(path, csv_usage, options);
  fail("dataset '", path,
       "': expected a folder of class folders (root/<class>/*.jpg) or a fer2013 .csv file");
}

namespace {
// Each class's example indices, each list shuffled (Fisher-Yates, seeded).
std::vector<std::vector<size_t>> shuffled_by_class(const Dataset& dataset, uint64_t seed) {
  std::vector<std::vector<size_t>> by_class(dataset.classes.size());
  for (size_t i = 0; i < dataset.size(); ++i) by_class.at(dataset.labels[i]).push_back(i);
  Rng rng(seed);
  for (std::vector<size_t>& indices : by_class)
    for (size_t i = indices.size(); i > 1; --i) std::swap(indices[i - 1], indices[rng.below(i)]);
  return by_class;
}
}  // namespace

Dataset subset(const Dataset& dataset, int per_class_max, uint64_t seed) {
  FER_CHECK(per_class_max > 0, "subset: per_class_max must be > 0, got ", per_class_max);
  // Keep the first per_class_max of each class's shuffled indices.
  std::vector<char> keep(dataset.size(), 0);
  for (const std::vector<size_t>& indices : shuffled_by_class(dataset, seed)) {
    const size_t take = std::min(indices.size(), static_cast<size_t>(per_class_max));
    for (size_t k = 0; k < take; ++k) keep[indices[k]] = 1;
  }
  return select(dataset, keep);
}

std::vector<int> cross_validation_folds(const Dataset& dataset, int folds) {
  FER_CHECK(folds >= 2, "cross-validation needs at least 2 folds, got ", folds);
  // A fixed seed: the folds must not move with a run's --seed.
  std::vector<int> fold(dataset.size(), 0);
  for (const std::vector<size_t>& indices : shuffled_by_class(dataset, 0xF01D5EEDull))
    for (size_t k = 0; k < indices.size(); ++k) fold[indices[k]] = static_cast<int>(k % folds);
  return fold;
}

Dataset select(const Dataset& dataset, const std::vector<char>& keep) {
  FER_CHECK(keep.size() == dataset.size(), "select: ", keep.size(), " flags for ",
            dataset.size(), " examples");
  // Walk in the original order so the selection is ordered like its source.
  Dataset out;
  out.classes = dataset.classes;
  out.skipped = dataset.skipped;
  out.skipped_reasons = dataset.skipped_reasons;
  for (size_t i = 0; i < dataset.size(); ++i) {
    if (!keep[i]) continue;
    out.images.push_back(dataset.images[i]);
    out.labels.push_back(dataset.labels[i]);
    out.sources.push_back(dataset.sources[i]);
  }
  return out;
}

std::vector<float> balanced_class_weights(const std::vector<int64_t>& counts) {
  int64_t total = 0, present = 0;
  for (int64_t c : counts) {
    FER_CHECK(c >= 0, "balanced_class_weights: negative class count ", c);
    total += c;
    present += c > 0;
  }
  std::vector<float> weights(counts.size(), 0.f);
  for (size_t k = 0; k < counts.size(); ++k)
    if (counts[k] > 0)
      weights[k] = static_cast<float>(static_cast<double>(total) /
                                      (static_cast<double>(present) * counts[k]));
  return weights;
}

}  // namespace fer::data
