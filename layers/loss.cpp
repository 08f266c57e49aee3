#include "layers/loss.h"

#include <cmath>

#include "fer/autograd.h"
#include "fer/error.h"
#include "kernels/softmax.h"

namespace fer {

Tensor softmax_cross_entropy(const Tensor& logits, const std::vector<int>& labels,
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

  Tape& tape = Tape::current();
  const bool record = tape.wants({&logits});
  // The gradient costs almost nothing extra inside the fused kernel, so it is computed
  // now (when wanted) and the backward only scales it by the loss's incoming gradient.
  Tensor dlogits = record ? Tensor(logits.shape()) : Tensor();
  const double loss = kernels::softmax_cross_entropy(logits.data(), labels.data(), N, K,
                                                     label_smoothing, weights,
                                                     record ? dlogits.data() : nullptr);
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

std::vector<float> softmax_probabilities(const Tensor& logits) {
  FER_CHECK(logits.defined() && logits.ndim() == 2 && logits.numel() > 0,
            "softmax_probabilities: expected logits [N, K], got ",
            logits.defined() ? shape_str(logits.shape()) : "an undefined tensor");
  std::vector<float> p(logits.numel());
  kernels::softmax_rows(logits.data(), logits.dim(0), logits.dim(1), p.data());
  return p;
}

}  // namespace fer
