// One-vs-rest ROC curves and AUC. See fer/roc.h.
#include "fer/roc.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "fer/error.h"

namespace fer {

namespace {

void check_inputs(const std::vector<std::vector<float>>& probabilities,
                  const std::vector<int>& labels) {
  FER_CHECK(probabilities.size() == labels.size(), "roc: ", probabilities.size(),
            " rows of probabilities but ", labels.size(), " labels");
}

}  // namespace

RocCurve roc_one_vs_rest(const std::vector<std::vector<float>>& probabilities,
                         const std::vector<int>& labels, int k) {
  check_inputs(probabilities, labels);
  FER_CHECK(k >= 0, "roc: class ", k, " is negative");
  const size_t n = labels.size();
  size_t positives = 0;
  for (size_t i = 0; i < n; ++i) {
    FER_CHECK(static_cast<int>(probabilities[i].size()) > k, "roc: example ", i, " has ",
              probabilities[i].size(), " scores, no score for class ", k);
    FER_CHECK(std::isfinite(probabilities[i][k]), "roc: example ", i, " has a non-finite score ",
              probabilities[i][k], " for class ", k);
    FER_CHECK(labels[i] >= 0, "roc: example ", i, " has a negative label ", labels[i]);
    if (labels[i] == k) ++positives;
  }
  const size_t negatives = n - positives;

  RocCurve curve;
  if (positives == 0 || negatives == 0) {
    curve.auc = std::numeric_limits<double>::quiet_NaN();
    return curve;
  }

  // Highest score first; the stable sort only makes the order of equal scores
  // deterministic -- they are admitted together anyway.
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return probabilities[a][k] > probabilities[b][k];
  });

  curve.fpr.push_back(0);
  curve.tpr.push_back(0);
  size_t tp = 0, fp = 0;
  for (size_t i = 0; i < n;) {
    const float threshold = probabilities[order[i]][k];
    for (; i < n && probabilities[order[i]][k] == threshold; ++i)
      (labels[order[i]] == k ? tp : fp)++;
    curve.fpr.push_back(double(fp) / double(negatives));
    curve.tpr.push_back(double(tp) / double(positives));
  }
  // Trapezoids: a threshold that admits positives and negatives at once adds a diagonal
  // segment, i.e. half credit for the tied pairs.
  double area = 0;
  for (size_t j = 1; j < curve.fpr.size(); ++j)
    area += (curve.fpr[j] - curve.fpr[j - 1]) * (curve.tpr[j] + curve.tpr[j - 1]) / 2;
  curve.auc = area;
  return curve;
}

std::vector<RocCurve> roc_per_class(const std::vector<std::vector<float>>& probabilities,
                                    const std::vector<int>& labels, int num_classes) {
  check_inputs(probabilities, labels);
  FER_CHECK(num_classes > 0, "roc: num_classes must be > 0, got ", num_classes);
  for (size_t i = 0; i < labels.size(); ++i) {
    FER_CHECK(static_cast<int>(probabilities[i].size()) == num_classes, "roc: example ", i,
              " has ", probabilities[i].size(), " scores, expected ", num_classes);
    FER_CHECK(labels[i] >= 0 && labels[i] < num_classes, "roc: example ", i, " has label ",
              labels[i], ", outside [0, ", num_classes, ")");
  }
  std::vector<RocCurve> curves;
  curves.reserve(num_classes);
  for (int k = 0; k < num_classes; ++k)
    curves.push_back(roc_one_vs_rest(probabilities, labels, k));
  return curves;
}

double macro_auc(const std::vector<RocCurve>& curves) {
  double sum = 0;
  int defined = 0;
  for (const RocCurve& c : curves) {
    if (std::isnan(c.auc)) continue;
    sum += c.auc;
    ++defined;
  }
  return defined == 0 ? std::numeric_limits<double>::quiet_NaN() : sum / defined;
}

}  // namespace fer
