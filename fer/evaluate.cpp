#include "fer/evaluate.h"

#include <chrono>

#include "data/batch_loader.h"
#include "data/preprocess.h"
#include "fer/autograd.h"
#include "fer/error.h"
#include "layers/loss.h"

namespace fer {

data::Dataset load_dataset_for(const Model& model, const std::string& path,
                               const std::string& csv_usage, bool skip_bad, int expect_height,
                               int expect_width) {
  data::LoadOptions options;
  options.skip_bad = skip_bad;
  options.expect_height = expect_height;
  options.expect_width = expect_width;
  options.channels = data::Preprocess::from_json(model.preprocess()).channels == 3 ? 3 : 1;
  data::Dataset ds = data::load_dataset(path, csv_usage, options);
  FER_CHECK(ds.classes == model.classes(), path, ": its classes do not match model '",
            model.name(), "'");
  return ds;
}

Evaluation evaluate(Model& model, const data::Dataset& dataset, int batch, bool keep_probabilities,
                    int workers) {
  const auto start = std::chrono::steady_clock::now();
  const int k = static_cast<int>(model.classes().size());
  Evaluation ev;
  ev.confusion = ConfusionMatrix(k);
  const data::Preprocess pre = data::Preprocess::from_json(model.preprocess());
  data::BatchLoader loader(dataset, pre, data::Augment(), batch, /*shuffle=*/false, /*seed=*/0,
                           workers, /*drop_last=*/false);
  loader.start_epoch(0);
  data::Batch b;
  double loss_sum = 0;
  NoGradGuard no_grad;  // inference: nothing recorded, no activation kept alive
  while (loader.next(b)) {
    const Tensor logits = model.forward(b.images, /*training=*/false);
    loss_sum += softmax_cross_entropy(logits, b.labels).item() * b.labels.size();
    const std::vector<float> probs = softmax_probabilities(logits);
    for (size_t i = 0; i < b.labels.size(); ++i) {
      const float* p = probs.data() + i * k;
      int best = 0;
      for (int c = 1; c < k; ++c)
        if (p[c] > p[best]) best = c;
      ev.confusion.add(b.labels[i], best);
      ev.predictions.push_back(best);
      if (keep_probabilities) ev.probabilities.emplace_back(p, p + k);
    }
  }
  ev.loss = dataset.size() ? loss_sum / dataset.size() : 0;
  ev.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return ev;
}

}  // namespace fer
