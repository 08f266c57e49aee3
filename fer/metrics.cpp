// Confusion matrix and the metrics derived from it. See fer/metrics.h.
#include "fer/metrics.h"

#include <algorithm>
#include <cstdio>

#include "fer/error.h"

namespace fer {

namespace {
// a / b, or 0 when b is 0 (scikit-learn's zero_division=0).
double ratio(double a, double b) { return b == 0 ? 0.0 : a / b; }
}  // namespace

ConfusionMatrix::ConfusionMatrix(int num_classes)
    : num_classes_(num_classes),
      counts_(static_cast<size_t>(std::max(num_classes, 0)) * std::max(num_classes, 0), 0) {
  FER_CHECK(num_classes > 0, "ConfusionMatrix: num_classes must be > 0, got ", num_classes);
}

void ConfusionMatrix::check_class(const char* what, int k) const {
  FER_CHECK(k >= 0 && k < num_classes_, "ConfusionMatrix: ", what, " class ", k,
            " is outside [0, ", num_classes_, ")");
}

void ConfusionMatrix::add(int truth, int predicted) {
  check_class("true", truth);
  check_class("predicted", predicted);
  ++counts_[static_cast<size_t>(truth) * num_classes_ + predicted];
  ++total_;
}

void ConfusionMatrix::merge(const ConfusionMatrix& other) {
  FER_CHECK(other.num_classes_ == num_classes_, "ConfusionMatrix: cannot merge ",
            other.num_classes_, " classes into ", num_classes_);
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  total_ += other.total_;
}

void ConfusionMatrix::reset() {
  std::fill(counts_.begin(), counts_.end(), 0);
  total_ = 0;
}

int64_t ConfusionMatrix::count(int truth, int predicted) const {
  check_class("true", truth);
  check_class("predicted", predicted);
  return counts_[static_cast<size_t>(truth) * num_classes_ + predicted];
}

double ConfusionMatrix::accuracy() const {
  int64_t correct = 0;
  for (int k = 0; k < num_classes_; ++k) correct += count(k, k);
  return ratio(double(correct), double(total_));
}

int64_t ConfusionMatrix::support(int k) const {
  check_class("", k);
  int64_t row = 0;  // row k: every example whose true class is k
  for (int p = 0; p < num_classes_; ++p) row += count(k, p);
  return row;
}

double ConfusionMatrix::precision(int k) const {
  check_class("", k);
  int64_t column = 0;  // column k: every example predicted as k
  for (int t = 0; t < num_classes_; ++t) column += count(t, k);
  return ratio(double(count(k, k)), double(column));
}

double ConfusionMatrix::recall(int k) const {
  return ratio(double(count(k, k)), double(support(k)));
}

double ConfusionMatrix::f1(int k) const {
  // The harmonic mean: high only when both are high.
  const double p = precision(k), r = recall(k);
  return ratio(2 * p * r, p + r);
}

double ConfusionMatrix::macro_f1() const {
  double sum = 0;
  for (int k = 0; k < num_classes_; ++k) sum += f1(k);
  return sum / num_classes_;
}

double ConfusionMatrix::weighted_f1() const {
  double sum = 0;
  for (int k = 0; k < num_classes_; ++k) sum += f1(k) * double(support(k));
  return ratio(sum, double(total_));
}

std::vector<std::string> ConfusionMatrix::names_or_indices(
    const std::vector<std::string>& names) const {
  if (names.empty()) {
    std::vector<std::string> out;
    for (int k = 0; k < num_classes_; ++k) out.push_back(std::to_string(k));
    return out;
  }
  FER_CHECK(static_cast<int>(names.size()) == num_classes_, "ConfusionMatrix: got ",
            names.size(), " class names for ", num_classes_, " classes");
  return names;
}

Json ConfusionMatrix::to_json(const std::vector<std::string>& class_names) const {
  const std::vector<std::string> names = names_or_indices(class_names);
  Json j = Json::object();
  j["accuracy"] = accuracy();
  j["macro_f1"] = macro_f1();
  Json per_class = Json::object();
  for (int k = 0; k < num_classes_; ++k) {
    Json c = Json::object();
    c["precision"] = precision(k);
    c["recall"] = recall(k);
    c["f1"] = f1(k);
    c["support"] = support(k);
    per_class[names[k]] = c;
  }
  j["per_class"] = per_class;
  Json matrix = Json::array();
  for (int t = 0; t < num_classes_; ++t) {
    Json row = Json::array();
    for (int p = 0; p < num_classes_; ++p) row.push_back(Json(count(t, p)));
    matrix.push_back(row);
  }
  j["confusion_matrix"] = matrix;
  j["classes"] = Json::array_of(names);
  return j;
}

std::string ConfusionMatrix::report(const std::vector<std::string>& class_names) const {
  const std::vector<std::string> names = names_or_indices(class_names);
  // scikit-learn's layout: a name column as wide as the longest name (at least as wide
  // as "weighted avg"), then four right-aligned columns of width 9.
  int width = static_cast<int>(std::string("weighted avg").size());
  for (const std::string& n : names) width = std::max(width, static_cast<int>(n.size()));

  std::string out;
  char line[512];
  auto row = [&](const std::string& name, double p, double r, double f, int64_t support) {
    std::snprintf(line, sizeof line, "%*s  %9.4f %9.4f %9.4f %9lld\n", width, name.c_str(), p,
                  r, f, static_cast<long long>(support));
    out += line;
  };
  std::snprintf(line, sizeof line, "%*s  %9s %9s %9s %9s\n\n", width, "", "precision", "recall",
                "f1-score", "support");
  out += line;
  double macro_p = 0, macro_r = 0, weighted_p = 0, weighted_r = 0;
  for (int k = 0; k < num_classes_; ++k) {
    row(names[k], precision(k), recall(k), f1(k), support(k));
    macro_p += precision(k) / num_classes_;
    macro_r += recall(k) / num_classes_;
    weighted_p += precision(k) * double(support(k));
    weighted_r += recall(k) * double(support(k));
  }
  out += "\n";
  std::snprintf(line, sizeof line, "%*s  %9s %9s %9.4f %9lld\n", width, "accuracy", "", "",
                accuracy(), static_cast<long long>(total_));
  out += line;
  row("macro avg", macro_p, macro_r, macro_f1(), total_);
  row("weighted avg", ratio(weighted_p, double(total_)), ratio(weighted_r, double(total_)),
      weighted_f1(), total_);

  // The matrix itself: rows are the true classes, columns the predictions.
  out += "\nconfusion matrix (rows: true class, columns: predicted class)\n";
  int cell = 6;
  for (const std::string& n : names) cell = std::max(cell, static_cast<int>(n.size()));
  for (int64_t c : counts_)
    cell = std::max(cell, static_cast<int>(std::to_string(c).size()));
  std::snprintf(line, sizeof line, "%*s", width, "");
  out += line;
  for (const std::string& n : names) {
    std::snprintf(line, sizeof line, " %*s", cell, n.c_str());
    out += line;
  }
  out += "\n";
  for (int t = 0; t < num_classes_; ++t) {
    std::snprintf(line, sizeof line, "%*s", width, names[t].c_str());
    out += line;
    for (int p = 0; p < num_classes_; ++p) {
      std::snprintf(line, sizeof line, " %*lld", cell, static_cast<long long>(count(t, p)));
      out += line;
    }
    out += "\n";
  }
  return out;
}

}  // namespace fer
