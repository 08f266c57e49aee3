#include "fer/trainer.h"

#include <omp.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>

#include "data/augment.h"
#include "data/dataset.h"
#include "data/batch_loader.h"
#include "data/tta.h"
#include "fer/architectures.h"
#include "fer/atomic_file.h"
#include "fer/autograd.h"
#include "fer/error.h"
#include "fer/evaluate.h"
#include "fer/model.h"
#include "fer/npz.h"
#include "fer/progress.h"
#include "fer/report.h"
#include "fer/rng.h"
#include "fer/teachers.h"
#include "layers/loss.h"
#include "optim/clip.h"
#include "optim/ema.h"
#include "optim/optimizer.h"
#include "optim/sam.h"
#include "optim/schedule.h"

namespace fer {

// ---- config <-> JSON ----------------------------------------------------------------
// One list of fields drives both directions, so a new knob cannot be saved but not loaded.
#define FER_TRAIN_FIELDS(X)                                                               \
  X(model) X(model_options) X(data) X(val) X(out) X(epochs) X(schedule_epochs) X(batch)   \
  X(optimizer) X(lr) X(expect_height) X(expect_width)                                     \
  X(momentum) X(nesterov) X(weight_decay) X(clip_norm) X(clip_value) X(schedule)          \
  X(warmup_epochs) X(step_epochs) X(step_gamma) X(min_lr) X(plateau_patience)             \
  X(plateau_factor) X(plateau_min_lr) X(monitor) X(early_stopping) X(label_smoothing)     \
  X(class_weights) X(augment) X(max_per_class) X(val_max_per_class) X(skip_bad) X(seed)   \
  X(workers) X(quiet) X(weights) X(skip_mismatched) X(freeze_backbone) X(unfreeze_epoch)  \
  X(backbone_lr_scale) X(mixup) X(ema) X(teachers) X(distill) X(teacher_temperature) X(teacher_tta) \
  X(teacher_online) X(cv_teachers) X(holdout_fold) X(holdout_folds) X(sam) X(sam_adaptive)

namespace {
void read_field(const Json& j, const char* key, std::string& v) { v = j.get(key, v.c_str()); }
void read_field(const Json& j, const char* key, Json& v) { if (j.contains(key)) v = j.at(key); }
void read_field(const Json& j, const char* key, int& v) { v = j.get(key, v); }
void read_field(const Json& j, const char* key, double& v) { v = j.get(key, v); }
void read_field(const Json& j, const char* key, bool& v) { v = j.get(key, v); }
void read_field(const Json& j, const char* key, uint64_t& v) {
  v = static_cast<uint64_t>(j.get(key, static_cast<int64_t>(v)));
}
void read_field(const Json& j, const char* key, std::vector<std::string>& v) {
  if (!j.contains(key)) return;
  v.clear();
  for (const Json& s : j.at(key).as_array()) v.push_back(s.as_string());
}
Json to_json_value(const std::string& v) { return Json(v); }
Json to_json_value(const std::vector<std::string>& v) { return Json::array_of(v); }
Json to_json_value(const Json& v) { return v; }
Json to_json_value(int v) { return Json(v); }
Json to_json_value(double v) { return Json(v); }
Json to_json_value(bool v) { return Json(v); }
Json to_json_value(uint64_t v) { return Json(static_cast<int64_t>(v)); }
}  // namespace

Json TrainConfig::to_json() const {
  Json j = Json::object();
#define FER_WRITE(f) j[#f] = to_json_value(f);
  FER_TRAIN_FIELDS(FER_WRITE)
#undef FER_WRITE
  return j;
}

TrainConfig TrainConfig::from_json(const Json& j) {
  TrainConfig c;
#define FER_READ(f) read_field(j, #f, c.f);
  FER_TRAIN_FIELDS(FER_READ)
#undef FER_READ
  return c;
}

// ---- the run ------------------------------------------------------------------------

namespace {

// Where a run stands; saved in every checkpoint next to the config.
struct TrainState {
  int epoch = 0;  // epochs completed
  int64_t global_step = 0;
  double best_val_accuracy = -1;
  int best_epoch = 0;
  double best_monitor = NAN;  // for early stopping
  int early_wait = 0;
  double lr_scale = 1;  // product of ReduceLROnPlateau reductions
  Json plateau = Json();

