#include "fer/evaluate.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "data/batch_loader.h"
#include "data/preprocess.h"
#include "data/tta.h"
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

namespace {

// Keras clips probabilities to [1e-7, 1 - 1e-7] before the log; so do we, so that one
// confidently wrong example does not make the mean infinite.
double cross_entropy_of(const float* p, int label) {
  return -std::log(std::max(static_cast<double>(p[label]), 1e-7));
}

// tta none: batches from the BatchLoader's worker threads, loss from the logits.
std::vector<float> single_view_probabilities(Model& model, const data::Dataset& dataset,
                                             int batch, int workers, double* loss) {
  const size_t k = model.classes().size();
  std::vector<float> probs;
  probs.reserve(dataset.size() * k);
  const data::Preprocess pre = data::Preprocess::from_json(model.preprocess());
  data::BatchLoader loader(dataset, pre, data::Augment(), batch, /*shuffle=*/false, /*seed=*/0,
                           workers, /*drop_last=*/false);
  loader.start_epoch(0);
  data::Batch b;
  double loss_sum = 0;
  while (loader.next(b)) {
    const Tensor logits = model.forward(b.images, /*training=*/false);
    loss_sum += softmax_cross_entropy(logits, b.labels).item() * b.labels.size();
    const std::vector<float> p = softmax_probabilities(logits);
    probs.insert(probs.end(), p.begin(), p.end());
  }
  if (loss) *loss = dataset.size() ? loss_sum / dataset.size() : 0;
  return probs;
}

// TTA: every image's views go through the model in the same forward pass, about `batch`
// views per pass; the views' probabilities are averaged.
std::vector<float> multi_view_probabilities(Model& model, const data::Dataset& dataset, int batch,
                                            const std::string& tta, double* loss) {
  const int k = static_cast<int>(model.classes().size());
  const int views = data::tta_view_count(tta);
  const data::Preprocess pre = data::Preprocess::from_json(model.preprocess());
  const Shape& in = model.input_shape();
  const int64_t per_view = in[0] * in[1] * in[2];
  const int64_t n = static_cast<int64_t>(dataset.size());
  const int64_t images_per_pass = std::max(1, batch / views);
  std::vector<float> probs(n * k, 0.0f);
  for (int64_t start = 0; start < n; start += images_per_pass) {
    const int64_t m = std::min(images_per_pass, n - start);
    Tensor x({m * views, in[0], in[1], in[2]});
    // Rendering is independent per image; fer::Error from a bad image escapes the
    // parallel region as a message, not an abort.
    std::string error;
#pragma omp parallel for schedule(dynamic)
    for (int64_t i = 0; i < m; ++i) {
      try {
        const data::Image& img = dataset.images[start + i];
        const std::vector<data::Geometry> g = data::tta_views(img, pre, tta);
        for (int v = 0; v < views; ++v)
          data::render(img, g[v], pre, x.data() + (i * views + v) * per_view);
      } catch (const std::exception& e) {
#pragma omp critical
        error = dataset.sources[start + i] + ": " + e.what();
      }
    }
    FER_CHECK(error.empty(), error);
    const std::vector<float> p = softmax_probabilities(model.forward(x, /*training=*/false));
    for (int64_t i = 0; i < m; ++i)
      for (int v = 0; v < views; ++v)
        for (int c = 0; c < k; ++c) probs[(start + i) * k + c] += p[(i * views + v) * k + c] / views;
  }
  if (loss) {
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += cross_entropy_of(&probs[i * k], dataset.labels[i]);
    *loss = n ? sum / n : 0;
  }
  return probs;
}

// Confusion matrix and predictions from probabilities [N * K].
Evaluation evaluation_from(const std::vector<float>& probs, const std::vector<int>& labels, int k,
                           bool keep_probabilities) {
  Evaluation ev;
  ev.confusion = ConfusionMatrix(k);
  for (size_t i = 0; i < labels.size(); ++i) {
    const float* p = probs.data() + i * k;
    const int best = static_cast<int>(std::max_element(p, p + k) - p);  // first maximum
    ev.confusion.add(labels[i], best);
    ev.predictions.push_back(best);
    if (keep_probabilities) ev.probabilities.emplace_back(p, p + k);
  }
  return ev;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

std::vector<float> class_probabilities(Model& model, const data::Dataset& dataset, int batch,
                                       const std::string& tta, int workers, double* loss) {
  data::check_tta(tta);
  FER_CHECK(batch > 0, "evaluate: batch must be positive, got ", batch);
  NoGradGuard no_grad;  // inference: nothing recorded, no activation kept alive
  return tta == "none" ? single_view_probabilities(model, dataset, batch, workers, loss)
                       : multi_view_probabilities(model, dataset, batch, tta, loss);
}

Evaluation evaluate(Model& model, const data::Dataset& dataset, int batch, bool keep_probabilities,
                    int workers, const std::string& tta) {
  const auto start = std::chrono::steady_clock::now();
  double loss = 0;
  const std::vector<float> probs = class_probabilities(model, dataset, batch, tta, workers, &loss);
  Evaluation ev = evaluation_from(probs, dataset.labels, static_cast<int>(model.classes().size()),
                                  keep_probabilities);
  ev.loss = loss;
  ev.seconds = seconds_since(start);
  return ev;
}

Evaluation evaluate_ensemble(const std::vector<Model*>& models,
                             const std::vector<const data::Dataset*>& datasets, int batch,
                             bool keep_probabilities, int workers, const std::string& tta) {
  FER_CHECK(!models.empty() && models.size() == datasets.size(),
            "evaluate_ensemble: one dataset per model is needed (", models.size(), " models, ",
            datasets.size(), " datasets)");
  if (models.size() == 1)
    return evaluate(*models[0], *datasets[0], batch, keep_probabilities, workers, tta);
  const auto start = std::chrono::steady_clock::now();
  const std::vector<std::string>& classes = models[0]->classes();
  const std::vector<int>& labels = datasets[0]->labels;
  const int k = static_cast<int>(classes.size());
  std::vector<float> mean(labels.size() * k, 0.0f);
  for (size_t m = 0; m < models.size(); ++m) {
    FER_CHECK(models[m]->classes() == classes, "ensemble: model ", m + 1, " ('",
              models[m]->name(), "') has other classes than model 1 ('", models[0]->name(), "')");
    FER_CHECK(datasets[m]->labels == labels, "ensemble: the data loaded for model ", m + 1,
              " differs from model 1's (other examples or order)");
    const std::vector<float> p = class_probabilities(*models[m], *datasets[m], batch, tta, workers);
    for (size_t i = 0; i < mean.size(); ++i) mean[i] += p[i] / models.size();
  }
  Evaluation ev = evaluation_from(mean, labels, k, keep_probabilities);
  double sum = 0;
  for (size_t i = 0; i < labels.size(); ++i) sum += cross_entropy_of(&mean[i * k], labels[i]);
  ev.loss = labels.empty() ? 0 : sum / labels.size();
  ev.seconds = seconds_since(start);
  return ev;
}

}  // namespace fer
