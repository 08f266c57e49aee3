// Datasets: labelled images in memory, loaded from FER2013's two distributions.
//
//   1. Folder layout (Kaggle "msambare/fer2013"): root/<class>/*.jpg, one folder per class.
//   2. Kaggle's fer2013.csv: header `emotion,pixels,Usage`; `pixels` holds 48*48 = 2304
//      space-separated gray values; Usage is Training, PublicTest or PrivateTest.
//
// Both end up as the same Dataset with labels in fer2013_classes() order. The CSV numbers
// the classes differently (0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise,
// 6 neutral), so its labels are remapped on load -- a model trained on either source has
// the same output order.
//
// Bad input (an unreadable or corrupt image, an image of the wrong size, a malformed CSV
// row) is an error naming the file (or file:line) and the problem. With skip_bad the
// offending item is left out instead and counted, so one broken file in 28,709 does not
// stop a training run -- but it is still reported (Dataset::skipped_reasons).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/image.h"

namespace fer::data {

struct LoadOptions {
  bool skip_bad = false;  // skip (and count) bad items instead of throwing
  // Required image size; 0 = any size. For the CSV, whose rows carry no size, the pixel
  // count must equal expect_height * expect_width (48 x 48 when 0).
  int expect_height = 0, expect_width = 0;
  int channels = 1;  // decode to 1 (gray) or 3 (RGB) channels

  void check() const;  // throws fer::Error on channels other than 1/3 or a negative size
};

struct Dataset {
  std::vector<std::string> classes;   // fer2013_classes()
  std::vector<Image> images;
  std::vector<int> labels;            // index into classes
  std::vector<std::string> sources;   // file path, or "file.csv:line N"
  int64_t skipped = 0;                // bad items left out (skip_bad)
  std::vector<std::string> skipped_reasons;  // one message per skipped item

  std::vector<int64_t> class_counts() const;  // examples per class, classes.size() long
  size_t size() const { return images.size(); }
};

// root/<class>/*.{jpg,jpeg,png,bmp} (extensions in any case). All seven FER2013 class
// folders must exist and none may be empty; any other folder is an error (a typo such as
// "suprise" would otherwise silently drop a class). Hidden entries (".DS_Store",
// "._x.jpg") are ignored; any other file that is not an image is a bad item. Files are
// decoded in parallel (OpenMP) and kept in sorted path order, so the result does not
// depend on the file system or on thread timing.
Dataset load_image_folder(const std::string& root, const LoadOptions& options);

// Kaggle's fer2013.csv. `usage` keeps only rows whose Usage is Training, PublicTest or
// PrivateTest (also accepted: train, val, test); "" or "all" keeps every row. Columns may
// come in any order; the Usage column may be absent only when usage keeps every row.
// Malformed rows are errors "file.csv:line N: ..." (or skipped with skip_bad): wrong
// column count, unknown Usage, label not in 0..6, a pixel that is not an integer in
// 0..255, or a pixel count other than expect_height * expect_width.
Dataset load_fer2013_csv(const std::string& csv_path, const std::string& usage,
                         const LoadOptions& options);

// A directory -> load_image_folder (csv_usage is ignored); a .csv file ->
// load_fer2013_csv(path, csv_usage, options).
Dataset load_dataset(const std::string& path, const std::string& csv_usage,
                     const LoadOptions& options);

// At most per_class_max examples of each class, chosen at random (seeded) but kept in
// their original order. For quick runs and tests.
Dataset subset(const Dataset& dataset, int per_class_max, uint64_t seed);

// Cross-validation folds for `fer train --holdout-fold K/N` and `--cv-teacher`: the fold
// (0..folds-1) of every example. Stratified: each class's examples are shuffled with a
// fixed seed and dealt round-robin, so every fold holds 1/folds of every class (to within
// one example). A function of the labels and their order alone -- not of a run's --seed
// -- so the run that trains a fold's model and the run that asks it about that fold agree
// on which examples it never saw.
std::vector<int> cross_validation_folds(const Dataset& dataset, int folds);

// The examples i with keep[i] != 0, in their original order.
Dataset select(const Dataset& dataset, const std::vector<char>& keep);

// sklearn's class_weight="balanced": w_k = n_samples / (K * count_k), where K counts the
// classes that have examples. Rare classes weigh more, and the average weight over the
// training examples is exactly 1 (sum_k count_k * w_k = n_samples), so the loss keeps its
// scale. A class with no examples gets weight 0.
std::vector<float> balanced_class_weights(const std::vector<int64_t>& counts);

}  // namespace fer::data