  Json to_json() const {
    Json j = Json::object();
    j["epoch"] = epoch;
    j["global_step"] = global_step;
    j["best_val_accuracy"] = best_val_accuracy;
    j["best_epoch"] = best_epoch;
    j["best_monitor"] = std::isnan(best_monitor) ? Json() : Json(best_monitor);
    j["early_wait"] = early_wait;
    j["lr_scale"] = lr_scale;
    j["plateau"] = plateau;
    return j;
  }
  static TrainState from_json(const Json& j) {
    TrainState s;
    s.epoch = j.get("epoch", 0);
    s.global_step = j.get("global_step", int64_t{0});
    s.best_val_accuracy = j.get("best_val_accuracy", -1.0);
    s.best_epoch = j.get("best_epoch", 0);
    s.best_monitor = j.contains("best_monitor") && j.at("best_monitor").is_number()
                         ? j.at("best_monitor").as_number()
                         : NAN;
    s.early_wait = j.get("early_wait", 0);
    s.lr_scale = j.get("lr_scale", 1.0);
    if (j.contains("plateau")) s.plateau = j.at("plateau");
    return s;
  }
};

void make_dirs(const std::string& dir) {
  std::string partial;
  std::stringstream ss(dir);
  std::string piece;
  if (!dir.empty() && dir[0] == '/') partial = "/";
  while (std::getline(ss, piece, '/')) {
    if (piece.empty()) continue;
    partial += piece + "/";
    if (mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST)
      fail("cannot create directory '", partial, "': ", std::strerror(errno));
  }
}

const char* kHistoryHeader = "epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds,images_per_s";

// Keeps the rows of history.csv up to `epochs` (a resumed run rewrites what came after
// its checkpoint).
void trim_history(const std::string& path, int epochs) {
  std::ifstream in(path);
  if (!in) return;
  std::vector<std::string> keep;
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("epoch", 0) == 0) continue;
    if (std::atoi(line.c_str()) <= epochs) keep.push_back(line);
  }
  in.close();
  std::ofstream out(path, std::ios::trunc);
  out << kHistoryHeader << "\n";
  for (const auto& l : keep) out << l << "\n";
}

void append_history(const std::string& path, int epoch, double loss, double acc, double val_loss,
                    double val_acc, double lr, double seconds, double ips) {
  const bool fresh = !std::ifstream(path).good();
  std::FILE* f = std::fopen(path.c_str(), "a");
  FER_CHECK(f, "cannot write '", path, "': ", std::strerror(errno));
  if (fresh) std::fprintf(f, "%s\n", kHistoryHeader);
  std::fprintf(f, "%d,%.6f,%.6f,%.6f,%.6f,%.8g,%.2f,%.1f\n", epoch, loss, acc, val_loss, val_acc,
               lr, seconds, ips);
  std::fclose(f);
}

int argmax(const float* row, int n) {
  int best = 0;
  for (int k = 1; k < n; ++k)
    if (row[k] > row[best]) best = k;
  return best;
}

// Builds the optimizer's options from the config (names as the optimizer factory takes them).
Json optimizer_options(const TrainConfig& c) {
  Json o = Json::object();
  o["lr"] = c.lr;
  o["weight_decay"] = c.weight_decay;
  if (c.optimizer == "sgd") {
    o["momentum"] = c.momentum;
    o["nesterov"] = c.nesterov;
  }
  return o;
}

Json schedule_options(const TrainConfig& c) {
  Json o = Json::object();
  o["lr"] = c.lr;
  if (c.schedule == "cosine") {
    o["warmup_epochs"] = c.warmup_epochs;
    o["total_epochs"] = c.schedule_epochs > 0 ? c.schedule_epochs : c.epochs;
    o["min_lr"] = c.min_lr;
  } else if (c.schedule == "step") {
    o["step_epochs"] = c.step_epochs;
    o["gamma"] = c.step_gamma;
  }
  return o;
}

// The best.npz of a run records its epoch and validation accuracy, so that a run resumed
// after a crash between saving best.npz and last.npz never replaces it with a worse model.
double saved_best_accuracy(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return -1;
  std::fclose(f);
  const NpzArrays best = read_npz(path);
  if (!best.strings.count("training")) return -1;
  return Json::parse(best.strings.at("training")).get("val_accuracy", -1.0);
}

