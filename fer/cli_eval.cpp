// `fer eval`, `fer predict`, `fer infer` and `fer summary`: using a trained model file.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>

#include "data/dataset.h"
#include "data/image.h"
#include "data/preprocess.h"
#include "data/tta.h"
#include "fer/architectures.h"
#include "fer/autograd.h"
#include "fer/cli.h"
#include "fer/cli_args.h"
#include "fer/cli_model_flags.h"
#include "fer/error.h"
#include "fer/evaluate.h"
#include "fer/model.h"
#include "fer/npy.h"
#include "fer/npz.h"
#include "fer/report.h"
#include "fer/roc.h"
#include "layers/loss.h"

namespace fer::cli {

namespace {

Model load_model_flag(const Args& args, const std::string& command) {
  FER_CHECK(args.has("model"), "fer ", command, ": --model FILE.npz is required");
  return Model::load(args.str("model"));
}

// The names Sequential::forward_until can stop at, in order: every layer on the main path,
// entering plain Sequentials but not Residuals (the same rule forward_until follows).
void collect_stop_points(Sequential& seq, std::vector<std::string>& out) {
  for (size_t i = 0; i < seq.size(); ++i) {
    Layer& child = seq.layer(i);
    out.push_back(child.name());
    auto* inner = dynamic_cast<Sequential*>(&child);
    if (inner && inner->type() == "Sequential") collect_stop_points(*inner, out);
  }
}

std::vector<std::string> stop_points(Sequential& net) {
  std::vector<std::string> names;
  collect_stop_points(net, names);
  return names;
}

// The models named by --model (several: an ensemble), or the shipped model.
std::vector<std::string> model_paths(const Args& args) {
  std::vector<std::string> paths = args.all("model");
  if (paths.empty()) paths.push_back(default_model_path());
  return paths;
}

std::vector<Model> load_models(const std::vector<std::string>& paths) {
  std::vector<Model> models;
  for (const std::string& p : paths) {
    models.push_back(Model::load(p));
    FER_CHECK(models.back().classes() == models.front().classes(), p, ": its classes differ from ",
              paths.front(), "'s; an ensemble needs models of the same classes");
  }
  return models;
}

std::vector<Model*> pointers(std::vector<Model>& models) {
  std::vector<Model*> out;
  for (Model& m : models) out.push_back(&m);
  return out;
}

}  // namespace

int eval(int argc, char** argv) {
  Args args("eval",
            {{"model", "FILE", "model file (.npz); repeat for an ensemble (probabilities "
                               "averaged); default: the shipped models/fer2013.npz"},
             {"data", "DIR|CSV", "class folders, or fer2013.csv"},
             {"usage", "SPLIT", "CSV split: PublicTest (default), PrivateTest or Training"},
             {"tta", "MODE", "test-time augmentation: none (default) | flip | tencrop"},
             {"batch", "B", "batch size (default 128)"},
             {"json", "", "print one JSON object instead of the report"},
             {"report", "OUT.html", "also write an HTML report (confusion matrices, per-class "
                                    "metrics, ROC curves, most confident mistakes)"},
             {"history", "CSV", "with --report: add the training curves of a run's history.csv"},
             {"skip-bad", "", "skip (and count) unreadable images and malformed rows"},
             {"expect-size", "HxW", "images must be this size (bad item otherwise) instead of resized"},
             {"threads", "N", "compute threads"}},
            argc, argv);
  if (args.help()) {
    std::printf("usage: fer eval [--model FILE.npz ...] --data DIR [--tta MODE] [--json] "
                "[--report OUT.html]\n\n%s",
                args.usage().c_str());
    return 0;
  }
  set_threads(args.integer("threads", 0));
  const std::string tta = args.str("tta", "none");
  data::check_tta(tta);
  FER_CHECK(args.has("data"), "fer eval: --data DIR (or fer2013.csv) is required");
  const std::vector<std::string> paths = model_paths(args);
  std::vector<Model> models = load_models(paths);
  const auto [expect_h, expect_w] = parse_size("expect-size", args.str("expect-size"));
  // One copy of the data per channel count the models want (gray, RGB).
  std::map<int, data::Dataset> by_channels;
  std::vector<const data::Dataset*> datasets;
  for (const Model& m : models) {
    const int c = data::Preprocess::from_json(m.preprocess()).channels;
    if (!by_channels.count(c))
      by_channels[c] = load_dataset_for(m, args.str("data"), args.str("usage", "PublicTest"),
                                        args.flag("skip-bad"), expect_h, expect_w);
    datasets.push_back(&by_channels[c]);
  }
  const data::Dataset& ds = *datasets.front();
  FER_CHECK(!args.has("history") || args.has("report"), "fer eval: --history goes with --report");
  // Read the history first: a typo in its path should not cost a whole evaluation.
  std::vector<HistoryRow> history;
  if (args.has("history")) history = read_history_csv(args.str("history"));
  const Evaluation ev = evaluate_ensemble(pointers(models), datasets, args.integer("batch", 128),
                                          /*keep_probabilities=*/true, /*workers=*/1, tta);
  const std::vector<std::string>& classes = models.front().classes();
  const std::vector<RocCurve> roc =
      roc_per_class(ev.probabilities, ds.labels, static_cast<int>(classes.size()));
  const std::string what = paths.size() == 1 ? paths.front()
                           : "ensemble of " + std::to_string(paths.size()) + " models";
  if (args.has("report")) {
    const EvaluationSection section =
        evaluation_section(ev, ds, args.str("data"), what + "; TTA: " + tta);
    write_report(args.str("report"), report_html("fer eval: " + what, history.empty() ? nullptr
                                                                                   : &history,
                                                 &section));
    std::fprintf(stderr, "wrote %s\n", args.str("report").c_str());
  }
  if (args.flag("json")) {
    Json j = ev.confusion.to_json(classes);
    // AUC per class (one vs rest; null where a class has no examples or no others).
    for (size_t k = 0; k < classes.size(); ++k)
      j["per_class"][classes[k]]["auc"] = std::isnan(roc[k].auc) ? Json() : Json(roc[k].auc);
    const double macro = macro_auc(roc);
    j["macro_auc"] = std::isnan(macro) ? Json() : Json(macro);
    j["loss"] = ev.loss;
    j["images"] = static_cast<int64_t>(ds.size());
    j["skipped"] = ds.skipped;
    j["tta"] = tta;
    if (paths.size() == 1) {
      j["model"] = paths.front();
    } else {
      Json list = Json::array();
      for (const std::string& p : paths) list.push_back(p);
      j["models"] = list;
    }
    j["data"] = args.str("data");
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s on %s: %zu images, TTA %s, accuracy %.4f, macro F1 %.4f, macro AUC %.4f, "
                "loss %.4f\n\n%s",
                what.c_str(), args.str("data").c_str(), ds.size(), tta.c_str(),
                ev.confusion.accuracy(), ev.confusion.macro_f1(), macro_auc(roc), ev.loss,
                ev.confusion.report(classes).c_str());
  }
  return 0;
}

