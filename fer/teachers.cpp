// Knowledge distillation's teachers for `fer train`: the soft labels of offline teachers
// (--teacher, computed once before training), of cross-validated teachers (--cv-teacher:
// each image scored by the model that never trained on it), and online teachers
// (--teacher-online: scoring every batch as the student sees it).
#include "fer/teachers.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <utility>

#include "data/preprocess.h"
#include "fer/atomic_file.h"
#include "fer/autograd.h"
#include "fer/error.h"
#include "fer/evaluate.h"
#include "fer/json.h"
#include "fer/npz.h"
#include "fer/zip.h"
#include "layers/loss.h"

namespace fer {

namespace {

// Softens rows of K probabilities at temperature T: p_k^(1/T), renormalized (for one
// teacher that is softmax(z / T)). T = 1 leaves them as they are.
void soften(std::vector<float>& p, int64_t K, double T) {
  if (T == 1) return;
  const double inv_T = 1 / T;
  for (int64_t i = 0; i + K <= static_cast<int64_t>(p.size()); i += K) {
    float* row = p.data() + i;
    double sum = 0;
    for (int64_t k = 0; k < K; ++k) sum += row[k] = static_cast<float>(std::pow(row[k], inv_T));
    for (int64_t k = 0; k < K; ++k) row[k] = static_cast<float>(row[k] / sum);
  }
}

// A --teacher model, which must know the student's classes in the student's order.
Model load_teacher(const std::string& path, const Model& student) {
  Model teacher = Model::load(path);
  FER_CHECK(teacher.classes() == student.classes(), "--teacher ", path,
            ": its classes differ from the model's");
  return teacher;
}

// Model k of a --cv-teacher must not have trained on fold k: its best.npz (or export)
// records the fold it held out. A model with a training record and no held-out fold saw
// every fold; one without a record (converted weights) cannot be checked.
void check_held_out(const std::string& path, int fold, int folds) {
  const NpzArrays arrays = read_npz(path);
  if (!arrays.strings.count("training")) return;
  const std::string held_out =
      Json::parse(arrays.strings.at("training")).get("holdout_fold", "");
  FER_CHECK(held_out == holdout_name(fold, folds), "--cv-teacher: ", path, " is model ", fold,
            " of ", folds, ", so it must be trained with --holdout-fold ",
            holdout_name(fold, folds), ", but ",
            held_out.empty() ? std::string("it trained on every fold")
                             : "it held out fold " + held_out);
}

// The distinct names in `names`, first-seen order, each with how often it appears: a
// teacher named twice weighs twice as much in the average but is run once.
std::vector<std::pair<std::string, int>> counted(const std::vector<std::string>& names) {
  std::vector<std::pair<std::string, int>> out;
  for (const std::string& name : names) {
    auto seen = std::find_if(out.begin(), out.end(), [&](const auto& e) { return e.first == name; });
    if (seen == out.end()) out.emplace_back(name, 1);
    else ++seen->second;
  }
  return out;
}

}  // namespace

// "K/N": fold K of N, as --holdout-fold spells it.
std::string holdout_name(int fold, int folds) {
  return std::to_string(fold) + "/" + std::to_string(folds);
}

// The models of one --cv-teacher entry ("a.npz,b.npz,c.npz").
std::vector<std::string> cv_teacher_models(const std::string& list) {
  std::vector<std::string> parts;
  size_t begin = 0;
  for (size_t comma; (comma = list.find(',', begin)) != std::string::npos; begin = comma + 1)
    parts.push_back(list.substr(begin, comma - begin));
  parts.push_back(list.substr(begin));
  return parts;
}

namespace {

// Knowledge distillation's soft labels: the teachers' class probabilities for every
// example of train_set (N*K, row i = example i), averaged over the teachers. Computed once
// per run, in inference mode on the un-augmented images ("offline" distillation: the
// student trains on augmented views, the teachers' opinion is of the whole face). A
// teacher that wants other channels (gray vs RGB) reads its own copy of the data, which
// must hold the same examples in the same order. A --cv-teacher is one teacher whose
// model k answers for the examples of fold k.
std::vector<float> compute_teacher_probabilities(const TrainConfig& cfg, const Model& student,
                                                 const data::Dataset& train_set) {
  const size_t sources = cfg.teachers.size() + cfg.cv_teachers.size();
  const int64_t N = static_cast<int64_t>(train_set.size());
  const int64_t K = static_cast<int64_t>(student.classes().size());
  const int student_channels = data::Preprocess::from_json(student.preprocess()).channels;
  std::vector<float> average(N * K, 0.f);
  const float share = 1.f / static_cast<float>(sources);
  // One model's probabilities for the examples `keep` marks (all when empty), in order;
  // the model and its buffers go when it returns.
  const auto probabilities_of = [&](const std::string& path, const std::vector<char>& keep) {
    Model teacher = load_teacher(path, student);
    data::Dataset own;
    const data::Dataset* data = &train_set;
    if (data::Preprocess::from_json(teacher.preprocess()).channels != student_channels) {
      own = load_dataset_for(teacher, cfg.data, "Training", cfg.skip_bad, cfg.expect_height,
                             cfg.expect_width);
      if (cfg.max_per_class > 0) own = data::subset(own, cfg.max_per_class, cfg.seed);
      FER_CHECK(own.labels == train_set.labels, "--teacher ", path, ": its copy of ", cfg.data,
                " (other channels) does not hold the same examples");
      data = &own;
    }
    if (!keep.empty()) {
      own = data::select(*data, keep);
      data = &own;
    }
    std::vector<float> p = class_probabilities(teacher, *data, 256, cfg.teacher_tta, cfg.workers);
    // The teacher ran at batch 256 and its own input size: the pool's blocks of those
    // sizes (and of its weights) would never be reused by the next teacher or by
    // training, only held (with a 96-px and a 128-px teacher, 0.77 GB more peak RSS).
    release_cached_buffers();
    return p;
  };
  for (const auto& entry : counted(cfg.cv_teachers)) {  // fail before any model runs
    const std::vector<std::string> models = cv_teacher_models(entry.first);
    for (size_t k = 0; k < models.size(); ++k)
      check_held_out(models[k], static_cast<int>(k), static_cast<int>(models.size()));
  }
  for (const auto& [path, times] : counted(cfg.teachers)) {
    const std::vector<float> p = probabilities_of(path, {});
    const float weight = share * static_cast<float>(times);
    for (int64_t i = 0; i < N * K; ++i) average[i] += weight * p[i];
  }
  for (const auto& [list, times] : counted(cfg.cv_teachers)) {
    const float weight = share * static_cast<float>(times);
    const std::vector<std::string> models = cv_teacher_models(list);
    const int folds = static_cast<int>(models.size());
    const std::vector<int> fold = data::cross_validation_folds(train_set, folds);
    for (int k = 0; k < folds; ++k) {
      std::vector<char> keep(N);
      for (int64_t i = 0; i < N; ++i) keep[i] = fold[i] == k;
      const std::vector<float> p = probabilities_of(models[k], keep);
      int64_t row = 0;  // p's rows are fold k's examples, in order
      for (int64_t i = 0; i < N; ++i)
        if (keep[i]) {
          for (int64_t c = 0; c < K; ++c) average[i * K + c] += weight * p[row * K + c];
          ++row;
        }
    }
  }
  soften(average, K, cfg.teacher_temperature);
  return average;
}

// How the soft labels relate to the labels, printed when training starts.
void print_agreement(const TrainConfig& cfg, const std::vector<float>& average, int64_t K,
                     const data::Dataset& train_set) {
  const int64_t N = static_cast<int64_t>(train_set.size());
  int64_t agree = 0;
  double label_mass = 0;
  for (int64_t i = 0; i < N; ++i) {
    const float* row = average.data() + i * K;
    agree += std::max_element(row, row + K) - row == train_set.labels[i];
    label_mass += average[i * K + train_set.labels[i]];
  }
  std::fprintf(stderr, "teachers: %zu model(s) + %zu cross-validated, TTA %s, T %g: agree "
               "with %.1f%% of the training labels, give them %.3f on average; target = "
               "%.2f * label + %.2f * teachers\n", cfg.teachers.size(),
               cfg.cv_teachers.size(), cfg.teacher_tta.c_str(), cfg.teacher_temperature,
               100.0 * agree / std::max<int64_t>(N, 1), label_mass / std::max<int64_t>(N, 1),
               1 - cfg.distill, cfg.distill);
}

// What the soft labels are a function of, as JSON text: every teacher file (path, size and
// CRC-32 of its bytes, so a file retrained in place counts as another teacher), the
// views, the temperature, and the training examples in order (their sources and labels).
std::string soft_label_key(const TrainConfig& cfg, const data::Dataset& train_set, int64_t K) {
  const auto file = [](const std::string& path) {
    const std::vector<uint8_t> bytes = read_file_bytes(path);
    Json f = Json::object();
    f["path"] = path;
    f["bytes"] = bytes.size();
    f["crc32"] = static_cast<int64_t>(crc32(bytes.data(), bytes.size()));
    return f;
  };
  Json key = Json::object();
  key["teachers"] = Json::array();
  for (const std::string& t : cfg.teachers) key["teachers"].push_back(file(t));
  key["cv_teachers"] = Json::array();
  for (const std::string& list : cfg.cv_teachers) {
    Json models = Json::array();
    for (const std::string& m : cv_teacher_models(list)) models.push_back(file(m));
    key["cv_teachers"].push_back(models);
  }
  key["teacher_tta"] = cfg.teacher_tta;
  key["teacher_temperature"] = cfg.teacher_temperature;
  key["classes"] = K;
  key["examples"] = train_set.size();
  uint32_t examples_crc = 0;
  for (size_t i = 0; i < train_set.size(); ++i) {
    const std::string line =
        train_set.sources[i] + "\t" + std::to_string(train_set.labels[i]) + "\n";
    examples_crc =
        crc32(reinterpret_cast<const uint8_t*>(line.data()), line.size(), examples_crc);
  }
  key["examples_crc32"] = static_cast<int64_t>(examples_crc);
  return key.dump();
}

}  // namespace

std::vector<float> teacher_probabilities(const TrainConfig& cfg, const Model& student,
                                         const data::Dataset& train_set,
                                         const std::string& cache) {
  if (cfg.teachers.size() + cfg.cv_teachers.size() == 0 || cfg.teacher_online) return {};
  const int64_t N = static_cast<int64_t>(train_set.size());
  const int64_t K = static_cast<int64_t>(student.classes().size());
  std::string key;
  if (!cache.empty()) {
    key = soft_label_key(cfg, train_set, K);
    if (file_exists(cache)) {
      // A damaged or stale copy is only a lost shortcut: say so and compute them again.
      std::string why;
      try {
        const NpzArrays kept = read_npz(cache);
        const Tensor& p = kept.tensor("probabilities");
        if (kept.string("key") != key) {
          why = "it was computed for other teachers, settings or training images";
        } else if (p.shape() != Shape{N, K}) {
          why = "its probabilities are " + shape_str(p.shape()) + ", not [" +
                std::to_string(N) + ", " + std::to_string(K) + "]";
        } else {
          std::vector<float> average = p.to_vector();
          if (!cfg.quiet) {
            std::fprintf(stderr, "teachers: probabilities read from %s (same teacher files, "
                         "settings and training images)\n", cache.c_str());
            print_agreement(cfg, average, K, train_set);
          }
          return average;
        }
      } catch (const Error& e) {
        why = e.what();
      }
      // Printed even with --quiet: it explains minutes of teacher passes nobody expected.
      std::fprintf(stderr, "teachers: not using %s (%s): computing them again\n",
                   cache.c_str(), why.c_str());
    }
  }
  std::vector<float> average = compute_teacher_probabilities(cfg, student, train_set);
  if (!cfg.quiet) print_agreement(cfg, average, K, train_set);
  if (!cache.empty()) {
    try {
      write_npz(cache, {{"probabilities", Tensor(Shape{N, K}, average)}}, {{"key", key}});
    } catch (const Error& e) {  // training does not need the copy
      std::fprintf(stderr, "teachers: warning: could not keep them in %s: %s\n", cache.c_str(),
                   e.what());
    }
  }
  return average;
}

// --teacher-online: the teachers, loaded once. Each must take the student's input as the
// batch loader renders it, since it is given the student's very batch.
std::vector<Model> load_online_teachers(const TrainConfig& cfg, const Model& student) {
  std::vector<Model> teachers;
  if (!cfg.teacher_online) return teachers;
  const data::Preprocess mine = data::Preprocess::from_json(student.preprocess());
  for (const std::string& path : cfg.teachers) {
    Model teacher = load_teacher(path, student);
    const data::Preprocess theirs = data::Preprocess::from_json(teacher.preprocess());
    FER_CHECK(theirs.height == mine.height && theirs.width == mine.width &&
                  theirs.channels == mine.channels && theirs.scale == mine.scale,
              "--teacher ", path, " takes ", theirs.height, "x", theirs.width, "x",
              theirs.channels, " inputs scaled '", theirs.scale, "', the model ", mine.height,
              "x", mine.width, "x", mine.channels, " scaled '", mine.scale,
              "': with --teacher-online the teachers see the model's own batches");
    teachers.push_back(std::move(teacher));
  }
  if (!cfg.quiet)
    std::fprintf(stderr, "teachers: %zu model(s), online (each batch as the model sees it), "
                 "T %g; target = %.2f * label + %.2f * teachers\n", teachers.size(),
                 cfg.teacher_temperature, 1 - cfg.distill, cfg.distill);
  return teachers;
}

// The online teachers' class probabilities for one batch (rows x K, row i = example i),
// averaged over the teachers and softened at the configured temperature.
std::vector<float> online_teacher_probabilities(std::vector<Model>& teachers,
                                                const Tensor& images, double temperature) {
  NoGradGuard no_grad;  // inference: nothing recorded
  std::vector<float> average;
  const float share = 1.f / static_cast<float>(teachers.size());
  for (Model& teacher : teachers) {
    const Tensor logits = teacher.forward(images, /*training=*/false);
    const std::vector<float> p = softmax_probabilities(logits);
    if (average.empty()) average.assign(p.size(), 0.f);
    for (size_t i = 0; i < p.size(); ++i) average[i] += share * p[i];
  }
  const int64_t K = static_cast<int64_t>(average.size()) / images.dim(0);
  soften(average, K, temperature);
  return average;
}

}  // namespace fer
