// Classification metrics from a confusion matrix: accuracy, per-class precision, recall
// and F1, macro F1, and a scikit-learn style text report.
//
// For class k, with counts[t][p] = examples of true class t predicted as p:
//   precision(k) = counts[k][k] / (column k total)  -- of the examples called k, how many are k
//   recall(k)    = counts[k][k] / (row k total)     -- of the examples that are k, how many found
//   f1(k)        = 2 * precision * recall / (precision + recall)
// A ratio whose denominator is 0 is defined as 0 (scikit-learn's zero_division=0).
// On an imbalanced data set such as FER2013 (few "disgust" faces) accuracy hides a
// class the model never predicts; macro F1, the plain mean of the per-class F1, does not.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fer/json.h"

namespace fer {

class ConfusionMatrix {
 public:
  explicit ConfusionMatrix(int num_classes);

  // Counts one example. Throws fer::Error when a label is outside [0, num_classes).
  void add(int truth, int predicted);
  // Adds another matrix's counts (same number of classes), e.g. from parallel workers.
  void merge(const ConfusionMatrix& other);
  void reset();

  int num_classes() const { return num_classes_; }
  int64_t count(int truth, int predicted) const;
  int64_t total() const { return total_; }

  double accuracy() const;  // correct / total (0 when empty)
  double precision(int k) const;
  double recall(int k) const;
  double f1(int k) const;
  int64_t support(int k) const;  // examples whose true class is k
  double macro_f1() const;       // mean of f1(k) over all classes
  double weighted_f1() const;    // mean of f1(k) weighted by support(k)

  // {"accuracy", "macro_f1", "per_class": {name: {"precision", "recall", "f1",
  //  "support"}}, "confusion_matrix": [[...], ...] (rows: true class), "classes": [...]}.
  // class_names must have num_classes entries, or be empty for "0", "1", ...
  Json to_json(const std::vector<std::string>& class_names = {}) const;
  // scikit-learn's classification_report layout (4 digits) followed by the matrix.
  std::string report(const std::vector<std::string>& class_names = {}) const;

 private:
  void check_class(const char* what, int k) const;
  std::vector<std::string> names_or_indices(const std::vector<std::string>& names) const;

  int num_classes_;
  std::vector<int64_t> counts_;  // row-major [truth][predicted]
  int64_t total_ = 0;
};

}  // namespace fer