int predict(int argc, char** argv) {
  Args args("predict",
            {{"model", "FILE", "model file (.npz); repeat for an ensemble; default: the "
                               "shipped models/fer2013.npz"},
             {"top", "K", "show the K most likely classes (default 1)"},
             {"tta", "MODE", "test-time augmentation: none (default) | flip | tencrop"},
             {"threads", "N", "compute threads"}},
            argc, argv);
  if (args.help()) {
    std::printf("usage: fer predict [--model FILE.npz ...] [--top K] [--tta MODE] IMAGE...\n\n%s",
                args.usage().c_str());
    return 0;
  }
  set_threads(args.integer("threads", 0));
  FER_CHECK(!args.positional().empty(), "fer predict: no image given");
  const std::string tta = args.str("tta", "none");
  data::check_tta(tta);
  std::vector<Model> models = load_models(model_paths(args));
  const std::vector<std::string>& classes = models.front().classes();
  const size_t n = args.positional().size(), num_classes = classes.size();
  std::vector<float> p(n * num_classes, 0.0f);
  for (Model& model : models) {
    // The images as an unlabelled dataset, decoded the way this model wants them.
    data::Dataset images;
    images.classes = classes;
    const int channels = data::Preprocess::from_json(model.preprocess()).channels;
    for (const std::string& path : args.positional()) {
      images.images.push_back(data::decode_image(path, channels));
      images.labels.push_back(0);
      images.sources.push_back(path);
    }
    const std::vector<float> q = class_probabilities(model, images, 64, tta, /*workers=*/0);
    for (size_t i = 0; i < p.size(); ++i) p[i] += q[i] / models.size();
  }
  const int k = std::max(1, std::min<int>(args.integer("top", 1), num_classes));
  for (size_t i = 0; i < n; ++i) {
    const std::string& path = args.positional()[i];
    const float* pi = p.data() + i * num_classes;
    std::vector<int> order(num_classes);
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](int a, int b) { return pi[a] > pi[b]; });
    if (k == 1) {  // one line per image: other tools parse "FILE: LABEL PROB"
      std::printf("%s: %s %.3f\n", path.c_str(), classes[order[0]].c_str(), pi[order[0]]);
      continue;
    }
    // One line per class: ImageNet labels ("tabby, tabby cat") are long and have commas.
    std::printf("%s: top %d of %zu classes\n", path.c_str(), k, num_classes);
    for (int j = 0; j < k; ++j)
      std::printf("  %d. %.4f  %s\n", j + 1, pi[order[j]], classes[order[j]].c_str());
  }
  return 0;
}