// Mixup (Zhang et al. 2018) on one batch, in place: lambda ~ Beta(alpha, alpha), a random
// pairing `perm` of the batch, x_i <- lambda * x_i + (1 - lambda) * x_perm(i); labels_b gets
// the partners' labels and partners their positions in the batch (perm). Seeded by (seed,
// step), so a resumed run draws the same blends.
float mixup_batch(data::Batch& batch, double alpha, uint64_t seed, int64_t step,
                  std::vector<int>& labels_b, std::vector<int>& partners) {
  Rng rng(seed * 0xD1B54A32D192ED03ull + static_cast<uint64_t>(step) + 0x6A09E667F3BCC909ull);
  const float lambda = static_cast<float>(rng.beta(alpha, alpha));
  const int n = static_cast<int>(batch.labels.size());
  std::vector<int> perm(n);
  for (int i = 0; i < n; ++i) perm[i] = i;
  for (int i = n - 1; i > 0; --i) std::swap(perm[i], perm[rng.below(i + 1)]);
  const Tensor original = batch.images.clone();
  const int64_t per = batch.images.numel() / std::max(n, 1);
  float* x = batch.images.data();
  const float* x0 = original.data();
  labels_b.resize(n);
  for (int i = 0; i < n; ++i) {
    labels_b[i] = batch.labels[perm[i]];
    const float* partner = x0 + perm[i] * per;
    for (int64_t j = 0; j < per; ++j)
      x[i * per + j] = lambda * x0[i * per + j] + (1 - lambda) * partner[j];
  }
  partners = std::move(perm);
  return lambda;
}

// The network's top-level child "backbone", or nullptr.
Layer* find_backbone(Model& model) {
  for (size_t i = 0; i < model.net().size(); ++i)
    if (model.net().layer(i).name() == "backbone") return &model.net().layer(i);
  return nullptr;
}

// Frozen for the whole run, or until unfreeze_epoch (staged fine-tuning). A function of
// the epoch alone, so --resume lands in the same stage.
bool backbone_frozen_at(const TrainConfig& cfg, int epoch) {
  return cfg.freeze_backbone && (cfg.unfreeze_epoch <= 0 || epoch < cfg.unfreeze_epoch);
}

