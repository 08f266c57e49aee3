// Importing ImageNet weights (tools/convert_weights.py), checked against the frameworks that
// produced them:
//  - the TF.js MobileNet V1 in ../shared/weights gives TensorFlow.js's own logits and pooled
//    features (../shared/reference) to 1e-4, and names the photos in ../shared/images;
//  - a Keras .h5 (save_weights and full-model layouts) made from a fer model's arrays
//    converts back to exactly those arrays and outputs;
//  - torchvision's mobilenet_v2 gives PyTorch's logits;
//  - damaged or wrong files are one-line errors with exit status 1, from the converter and
//    from `fer predict`, never a crash or a Python traceback.
// Python runs as /usr/bin/python3; a test skips, saying why, when numpy / h5py / torch or
// ../shared is not there.
#include <gtest/gtest.h>
#include <unistd.h>

#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "fer/autograd.h"
#include "fer/json.h"
#include "fer/model.h"
#include "fer/npy.h"
#include "fer/npz.h"
#include "fer/rng.h"
#include "tests/command.h"

using namespace fer;

namespace {

using fer::testing::CommandResult;
using fer::testing::fer_binary;
using fer::testing::kPython;
using fer::testing::python_has;

// `cmd`, stdout and stderr together.
CommandResult shell(const std::string& cmd) { return fer::testing::run_command(cmd + " 2>&1"); }

CommandResult fer_cmd(const std::string& args) { return fer::testing::run_fer(args); }

// The converter checks what it writes by loading it with this build's fer.
CommandResult convert(const std::string& args) {
  return shell("FER_BINARY='" + fer_binary() + "' " + kPython + " " + FER_SOURCE_DIR +
               "/tools/convert_weights.py " + args);
}

#define REQUIRE_PYTHON(modules)                                                              \
  if (!python_has(modules))                                                                  \
  GTEST_SKIP() << kPython << " with " << modules << " is not available: skipping"

std::string shared(const std::string& rel) { return std::string(FER_SOURCE_DIR) + "/../shared/" + rel; }

const std::string kTfjsWeights = "weights/mobilenet_v1_0.75_224_tfjs";
const std::string kReference = "reference/mobilenet_v1_0.75_224_synthetic_sin.json";

bool exists(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0;
}

// One directory per process: ctest runs each test as its own process, two at a time, and
// two tests share the converted TF.js model (tfjs_model below), so a fixed name let one
// test's `rm -rf` delete the file the other was reading (an intermittent failure).
// The directories are removed when the process ends.
struct WorkDirs {
  std::vector<std::string> made;
  ~WorkDirs() {
    for (const auto& d : made) std::system(("rm -rf '" + d + "'").c_str());
  }
};
WorkDirs work_dirs;

std::string work_dir(const std::string& name) {
  const std::string d = std::string(FER_BINARY_DIR) + "/imagenet_import_" + name + "_" +
                        std::to_string(::getpid());
  std::system(("rm -rf '" + d + "' && mkdir -p '" + d + "'").c_str());
  work_dirs.made.push_back(d);
  return d;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// Writes `script` to DIR/NAME and runs it with `args`; fails the test on a non-zero exit.
void run_python(const std::string& dir, const std::string& name, const std::string& script,
                const std::string& args) {
  write_file(dir + "/" + name, script);
  const CommandResult r = shell(std::string(kPython) + " " + dir + "/" + name + " " + args);
  ASSERT_EQ(r.status, 0) << name << " " << args << ":\n" << r.out;
}

int count_lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

// An error as a user meets it: exit status 1, one line, no traceback, and the line names
// the problem (every one of `needles`).
void expect_one_line_error(const CommandResult& r, const std::vector<std::string>& needles,
                           const std::string& what) {
  EXPECT_EQ(r.status, 1) << what << ":\n" << r.out;
  EXPECT_EQ(count_lines(r.out), 1) << what << ":\n" << r.out;
  EXPECT_EQ(r.out.find("Traceback"), std::string::npos) << what << ":\n" << r.out;
  for (const std::string& n : needles)
    EXPECT_NE(r.out.find(n), std::string::npos) << what << ": no '" << n << "' in:\n" << r.out;
}

// max |a - b| / max |b|: the error relative to the output's scale.
double relative_error(const Tensor& a, const Tensor& b) {
  double diff = 0, scale = 1e-12;
  for (int64_t i = 0; i < a.numel(); ++i) {
    diff = std::max(diff, double(std::fabs(a.data()[i] - b.data()[i])));
    scale = std::max(scale, double(std::fabs(b.data()[i])));
  }
  return diff / scale;
}

double max_abs_diff(const Tensor& a, const Json& want) {
  double d = 0;
  for (size_t i = 0; i < want.size(); ++i)
    d = std::max(d, std::fabs(double(a.data()[i]) - want[i].as_number()));
  return d;
}

// The small model the Keras and bad-file tests start from: MobileNet V2 (alpha 0.35, 32x32)
// with its classifier, 17 classes, every parameter and statistic random.
Model random_mobilenet_v2() {
  Json options = Json::object();
  options["alpha"] = 0.35;
  options["size"] = 32;
  options["include_top"] = true;
  options["num_classes"] = 17;
  Json arch = Json::object();
  arch["name"] = "mobilenet_v2";
  arch["options"] = options;
  Model m = Model::from_architecture(arch, 5);
  Rng rng(11);
  for (Parameter* p : m.parameters()) {
    const std::string& n = p->name;
    const bool variance = n.find("moving_variance") != std::string::npos;
    const bool gamma = n.find("/gamma") != std::string::npos;
    for (int64_t i = 0; i < p->value.numel(); ++i) {
      float& v = p->value.data()[i];
      v = variance ? float(rng.uniform(0.5, 2.0)) : gamma ? float(rng.uniform(0.5, 1.5))
        : n.find("kernel") != std::string::npos ? v * float(rng.uniform(0.5, 1.5))
        : float(rng.uniform(-0.3, 0.3));  // beta, moving_mean, bias
    }
  }
  return m;
}

Tensor random_input(const Shape& shape, uint64_t seed) {
  Rng rng(seed);
  Tensor x(shape);
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = float(rng.uniform(-1, 1));
  return x;
}

// Every array of `model` is in `path`, with the same shape and exactly the same values,
// and the file has nothing else.
void expect_same_arrays(Model& model, const std::string& path) {
  const NpzArrays got = read_npz(path);
  EXPECT_EQ(got.tensors.size(), model.parameters().size()) << path;
  for (Parameter* p : model.parameters()) {
    ASSERT_TRUE(got.tensors.count(p->name)) << path << ": no " << p->name;
    EXPECT_EQ(got.tensors.at(p->name).shape(), p->value.shape()) << p->name;
    EXPECT_EQ(got.tensors.at(p->name).to_vector(), p->value.to_vector()) << p->name;
  }
}

// `fer infer` on x through the model file; returns what it wrote.
Tensor infer(const std::string& model, const std::string& dir, const Tensor& x,
             const std::string& flags = "") {
  write_npy(dir + "/x.npy", x);
  const CommandResult r = fer_cmd("infer --model " + model + " --input " + dir + "/x.npy --output " +
                                  dir + "/y.npy " + flags);
  EXPECT_EQ(r.status, 0) << r.out;
  return r.status == 0 ? read_npy(dir + "/y.npy") : Tensor();
}

// The shared TF.js MobileNet converted once per process (two tests use it); "" on failure.
const std::string& tfjs_model() {
  static std::string path;
  static bool tried = false;
  if (!tried) {
    tried = true;
    const std::string out = work_dir("tfjs") + "/mobilenet_v1_0.75_224.npz";
    const CommandResult r = convert("--from tfjs " + shared(kTfjsWeights) + " " + out);
    if (r.status == 0) path = out;
    else ADD_FAILURE() << "converting " << shared(kTfjsWeights) << ":\n" << r.out;
  }
  return path;
}

// The labels of `fer predict --top K` for one image, best first (its multi-line format:
// "FILE: top K of N classes" then "  1. 0.5885  Egyptian cat" ...).
std::vector<std::string> top_labels(const std::string& out, const std::string& image,
                                    std::vector<double>* probs) {
  std::vector<std::string> labels;
  std::istringstream lines(out);
  std::string line;
  bool in_block = false;
  while (std::getline(lines, line)) {
    if (line.rfind(image + ": top ", 0) == 0) {
      in_block = true;
      continue;
    }
    int rank = 0;
    double p = 0;
    int used = 0;
    if (in_block && std::sscanf(line.c_str(), " %d. %lf %n", &rank, &p, &used) == 2 && used > 0 &&
        rank == static_cast<int>(labels.size()) + 1) {
      labels.push_back(line.substr(used));
      probs->push_back(p);
    } else if (in_block) {
      break;
    }
  }
  return labels;
}

// Builds Keras .h5 files from a fer model file's arrays, in the two layouts Keras writes:
// model.save_weights() (root attribute "layer_names", per-layer "weight_names"
// "Conv1/kernel:0", weightless layers listed with none) and model.save() (the same under
// "model_weights", plus "model_config"; newer Keras names V2's classifier "predictions").
const char* kMakeKerasH5 = R"PY(
import json, sys
import h5py, numpy as np
src, weights_path, full_path = sys.argv[1:4]
z = np.load(src)
layers = {}
for k in z.files:
    if k != "architecture":
        layer, what = k.split("/")
        layers.setdefault(layer, []).append((what, z[k]))

def fill(root, rename):
    names = ["input_1"] + list(layers) + ["out_relu"]
    for name in names:
        kname = rename.get(name, name)
        g = root.create_group(kname)
        wnames = []
        for what, a in layers.get(name, []):
            wnames.append(f"{kname}/{what}:0")
            g.create_dataset(wnames[-1], data=a)
        g.attrs["weight_names"] = np.array([w.encode() for w in wnames], dtype="S")
    root.attrs["layer_names"] = np.array([rename.get(n, n).encode() for n in names], dtype="S")
    root.attrs["backend"] = b"tensorflow"
    root.attrs["keras_version"] = b"2.4.0"

with h5py.File(weights_path, "w") as f:
    fill(f, {})
with h5py.File(full_path, "w") as f:
    f.attrs["model_config"] = json.dumps({"class_name": "Functional", "config": {"layers": [
        {"class_name": "InputLayer", "config": {"name": "input_1", "batch_input_shape": [None, 32, 32, 3]}},
        {"class_name": "BatchNormalization", "config": {"name": "bn_Conv1", "epsilon": 0.001}}]}})
    fill(f.create_group("model_weights"), {"Logits": "predictions"})
)PY";

// torchvision's mobilenet_v2 with random weights and BatchNorm statistics, in eval mode:
// its state dict, the whole pickled model, a random NHWC input and PyTorch's logits.
const char* kMakeTorch = R"PY(
import sys
import numpy as np, torch, torchvision
d = sys.argv[1]
torch.manual_seed(0)
m = torchvision.models.mobilenet_v2(weights=None)
with torch.no_grad():
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.weight.uniform_(0.5, 1.5); mod.bias.uniform_(-0.3, 0.3)
            mod.running_mean.uniform_(-0.2, 0.2); mod.running_var.uniform_(0.5, 2.0)
        if isinstance(mod, torch.nn.Linear):  # larger than torchvision's init: logits follow the features
            mod.weight.normal_(0, 0.05); mod.bias.uniform_(-0.05, 0.05)
m.eval()
torch.save(m.state_dict(), f"{d}/mobilenet_v2.pth")
torch.save(m, f"{d}/mobilenet_v2_model.pth")
x = np.random.RandomState(1).uniform(-2, 2, (2, 64, 64, 3)).astype(np.float32)
np.save(f"{d}/x.npy", x)
with torch.no_grad():
    np.save(f"{d}/y_torch.npy", m(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy())
)PY";

}  // namespace

