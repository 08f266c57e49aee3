// The training loss: softmax cross-entropy on logits, fused (one kernel computes
// log-softmax, the loss and its gradient, which is both faster and more accurate than
// a Softmax layer followed by a log).
#pragma once

#include <vector>

#include "fer/tensor.h"

namespace fer {

// Mean softmax cross-entropy of logits [N, K] against integer labels (N of them, each in
// [0, K)), as a scalar Tensor with autograd into the logits.
//   label_smoothing eps in [0, 1): the target is (1-eps)*onehot + eps/K (Keras, PyTorch).
//   class_weights (empty, or K values >= 0): PyTorch's CrossEntropyLoss(weight=...)
//     semantics, reduction 'mean' -- the weighted sum of per-example losses divided by the
//     sum of the labels' weights. See kernels/softmax.h for the exact formula with both.
// Throws fer::Error on a wrong rank or size, a label out of range (naming its index and
// value), or label weights that sum to zero.
Tensor softmax_cross_entropy(const Tensor& logits, const std::vector<int>& labels,
                             float label_smoothing = 0,
                             const std::vector<float>& class_weights = {});

// Mixup's loss (Zhang et al. 2018): the network saw lambda * x_a + (1 - lambda) * x_b, and
// is asked for the same blend of the labels. Cross-entropy is linear in the target, so this
// is lambda * CE(logits, labels_a) + (1 - lambda) * CE(logits, labels_b), each term with
// the smoothing and weights of softmax_cross_entropy above; lambda in [0, 1].
Tensor mixup_cross_entropy(const Tensor& logits, const std::vector<int>& labels_a,
                           const std::vector<int>& labels_b, float lambda,
                           float label_smoothing = 0, const std::vector<float>& class_weights = {});

// Cross-entropy of logits [N, K] against soft targets (N*K values row by row, each row
// >= 0 and summing to 1 within 1e-3), as a scalar Tensor with autograd into the logits:
// -(1/N) sum_i sum_k t[i,k] log softmax(z[i])[k]. Throws fer::Error on a size mismatch or
// a row that is not a distribution (naming the row).
Tensor soft_target_cross_entropy(const Tensor& logits, const std::vector<float>& targets);

// Knowledge distillation's targets (Hinton et al. 2015, at temperature 1): row i is
//   (1 - alpha) * [(1 - eps) * onehot(labels[i]) + eps / K] + alpha * teacher[i]
// -- the label (smoothed as in softmax_cross_entropy) blended with a teacher's class
// probabilities teacher[N*K] (e.g. an ensemble's average). alpha in [0, 1].
std::vector<float> distillation_targets(const std::vector<int>& labels, const float* teacher,
                                        int64_t K, float alpha, float label_smoothing);

// Row softmax of logits [N, K] (probabilities for evaluation), N*K values row by row.
// No autograd.
std::vector<float> softmax_probabilities(const Tensor& logits);

}  // namespace fer