TrainResult run(const TrainConfig& cfg, Model& model, TrainState st, const NpzArrays* resume_from) {
  make_dirs(cfg.out);
  const std::string history = cfg.out + "/history.csv";

  // Data.
  data::Dataset train_set = load_dataset_for(model, cfg.data, "Training", cfg.skip_bad,
                                             cfg.expect_height, cfg.expect_width);
  if (cfg.max_per_class > 0) train_set = data::subset(train_set, cfg.max_per_class, cfg.seed);
  size_t held_out = 0;  // images of the --holdout-fold, left out of training
  if (cfg.holdout_folds > 0) {
    const std::vector<int> fold = data::cross_validation_folds(train_set, cfg.holdout_folds);
    std::vector<char> keep(fold.size());
    for (size_t i = 0; i < fold.size(); ++i) keep[i] = fold[i] != cfg.holdout_fold;
    train_set = data::select(train_set, keep);
    held_out = fold.size() - train_set.size();
  }
  data::Dataset val_set = load_dataset_for(model, cfg.val, "PublicTest", cfg.skip_bad,
                                           cfg.expect_height, cfg.expect_width);
  if (cfg.val_max_per_class > 0)
    val_set = data::subset(val_set, cfg.val_max_per_class, cfg.seed + 1);
  FER_CHECK(train_set.classes == model.classes(), cfg.data,
            ": its classes do not match the model's");
  const auto counts = train_set.class_counts();
  std::vector<float> class_weights;
  if (cfg.class_weights == "balanced") class_weights = data::balanced_class_weights(counts);
  if (!cfg.quiet) {
    std::fprintf(stderr, "train: %zu images from %s", train_set.size(), cfg.data.c_str());
    if (train_set.skipped) std::fprintf(stderr, " (%lld skipped)", (long long)train_set.skipped);
    if (cfg.holdout_folds > 0)
      std::fprintf(stderr, " (fold %s held out: %zu images)",
                   holdout_name(cfg.holdout_fold, cfg.holdout_folds).c_str(), held_out);
    std::fprintf(stderr, "\nval:   %zu images from %s\n", val_set.size(), cfg.val.c_str());
    std::fprintf(stderr, "model: %s, %lld parameters (%lld trainable), %d threads\n",
                 model.name().c_str(), (long long)model.parameter_count(),
                 (long long)model.parameter_count(true), omp_get_max_threads());
  }

  const std::vector<float> soft_labels =
      teacher_probabilities(cfg, model, train_set, cfg.out + "/teachers.npz");
  std::vector<Model> online_teachers = load_online_teachers(cfg, model);
  const data::Preprocess pre = data::Preprocess::from_json(model.preprocess());
  const data::Augment aug = data::Augment::from_json(cfg.augment);
  const bool drop_last = train_set.size() > static_cast<size_t>(cfg.batch);
  data::BatchLoader loader(train_set, pre, aug, cfg.batch, /*shuffle=*/true, cfg.seed,
                           cfg.workers, drop_last);
  const int64_t steps_per_epoch = loader.batches_per_epoch();

  // Optimization.
  Layer* backbone = find_backbone(model);
  FER_CHECK(backbone || (!cfg.freeze_backbone && cfg.backbone_lr_scale == 1), "model '",
            model.name(), "' has no backbone to freeze or to train at its own learning rate "
            "(--freeze-backbone and --backbone-lr-scale are for the ImageNet architectures)");
  std::vector<Parameter*> params = model.parameters();
  auto optimizer = optim::make_optimizer(cfg.optimizer, params, optimizer_options(cfg));
  if (backbone && cfg.backbone_lr_scale != 1)
    for (Parameter* p : backbone->parameters())
      if (p->trainable) optimizer->set_lr_scale(p->name, static_cast<float>(cfg.backbone_lr_scale));
  auto schedule = optim::make_schedule(cfg.schedule, schedule_options(cfg));
  const std::string plateau_mode = cfg.monitor == "val_loss" ? "min" : "max";
  optim::ReduceLROnPlateau plateau(plateau_mode, static_cast<float>(cfg.plateau_factor),
                                   std::max(cfg.plateau_patience, 1),
                                   static_cast<float>(cfg.plateau_min_lr));
  if (!st.plateau.is_null()) plateau.load_state(st.plateau);
  if (resume_from) {
    FER_CHECK(resume_from->strings.count("optimizer"), "checkpoint has no optimizer state");
    optimizer->load_state(Json::parse(resume_from->strings.at("optimizer")), resume_from->tensors);
  }
  // The weights' moving average: of every parameter, BatchNorm's statistics included.
  std::unique_ptr<optim::WeightEma> ema;
  if (cfg.ema > 0) {
    ema = std::make_unique<optim::WeightEma>(params, static_cast<float>(cfg.ema));
    if (resume_from) ema->load_state(resume_from->tensors, cfg.out + "/last.npz");
  }

  std::unique_ptr<optim::SharpnessAwareStep> sam;
  if (cfg.sam > 0)
    sam = std::make_unique<optim::SharpnessAwareStep>(params, static_cast<float>(cfg.sam),
                                                      cfg.sam_adaptive);

  TrainResult result;
  for (int epoch = st.epoch; epoch < cfg.epochs; ++epoch) {
    loader.start_epoch(epoch);
    if (backbone) {
      const bool frozen = backbone_frozen_at(cfg, epoch);
      if (!cfg.quiet && cfg.freeze_backbone && frozen != backbone->frozen())
        std::fprintf(stderr, "backbone %s\n", frozen ? "frozen (training the head only)"
                                                     : "unfrozen (fine-tuning everything)");
      backbone->set_frozen(frozen);
    }
    model.net().reseed(cfg.seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(epoch));
    ProgressBar bar(epoch + 1, cfg.epochs, steps_per_epoch, cfg.quiet);
    data::Batch batch;
    double loss_sum = 0;
    int64_t correct = 0, seen = 0, step = 0;
    double lr = 0;
    while (loader.next(batch)) {
      lr = schedule->lr(st.global_step, steps_per_epoch) * st.lr_scale;
      optimizer->set_lr(static_cast<float>(lr));
      // Mixup blends each example with another of the batch; the accuracy counts the
      // label that dominates the blend.
      std::vector<int> labels_b, partners;
      float lambda = 1;
      if (cfg.mixup > 0)
        lambda = mixup_batch(batch, cfg.mixup, cfg.seed, st.global_step, labels_b, partners);
      // The loss of the batch as a function of the network's logits: the targets (labels,
      // teachers' rows, blends) are fixed before the first forward pass, so that SAM's
      // second pass is scored against the same ones.
      const float smoothing = static_cast<float>(cfg.label_smoothing);
      std::vector<float> targets;
      if (!soft_labels.empty() || !online_teachers.empty()) {
        // The teachers' rows of this batch's examples (computed before the run, or now on
        // this very batch), blended with the labels.
        const int64_t K = static_cast<int64_t>(model.classes().size());
        std::vector<float> rows;
        if (!online_teachers.empty()) {
          rows = online_teacher_probabilities(online_teachers, batch.images,
                                              cfg.teacher_temperature);
        } else {
          rows.resize(batch.labels.size() * K);
          for (size_t i = 0; i < batch.labels.size(); ++i)
            std::copy_n(soft_labels.data() + batch.indices[i] * K, K, rows.data() + i * K);
        }
        const float distill = static_cast<float>(cfg.distill);
        targets = distillation_targets(batch.labels, rows.data(), K, distill, smoothing);
        if (cfg.mixup > 0) {
          // Mixup with teachers: the target of a blend is the same blend of the two
          // examples' targets. Online teachers already scored the blended image, so only
          // its label part is blended; offline ones scored each face alone, so the
          // partner's row is blended in as well.
          std::vector<float> partner_rows;
          if (online_teachers.empty()) {
            partner_rows.resize(rows.size());
            for (size_t i = 0; i < partners.size(); ++i)
              std::copy_n(rows.data() + partners[i] * K, K, partner_rows.data() + i * K);
          }
          const std::vector<float> targets_b = distillation_targets(
              labels_b, (online_teachers.empty() ? partner_rows : rows).data(), K, distill,
              smoothing);
          for (size_t j = 0; j < targets.size(); ++j)
            targets[j] = lambda * targets[j] + (1 - lambda) * targets_b[j];
        }
      }
      auto loss_of = [&](const Tensor& logits) {
        if (!targets.empty()) return soft_target_cross_entropy(logits, targets);
        if (cfg.mixup > 0)
          return mixup_cross_entropy(logits, batch.labels, labels_b, lambda, smoothing,
                                     class_weights);
        return softmax_cross_entropy(logits, batch.labels, smoothing, class_weights);
      };
      // With SAM both passes must see the same dropout masks (the loss at w + e is the
      // same function of the weights as at w), so the masks are drawn from a seed of the
      // step, set again before the second pass. Without SAM the epoch's stream goes on.
      const uint64_t step_seed = cfg.seed * 0xBF58476D1CE4E5B9ull +
                                 static_cast<uint64_t>(st.global_step) * 0x94D049BB133111EBull;
      if (sam) model.net().reseed(step_seed);
      Tensor logits = model.forward(batch.images, /*training=*/true);
      Tensor loss = loss_of(logits);
      const std::vector<int>& dominant = lambda >= 0.5f ? batch.labels : labels_b;
      const int n = static_cast<int>(batch.labels.size());
      const int k = static_cast<int>(logits.dim(1));
      for (int i = 0; i < n; ++i) correct += argmax(logits.data() + i * k, k) == dominant[i];
      seen += n;
      loss_sum += loss.item() * n;
      backward(loss);
      if (sam) {
        // SAM: the gradient again at the worst point within rho of the weights (the
        // first pass's loss and accuracy are the ones reported, as in the SAM authors'
        // and davda54/sam's training loops).
        sam->ascend();
        optimizer->zero_grad();
        model.net().reseed(step_seed);
        Tensor perturbed_loss = loss_of(model.forward(batch.images, /*training=*/true));
        backward(perturbed_loss);
        sam->restore();
      }
      if (cfg.clip_norm > 0) optim::clip_grad_norm(params, static_cast<float>(cfg.clip_norm));
      if (cfg.clip_value > 0) optim::clip_grad_value(params, static_cast<float>(cfg.clip_value));
      optimizer->step();
      optimizer->zero_grad();
      if (ema) ema->update(st.global_step);
      ++st.global_step;
      ++step;
      FER_CHECK(std::isfinite(loss.item()), "training diverged: loss is ", loss.item(),
                " at epoch ", epoch + 1, " step ", step, " (try a lower --lr)");
      bar.update(step, loss_sum / seen, double(correct) / seen, seen);
    }
    const double train_seconds = bar.seconds();
    const double ips = bar.images_per_second();

    // With --ema, the averaged weights are validated and become best.npz.
    std::optional<optim::EmaSwap> averaged(std::in_place, ema.get());
    const Evaluation val = evaluate(model, val_set, std::max(cfg.batch, 128), false, cfg.workers);
    const double val_acc = val.confusion.accuracy();
    const double train_loss = loss_sum / std::max<int64_t>(seen, 1);
    const double train_acc = double(correct) / std::max<int64_t>(seen, 1);
    char summary[160];
    std::snprintf(summary, sizeof summary, "val_loss %.4f val_acc %.4f lr %.3g", val.loss, val_acc,
                  lr);
    bar.finish(summary);
    append_history(history, epoch + 1, train_loss, train_acc, val.loss, val_acc, lr,
                   train_seconds, ips);

    // Callbacks, in Keras's order: checkpoint best, ReduceLROnPlateau, early stopping.
    st.epoch = epoch + 1;
    const double monitored = cfg.monitor == "val_loss" ? val.loss : val_acc;
    if (val_acc > st.best_val_accuracy) {
      st.best_val_accuracy = val_acc;
      st.best_epoch = epoch + 1;
      Json best = Json::object();
      best["epoch"] = epoch + 1;
      best["val_accuracy"] = val_acc;
      // What --cv-teacher checks: which fold this model never saw.
      if (cfg.holdout_folds > 0)
        best["holdout_fold"] = holdout_name(cfg.holdout_fold, cfg.holdout_folds);
      model.save(cfg.out + "/best.npz", {}, {{"training", best.dump()}});
    }
    averaged.reset();  // the trained weights again
    if (cfg.plateau_patience > 0) {
      const float new_lr = plateau.on_epoch_end(static_cast<float>(monitored), static_cast<float>(lr));
      if (new_lr < lr * 0.999) {
        st.lr_scale *= new_lr / lr;
        if (!cfg.quiet) std::fprintf(stderr, "ReduceLROnPlateau: learning rate -> %.3g\n", new_lr);
      }
      st.plateau = plateau.state();
    }
    bool stop = false;
    if (cfg.early_stopping > 0) {
      const bool better = std::isnan(st.best_monitor) ||
                          (cfg.monitor == "val_loss" ? monitored < st.best_monitor - 1e-4
                                                     : monitored > st.best_monitor + 1e-4);
      if (better) {
        st.best_monitor = monitored;
        st.early_wait = 0;
      } else if (++st.early_wait >= cfg.early_stopping) {
        stop = true;
      }
    }
    // The last checkpoint carries everything --resume needs.
    Json training = Json::object();
    training["config"] = cfg.to_json();
    training["state"] = st.to_json();
    std::vector<std::pair<std::string, Tensor>> state = optimizer->state_tensors();
    if (ema)
      for (auto& named : ema->state_tensors()) state.push_back(std::move(named));
    model.save(cfg.out + "/last.npz", state,
               {{"training", training.dump(1)}, {"optimizer", optimizer->state_json().dump()}});
    result.epochs_run = epoch + 1;
    result.last_train_images_per_s = ips;
    if (stop) {
      if (!cfg.quiet)
        std::fprintf(stderr, "Early stopping: %s did not improve for %d epochs\n",
                     cfg.monitor.c_str(), cfg.early_stopping);
      break;
    }
  }
  result.best_val_accuracy = st.best_val_accuracy;
  result.best_epoch = st.best_epoch;
  // The run's product is best.npz: report it the way `fer eval` would, and write
  // report.html (training curves, and best.npz's evaluation on the validation data).
  if (file_exists(cfg.out + "/best.npz")) {
    Model best = Model::load(cfg.out + "/best.npz");
    const Evaluation ev = evaluate(best, val_set, std::max(cfg.batch, 128), true, cfg.workers);
    if (!cfg.quiet)
      std::printf("\nbest.npz (epoch %d) on %s: accuracy %.4f, macro F1 %.4f\n\n%s",
                  st.best_epoch, cfg.val.c_str(), ev.confusion.accuracy(),
                  ev.confusion.macro_f1(), ev.confusion.report(model.classes()).c_str());
    const std::vector<HistoryRow> rows = read_history_csv(history);
    const EvaluationSection section = evaluation_section(
        ev, val_set, cfg.val, "best.npz, epoch " + std::to_string(st.best_epoch) + "; TTA: none");
    write_report(cfg.out + "/report.html",
                 report_html(cfg.model + " trained in " + cfg.out, &rows, &section));
    if (!cfg.quiet) std::printf("report: %s/report.html\n", cfg.out.c_str());
  }
  return result;
}

}  // namespace