TEST(ImagenetImport, TfjsMobileNetV1MatchesTensorFlowJs) {
  if (!exists(shared(kReference)) || !exists(shared(kTfjsWeights + "/model.json")))
    GTEST_SKIP() << "../shared/" << kReference << " or " << kTfjsWeights << " is not present: skipping";
  REQUIRE_PYTHON("numpy");
  const std::string model = tfjs_model();
  ASSERT_FALSE(model.empty());
  const std::string dir = work_dir("reference");
  const Json ref = Json::parse(read_file(shared(kReference)));

  // The reference's input, by its formula (float64 sine, rounded to float32).
  write_file(dir + "/make_x.py",
             "import sys, numpy as np\n"
             "h, w, c = np.meshgrid(np.arange(224), np.arange(224), np.arange(3), indexing='ij')\n"
             "np.save(sys.argv[1], np.sin(0.05 * h + 0.09 * w + 1.3 * c).astype(np.float32)[None])\n");
  const CommandResult made = shell(std::string(kPython) + " " + dir + "/make_x.py " + dir + "/x.npy");
  ASSERT_EQ(made.status, 0) << made.out;
  auto run_infer = [&](const std::string& out, const std::string& flags) {
    const CommandResult r = fer_cmd("infer --model " + model + " --input " + dir + "/x.npy --output " +
                                    dir + "/" + out + " " + flags);
    EXPECT_EQ(r.status, 0) << r.out;
    return r.status == 0 ? read_npy(dir + "/" + out) : Tensor({0});
  };
  const Tensor logits = run_infer("logits.npy", "");
  const Tensor gap = run_infer("gap.npy", "--layer global_average_pooling2d_1");
  const Tensor map = run_infer("map.npy", "--layer conv_pw_13_relu");
  ASSERT_EQ(logits.shape(), (Shape{1, 1000}));
  ASSERT_EQ(gap.shape(), (Shape{1, 768}));
  ASSERT_EQ(map.shape(), (Shape{1, 7, 7, 768}));  // a layer's output keeps its shape

  const double logit_err = max_abs_diff(logits, ref.at("logits"));
  const double gap_err = max_abs_diff(gap, ref.at("gap_features"));
  std::printf("TF.js reference: max |logit diff| %.3g, max |pooled feature diff| %.3g\n", logit_err,
              gap_err);
  EXPECT_LT(logit_err, 1e-4);
  EXPECT_LT(gap_err, 1e-4);

  std::vector<int> order(1000);
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + 5, order.end(),
                    [&](int a, int b) { return logits.data()[a] > logits.data()[b]; });
  for (int i = 0; i < 5; ++i) EXPECT_EQ(order[i], ref.at("top5")[i].at("index").as_int()) << "rank " << i + 1;

  // The pooled features are the mean of the last feature map over its 7x7 positions.
  double pool_err = 0;
  for (int c = 0; c < 768; ++c) {
    double sum = 0;
    for (int p = 0; p < 49; ++p) sum += map.data()[p * 768 + c];
    pool_err = std::max(pool_err, std::fabs(sum / 49 - gap.data()[c]));
  }
  EXPECT_LT(pool_err, 1e-5);

  // A layer that is not there: one line naming it and some that are.
  const CommandResult bad = fer_cmd("infer --model " + model + " --input " + dir + "/x.npy --output " +
                                    dir + "/none.npy --layer conv_pw_99");
  expect_one_line_error(bad, {"no layer 'conv_pw_99'", "conv_", "reshape_2"}, "--layer conv_pw_99");
  EXPECT_FALSE(exists(dir + "/none.npy"));
}

