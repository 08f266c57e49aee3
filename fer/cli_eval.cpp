// `fer eval`, `fer predict`, `fer infer` and `fer summary`: using a trained model file.
#include <algorithm>
#include <cstdio>
#include <numeric>

#include "data/dataset.h"
#include "data/image.h"
#include "data/preprocess.h"
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

}  // namespace

int eval(int argc, char** argv) {
  Args args("eval",
            {{"model", "FILE", "model file (.npz)"},
             {"data", "DIR|CSV", "class folders, or fer2013.csv"},
             {"usage", "SPLIT", "CSV split: PublicTest (default), PrivateTest or Training"},
             {"batch", "B", "batch size (default 128)"},
             {"json", "", "print one JSON object instead of the report"},
             {"skip-bad", "", "skip (and count) unreadable images and malformed rows"},
             {"expect-size", "HxW", "images must be this size (bad item otherwise) instead of resized"},
             {"threads", "N", "compute threads"}},
            argc, argv);
  if (args.help()) {
    std::printf("usage: fer eval --model FILE.npz --data DIR [--json]\n\n%s", args.usage().c_str());
    return 0;
  }
  set_threads(args.integer("threads", 0));
  Model model = load_model_flag(args, "eval");
  FER_CHECK(args.has("data"), "fer eval: --data DIR (or fer2013.csv) is required");
  const auto [expect_h, expect_w] = parse_size("expect-size", args.str("expect-size"));
  const data::Dataset ds = load_dataset_for(model, args.str("data"), args.str("usage", "PublicTest"),
                                            args.flag("skip-bad"), expect_h, expect_w);
  const Evaluation ev = evaluate(model, ds, args.integer("batch", 128));
  if (args.flag("json")) {
    Json j = ev.confusion.to_json(model.classes());
    j["loss"] = ev.loss;
    j["images"] = static_cast<int64_t>(ds.size());
    j["skipped"] = ds.skipped;
    j["model"] = args.str("model");
    j["data"] = args.str("data");
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s: %zu images, accuracy %.4f, macro F1 %.4f, loss %.4f\n\n%s",
                args.str("data").c_str(), ds.size(), ev.confusion.accuracy(),
                ev.confusion.macro_f1(), ev.loss, ev.confusion.report(model.classes()).c_str());
  }
  return 0;
}

int predict(int argc, char** argv) {
  Args args("predict",
            {{"model", "FILE", "model file (.npz)"},
             {"top", "K", "show the K most likely classes (default 1)"},
             {"threads", "N", "compute threads"}},
            argc, argv);
  if (args.help()) {
    std::printf("usage: fer predict --model FILE.npz [--top K] IMAGE...\n\n%s", args.usage().c_str());
    return 0;
  }
  set_threads(args.integer("threads", 0));
  FER_CHECK(!args.positional().empty(), "fer predict: no image given");
  Model model = load_model_flag(args, "predict");
  const data::Preprocess pre = data::Preprocess::from_json(model.preprocess());
  const int k = std::max(1, std::min<int>(args.integer("top", 1), model.classes().size()));
  const Shape& in = model.input_shape();
  for (const std::string& path : args.positional()) {
    const data::Image img = data::decode_image(path, pre.channels);
    Tensor x({1, in[0], in[1], in[2]});
    data::preprocess(img, pre, x.data());
    NoGradGuard no_grad;
    const Tensor logits = model.forward(x, false);
    const std::vector<float> p = softmax_probabilities(logits);
    std::vector<int> order(p.size());
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](int a, int b) { return p[a] > p[b]; });
    if (k == 1) {  // one line per image: other tools parse "FILE: LABEL PROB"
      std::printf("%s: %s %.3f\n", path.c_str(), model.classes()[order[0]].c_str(), p[order[0]]);
      continue;
    }
    // One line per class: ImageNet labels ("tabby, tabby cat") are long and have commas.
    std::printf("%s: top %d of %zu classes\n", path.c_str(), k, p.size());
    for (int i = 0; i < k; ++i)
      std::printf("  %d. %.4f  %s\n", i + 1, p[order[i]], model.classes()[order[i]].c_str());
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