void TrainConfig::validate() const {
  FER_CHECK(epochs > 0, "--epochs must be positive, got ", epochs);
  FER_CHECK(batch > 0, "--batch must be positive, got ", batch);
  FER_CHECK(workers >= 0, "--workers must be >= 0, got ", workers);
  FER_CHECK(monitor == "val_loss" || monitor == "val_accuracy",
            "--monitor: expected val_accuracy or val_loss, got '", monitor, "'");
  FER_CHECK(class_weights == "none" || class_weights == "balanced",
            "--class-weights: expected none or balanced, got '", class_weights, "'");
  FER_CHECK(optimizer == "sgd" || optimizer == "adam" || optimizer == "adamw",
            "--optimizer: expected sgd, adam or adamw, got '", optimizer, "'");
  FER_CHECK(label_smoothing >= 0 && label_smoothing < 1, "--label-smoothing must be in [0, 1), got ",
            label_smoothing);
  FER_CHECK(mixup >= 0 && std::isfinite(mixup), "--mixup must be >= 0 (0 = off), got ", mixup);
  FER_CHECK(distill >= 0 && distill <= 1, "--distill must be in [0, 1], got ", distill);
  FER_CHECK(teacher_temperature > 0 && std::isfinite(teacher_temperature),
            "--teacher-temperature must be > 0, got ", teacher_temperature);
  FER_CHECK(teachers.empty() || class_weights == "none",
            "--teacher does not combine with --class-weights (the soft targets replace the "
            "labels' weighting)");
  data::check_tta(teacher_tta);
  FER_CHECK(cv_teachers.empty() || !teacher_online,
            "--cv-teacher is offline: each model answers for the images it never saw, once "
            "before training, so it does not combine with --teacher-online");
  FER_CHECK(!teacher_online || !teachers.empty(), "--teacher-online needs --teacher FILE");
  FER_CHECK(!teacher_online || teacher_tta == "none",
            "--teacher-online: the teachers see the model's own augmented batch, so "
            "--teacher-tta must be none, got '", teacher_tta, "'");
  for (const std::string& t : teachers) FER_CHECK(file_exists(t), "--teacher ", t, ": no such file");
  FER_CHECK(cv_teachers.empty() || class_weights == "none",
            "--cv-teacher does not combine with --class-weights (the soft targets replace the "
            "labels' weighting)");
  FER_CHECK(cv_teachers.empty() || holdout_folds == 0,
            "--cv-teacher and --holdout-fold do not combine (the folds are of the whole "
            "training set)");
  for (const std::string& list : cv_teachers) {
    const std::vector<std::string> models = cv_teacher_models(list);
    FER_CHECK(models.size() >= 2, "--cv-teacher ", list,
              ": expected the comma-separated models of 2 or more folds (model k held out "
              "fold k)");
    for (const std::string& m : models)
      FER_CHECK(file_exists(m), "--cv-teacher ", list, ": ", m.empty() ? "(empty name)" : m,
                ": no such file");
  }
  FER_CHECK(holdout_folds == 0 || (holdout_folds >= 2 && holdout_fold >= 0 &&
                                   holdout_fold < holdout_folds),
            "--holdout-fold K/N needs N >= 2 and 0 <= K < N, got ",
            holdout_name(holdout_fold, holdout_folds));
  FER_CHECK(ema >= 0 && ema < 1, "--ema must be in [0, 1) (0 = off; 0.999 is typical), got ", ema);
  FER_CHECK(std::isfinite(sam) && sam >= 0,
            "--sam must be >= 0 (the radius rho; 0 = off, 0.05 is typical), got ", sam);
  FER_CHECK(!sam_adaptive || sam > 0, "--sam-adaptive needs --sam RHO");
  FER_CHECK(expect_height >= 0 && expect_width >= 0, "--expect-size must be positive");
  FER_CHECK(!skip_mismatched || !weights.empty(), "--skip-mismatched needs --weights FILE");
  FER_CHECK(unfreeze_epoch >= 0, "--unfreeze-epoch must be >= 0, got ", unfreeze_epoch);
  FER_CHECK(unfreeze_epoch == 0 || freeze_backbone, "--unfreeze-epoch needs --freeze-backbone");
  FER_CHECK(backbone_lr_scale >= 0, "--backbone-lr-scale must be >= 0, got ", backbone_lr_scale);
  optim::make_schedule(schedule, schedule_options(*this));  // throws on bad schedule settings
  data::Augment::from_json(augment).check();
}

