// A run's report as one self-contained HTML page: training curves from history.csv and an
// evaluation (confusion matrices, per-class metrics, ROC curves, the most confident
// mistakes). Everything is inline -- CSS, SVG charts (fer/svg_chart.h), images as base64
// PNG data: URIs -- so the file can be mailed, archived or opened offline and never
// fetches anything.
//
// Every number drawn carries its exact value for tests and for readers of the source:
// the summary spans have ids ("accuracy", "macro-f1", "macro-auc", "loss", "images") and
// data-value; per-class table cells have ids "<metric>-<class>" (precision, recall, f1,
// support, auc; the class name with characters other than [A-Za-z0-9_-] replaced by '_')
// and data-value; heatmap cells are <text class="cell" data-row data-col>; ROC curves are
// <polyline class="roc" data-class="name" data-auc="0.9312">. Shown values use 4 decimals
// like `fer eval`'s report; data-value holds "%.9g", as `fer eval --json` writes numbers.
#pragma once

#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/image.h"
#include "fer/evaluate.h"
#include "fer/metrics.h"
#include "fer/roc.h"

namespace fer {

struct HistoryRow {
  int epoch = 0;
  double loss = 0, accuracy = 0, val_loss = 0, val_accuracy = 0, lr = 0;
};

// Reads a run's history.csv (header: epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds,
// images_per_s; columns are found by name, extra columns are ignored, blank lines
// skipped). Throws fer::Error naming the file (and file:line for a bad row).
std::vector<HistoryRow> read_history_csv(const std::string& path);

struct ReportFace {  // one misclassified validation face
  data::Image image;  // as loaded (gray or RGB, any size; drawn scaled up, pixelated)
  std::string truth, predicted;
  double confidence = 0;  // probability of the predicted class
  std::string source;     // file path (shown as a tooltip)
};

struct EvaluationSection {
  std::string data;  // dataset path, shown
  std::vector<std::string> classes;
  ConfusionMatrix confusion{1};
  double loss = 0;
  std::vector<RocCurve> roc;              // one per class (empty: the ROC part is omitted)
  std::vector<ReportFace> misclassified;  // most confident mistakes first (caller chooses)
  std::string note;                       // e.g. "TTA: tencrop", shown under the title
};

// The most confidently misclassified examples: indices i whose argmax (the first maximum,
// as fer::evaluate predicts) differs from labels[i], sorted by that predicted class's
// probability, descending (ties: lower index first); at most `count`.
std::vector<int> most_confident_mistakes(const std::vector<std::vector<float>>& probabilities,
                                         const std::vector<int>& labels, int count);

// The evaluation part of a report from `evaluation` (run with keep_probabilities) on
// `dataset`: ROC curves from the probabilities and the `faces` most confident mistakes.
EvaluationSection evaluation_section(const Evaluation& evaluation, const data::Dataset& dataset,
                                     const std::string& data_path, const std::string& note,
                                     int faces = 24);

// A whole page: the title, then the training section when `history` is given (accuracy,
// loss and learning-rate charts per epoch), then the evaluation section when `evaluation`
// is given (summary line, confusion matrices of counts and row-normalized, per-class
// table with macro and weighted averages, ROC chart, grid of misclassified faces).
// Throws fer::Error when the evaluation's class names, confusion matrix and ROC curves
// disagree on the number of classes, or an image cannot be encoded.
std::string report_html(const std::string& title, const std::vector<HistoryRow>* history,
                        const EvaluationSection* evaluation);

// Writes the page atomically (fer/atomic_file.h).
void write_report(const std::string& path, const std::string& html);

// Exposed for tests: standard base64 (RFC 4648, with '=' padding) and an image as PNG bytes.
std::string base64(const std::vector<uint8_t>& bytes);
std::vector<uint8_t> encode_png(const data::Image& image, const std::string& name);

}  // namespace fer
