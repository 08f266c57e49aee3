#include "layers/loss.h"

#include <cmath>

#include "fer/autograd.h"
#include "fer/error.h"
#include "kernels/softmax.h"

namespace fer {

namespace {

// Checks the arguments of the losses below; returns the class weights' pointer (nullptr
// for none).
const float* check_loss_arguments(const Tensor& logits, const std::vector<int>& labels,
                                  float label_smoothing, const std::vector<float>& class_weights) {
  FER_CHECK(logits.defined() && logits.ndim() == 2,
            "softmax_cross_entropy: expected logits [N, K], got ",
            logits.defined() ? shape_str(logits.shape()) : "an undefined tensor");
  const int64_t N = logits.dim(0);
  const int64_t K = logits.dim(1);
  FER_CHECK(N > 0 && K > 0, "softmax_cross_entropy: empty logits ", shape_str(logits.shape()));
  FER_CHECK(static_cast<int64_t>(labels.size()) == N, "softmax_cross_entropy: ", labels.size(),
            " labels for logits ", shape_str(logits.shape()), " (expected ", N, ")");
  for (int64_t i = 0; i < N; ++i)
    FER_CHECK(labels[i] >= 0 && labels[i] < K, "softmax_cross_entropy: labels[", i, "] = ",
              labels[i], " is out of range for ", K, " classes");
  FER_CHECK(label_smoothing >= 0.f && label_smoothing < 1.f,
            "softmax_cross_entropy: label_smoothing must be in [0, 1), got ", label_smoothing);
  const float* weights = nullptr;
  if (!class_weights.empty()) {
    FER_CHECK(static_cast<int64_t>(class_weights.size()) == K, "softmax_cross_entropy: ",
              class_weights.size(), " class weights for ", K, " classes");
    for (size_t k = 0; k < class_weights.size(); ++k)
      FER_CHECK(class_weights[k] >= 0.f && std::isfinite(class_weights[k]),
                "softmax_cross_entropy: class_weights[", k, "] = ", class_weights[k],
                " (weights must be finite and >= 0)");
    double label_weight = 0;
    for (int y : labels) label_weight += class_weights[y];
    FER_CHECK(label_weight > 0, "softmax_cross_entropy: the weights of the batch's labels sum "
              "to zero, so the weighted mean is undefined");
    weights = class_weights.data();
  }
  return weights;
}

// The loss value as a scalar Tensor whose backward adds g * dlogits into the logits.
// The gradient costs almost nothing extra inside the fused kernel, so it is computed
// with the loss (when wanted) and the backward only scales it.
Tensor loss_with_gradient(const Tensor& logits, double loss, bool record, const Tensor& dlogits) {
  Tape& tape = Tape::current();
  Tensor out = Tensor::scalar(static_cast<float>(loss));
  if (record) {
    out.set_requires_grad(true);
    tape.record([logits, out, dlogits]() {
      const float g = out.grad()[0];
      float* dz = logits.grad();
      const float* d = dlogits.data();
      for (int64_t i = 0; i < logits.numel(); ++i) dz[i] += g * d[i];
    });
  }
  return out;
}

}  // namespace

Tensor softmax_cross_entropy(const Tensor& logits, const std::vector<int>& labels,
                             float label_smoothing, const std::vector<float>& class_weights) {
  const float* weights = check_loss_arguments(logits, labels, label_smoothing, class_weights);
  const bool record = Tape::current().wants({&logits});
  Tensor dlogits = record ? Tensor(logits.shape()) : Tensor();
  const double loss = kernels::softmax_cross_entropy(logits.data(), labels.data(), logits.dim(0),
                                                     logits.dim(1), label_smoothing, weights,
                                                     record ? dlogits.data() : nullptr);
  return loss_with_gradient(logits, loss, record, dlogits);
}

Tensor mixup_cross_entropy(const Tensor& logits, const std::vector<int>& labels_a,
                           const std::vector<int>& labels_b, float lambda, float label_smoothing,
                           const std::vector<float>& class_weights) {
  const float* weights = check_loss_arguments(logits, labels_a, label_smoothing, class_weights);
  check_loss_arguments(logits, labels_b, label_smoothing, class_weights);
  FER_CHECK(lambda >= 0.f && lambda <= 1.f, "mixup_cross_entropy: lambda must be in [0, 1], got ",
            lambda);
  const int64_t N = logits.dim(0), K = logits.dim(1);
  const bool record = Tape::current().wants({&logits});
  Tensor dlogits = record ? Tensor(logits.shape()) : Tensor();
  Tensor db = record ? Tensor(logits.shape()) : Tensor();
  const double la = kernels::softmax_cross_entropy(logits.data(), labels_a.data(), N, K,
                                                   label_smoothing, weights,
                                                   record ? dlogits.data() : nullptr);
  const double lb = kernels::softmax_cross_entropy(logits.data(), labels_b.data(), N, K,
                                                   label_smoothing, weights,
                                                   record ? db.data() : nullptr);
  if (record) {
    float* d = dlogits.data();
    const float* e = db.data();
    for (int64_t i = 0; i < dlogits.numel(); ++i) d[i] = lambda * d[i] + (1 - lambda) * e[i];
  }
  return loss_with_gradient(logits, lambda * la + (1 - lambda) * lb, record, dlogits);
}

Tensor soft_target_cross_entropy(const Tensor& logits, const std::vector<float>& targets) {
  FER_CHECK(logits.defined() && logits.ndim() == 2 && logits.numel() > 0,
            "soft_target_cross_entropy: expected logits [N, K], got ",
            logits.defined() ? shape_str(logits.shape()) : "an undefined tensor");
  const int64_t N = logits.dim(0), K = logits.dim(1);
  FER_CHECK(static_cast<int64_t>(targets.size()) == N * K, "soft_target_cross_entropy: ",
            targets.size(), " target values for logits ", shape_str(logits.shape()),
            " (expected ", N * K, ")");
  for (int64_t i = 0; i < N; ++i) {
    double mass = 0;
    bool nonnegative = true;
    for (int64_t k = 0; k < K; ++k) {
      mass += targets[i * K + k];
      nonnegative = nonnegative && targets[i * K + k] >= 0;
    }
    FER_CHECK(nonnegative && std::fabs(mass - 1) <= 1e-3, "soft_target_cross_entropy: target row ",
              i, " is not a distribution (sum ", mass, nonnegative ? "" : ", a negative entry", ")");
  }
  const bool record = Tape::current().wants({&logits});
  Tensor dlogits = record ? Tensor(logits.shape()) : Tensor();
  const double loss = kernels::softmax_cross_entropy_soft(logits.data(), targets.data(), N, K,
                                                          record ? dlogits.data() : nullptr);
  return loss_with_gradient(logits, loss, record, dlogits);
}

std::vector<float> distillation_targets(const std::vector<int>& labels, const float* teacher,
                                        int64_t K, float alpha, float label_smoothing) {
  FER_CHECK(alpha >= 0.f && alpha <= 1.f, "distillation_targets: alpha must be in [0, 1], got ",
            alpha);
  FER_CHECK(label_smoothing >= 0.f && label_smoothing < 1.f,
            "distillation_targets: label_smoothing must be in [0, 1), got ", label_smoothing);
  const int64_t N = static_cast<int64_t>(labels.size());
  std::vector<float> t(N * K);
  for (int64_t i = 0; i < N; ++i) {
    FER_CHECK(labels[i] >= 0 && labels[i] < K, "distillation_targets: labels[", i, "] = ",
              labels[i], " is out of range for ", K, " classes");
    for (int64_t k = 0; k < K; ++k) {
      const float hard = (k == labels[i] ? 1 - label_smoothing : 0.f) + label_smoothing / K;
      t[i * K + k] = (1 - alpha) * hard + alpha * teacher[i * K + k];
    }
  }
  return t;
}

std::vector<float> softmax_probabilities(const Tensor& logits) {
  FER_CHECK(logits.defined() && logits.ndim() == 2 && logits.numel() > 0,
            "softmax_probabilities: expected logits [N, K], got ",
            logits.defined() ? shape_str(logits.shape()) : "an undefined tensor");
  std::vector<float> p(logits.numel());
  kernels::softmax_rows(logits.data(), logits.dim(0), logits.dim(1), p.data());
  return p;
}

}  // namespace fer
