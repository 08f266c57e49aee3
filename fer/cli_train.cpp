// `fer train`: flags → TrainConfig → the training loop (fer/trainer.h).
#include <omp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <tuple>

#include "fer/atomic_file.h"
#include "fer/cli.h"
#include "fer/cli_args.h"
#include "fer/cli_model_flags.h"
#include "fer/error.h"
#include "fer/trainer.h"

namespace fer::cli {

namespace {

bool is_dir(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::vector<FlagSpec> train_flags() {
  std::vector<FlagSpec> flags = {
    {"model", "NAME", "architecture: cnn3 (default), mobilenet_v1, mobilenet_v2, vgg16"},
    {"data", "DIR|CSV", "training data: class folders, or fer2013.csv (Usage=Training)"},
    {"val", "DIR|CSV", "validation data: class folders, or fer2013.csv (Usage=PublicTest)"},
    {"epochs", "N", "epochs (default 30)"},
    {"batch", "B", "batch size (default 64)"},
    {"optimizer", "NAME", "sgd | adam | adamw (default adam)"},
    {"lr", "X", "learning rate (default 1e-3)"},
    {"momentum", "X", "SGD momentum (default 0.9)"},
    {"nesterov", "", "Nesterov momentum for SGD"},
    {"weight-decay", "X", "L2 weight decay (decoupled for adamw)"},
    {"clip-norm", "X", "clip the global gradient norm to X"},
    {"clip-value", "X", "clip each gradient element to [-X, X]"},
    {"schedule", "NAME", "constant | step | cosine (default constant)"},
    {"warmup-epochs", "N", "linear warm-up epochs for cosine"},
    {"step-epochs", "N", "epochs between decays for step (default 10)"},
    {"step-gamma", "X", "decay factor for step (default 0.1)"},
    {"min-lr", "X", "final learning rate for cosine"},
    {"plateau-patience", "N", "ReduceLROnPlateau patience in epochs (0 = off)"},
    {"plateau-factor", "X", "ReduceLROnPlateau factor (default 0.5)"},
    {"plateau-min-lr", "X", "ReduceLROnPlateau floor (default 1e-6)"},
    {"monitor", "METRIC", "val_accuracy (default) or val_loss, for plateau and early stopping"},
    {"early-stopping", "N", "stop after N epochs without improvement (0 = off)"},
    {"label-smoothing", "X", "label smoothing epsilon (default 0)"},
    {"class-weights", "MODE", "none (default) | balanced"},
    {"flip", "", "augment: random horizontal flip"},
    {"rotation", "DEG", "augment: random rotation range in degrees"},
    {"shift", "FRAC", "augment: random width and height shift (fraction)"},
    {"shear", "DEG", "augment: random shear in degrees"},
    {"zoom", "FRAC", "augment: random zoom in [1-z, 1+z]"},
    {"random-crop", "PX", "augment: random crop of PX pixels (centre crop at eval)"},
    {"erasing", "P", "augment: RandomErasing with probability P (a random box set to 0)"},
    {"mixup", "A", "mixup: blend pairs of examples and their labels (with --teacher: their targets), weight ~ Beta(A, A)"},
    {"ema", "DECAY", "validate and save a moving average of the weights (e.g. 0.999; 0 = off)"},
    {"sam", "RHO", "sharpness-aware minimization: each step's gradient is taken again at the worst point within RHO of the weights (e.g. 0.05; 0 = off; twice the cost of a step)"},
    {"sam-adaptive", "", "with --sam: ASAM, the neighbourhood scaled by each weight's size (RHO e.g. 0.5)"},
    {"teacher", "FILE", "distill from this model's probabilities (repeat to average several; a file named twice weighs twice)"},
    {"distill", "A", "with --teacher: target = (1-A) * label + A * teachers (default 0.5)"},
    {"teacher-temperature", "T", "with --teacher: soften its probabilities, p^(1/T) (default 1)"},
    {"teacher-tta", "MODE", "with --teacher: none | flip (default) | tencrop views per image"},
    {"teacher-online", "", "with --teacher: the teachers see each training batch as the model does (same crops; one inference pass per teacher per step)"},
    {"cv-teacher", "A,B,..", "distill from cross-validated models: model k (trained with --holdout-fold k/N) scores only fold k, the images it never saw; weighs as one --teacher"},
    {"holdout-fold", "K/N", "train on every image but those of fold K of N (stratified, fixed folds): the models of a --cv-teacher"},
    {"max-per-class", "N", "train on at most N images per class"},
    {"val-max-per-class", "N", "validate on at most N images per class"},
    {"skip-bad", "", "skip (and count) unreadable images and malformed CSV rows"},
    {"expect-size", "HxW", "images must be this size (bad item otherwise) instead of resized"},
    {"seed", "N", "random seed (default 42)"},
    {"workers", "N", "data-loading threads (default 1)"},
    {"threads", "N", "compute threads (default: OMP_NUM_THREADS or all cores)"},
    {"out", "RUN", "run directory for best.npz, last.npz, history.csv (default runs/cnn3)"},
    {"resume", "RUN", "continue the run in RUN from its last checkpoint"},
    {"quiet", "", "no progress bar"},
    {"weights", "FILE", "start from the weights in FILE.npz (an ImageNet model, a checkpoint)"},
    {"skip-mismatched", "", "with --weights: leave arrays that do not fit (a new head) as initialized"},
    {"freeze-backbone", "", "train only the head (backbone weights and BatchNorm statistics fixed)"},
    {"unfreeze-epoch", "N", "with --freeze-backbone: unfreeze the backbone from epoch N+1 on"},
    {"backbone-lr-scale", "X", "learning-rate multiplier of the backbone's layers (default 1)"},
  };
  for (const FlagSpec& f : model_option_flags()) flags.push_back(f);
  return flags;
}
const std::vector<FlagSpec> kTrainFlags = train_flags();

}  // namespace

int train(int argc, char** argv) {
  Args args("train", kTrainFlags, argc, argv);
  if (args.help()) {
    std::printf("usage: fer train [flags]\n\n%s", args.usage().c_str());
    return 0;
  }
  FER_CHECK(args.positional().empty(), "fer train: unexpected argument '", args.positional()[0], "'");
  set_threads(args.integer("threads", 0));

  if (args.has("resume")) {
    // A resumed run continues with the settings it was started with (saved in last.npz);
    // accepting other flags here would silently ignore them.
    for (const FlagSpec& f : kTrainFlags)
      if (args.has(f.name) && f.name != "resume" && f.name != "epochs" && f.name != "threads")
        fail("fer train: --", f.name, " cannot be changed on --resume (the run continues with "
             "the settings saved in its last.npz; only --epochs and --threads may be given)");
    const TrainResult r = resume(args.str("resume"), args.integer("epochs", 0));
    std::printf("best val_accuracy %.4f (epoch %d)\n", r.best_val_accuracy, r.best_epoch);
    return 0;
  }

  TrainConfig c;
  c.model = args.str("model", c.model);
  read_model_options(args, c.model_options);
  c.weights = args.str("weights", "");
  c.skip_mismatched = args.flag("skip-mismatched");
  c.freeze_backbone = args.flag("freeze-backbone");
  c.unfreeze_epoch = args.integer("unfreeze-epoch", 0);
  c.backbone_lr_scale = args.number("backbone-lr-scale", 1.0);

  // Data: explicit paths, else FER2013 at its default place, else the committed sample.
  const std::string fer2013 = default_fer2013_dir();
  if (args.has("data")) {
    c.data = args.str("data");
    c.val = args.str("val", ends_with(c.data, ".csv") ? c.data : "");
    FER_CHECK(!c.val.empty(), "fer train: --val is required with a --data folder");
  } else if (!fer2013.empty()) {
    c.data = fer2013 + "/train";
    c.val = args.str("val", fer2013 + "/val");
  } else {
    c.data = sample_faces_dir() + "/train";
    c.val = args.str("val", sample_faces_dir() + "/val");
    std::fprintf(stderr,
                 "FER2013 not found (set FER2013_DIR or pass --data): training on the small "
                 "sample of faces in %s\n",
                 sample_faces_dir().c_str());
  }
  for (const std::string& p : {c.data, c.val})
    FER_CHECK(is_dir(p) || ends_with(p, ".csv"), "fer train: no such dataset folder or CSV: ", p);

  c.out = args.str("out", "runs/" + c.model);
  c.epochs = args.integer("epochs", c.epochs);
  c.batch = args.integer("batch", c.batch);
  c.optimizer = args.str("optimizer", c.optimizer);
  c.lr = args.number("lr", c.lr);
  c.momentum = args.number("momentum", c.momentum);
  c.nesterov = args.flag("nesterov");
  c.weight_decay = args.number("weight-decay", c.weight_decay);
  c.clip_norm = args.number("clip-norm", c.clip_norm);
  c.clip_value = args.number("clip-value", c.clip_value);
  c.schedule = args.str("schedule", c.schedule);
  c.warmup_epochs = args.number("warmup-epochs", c.warmup_epochs);
  c.step_epochs = args.integer("step-epochs", c.step_epochs);
  c.step_gamma = args.number("step-gamma", c.step_gamma);
  c.min_lr = args.number("min-lr", c.min_lr);
  c.plateau_patience = args.integer("plateau-patience", c.plateau_patience);
  c.plateau_factor = args.number("plateau-factor", c.plateau_factor);
  c.plateau_min_lr = args.number("plateau-min-lr", c.plateau_min_lr);
  c.monitor = args.str("monitor", c.monitor);
  c.early_stopping = args.integer("early-stopping", c.early_stopping);
  c.label_smoothing = args.number("label-smoothing", c.label_smoothing);
  c.class_weights = args.str("class-weights", c.class_weights);
  c.max_per_class = args.integer("max-per-class", 0);
  c.val_max_per_class = args.integer("val-max-per-class", 0);
  c.skip_bad = args.flag("skip-bad");
  std::tie(c.expect_height, c.expect_width) = parse_size("expect-size", args.str("expect-size"));
  c.seed = static_cast<uint64_t>(args.integer("seed", 42));
  c.workers = args.integer("workers", 1);
  c.quiet = args.flag("quiet");
  Json aug = Json::object();
  if (args.flag("flip")) aug["horizontal_flip"] = true;
  if (args.has("rotation")) aug["rotation_range"] = args.number("rotation", 0);
  if (args.has("shift")) {
    aug["width_shift"] = args.number("shift", 0);
    aug["height_shift"] = args.number("shift", 0);
  }
  if (args.has("shear")) aug["shear_range"] = args.number("shear", 0);
  if (args.has("zoom")) aug["zoom_range"] = args.number("zoom", 0);
  if (args.has("random-crop")) aug["random_crop"] = args.integer("random-crop", 0);
  if (args.has("erasing")) aug["erasing"] = args.number("erasing", 0);
  c.mixup = args.number("mixup", c.mixup);
  c.ema = args.number("ema", c.ema);
  c.sam = args.number("sam", c.sam);
  c.sam_adaptive = args.flag("sam-adaptive");
  c.teachers = args.all("teacher");
  c.cv_teachers = args.all("cv-teacher");
  if (args.has("holdout-fold")) {
    const std::string spec = args.str("holdout-fold");
    int fold = -1, folds = 0;
    char end = 0;
    FER_CHECK(std::sscanf(spec.c_str(), "%d/%d%c", &fold, &folds, &end) == 2,
              "--holdout-fold: expected K/N (fold K of N, e.g. 0/3), got '", spec, "'");
    c.holdout_fold = fold;
    c.holdout_folds = folds;
  }
  c.distill = args.number("distill", c.distill);
  c.teacher_online = args.flag("teacher-online");
  // Online teachers see the batch itself: no views of their own unless asked (an error).
  c.teacher_tta = args.str("teacher-tta", c.teacher_online ? "none" : c.teacher_tta);
  c.teacher_temperature = args.number("teacher-temperature", c.teacher_temperature);
  const bool taught = !c.teachers.empty() || !c.cv_teachers.empty();
  FER_CHECK(taught || (!args.has("distill") && !args.has("teacher-tta") &&
                       !args.has("teacher-temperature") && !args.has("teacher-online")),
            "fer train: --distill, --teacher-tta, --teacher-temperature and --teacher-online "
            "go with --teacher FILE or --cv-teacher");
  c.augment = aug;
  if (args.has("random-crop")) c.model_options["crop"] = args.integer("random-crop", 0);

  const TrainResult r = fer::train(c);
  std::printf("best val_accuracy %.4f (epoch %d); model: %s/best.npz\n", r.best_val_accuracy,
              r.best_epoch, c.out.c_str());
  return 0;
}

// ---- shared helpers -----------------------------------------------------------------

std::string default_fer2013_dir() {
  if (const char* env = std::getenv("FER2013_DIR")) {
    const std::string dir = env;
    FER_CHECK(is_dir(dir + "/train") && is_dir(dir + "/val"), "FER2013_DIR=", dir,
              " has no train/ and val/ class folders (for fer2013.csv, pass --data FILE.csv)");
    return dir;
  }
  for (const std::string& p : {std::string("../shared/datasets/fer2013"),
                              std::string(FER_SOURCE_DIR) + "/../shared/datasets/fer2013"})
    if (is_dir(p + "/train") && is_dir(p + "/val")) return p;
  return "";
}

std::string sample_faces_dir() { return std::string(FER_SOURCE_DIR) + "/data/sample_faces"; }

std::string default_model_path() {
  if (const char* env = std::getenv("FER_MODEL")) {
    FER_CHECK(file_exists(env), "FER_MODEL=", env, ": no such model file");
    return env;
  }
  std::vector<std::string> places = {std::string(FER_SOURCE_DIR) + "/models/fer2013.npz"};
  char exe[4096];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n > 0) {
    std::string dir(exe, n);
    dir = dir.substr(0, dir.find_last_of('/'));
    places.push_back(dir + "/../models/fer2013.npz");
    places.push_back(dir + "/models/fer2013.npz");
  }
  std::string looked;
  for (const std::string& p : places) {
    if (file_exists(p)) return p;
    looked += (looked.empty() ? "" : ", ") + p;
  }
  fail("no --model given and no shipped model found (looked at $FER_MODEL, ", looked, ")");
}

std::pair<int, int> parse_size(const std::string& flag, const std::string& value) {
  if (value.empty()) return {0, 0};
  int h = 0, w = 0;
  char x = 0, extra = 0;
  const int n = std::sscanf(value.c_str(), "%d%c%d%c", &h, &x, &w, &extra);
  if (n == 1) w = h;
  FER_CHECK((n == 1 || (n == 3 && (x == 'x' || x == 'X'))) && h > 0 && w > 0, "--", flag,
            ": expected a size such as 48 or 48x48, got '", value, "'");
  return {h, w};
}

void set_threads(int threads) {
  if (threads > 0) omp_set_num_threads(threads);
}

}  // namespace fer::cli