TEST(ImagenetImport, PredictNamesThePhotos) {
  const std::string cat = shared("images/imagenet/chelsea.png");
  const std::string coffee = shared("images/imagenet/coffee.png");
  if (!exists(cat) || !exists(coffee) || !exists(shared(kTfjsWeights + "/model.json")))
    GTEST_SKIP() << "../shared/images/imagenet or ../shared/" << kTfjsWeights << " is not present: skipping";
  REQUIRE_PYTHON("numpy");
  const std::string model = tfjs_model();
  ASSERT_FALSE(model.empty());
  // The file carries Keras's MobileNet preprocessing (RGB, x / 127.5 - 1): no flags needed.
  EXPECT_EQ(Model::load(model).preprocess().get("scale", ""), "symmetric");

  const CommandResult r = fer_cmd("predict --model " + model + " --top 5 " + cat + " " + coffee);
  ASSERT_EQ(r.status, 0) << r.out;
  std::printf("%s", r.out.c_str());
  std::vector<double> cat_p, coffee_p;
  const std::vector<std::string> cat_top = top_labels(r.out, cat, &cat_p);
  const std::vector<std::string> coffee_top = top_labels(r.out, coffee, &coffee_p);
  ASSERT_EQ(cat_top.size(), 5u) << r.out;
  ASSERT_EQ(coffee_top.size(), 5u) << r.out;
  const std::set<std::string> cats = {"tabby, tabby cat", "tiger cat", "Egyptian cat"};
  EXPECT_TRUE(cats.count(cat_top[0])) << "chelsea.png top-1: " << cat_top[0];
  EXPECT_EQ(coffee_top[0], "espresso");
  for (const auto* p : {&cat_p, &coffee_p}) {
    EXPECT_TRUE(std::is_sorted(p->rbegin(), p->rend())) << r.out;
    EXPECT_LE(std::accumulate(p->begin(), p->end(), 0.0), 1.0 + 1e-3) << r.out;
  }
  // --top 1 keeps the one-line "FILE: LABEL PROB" format.
  const CommandResult one = fer_cmd("predict --model " + model + " " + coffee);
  ASSERT_EQ(one.status, 0) << one.out;
  EXPECT_EQ(count_lines(one.out), 1) << one.out;
  EXPECT_EQ(one.out.rfind(coffee + ": espresso 0.", 0), 0u) << one.out;
}

