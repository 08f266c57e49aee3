// One-vs-rest ROC curves and the area under them (AUC), per class.
//
// For class k every example gets the score probabilities[i][k] and is a "positive" when
// its label is k. Lowering a threshold from +inf to -inf admits examples in order of
// score; after each distinct score we record
//   fpr = negatives admitted / all negatives,  tpr = positives admitted / all positives.
// Examples with equal scores are admitted together (one threshold), so a tie between a
// positive and a negative counts as half a correct ordering -- the same AUC as
// scikit-learn's roc_auc_score and as the Mann-Whitney U statistic / (P * N).
//
// Why per class: accuracy and F1 judge only the argmax; AUC judges how well the
// probabilities rank a class's faces above the others', threshold by threshold.
#pragma once

#include <vector>

namespace fer {

struct RocCurve {
  std::vector<double> fpr, tpr;  // from (0,0) to (1,1), one point per distinct score threshold
  double auc = 0;                // trapezoid area; NaN when undefined (see below)
};

// Class k vs the rest. probabilities[i] must have more than k scores, labels[i] >= 0.
// A class with no positives or no negatives has no ROC curve: fpr and tpr stay empty and
// auc is NaN (scikit-learn raises; the report shows "n/a"). Throws fer::Error on mismatched
// sizes or a non-finite score, naming the example.
RocCurve roc_one_vs_rest(const std::vector<std::vector<float>>& probabilities,
                         const std::vector<int>& labels, int k);

// One curve per class; every row must have exactly num_classes scores and every label
// must lie in [0, num_classes).
std::vector<RocCurve> roc_per_class(const std::vector<std::vector<float>>& probabilities,
                                    const std::vector<int>& labels, int num_classes);

// Mean AUC over the classes whose AUC is defined (NaN when none is).
double macro_auc(const std::vector<RocCurve>& curves);

}  // namespace fer
