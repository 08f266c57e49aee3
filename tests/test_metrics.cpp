// Confusion matrix metrics on a small example worked out by hand.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "fer/error.h"
#include "fer/json.h"
#include "fer/metrics.h"

using namespace fer;

namespace {

// 10 examples, 3 classes. Rows are the true class, columns the prediction:
//              pred 0  pred 1  pred 2   | support
//   true 0        2       1       0     |   3
//   true 1        0       3       2     |   5
//   true 2        1       0       1     |   2
//   predicted     3       4       3     |  10, of which 2 + 3 + 1 = 6 correct
ConfusionMatrix example() {
  ConfusionMatrix cm(3);
  const int pairs[][2] = {{0, 0}, {0, 0}, {0, 1}, {1, 1}, {1, 1}, {1, 1}, {1, 2}, {1, 2},
                          {2, 0}, {2, 2}};
  for (const auto& p : pairs) cm.add(p[0], p[1]);
  return cm;
}

const std::vector<std::string> kNames = {"happy", "sad", "neutral"};

}  // namespace

TEST(ConfusionMatrix, CountsAndAccuracy) {
  const ConfusionMatrix cm = example();
  EXPECT_EQ(cm.total(), 10);
  EXPECT_EQ(cm.count(1, 2), 2);
  EXPECT_EQ(cm.count(2, 0), 1);
  EXPECT_EQ(cm.count(0, 2), 0);
  EXPECT_DOUBLE_EQ(cm.accuracy(), 0.6);  // 6 / 10
  EXPECT_EQ(cm.support(0), 3);
  EXPECT_EQ(cm.support(1), 5);
  EXPECT_EQ(cm.support(2), 2);
}

TEST(ConfusionMatrix, PrecisionRecallF1) {
  const ConfusionMatrix cm = example();
  // class 0: precision 2/3 (column 3), recall 2/3 (row 3), f1 2/3
  EXPECT_DOUBLE_EQ(cm.precision(0), 2.0 / 3);
  EXPECT_DOUBLE_EQ(cm.recall(0), 2.0 / 3);
  EXPECT_DOUBLE_EQ(cm.f1(0), 2.0 / 3);
  // class 1: precision 3/4, recall 3/5, f1 = 2 * 0.75 * 0.6 / 1.35 = 2/3
  EXPECT_DOUBLE_EQ(cm.precision(1), 0.75);
  EXPECT_DOUBLE_EQ(cm.recall(1), 0.6);
  EXPECT_NEAR(cm.f1(1), 2.0 / 3, 1e-12);
  // class 2: precision 1/3, recall 1/2, f1 = 2 * (1/6) / (5/6) = 0.4
  EXPECT_DOUBLE_EQ(cm.precision(2), 1.0 / 3);
  EXPECT_DOUBLE_EQ(cm.recall(2), 0.5);
  EXPECT_NEAR(cm.f1(2), 0.4, 1e-12);
  // macro F1 = (2/3 + 2/3 + 0.4) / 3; weighted = (3 * 2/3 + 5 * 2/3 + 2 * 0.4) / 10
  EXPECT_NEAR(cm.macro_f1(), (4.0 / 3 + 0.4) / 3, 1e-12);
  EXPECT_NEAR(cm.weighted_f1(), (2 + 10.0 / 3 + 0.8) / 10, 1e-12);
}

TEST(ConfusionMatrix, ZeroDenominatorsGiveZero) {
  ConfusionMatrix cm(3);
  EXPECT_EQ(cm.accuracy(), 0.0);  // empty
  cm.add(0, 0);
  cm.add(0, 1);
  cm.add(1, 1);
  // Class 2 is neither present nor predicted: precision, recall and F1 are 0 (not NaN),
  // and it still counts in the macro average, pulling it down.
  EXPECT_EQ(cm.precision(2), 0.0);
  EXPECT_EQ(cm.recall(2), 0.0);
  EXPECT_EQ(cm.f1(2), 0.0);
  // Class 0: precision 1/1, recall 1/2, f1 2/3; class 1: precision 1/2, recall 1, f1 2/3.
  EXPECT_NEAR(cm.macro_f1(), (2.0 / 3 + 2.0 / 3 + 0) / 3, 1e-12);
  cm.reset();
  EXPECT_EQ(cm.total(), 0);
  EXPECT_EQ(cm.count(0, 0), 0);
}

TEST(ConfusionMatrix, MergeAddsCounts) {
  ConfusionMatrix a = example();
  a.merge(example());
  EXPECT_EQ(a.total(), 20);
  EXPECT_EQ(a.count(1, 2), 4);
  EXPECT_DOUBLE_EQ(a.accuracy(), 0.6);
  EXPECT_THROW(a.merge(ConfusionMatrix(4)), Error);
}

TEST(ConfusionMatrix, LabelsOutOfRangeAreErrors) {
  ConfusionMatrix cm(3);
  try {
    cm.add(0, 3);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("predicted class 3 is outside [0, 3)"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(cm.add(-1, 0), Error);
  EXPECT_THROW(ConfusionMatrix(0), Error);
  EXPECT_THROW(cm.to_json({"a", "b"}), Error);  // 2 names for 3 classes
}

TEST(ConfusionMatrix, Json) {
  const Json j = Json::parse(example().to_json(kNames).dump());
  EXPECT_DOUBLE_EQ(j.at("accuracy").as_number(), 0.6);
  EXPECT_NEAR(j.at("macro_f1").as_number(), (4.0 / 3 + 0.4) / 3, 1e-8);
  const Json& sad = j.at("per_class").at("sad");
  EXPECT_NEAR(sad.at("precision").as_number(), 0.75, 1e-8);
  EXPECT_NEAR(sad.at("recall").as_number(), 0.6, 1e-8);
  EXPECT_NEAR(sad.at("f1").as_number(), 2.0 / 3, 1e-8);
  EXPECT_EQ(sad.at("support").as_int(), 5);
  EXPECT_EQ(j.at("confusion_matrix")[1][2].as_int(), 2);
  EXPECT_EQ(j.at("confusion_matrix")[2][0].as_int(), 1);
  EXPECT_EQ(j.at("classes")[2].as_string(), "neutral");
  // Without names, classes are numbered.
  EXPECT_EQ(example().to_json().at("classes")[1].as_string(), "1");
}

TEST(ConfusionMatrix, ReportLooksLikeScikitLearns) {
  const std::string text = example().report(kNames);
  auto has = [&](const std::string& line) {
    EXPECT_NE(text.find(line), std::string::npos) << "missing line:\n" << line << "\nin:\n"
                                                  << text;
  };
  // The name column is as wide as "weighted avg" (12), then columns of width 9.
  has("              precision    recall  f1-score   support\n\n");
  has("       happy     0.6667    0.6667    0.6667         3\n");
  has("         sad     0.7500    0.6000    0.6667         5\n");
  has("     neutral     0.3333    0.5000    0.4000         2\n");
  has("    accuracy                         0.6000        10\n");
  // macro precision (2/3 + 3/4 + 1/3) / 3 = 0.5833, recall (2/3 + 3/5 + 1/2) / 3 = 0.5889
  has("   macro avg     0.5833    0.5889    0.5778        10\n");
  // weighted precision (3 * 2/3 + 5 * 3/4 + 2 * 1/3) / 10 = 0.6417, recall = accuracy
  has("weighted avg     0.6417    0.6000    0.6133        10\n");
  // The matrix, rows are the true classes.
  has("               happy     sad neutral\n");
  has("         sad       0       3       2\n");
}