TEST(ImagenetImport, KerasH5BothLayoutsGiveTheSameModel) {
  REQUIRE_PYTHON("numpy, h5py");
  const std::string dir = work_dir("keras");
  Model original = random_mobilenet_v2();
  original.save(dir + "/original.npz");
  run_python(dir, "make_h5.py", kMakeKerasH5,
             dir + "/original.npz " + dir + "/weights.h5 " + dir + "/model.h5");
  if (HasFatalFailure()) return;

  // Architecture, alpha, the classifier and its 17 classes come from the weights; the size
  // from model.h5's config, or --size for a save_weights file, which has none.
  const CommandResult a = convert("--from keras " + dir + "/weights.h5 " + dir + "/a.npz --size 32");
  ASSERT_EQ(a.status, 0) << a.out;
  const CommandResult b = convert("--from keras " + dir + "/model.h5 " + dir + "/b.npz");
  ASSERT_EQ(b.status, 0) << b.out;

  const Tensor x = random_input({3, 32, 32, 3}, 21);
  NoGradGuard no_grad;
  const Tensor want = original.forward(x, false);
  for (const std::string name : {"a.npz", "b.npz"}) {
    SCOPED_TRACE(name);
    expect_same_arrays(original, dir + "/" + name);
    Model converted = Model::load(dir + "/" + name);
    EXPECT_EQ(converted.input_shape(), (Shape{32, 32, 3}));
    EXPECT_EQ(converted.classes().size(), 17u);
    const Tensor y = infer(dir + "/" + name, dir, x);
    ASSERT_EQ(y.shape(), want.shape());
    EXPECT_LT(relative_error(y, want), 1e-6);
  }

  // --layer enters the plain Sequential "backbone" and stops after a whole Residual block
  // (its skip addition included); a layer inside a Residual is no stop point.
  auto& backbone = dynamic_cast<Sequential&>(original.net().layer(0));
  Tensor h = x;
  bool seen = false;
  for (size_t i = 0; i < backbone.size() && !seen; ++i) {
    h = backbone.layer(i).forward(h, false);
    seen = backbone.layer(i).name() == "block_2";
    if (seen) {
      EXPECT_EQ(backbone.layer(i).type(), "Residual");
    }
  }
  ASSERT_TRUE(seen);
  const Tensor block = infer(dir + "/a.npz", dir, x, "--layer block_2");
  ASSERT_EQ(block.shape(), (Shape{3, 8, 8, 8}));
  EXPECT_LT(relative_error(block, h), 1e-6);
  expect_one_line_error(fer_cmd("infer --model " + dir + "/a.npz --input " + dir + "/x.npy --output " +
                                dir + "/inside.npy --layer block_2_expand"),
                        {"no layer 'block_2_expand'"}, "--layer inside a Residual");
}

