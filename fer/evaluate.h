// Running a model over a labelled dataset: predictions, loss and the confusion matrix.
// Shared by `fer eval` (single models, test-time augmentation, ensembles) and the
// validation pass of `fer train`.
#pragma once

#include <string>
#include <vector>

#include "data/dataset.h"
#include "fer/metrics.h"
#include "fer/model.h"

namespace fer {

struct Evaluation {
  ConfusionMatrix confusion{1};
  double loss = 0;  // mean cross-entropy (no smoothing, no class weights)
  std::vector<std::vector<float>> probabilities;  // per example, when kept
  std::vector<int> predictions;
  double seconds = 0;
};

// Runs in inference mode (no tape, BatchNorm on running statistics, no dropout) with the
// model's own preprocessing, in batches of `batch` prepared by `workers` threads.
// `tta` is a data/tta.h mode (none | flip | tencrop): the probabilities of the views are
// averaged, and the loss is the cross-entropy of that average.
Evaluation evaluate(Model& model, const data::Dataset& dataset, int batch = 128,
                    bool keep_probabilities = false, int workers = 1,
                    const std::string& tta = "none");

// An ensemble: every model runs on its own copy of the data (datasets[i], loaded for
// models[i], same examples in the same order), and the class probabilities are averaged
// over models (after each model's own TTA average). One model gives evaluate()'s result.
Evaluation evaluate_ensemble(const std::vector<Model*>& models,
                             const std::vector<const data::Dataset*>& datasets, int batch = 128,
                             bool keep_probabilities = false, int workers = 1,
                             const std::string& tta = "none");

// The class probabilities [N * K] of one model, row by row, averaged over the TTA views.
// If `loss` is given it receives the mean cross-entropy of those probabilities (for
// tta none computed from the logits, exactly as training computes it).
std::vector<float> class_probabilities(Model& model, const data::Dataset& dataset, int batch,
                                       const std::string& tta, int workers,
                                       double* loss = nullptr);

// Loads a dataset for a model: grayscale or RGB decoding as its preprocessing says.
// expect_height/width > 0 make an image of another size an error (or, with skip_bad, a
// skipped item) instead of being resized.
data::Dataset load_dataset_for(const Model& model, const std::string& path,
                               const std::string& csv_usage, bool skip_bad,
                               int expect_height = 0, int expect_width = 0);

}  // namespace fer
