// The training loop behind `fer train`, with Keras-style callbacks: best/last
// checkpoints, early stopping, ReduceLROnPlateau, a progress bar, history.csv, and
// --resume from the last checkpoint (optimizer state included).
#pragma once

#include <string>
#include <vector>

#include "fer/json.h"

namespace fer {

// Every knob of a run. Saved inside each checkpoint ("training" JSON), so a resumed run
// continues with exactly the settings it started with.
struct TrainConfig {
  std::string model = "cnn3";
  Json model_options = Json::object();  // size, dropout, ...
  std::string data;   // train folder or fer2013.csv
  std::string val;    // val folder or fer2013.csv (PublicTest)
  std::string out = "runs/cnn3";
  int epochs = 30;
  int schedule_epochs = 0;  // length of the lr schedule; 0 = epochs (kept when a run is extended)
  int batch = 64;
  std::string optimizer = "adam";
  double lr = 1e-3;
  double momentum = 0.9;
  bool nesterov = false;
  double weight_decay = 0;
  double clip_norm = 0;   // 0 = off
  double clip_value = 0;  // 0 = off
  std::string schedule = "constant";  // constant | step | cosine
  double warmup_epochs = 0;
  int step_epochs = 10;
  double step_gamma = 0.1;
  double min_lr = 0;
  int plateau_patience = 0;  // ReduceLROnPlateau; 0 = off
  double plateau_factor = 0.5;
  double plateau_min_lr = 1e-6;
  std::string monitor = "val_accuracy";  // or val_loss (plateau and early stopping)
  int early_stopping = 0;                // patience in epochs; 0 = off
  double label_smoothing = 0;
  double mixup = 0;  // mixup's Beta(alpha, alpha) parameter; 0 = off
  // Exponential moving average of the weights (optim/ema.h); 0 = off. When on,
  // validation, best.npz and the report use the averaged weights; last.npz holds the
  // trained weights and the averages.
  double ema = 0;
  // Knowledge distillation (Hinton et al. 2015, temperature 1): the models in `teachers`
  // (.npz files; several are averaged, e.g. an ensemble) give their class probabilities
  // for every training image once, before the first epoch (inference mode, each
  // teacher's own preprocessing, teacher_tta views), and the loss's target becomes
  // (1 - distill) * the (smoothed) label + distill * those probabilities, softened at
  // teacher_temperature T (p_k^(1/T), renormalized: softmax(z / T) for one teacher and
  // one view) -- teachers that have memorized their training images say little besides
  // the label at T = 1.
  std::vector<std::string> teachers;
  double distill = 0.5;
  double teacher_temperature = 1;
  std::string teacher_tta = "flip";
  // Online ("consistent") distillation (Beyer et al. 2022): instead of one opinion per
  // image computed before training, the teachers see every training batch exactly as the
  // student does -- the same crop, flip and rotation -- and their averaged probabilities
  // on that batch are the targets. One inference pass per teacher per step; the teachers
  // must take the student's input as it is (size, channels, scaling), and teacher_tta
  // must be "none" (the view is the batch's).
  bool teacher_online = false;
  // Cross-validated teachers (--cv-teacher A,B,C): each entry lists N models, model k
  // trained with holdout_fold = k of N (data::cross_validation_folds). Model k scores only
  // the examples of fold k -- the ones it never trained on -- so every training image gets
  // the opinion of a network that did not memorize it. One entry counts as one teacher
  // in the average with `teachers` (an entry or a teacher named n times, as n). Offline
  // only.
  std::vector<std::string> cv_teachers;
  // Train on every example but those of fold holdout_fold of holdout_folds (0 = off):
  // how the models of a --cv-teacher are trained.
  int holdout_fold = 0, holdout_folds = 0;
  // Sharpness-aware minimization (optim/sam.h): the radius rho of the neighbourhood whose
  // worst point's gradient each step takes (0 = off; 0.05 typical), ASAM when
  // sam_adaptive. Twice the cost of a step.
  double sam = 0;
  bool sam_adaptive = false;
  std::string class_weights = "none";  // none | balanced
  Json augment = Json::object();       // data::Augment fields
  int max_per_class = 0;               // train on a subset (0 = all)
  int val_max_per_class = 0;
  bool skip_bad = false;
  int expect_height = 0, expect_width = 0;  // required image size (0 = any; others resized)
  // Transfer learning. The network's child "backbone" (ImageNet architectures have one)
  // can be frozen -- weights fixed, BatchNorm on its running statistics -- for the whole
  // run or until epoch unfreeze_epoch, and trained at backbone_lr_scale times the lr.
  std::string weights;           // initial weights (.npz); empty = fresh initialization
  bool skip_mismatched = false;  // keep arrays of `weights` that do not fit as initialized
  bool freeze_backbone = false;
  int unfreeze_epoch = 0;        // 0 = never (with freeze_backbone)
  double backbone_lr_scale = 1;
  uint64_t seed = 42;
  int workers = 1;
  bool quiet = false;

  Json to_json() const;
  static TrainConfig from_json(const Json& j);
  // Throws fer::Error naming the first bad setting; called before a run touches its files.
  void validate() const;
};

struct TrainResult {
  int epochs_run = 0;
  double best_val_accuracy = 0;
  int best_epoch = 0;
  double last_train_images_per_s = 0;
};

// Trains from scratch (or from config.weights) into config.out.
TrainResult train(const TrainConfig& config);
// Continues the run in `run_dir` from last.npz; `epochs_override` > 0 replaces the epoch
// budget (to extend a finished run).
TrainResult resume(const std::string& run_dir, int epochs_override);

}  // namespace fer