TEST(ImagenetImport, TorchvisionMobileNetV2MatchesPyTorch) {
  REQUIRE_PYTHON("numpy, torch, torchvision");
  const std::string dir = work_dir("torch");
  run_python(dir, "make_torch.py", kMakeTorch, dir);
  if (HasFatalFailure()) return;
  const CommandResult a = convert("--from torch " + dir + "/mobilenet_v2.pth " + dir + "/a.npz --size 64");
  ASSERT_EQ(a.status, 0) << a.out;
  const CommandResult b = convert("--from torch " + dir + "/mobilenet_v2_model.pth " + dir + "/b.npz --size 64");
  ASSERT_EQ(b.status, 0) << b.out;

  Model model = Model::load(dir + "/a.npz");
  EXPECT_EQ(model.preprocess().get("scale", ""), "torch");  // torchvision's normalization
  expect_same_arrays(model, dir + "/b.npz");                // a pickled model gives the same
  const CommandResult r = fer_cmd("infer --model " + dir + "/a.npz --input " + dir +
                                  "/x.npy --output " + dir + "/y.npy");
  ASSERT_EQ(r.status, 0) << r.out;
  const Tensor y = read_npy(dir + "/y.npy");
  const Tensor want = read_npy(dir + "/y_torch.npy");
  ASSERT_EQ(y.shape(), (Shape{2, 1000}));
  ASSERT_EQ(want.shape(), y.shape());
  const double err = relative_error(y, want);
  std::printf("torchvision mobilenet_v2: max |logit diff| / max |logit| = %.3g\n", err);
  EXPECT_LT(err, 1e-4);
}