namespace {

// A weights file of the same architecture fixes the options the weights depend on: the
// width (alpha, depth_multiplier), the padding and BatchNorm epsilon they were trained
// with, and the input scaling. Options given explicitly win.
void inherit_weight_options(TrainConfig& config, const NpzArrays& arrays) {
  if (!arrays.strings.count("architecture")) return;
  const Json arch = Json::parse(arrays.strings.at("architecture"));
  if (arch.get("name", "") != config.model || !arch.contains("options")) return;
  const Json& from = arch.at("options");
  for (const char* key : {"alpha", "depth_multiplier", "padding", "bn_epsilon", "scale", "channels"})
    if (from.contains(key) && !config.model_options.contains(key))
      config.model_options[key] = from.at(key);
}

}  // namespace

TrainResult train(const TrainConfig& original) {
  original.validate();
  TrainConfig config = original;
  NpzArrays arrays;
  if (!config.weights.empty()) {
    arrays = read_npz(config.weights);
    inherit_weight_options(config, arrays);
  }
  Model model = Model::from_architecture(make_architecture(config.model, config.model_options),
                                         config.seed);
  if (!config.weights.empty()) {
    const int loaded = model.load_weights(arrays, config.weights, config.skip_mismatched);
    const int total = static_cast<int>(model.parameters().size());
    FER_CHECK(loaded > 0, config.weights, ": no array fits model '", model.name(),
              "' (is it the same architecture, with the same --alpha?)");
    if (!config.quiet)
      std::fprintf(stderr, "weights: %d of %d arrays from %s%s\n", loaded, total,
                   config.weights.c_str(),
                   loaded < total ? " (the rest keep their fresh initialization)" : "");
  }
  make_dirs(config.out);
  std::remove((config.out + "/history.csv").c_str());  // a new run starts a new history
  return run(config, model, TrainState(), nullptr);
}

