// Knowledge distillation's teachers (`fer train --teacher / --cv-teacher /
// --teacher-online`): the class probabilities that become the student's soft targets.
#pragma once

#include <string>
#include <vector>

#include "data/dataset.h"
#include "fer/model.h"
#include "fer/tensor.h"
#include "fer/trainer.h"

namespace fer {

// "K/N": fold K of N, as --holdout-fold spells it (and best.npz records it).
std::string holdout_name(int fold, int folds);

// The models of one --cv-teacher entry, "a.npz,b.npz,c.npz" -> {a, b, c}.
std::vector<std::string> cv_teacher_models(const std::string& list);

// The offline teachers' soft labels for every example of train_set (N*K, row i = example
// i): each --teacher's probabilities (teacher_tta views, its own preprocessing), and for
// each --cv-teacher the probabilities of model k on the examples of fold k
// (data::cross_validation_folds of train_set) -- every --teacher and every --cv-teacher
// weighing the same -- averaged and softened at cfg.teacher_temperature. Empty without
// offline teachers. Throws when model k of a --cv-teacher records another held-out fold
// than k (or none), so it cannot score images it trained on. Prints their agreement with
// the labels unless cfg.quiet.
//
// `cache` (fer train passes RUN/teachers.npz): the probabilities are kept there, with a
// key naming what they depend on (each teacher file's path, size and CRC-32, the views,
// the temperature, the training examples and their labels), and read back instead of
// recomputed when the key still matches -- so `--resume` does not run every teacher over
// the training set again (minutes per teacher). A stale or damaged file is recomputed
// and replaced, with a note; failing to write it is a warning, not an error.
std::vector<float> teacher_probabilities(const TrainConfig& cfg, const Model& student,
                                         const data::Dataset& train_set,
                                         const std::string& cache = "");

// --teacher-online: the teachers, loaded once; each must take the student's input as the
// batch loader renders it (empty without --teacher-online).
std::vector<Model> load_online_teachers(const TrainConfig& cfg, const Model& student);

// The online teachers' class probabilities for one batch (rows x K, row i = example i),
// averaged over the teachers and softened at temperature T.
std::vector<float> online_teacher_probabilities(std::vector<Model>& teachers,
                                                const Tensor& images, double temperature);

}  // namespace fer