// Damaged and wrong files: one line naming the problem, status 1, nothing written.
TEST(ImagenetImport, BadFilesAreOneLineErrors) {
  REQUIRE_PYTHON("numpy");
  const std::string dir = work_dir("bad");
  Model good = random_mobilenet_v2();
  good.save(dir + "/good.npz");
  const std::string image = shared("images/imagenet/chelsea.png");  // never reached: the model fails first

  // `fer predict --model` on damaged model files.
  const std::string bytes = read_file(dir + "/good.npz");
  write_file(dir + "/truncated.npz", bytes.substr(0, bytes.size() / 2));
  write_file(dir + "/notzip.npz", "this is not a zip archive\n");
  run_python(dir, "make_bad_npz.py", R"PY(
import sys, numpy as np
d = sys.argv[1]
good = dict(np.load(f"{d}/good.npz"))
def save(name, **change):
    arrays = dict(good)
    for k, v in change.items():
        k = k.replace("__", "/")
        if v is None: del arrays[k]
        else: arrays[k] = v
    np.savez(f"{d}/{name}.npz", **arrays)
save("complex", Conv1__kernel=good["Conv1/kernel"].astype(np.complex64))
save("shape", Conv1__kernel=good["Conv1/kernel"][:, :, :, :8])
save("missing", bn_Conv1__moving_variance=None)
)PY",
             dir);
  if (HasFatalFailure()) return;
  const std::vector<std::pair<std::string, std::vector<std::string>>> models = {
      {"truncated.npz", {"truncated"}},
      {"notzip.npz", {"not a ZIP"}},
      {"complex.npz", {"unsupported dtype", "c8"}},
      {"shape.npz", {"shape mismatch", "Conv1/kernel", "[3, 3, 3, 8]"}},
      {"missing.npz", {"missing (1)", "bn_Conv1/moving_variance"}}};
  for (const auto& [name, needles] : models) {
    std::vector<std::string> all = needles;
    all.push_back(name);
    expect_one_line_error(fer_cmd("predict --model " + dir + "/" + name + " " + image), all,
                          "fer predict --model " + name);
  }

  // The converter, on what users hand it by mistake. Nothing is left behind.
  auto expect_convert_error = [&](const std::string& args, const std::vector<std::string>& needles) {
    expect_one_line_error(convert(args + " " + dir + "/out.npz"), needles, "convert " + args);
    EXPECT_FALSE(exists(dir + "/out.npz")) << args;
    const CommandResult leftovers = shell("ls -a " + dir + " | grep -c '^\\.convert-'");
    EXPECT_EQ(leftovers.out, "0\n") << args;
  };
  expect_convert_error("--from keras " + dir + "/absent.h5", {"absent.h5", "no such file"});
  expect_convert_error("--from keras " + dir + "/good.npz --arch resnet50",
                       {"unknown architecture 'resnet50'"});
  expect_convert_error("--from tfjs " + dir, {"no model.json"});

  if (python_has("h5py")) {
    run_python(dir, "make_h5.py", kMakeKerasH5, dir + "/good.npz " + dir + "/k.h5 " + dir + "/unused.h5");
    if (HasFatalFailure()) return;
    run_python(dir, "break_h5.py", R"PY(
import shutil, sys, h5py, numpy as np
d = sys.argv[1]
def variant(name, change):
    shutil.copy(f"{d}/k.h5", f"{d}/{name}.h5")
    with h5py.File(f"{d}/{name}.h5", "r+") as f:
        change(f)
def replace(f, path, value):
    del f[path]
    f[path] = value
variant("int", lambda f: replace(f, "Conv1/Conv1/kernel:0", np.ones((3, 3, 3, 16), np.int32)))
variant("shape", lambda f: replace(f, "bn_Conv1/bn_Conv1/gamma:0", np.ones(5, np.float32)))
def drop_layer(f):
    del f["bn_Conv1"]
    f.attrs["layer_names"] = np.array([n for n in f.attrs["layer_names"] if n != b"bn_Conv1"])
variant("missing", drop_layer)
variant("unlisted", lambda f: f["Conv1"].__delitem__("Conv1/kernel:0"))
with h5py.File(f"{d}/other.h5", "w") as f:
    f["data"] = np.zeros(3)
with h5py.File(f"{d}/resnet.h5", "w") as f:
    f.attrs["layer_names"] = np.array([b"conv1_conv", b"conv1_bn"])
    for n in ("conv1_conv", "conv1_bn"):
        f.create_group(n).attrs["weight_names"] = np.array([], dtype="S")
)PY",
               dir);
    if (HasFatalFailure()) return;
    expect_convert_error("--from keras " + dir + "/notzip.npz", {"notzip.npz", "not an HDF5 file"});
    expect_convert_error("--from keras " + dir + "/int.h5", {"Conv1/kernel:0", "dtype int32"});
    expect_convert_error("--from keras " + dir + "/shape.h5 --size 32",
                         {"shape mismatch", "bn_Conv1/gamma", "[5]"});
    expect_convert_error("--from keras " + dir + "/missing.h5 --size 32",
                         {"missing (4)", "bn_Conv1/moving_variance"});
    expect_convert_error("--from keras " + dir + "/unlisted.h5", {"Conv1/kernel:0", "not stored"});
    expect_convert_error("--from keras " + dir + "/other.h5", {"not a Keras weights file"});
    expect_convert_error("--from keras " + dir + "/resnet.h5", {"cannot tell the architecture"});
  }

  if (python_has("torch, torchvision")) {
    run_python(dir, "make_bad_torch.py", R"PY(
import sys, torch, torchvision
d = sys.argv[1]
sd = torchvision.models.mobilenet_v2(weights=None).state_dict()
torch.save(sd, f"{d}/good.pth")
data = open(f"{d}/good.pth", "rb").read()
open(f"{d}/truncated.pth", "wb").write(data[: len(data) // 2])
def save(name, key, value):
    bad = dict(sd)
    if value is None: del bad[key]
    else: bad[key] = value
    torch.save(bad, f"{d}/{name}.pth")
save("complex", "features.0.0.weight", sd["features.0.0.weight"].to(torch.complex64))
save("shape", "features.0.1.weight", torch.ones(5))
save("missing", "features.5.conv.1.1.running_var", None)
)PY",
               dir);
    if (HasFatalFailure()) return;
    expect_convert_error("--from torch " + dir + "/truncated.pth", {"truncated.pth", "truncated zip"});
    expect_convert_error("--from torch " + dir + "/notzip.npz", {"notzip.npz", "not a PyTorch file"});
    expect_convert_error("--from torch " + dir + "/complex.pth",
                         {"features.0.0.weight", "dtype complex64"});
    expect_convert_error("--from torch " + dir + "/shape.pth",
                         {"shape mismatch", "bn_Conv1/gamma", "features.0.1.weight"});
    expect_convert_error("--from torch " + dir + "/missing.pth",
                         {"missing (1)", "block_4_depthwise_BN/moving_variance",
                          "features.5.conv.1.1.running_var"});
  }
}