TrainResult resume(const std::string& run_dir, int epochs_override) {
  const std::string path = run_dir + "/last.npz";
  const NpzArrays arrays = read_npz(path);
  FER_CHECK(arrays.strings.count("training"), path,
            ": not a training checkpoint (no 'training' entry)");
  const Json training = Json::parse(arrays.strings.at("training"));
  TrainConfig cfg = TrainConfig::from_json(training.at("config"));
  cfg.out = run_dir;
  if (epochs_override > 0) {
    // Extending a run keeps its learning-rate schedule where it was (a cosine would jump
    // back up if it were re-stretched over the new length).
    if (cfg.schedule_epochs == 0) cfg.schedule_epochs = cfg.epochs;
    cfg.epochs = epochs_override;
  }
  cfg.validate();
  TrainState st = TrainState::from_json(training.at("state"));
  st.best_val_accuracy = std::max(st.best_val_accuracy, saved_best_accuracy(run_dir + "/best.npz"));
  Model model = Model::load(path);
  trim_history(run_dir + "/history.csv", st.epoch);
  if (!cfg.quiet)
    std::fprintf(stderr, "resuming %s at epoch %d of %d\n", run_dir.c_str(), st.epoch + 1,
                 cfg.epochs);
  return run(cfg, model, st, &arrays);
}

}  // namespace fer