int infer(int argc, char** argv) {
  Args args("infer",
            {{"model", "FILE", "model file (.npz)"},
             {"input", "X.npy", "NHWC float32 batch, already preprocessed"},
             {"output", "Y.npy", "where to write the pre-softmax outputs [N, classes]"},
             {"layer", "NAME", "write this layer's output [N, ...] instead (e.g. the pooled "
                               "features); names as in the model's layer tree"},
             {"batch", "B", "images per forward pass (default 64)"},
             {"threads", "N", "compute threads"}},
            argc, argv);
  if (args.help()) {
    std::printf("usage: fer infer --model FILE.npz --input X.npy --output Y.npy [--layer NAME]\n\n%s",
                args.usage().c_str());
    return 0;
  }
  set_threads(args.integer("threads", 0));
  FER_CHECK(args.has("input") && args.has("output"), "fer infer: --input and --output are required");
  Model model = load_model_flag(args, "infer");
  const std::string layer = args.str("layer");
  if (!layer.empty()) {
    const std::vector<std::string> names = stop_points(model.net());
    if (std::find(names.begin(), names.end(), layer) == names.end()) {
      // A few names spread over the network, the last one included.
      std::string some;
      const size_t step = std::max<size_t>(1, names.size() / 6);
      for (size_t i = step - 1; i < names.size(); i += step)
        some += (some.empty() ? "" : ", ") + names[i];
      if (names.size() % step != 0) some += ", " + names.back();
      fail(args.str("model"), ": no layer '", layer, "' on the main path of model '", model.name(),
           "' (", names.size(), " layers, e.g. ", some, ")");
    }
  }
  const Tensor x = read_npy(args.str("input"));
  try {
    model.check_input(x);
  } catch (const Error& e) {
    fail(args.str("input"), ": ", e.what());
  }
  const int64_t n = x.dim(0), per = x.numel() / std::max<int64_t>(n, 1);
  const int64_t b = std::max(1, args.integer("batch", 64));
  // The output shape is known once the first batch has run (a layer's output may be 4-D).
  Tensor y;
  int64_t out_per = 0;
  NoGradGuard no_grad;
  for (int64_t start = 0; start < n; start += b) {
    const int64_t m = std::min(b, n - start);
    Tensor chunk({m, x.dim(1), x.dim(2), x.dim(3)});
    std::copy(x.data() + start * per, x.data() + (start + m) * per, chunk.data());
    bool found = true;
    const Tensor out = layer.empty() ? model.forward(chunk, false)
                                     : model.net().forward_until(chunk, layer, false, &found);
    FER_CHECK(found, "layer '", layer, "' was not reached");  // stop_points() said it would be
    if (!y.defined()) {
      Shape shape = out.shape();
      shape[0] = n;
      y = Tensor(shape);
      out_per = out.numel() / m;
    }
    std::copy(out.data(), out.data() + m * out_per, y.data() + start * out_per);
  }
  if (!y.defined()) {  // an empty batch: [0, classes] (or [0] for a layer never run)
    y = layer.empty() ? Tensor({0, static_cast<int64_t>(model.classes().size())}) : Tensor({0});
  }
  write_npy(args.str("output"), y);
  std::fprintf(stderr, "wrote %s %s\n", args.str("output").c_str(), shape_str(y.shape()).c_str());
  return 0;
}

int summary(int argc, char** argv) {
  std::vector<FlagSpec> flags = {{"model", "FILE|NAME", "model file (.npz) or architecture name"}};
  for (const FlagSpec& f : model_option_flags()) flags.push_back(f);
  Args args("summary", flags, argc, argv);
  if (args.help()) {
    std::printf("usage: fer summary --model FILE.npz | NAME [options]\n\n%s", args.usage().c_str());
    return 0;
  }
  FER_CHECK(args.has("model"), "fer summary: --model FILE.npz (or an architecture name) is required");
  const std::string what = args.str("model");
  const bool is_file = what.size() > 4 && what.compare(what.size() - 4, 4, ".npz") == 0;
  Json options = Json::object();
  read_model_options(args, options);
  FER_CHECK(!is_file || options.size() == 0, "fer summary: architecture options apply to a "
            "name, not to a model file");
  Model model = is_file ? Model::load(what) : Model::from_architecture(make_architecture(what, options));
  std::printf("model %s, input %s, classes %zu\n", model.name().c_str(),
              shape_str(model.input_shape()).c_str(), model.classes().size());
  for (Parameter* p : model.parameters())
    std::printf("  %-36s %-20s %s\n", p->name.c_str(), shape_str(p->value.shape()).c_str(),
                p->trainable ? "" : "(non-trainable)");
  std::printf("parameters: %lld (%lld trainable)\n", (long long)model.parameter_count(),
              (long long)model.parameter_count(true));
  return 0;
}

}  // namespace fer::cli
