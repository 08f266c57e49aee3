// The HTML report and what it draws: ROC curves and AUC (against hand-computed and
// Mann-Whitney values), history.csv reading, the most confident mistakes, the SVG charts'
// coordinates, and the page itself (every number traceable, images decodable, names
// escaped, nothing external). An optional check renders a sample page with chromium.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "data/image.h"
#include "fer/atomic_file.h"
#include "fer/error.h"
#include "fer/json.h"
#include "fer/metrics.h"
#include "fer/report.h"
#include "fer/roc.h"
#include "fer/svg_chart.h"
#include "tests/command.h"
#include "tests/error_of.h"

using namespace fer;
using fer::testing::error_of;

namespace {

std::string temp(const std::string& name) {
  return std::string(FER_BINARY_DIR) + "/report_test_" + name;
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// Binary one-vs-rest input: the score of class 1 is `score`, class 0 gets 1 - score.
std::vector<std::vector<float>> two_class(const std::vector<float>& score) {
  std::vector<std::vector<float>> p;
  for (float s : score) p.push_back({1 - s, s});
  return p;
}

// AUC as the Mann-Whitney statistic: the fraction of (positive, negative) pairs in which
// the positive scores higher, ties counting one half. Independent of the curve.
double mann_whitney_auc(const std::vector<std::vector<float>>& p, const std::vector<int>& labels,
                        int k) {
  double wins = 0;
  int64_t pairs = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] != k) continue;
    for (size_t j = 0; j < labels.size(); ++j) {
      if (labels[j] == k) continue;
      ++pairs;
      if (p[i][k] > p[j][k]) wins += 1;
      else if (p[i][k] == p[j][k]) wins += 0.5;
    }
  }
  return wins / double(pairs);
}

// Random multi-class probabilities with many exact ties (scores rounded to 0.05).
void random_problem(int n, int classes, unsigned seed, std::vector<std::vector<float>>& p,
                    std::vector<int>& labels) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0, 1);
  p.clear();
  labels.clear();
  for (int i = 0; i < n; ++i) {
    const int y = int(rng() % classes);
    std::vector<float> row(classes);
    float sum = 0;
    for (int c = 0; c < classes; ++c) {
      row[c] = u(rng) + (c == y ? 0.6f : 0.0f);
      sum += row[c];
    }
    for (float& v : row) v = std::round(v / sum * 20) / 20;
    p.push_back(row);
    labels.push_back(y);
  }
}

// Everything between <svg ... id="ID" and its </svg>.
std::string svg_by_id(const std::string& html, const std::string& id) {
  const size_t at = html.find("id=\"" + id + "\"");
  if (at == std::string::npos) return "";
  const size_t begin = html.rfind("<svg", at);
  const size_t end = html.find("</svg>", at);
  return html.substr(begin, end - begin);
}

double attribute(const std::string& element, const std::string& name) {
  std::smatch m;
  if (!std::regex_search(element, m, std::regex(" " + name + "=\"([^\"]*)\""))) return NAN;
  return std::stod(m[1]);
}

std::vector<std::pair<double, double>> polyline_points(const std::string& svg,
                                                       const std::string& series) {
  std::smatch m;
  std::vector<std::pair<double, double>> out;
  if (!std::regex_search(svg, m, std::regex("<polyline[^>]* data-series=\"" + series +
                                            "\"[^>]* points=\"([^\"]*)\"")))
    return out;
  std::istringstream in(m[1].str());
  std::string xy;
  while (in >> xy) {
    const size_t comma = xy.find(',');
    out.emplace_back(std::stod(xy.substr(0, comma)), std::stod(xy.substr(comma + 1)));
  }
  return out;
}

std::string f4(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.4f", v);
  return buf;
}

// How `fer eval --json` writes a number.
std::string json_number(double v) { return Json(v).dump(); }

std::vector<uint8_t> base64_decode(const std::string& s) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::vector<uint8_t> out;
  uint32_t bits = 0;
  int have = 0;
  for (char c : s) {
    if (c == '=') break;
    const int v = value(c);
    if (v < 0) return {};  // not base64
    bits = (bits << 6) | uint32_t(v);
    have += 6;
    if (have >= 8) {
      have -= 8;
      out.push_back(uint8_t((bits >> have) & 0xFF));
    }
  }
  return out;
}

data::Image gradient_image(int h, int w, int channels) {
  data::Image im;
  im.height = h;
  im.width = w;
  im.channels = channels;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < channels; ++c) im.pixels.push_back(uint8_t((x * 5 + y * 3 + c * 70) & 255));
  return im;
}

// A small evaluation: 3 classes (one with a name that needs escaping), 10 examples.
struct Example {
  std::vector<std::vector<float>> probabilities;
  std::vector<int> labels;
  EvaluationSection section;
};

Example small_example() {
  Example e;
  e.probabilities = {{0.7f, 0.2f, 0.1f}, {0.6f, 0.3f, 0.1f}, {0.2f, 0.5f, 0.3f},
                     {0.1f, 0.8f, 0.1f}, {0.3f, 0.6f, 0.1f}, {0.2f, 0.3f, 0.5f},
                     {0.1f, 0.1f, 0.8f}, {0.5f, 0.1f, 0.4f}, {0.2f, 0.2f, 0.6f},
                     {0.3f, 0.3f, 0.4f}};
  e.labels = {0, 0, 0, 1, 1, 1, 2, 2, 2, 1};
  e.section.classes = {"happy", "a<b&c", "sad"};
  e.section.data = "/data/val & \"test\"";
  e.section.note = "TTA: <none>";
  e.section.loss = 0.8123456;
  e.section.confusion = ConfusionMatrix(3);
  for (size_t i = 0; i < e.labels.size(); ++i) {
    const auto& p = e.probabilities[i];
    e.section.confusion.add(e.labels[i], int(std::max_element(p.begin(), p.end()) - p.begin()));
  }
  e.section.roc = roc_per_class(e.probabilities, e.labels, 3);
  for (int i : most_confident_mistakes(e.probabilities, e.labels, 3)) {
    ReportFace f;
    f.image = i % 2 ? gradient_image(48, 48, 1) : gradient_image(10, 20, 3);
    f.truth = e.section.classes[e.labels[i]];
    const auto& p = e.probabilities[i];
    const int best = int(std::max_element(p.begin(), p.end()) - p.begin());
    f.predicted = e.section.classes[best];
    f.confidence = p[best];
    f.source = "faces/" + std::to_string(i) + "<x>.png";
    e.section.misclassified.push_back(f);
  }
  return e;
}

}  // namespace

// ---------------------------------------------------------------- ROC and AUC

TEST(Roc, PerfectSeparationIsOne) {
  const RocCurve c = roc_one_vs_rest(two_class({0.1f, 0.2f, 0.8f, 0.9f}), {0, 0, 1, 1}, 1);
  EXPECT_DOUBLE_EQ(c.auc, 1.0);
  ASSERT_FALSE(c.fpr.empty());
  EXPECT_EQ(c.fpr.front(), 0);
  EXPECT_EQ(c.tpr.front(), 0);
  EXPECT_EQ(c.fpr.back(), 1);
  EXPECT_EQ(c.tpr.back(), 1);
  // Class 0 ranks the same examples the other way round: its scores 0.9, 0.8 are its own.
  EXPECT_DOUBLE_EQ(roc_one_vs_rest(two_class({0.1f, 0.2f, 0.8f, 0.9f}), {0, 0, 1, 1}, 0).auc, 1.0);
}

TEST(Roc, ReversedIsZero) {
  EXPECT_DOUBLE_EQ(roc_one_vs_rest(two_class({0.9f, 0.8f, 0.2f, 0.1f}), {0, 0, 1, 1}, 1).auc, 0.0);
}

TEST(Roc, AllTiedIsOneHalfWithOneThreshold) {
  const RocCurve c = roc_one_vs_rest(two_class({0.5f, 0.5f, 0.5f, 0.5f, 0.5f}), {0, 1, 0, 1, 1}, 1);
  EXPECT_DOUBLE_EQ(c.auc, 0.5);
  // One distinct score: (0,0) then straight to (1,1).
  EXPECT_EQ(c.fpr, (std::vector<double>{0, 1}));
  EXPECT_EQ(c.tpr, (std::vector<double>{0, 1}));
}

TEST(Roc, SmallExampleMatchesScikitLearn) {
  // sklearn.metrics.roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], drop_intermediate=False)
  // gives fpr [0, 0, .5, .5, 1], tpr [0, .5, .5, 1, 1]; roc_auc_score = 0.75.
  const auto p = two_class({0.1f, 0.4f, 0.35f, 0.8f});
  const std::vector<int> y = {0, 0, 1, 1};
  const RocCurve c = roc_one_vs_rest(p, y, 1);
  EXPECT_EQ(c.fpr, (std::vector<double>{0, 0, 0.5, 0.5, 1}));
  EXPECT_EQ(c.tpr, (std::vector<double>{0, 0.5, 0.5, 1, 1}));
  EXPECT_DOUBLE_EQ(c.auc, 0.75);
  EXPECT_DOUBLE_EQ(c.auc, mann_whitney_auc(p, y, 1));
}

TEST(Roc, TiedPositiveAndNegativeCountHalf) {
  // Scores 0.9(+) 0.5(+) 0.5(-) 0.1(-): pairs (+,-): 0.9>0.5, 0.9>0.1, 0.5=0.5, 0.5>0.1
  // -> (3 + 0.5) / 4 = 0.875; the tied threshold adds one diagonal segment.
  const RocCurve c = roc_one_vs_rest(two_class({0.9f, 0.5f, 0.5f, 0.1f}), {1, 1, 0, 0}, 1);
  EXPECT_DOUBLE_EQ(c.auc, 0.875);
  EXPECT_EQ(c.fpr, (std::vector<double>{0, 0, 0.5, 1}));
  EXPECT_EQ(c.tpr, (std::vector<double>{0, 0.5, 1, 1}));
}

TEST(Roc, MatchesMannWhitneyOnRandomDataWithTies) {
  std::vector<std::vector<float>> p;
  std::vector<int> y;
  random_problem(300, 5, 7, p, y);
  const std::vector<RocCurve> curves = roc_per_class(p, y, 5);
  ASSERT_EQ(curves.size(), 5u);
  double sum = 0;
  for (int k = 0; k < 5; ++k) {
    const double expected = mann_whitney_auc(p, y, k);
    EXPECT_NEAR(curves[k].auc, expected, 1e-12) << "class " << k;
    EXPECT_GT(curves[k].auc, 0.6) << "the true class gets a bonus, so ranking beats chance";
    sum += expected;
    // Monotone from (0,0) to (1,1), one point per distinct score plus the origin.
    std::vector<float> scores;
    for (const auto& row : p) scores.push_back(row[k]);
    std::sort(scores.begin(), scores.end());
    const size_t distinct = size_t(std::unique(scores.begin(), scores.end()) - scores.begin());
    EXPECT_EQ(curves[k].fpr.size(), distinct + 1);
    EXPECT_TRUE(std::is_sorted(curves[k].fpr.begin(), curves[k].fpr.end()));
    EXPECT_TRUE(std::is_sorted(curves[k].tpr.begin(), curves[k].tpr.end()));
    EXPECT_EQ(curves[k].fpr.back(), 1);
    EXPECT_EQ(curves[k].tpr.back(), 1);
  }
  EXPECT_NEAR(macro_auc(curves), sum / 5, 1e-12);
}

TEST(Roc, ClassWithoutPositivesIsNaNAndMacroIgnoresIt) {
  // Class 2 never occurs: no ROC curve, AUC NaN. Class 0 is perfectly ranked, class 1 at 0.75.
  const std::vector<std::vector<float>> p = {
      {0.9f, 0.1f, 0.0f}, {0.8f, 0.1f, 0.1f}, {0.1f, 0.35f, 0.55f}, {0.2f, 0.8f, 0.0f},
      {0.3f, 0.4f, 0.3f}};
  const std::vector<int> y = {0, 0, 1, 1, 0};
  const std::vector<RocCurve> c = roc_per_class(p, y, 3);
  EXPECT_TRUE(std::isnan(c[2].auc));
  EXPECT_TRUE(c[2].fpr.empty());
  EXPECT_DOUBLE_EQ(c[0].auc, mann_whitney_auc(p, y, 0));
  EXPECT_DOUBLE_EQ(c[1].auc, mann_whitney_auc(p, y, 1));
  EXPECT_DOUBLE_EQ(c[0].auc, 1.0);
  EXPECT_NEAR(c[1].auc, 5.0 / 6, 1e-12);  // 0.35 loses only to 0.4; 0.8 beats all three
  EXPECT_NEAR(macro_auc(c), (1.0 + 5.0 / 6) / 2, 1e-12);
  // Only negatives (every label is the class) is undefined as well.
  EXPECT_TRUE(std::isnan(roc_one_vs_rest(two_class({0.2f, 0.7f}), {1, 1}, 1).auc));
  EXPECT_TRUE(std::isnan(macro_auc({c[2]})));
}

TEST(Roc, BadInputIsAnError) {
  EXPECT_NE(error_of([] { roc_per_class({{0.5f, 0.5f}}, {0, 1}, 2); }).find("2 labels"),
            std::string::npos);
  EXPECT_NE(error_of([] { roc_per_class({{0.5f, 0.5f}}, {2}, 2); }).find("label 2"),
            std::string::npos);
  EXPECT_NE(error_of([] { roc_per_class({{0.5f, 0.5f, 0.0f}}, {0}, 2); }).find("expected 2"),
            std::string::npos);
  EXPECT_NE(error_of([] { roc_one_vs_rest({{0.5f, NAN}}, {0}, 1); }).find("non-finite"),
            std::string::npos);
}

// ---------------------------------------------------------------- history.csv

TEST(History, ReadsColumnsByName) {
  const std::string path = temp("history_good.csv");
  // Columns reordered, an extra one, CRLF line ends and a blank line.
  write_text(path,
             "lr,epoch,val_accuracy,loss,extra,accuracy,val_loss,seconds,images_per_s\r\n"
             "0.001,1,0.25,1.9,x,0.2,1.8,10.5,100\r\n"
             "\r\n"
             "1e-4,2,0.5,1.2,y,0.45,1.3,10.2,101.5\r\n");
  const std::vector<HistoryRow> rows = read_history_csv(path);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].epoch, 1);
  EXPECT_DOUBLE_EQ(rows[0].loss, 1.9);
  EXPECT_DOUBLE_EQ(rows[0].accuracy, 0.2);
  EXPECT_DOUBLE_EQ(rows[0].val_loss, 1.8);
  EXPECT_DOUBLE_EQ(rows[0].val_accuracy, 0.25);
  EXPECT_DOUBLE_EQ(rows[0].lr, 0.001);
  EXPECT_EQ(rows[1].epoch, 2);
  EXPECT_DOUBLE_EQ(rows[1].lr, 1e-4);
  EXPECT_DOUBLE_EQ(rows[1].val_accuracy, 0.5);
}

TEST(History, ErrorsNameFileAndLine) {
  const std::string missing = temp("history_missing.csv");
  write_text(missing, "epoch,loss,accuracy,val_accuracy,lr\n1,1,0.5,0.5,0.1\n");
  const std::string e1 = error_of([&] { read_history_csv(missing); });
  EXPECT_NE(e1.find(missing), std::string::npos) << e1;
  EXPECT_NE(e1.find("'val_loss'"), std::string::npos) << e1;

  const std::string bad = temp("history_bad.csv");
  write_text(bad,
             "epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds,images_per_s\n"
             "1,1.5,0.3,1.4,0.35,0.001,9.0,100\n"
             "2,1.2,oops,1.3,0.4,0.001,9.0,100\n");
  const std::string e2 = error_of([&] { read_history_csv(bad); });
  EXPECT_NE(e2.find(bad + ":3:"), std::string::npos) << e2;
  EXPECT_NE(e2.find("oops"), std::string::npos) << e2;

  const std::string short_row = temp("history_short.csv");
  write_text(short_row, "epoch,loss,accuracy,val_loss,val_accuracy,lr\n1,1.5,0.3\n");
  EXPECT_NE(error_of([&] { read_history_csv(short_row); }).find(short_row + ":2:"),
            std::string::npos);

  const std::string nowhere = temp("history_does_not_exist.csv");
  EXPECT_NE(error_of([&] { read_history_csv(nowhere); }).find(nowhere), std::string::npos);
  const std::string empty = temp("history_empty.csv");
  write_text(empty, "");
  EXPECT_NE(error_of([&] { read_history_csv(empty); }).find("empty"), std::string::npos);
}

// ---------------------------------------------------------------- mistakes

TEST(Mistakes, MostConfidentFirstAndAtMostCount) {
  const std::vector<std::vector<float>> p = {
      {0.9f, 0.1f},   // 0: right
      {0.3f, 0.7f},   // 1: wrong, 0.7
      {0.05f, 0.95f}, // 2: wrong, 0.95
      {0.6f, 0.4f},   // 3: wrong, 0.6
      {0.2f, 0.8f},   // 4: right
      {0.3f, 0.7f},   // 5: wrong, 0.7 (tie with 1: lower index first)
      {0.5f, 0.5f}};  // 6: argmax is the first maximum (class 0), label 1: wrong, 0.5
  const std::vector<int> y = {0, 0, 0, 1, 1, 0, 1};
  EXPECT_EQ(most_confident_mistakes(p, y, 10), (std::vector<int>{2, 1, 5, 3, 6}));
  EXPECT_EQ(most_confident_mistakes(p, y, 2), (std::vector<int>{2, 1}));
  EXPECT_TRUE(most_confident_mistakes(p, y, 0).empty());
  EXPECT_NE(error_of([&] { most_confident_mistakes(p, {0}, 1); }).find("labels"),
            std::string::npos);
}

// ---------------------------------------------------------------- SVG charts

TEST(SvgChart, NiceTicks) {
  const svg::Ticks a = svg::nice_ticks(0, 1, 5);
  EXPECT_EQ(a.values.size(), 6u);  // 0, 0.2, ..., 1
  EXPECT_NEAR(a.values[1], 0.2, 1e-12);
  EXPECT_EQ(a.decimals, 1);
  EXPECT_EQ(svg::format_tick(a.values[3], a.decimals), "0.6");
  const svg::Ticks b = svg::nice_ticks(0.93, 1.87, 5);  // step 0.2: 0.8 .. 2.0
  EXPECT_NEAR(b.values.front(), 0.8, 1e-12);
  EXPECT_NEAR(b.values.back(), 2.0, 1e-12);
  const svg::Ticks e = svg::nice_ticks(1, 3, 5, true);  // epochs: whole numbers only
  EXPECT_EQ(e.values, (std::vector<double>{1, 2, 3}));
  EXPECT_EQ(e.decimals, 0);
  const svg::Ticks s = svg::nice_ticks(0, 1e-5, 5);
  EXPECT_EQ(s.decimals, -1);  // %g
  EXPECT_EQ(svg::format_tick(s.values[1], s.decimals), "2e-06");
}

TEST(SvgChart, LineChartMapsPointsIntoThePlotArea) {
  // A 3-epoch history: epoch 1 at the left edge, 3 at the right edge, 2 in the middle;
  // accuracy on a fixed 0..1 axis, so y = top + height * (1 - accuracy).
  const std::vector<HistoryRow> history = {{1, 1.9, 0.30, 1.8, 0.25, 1e-3},
                                           {2, 1.4, 0.50, 1.5, 0.45, 1e-3},
                                           {3, 1.1, 0.60, 1.3, 0.50, 1e-4}};
  const std::string html = report_html("run", &history, nullptr);
  const std::string chart = svg_by_id(html, "chart-accuracy");
  ASSERT_FALSE(chart.empty());
  std::smatch m;
  ASSERT_TRUE(std::regex_search(chart, m, std::regex("<rect class=\"plot-area\"[^>]*>")));
  const std::string area = m[0];
  const double x = attribute(area, "x"), y = attribute(area, "y");
  const double w = attribute(area, "width"), h = attribute(area, "height");
  EXPECT_GT(x, 30);  // room for the y tick labels and title
  EXPECT_GT(w, 200);
  EXPECT_GT(h, 150);
  EXPECT_LE(x + w, attribute(chart, "width"));
  EXPECT_LE(y + h, attribute(chart, "height"));
  for (const char* series : {"train", "validation"}) {
    const auto points = polyline_points(chart, series);
    ASSERT_EQ(points.size(), 3u) << series;
    for (int i = 0; i < 3; ++i) {
      const double acc = std::string(series) == "train" ? history[i].accuracy
                                                        : history[i].val_accuracy;
      EXPECT_NEAR(points[i].first, x + w * i / 2.0, 0.01) << series << " epoch " << i + 1;
      EXPECT_NEAR(points[i].second, y + h * (1 - acc), 0.01) << series << " epoch " << i + 1;
    }
  }
  // The legend sits below the plot area and its x axis title, so it cannot cover a curve.
  const std::regex legend("<g class=\"legend\">\\s*<line x1=\"([0-9.]+)\" y1=\"([0-9.]+)\"");
  ASSERT_TRUE(std::regex_search(chart, m, legend));
  EXPECT_GT(std::stod(m[2]), y + h + 30);
  EXPECT_LE(std::stod(m[2]), attribute(chart, "height"));

  // The loss chart's y axis is widened to nice ticks around the data (1.1 .. 1.9 -> 1 .. 2).
  const std::string loss = svg_by_id(html, "chart-loss");
  ASSERT_TRUE(std::regex_search(loss, m, std::regex("<rect class=\"plot-area\"[^>]*>")));
  EXPECT_DOUBLE_EQ(attribute(m[0], "data-y-min"), 1.0);
  EXPECT_DOUBLE_EQ(attribute(m[0], "data-y-max"), 2.0);
  const auto train_loss = polyline_points(loss, "train");
  ASSERT_EQ(train_loss.size(), 3u);
  const double ly = attribute(m[0], "y"), lh = attribute(m[0], "height");
  EXPECT_NEAR(train_loss[0].second, ly + lh * (1 - 0.9), 0.01);  // 1.9 is 90% up
  EXPECT_NEAR(train_loss[2].second, ly + lh * (1 - 0.1), 0.01);  // 1.1 is 10% up
  EXPECT_FALSE(svg_by_id(html, "chart-lr").empty());
}

TEST(SvgChart, HeatmapShapeMismatchIsAnError) {
  svg::Heatmap map;
  map.title = "cm";
  map.row_labels = map.col_labels = {"a", "b"};
  map.values = {{1, 2}, {3}};
  map.text = {{"1", "2"}, {"3", "4"}};
  EXPECT_NE(error_of([&] { svg::heatmap(map); }).find("row 1"), std::string::npos);
}

// ---------------------------------------------------------------- the page

TEST(Report, NumbersEqualTheMetrics) {
  const Example e = small_example();
  const EvaluationSection& ev = e.section;
  const ConfusionMatrix& cm = ev.confusion;
  const std::string html = report_html("eval", nullptr, &ev);

  auto has = [&](const std::string& s) { return html.find(s) != std::string::npos; };
  auto expect_value = [&](const std::string& id, double v) {
    EXPECT_TRUE(has("id=\"" + id + "\" data-value=\"" + json_number(v) + "\"")) << id;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(html, m, std::regex("id=\"" + id + "\"[^>]*>([^<]*)<"))) << id;
    EXPECT_EQ(m[1].str(), std::isnan(v) ? "n/a" : f4(v)) << id;
  };
  expect_value("accuracy", cm.accuracy());
  EXPECT_EQ(f4(cm.accuracy()), "0.6000");  // 6 of 10 correct: the example is what we think
  expect_value("macro-f1", cm.macro_f1());
  expect_value("loss", ev.loss);
  expect_value("macro-auc", macro_auc(ev.roc));
  const std::vector<std::string> ids = {"happy", "a_b_c", "sad"};
  for (int k = 0; k < 3; ++k) {
    expect_value("precision-" + ids[k], cm.precision(k));
    expect_value("recall-" + ids[k], cm.recall(k));
    expect_value("f1-" + ids[k], cm.f1(k));
    expect_value("auc-" + ids[k], ev.roc[k].auc);
    EXPECT_TRUE(has("id=\"support-" + ids[k] + "\" data-value=\"" +
                    std::to_string(cm.support(k)) + "\">" + std::to_string(cm.support(k)) + "<"));
    // The ROC curve carries its AUC and is drawn in the legend with 4 decimals.
    EXPECT_TRUE(has("<polyline class=\"roc\" data-series=\"" + svg::escape(ev.classes[k]) +
                    " (AUC " + f4(ev.roc[k].auc) + ")\" data-class=\"" +
                    svg::escape(ev.classes[k]) + "\" data-auc=\"" + json_number(ev.roc[k].auc) + "\""))
        << ev.classes[k];
  }
  // The ROC legend is to the right of the (square) plot area, outside it.
  const std::string roc = svg_by_id(html, "chart-roc");
  std::smatch area, legend;
  ASSERT_TRUE(std::regex_search(roc, area, std::regex("<rect class=\"plot-area\"[^>]*>")));
  ASSERT_TRUE(std::regex_search(roc, legend, std::regex("<g class=\"legend\">\\s*<line x1=\"([0-9.]+)\"")));
  EXPECT_GT(std::stod(legend[1]), attribute(area[0], "x") + attribute(area[0], "width"));
  EXPECT_EQ(attribute(area[0], "width"), attribute(area[0], "height"));
  expect_value("macro-avg-f1", cm.macro_f1());
  expect_value("weighted-avg-f1", cm.weighted_f1());

  // Every cell of the count heatmap shows ConfusionMatrix::count.
  const std::string counts = svg_by_id(html, "confusion-counts");
  const std::regex cell("<text class=\"cell\" data-row=\"(\\d+)\" data-col=\"(\\d+)\"[^>]*>([^<]*)</text>");
  int cells = 0;
  for (auto it = std::sregex_iterator(counts.begin(), counts.end(), cell); it != std::sregex_iterator(); ++it) {
    const int t = std::stoi((*it)[1]), p = std::stoi((*it)[2]);
    EXPECT_EQ((*it)[3].str(), std::to_string(cm.count(t, p))) << t << "," << p;
    ++cells;
  }
  EXPECT_EQ(cells, 9);
  // The row-normalized one shows count / support with 2 decimals: row 1 (a<b&c) is 0, 2, 2 of 4.
  const std::string normalized = svg_by_id(html, "confusion-normalized");
  EXPECT_NE(normalized.find("data-row=\"1\" data-col=\"1\"" ), std::string::npos);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(normalized, m, std::regex("<text class=\"cell\" data-row=\"1\" data-col=\"1\"[^>]*>([^<]*)<")));
  EXPECT_EQ(m[1].str(), "0.50");
}

TEST(Report, SelfContainedEscapedAndImagesDecode) {
  const Example e = small_example();
  const std::vector<HistoryRow> history = {{1, 1.9, 0.30, 1.8, 0.25, 1e-3},
                                           {2, 1.4, 0.50, 1.5, 0.45, 1e-3}};
  const std::string html = report_html("Run <1> & co", &history, &e.section);

  // Nothing external: the only URL is the SVG namespace.
  std::string stripped = html;
  for (size_t at; (at = stripped.find("http://www.w3.org/2000/svg")) != std::string::npos;)
    stripped.erase(at, 26);
  EXPECT_EQ(stripped.find("http://"), std::string::npos);
  EXPECT_EQ(stripped.find("https://"), std::string::npos);
  EXPECT_EQ(stripped.find("<script"), std::string::npos);
  EXPECT_EQ(stripped.find("<link"), std::string::npos);
  EXPECT_NE(html.find("<svg xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);

  // Escaped everywhere: title, class names, paths, note, captions.
  EXPECT_EQ(html.find("a<b&c"), std::string::npos);
  EXPECT_EQ(html.find("<1>"), std::string::npos);
  EXPECT_EQ(html.find("<x>"), std::string::npos);
  EXPECT_EQ(html.find("<none>"), std::string::npos);
  EXPECT_NE(html.find("<h1>Run &lt;1&gt; &amp; co</h1>"), std::string::npos);
  EXPECT_NE(html.find("<td>a&lt;b&amp;c</td>"), std::string::npos);
  EXPECT_NE(html.find("/data/val &amp; &quot;test&quot;"), std::string::npos);
  EXPECT_NE(html.find("TTA: &lt;none&gt;"), std::string::npos);

  // Every image is a PNG data: URI that decodes back to the face's pixels.
  const std::regex img("<img src=\"data:image/png;base64,([A-Za-z0-9+/=]+)\" width=\"(\\d+)\" height=\"(\\d+)\"");
  size_t images = 0;
  for (auto it = std::sregex_iterator(html.begin(), html.end(), img); it != std::sregex_iterator(); ++it) {
    const std::vector<uint8_t> png = base64_decode((*it)[1]);
    const uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    ASSERT_GE(png.size(), 8u);
    EXPECT_TRUE(std::equal(signature, signature + 8, png.begin()));
    const data::Image& want = e.section.misclassified[images].image;
    const data::Image got =
        data::decode_image_bytes(png.data(), png.size(), want.channels, "embedded face");
    EXPECT_EQ(got.width, want.width);
    EXPECT_EQ(got.height, want.height);
    EXPECT_EQ(got.pixels, want.pixels);  // PNG is lossless
    // Drawn 96 px on the longer side, keeping the aspect ratio.
    EXPECT_EQ(std::max(std::stoi((*it)[2]), std::stoi((*it)[3])), 96);
    EXPECT_EQ(std::stoi((*it)[2]) * want.height, std::stoi((*it)[3]) * want.width);
    ++images;
  }
  EXPECT_EQ(images, e.section.misclassified.size());
  EXPECT_EQ(images, 3u);
  // Captions: "true -> predicted (p)".
  const ReportFace& first = e.section.misclassified[0];
  EXPECT_NE(html.find("<span class=\"truth\">" + svg::escape(first.truth) +
                      "</span> &rarr; <span class=\"predicted\">" + svg::escape(first.predicted) +
                      "</span> (" + svg::fixed(first.confidence, 2) + ")"),
            std::string::npos);
}

TEST(Report, Base64AndPngEncoding) {
  EXPECT_EQ(base64({}), "");
  EXPECT_EQ(base64({'f'}), "Zg==");
  EXPECT_EQ(base64({'f', 'o'}), "Zm8=");
  EXPECT_EQ(base64({'f', 'o', 'o', 'b', 'a', 'r'}), "Zm9vYmFy");
  data::Image bad = gradient_image(4, 4, 1);
  bad.pixels.pop_back();
  EXPECT_NE(error_of([&] { encode_png(bad, "face.png"); }).find("face.png"), std::string::npos);
}

TEST(Report, OptionalSectionsAndWrite) {
  const std::string empty = report_html("nothing", nullptr, nullptr);
  EXPECT_EQ(empty.find("<section id=\"training\""), std::string::npos);
  EXPECT_EQ(empty.find("<section id=\"evaluation\""), std::string::npos);
  // No ROC curves: the column and chart are left out, the rest stays.
  Example e = small_example();
  e.section.roc.clear();
  const std::string html = report_html("no roc", nullptr, &e.section);
  EXPECT_EQ(html.find("chart-roc"), std::string::npos);
  EXPECT_EQ(html.find("id=\"auc-happy\""), std::string::npos);
  EXPECT_NE(html.find("id=\"f1-happy\""), std::string::npos);
  // Mismatched class names are an error, not a garbled page.
  e.section.classes.pop_back();
  EXPECT_NE(error_of([&] { report_html("x", nullptr, &e.section); }).find("2 class names"),
            std::string::npos);

  const std::string path = temp("written.html");
  write_report(path, html);
  std::ifstream in(path, std::ios::binary);
  const std::string back((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(back, html);
}

// ---------------------------------------------------------------- rendering

namespace {

// A realistic page: 7 FER classes, a 30-epoch history read back from history.csv, a
// synthetic classifier (~65% accurate, weak on disgust and fear) and faces from
// data/sample_faces for the mistakes.
std::string sample_report() {
  const std::vector<std::string>& classes = data::fer2013_classes();
  const int k = int(classes.size());
  std::string csv = "epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds,images_per_s\n";
  for (int e = 1; e <= 30; ++e) {
    const double t = e / 30.0;
    const double lr = e <= 15 ? 1e-3 : (e <= 24 ? 1e-4 : 1e-5);
    char line[200];
    std::snprintf(line, sizeof line, "%d,%.6f,%.6f,%.6f,%.6f,%.8g,12.5,900\n", e,
                  1.8 - 1.0 * std::sqrt(t), 0.25 + 0.5 * std::sqrt(t), 1.75 - 0.65 * std::sqrt(t) + 0.15 * t * t,
                  0.24 + 0.42 * std::sqrt(t) - 0.02 * t * t, lr);
    csv += line;
  }
  const std::string history_path = temp("sample_history.csv");
  write_text(history_path, csv);
  static std::vector<HistoryRow> history;
  history = read_history_csv(history_path);

  std::mt19937 rng(42);
  std::normal_distribution<float> noise(0, 1);
  const double share[] = {0.14, 0.02, 0.14, 0.25, 0.17, 0.17, 0.11};
  const float skill[] = {1.4f, 0.8f, 0.9f, 2.6f, 1.6f, 1.3f, 2.3f};
  std::vector<std::vector<float>> p;
  std::vector<int> labels;
  std::discrete_distribution<int> pick(share, share + 7);
  for (int i = 0; i < 1200; ++i) {
    const int y = pick(rng);
    std::vector<float> logits(k);
    float mx = -1e9f;
    for (int c = 0; c < k; ++c) {
      logits[c] = 1.1f * noise(rng) + (c == y ? skill[y] : 0.0f) + (c == 3 ? 0.3f : 0.0f);
      mx = std::max(mx, logits[c]);
    }
    float sum = 0;
    for (float& v : logits) sum += (v = std::exp(v - mx));
    for (float& v : logits) v /= sum;
    p.push_back(logits);
    labels.push_back(y);
  }
  EvaluationSection ev;
  ev.data = std::string(FER_SOURCE_DIR) + "/data/sample_faces/val";
  ev.classes = classes;
  ev.confusion = ConfusionMatrix(k);
  double loss = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    ev.confusion.add(labels[i], int(std::max_element(p[i].begin(), p[i].end()) - p[i].begin()));
    loss -= std::log(p[i][labels[i]]) / p.size();
  }
  ev.loss = loss;
  ev.roc = roc_per_class(p, labels, k);
  ev.note = "synthetic predictions for a layout check; TTA: none";
  for (int i : most_confident_mistakes(p, labels, 12)) {
    ReportFace f;
    const int best = int(std::max_element(p[i].begin(), p[i].end()) - p[i].begin());
    f.truth = classes[labels[i]];
    f.predicted = classes[best];
    f.confidence = p[i][best];
    const std::string dir = ev.data + "/" + f.truth;
    std::vector<std::string> files;
    if (std::filesystem::is_directory(dir))
      for (const auto& entry : std::filesystem::directory_iterator(dir)) files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    if (files.empty()) {
      f.image = gradient_image(48, 48, 1);
      f.source = "(generated)";
    } else {
      f.source = files[i % files.size()];
      f.image = data::decode_image(f.source, 1);
    }
    ev.misclassified.push_back(f);
  }
  return report_html("cnn3 on FER2013 (sample report)", &history, &ev);
}

}  // namespace

TEST(Report, RendersInChromium) {
  const std::string html = sample_report();
  write_report("/tmp/sample_report.html", html);  // for a person to open and look at
  if (fer::testing::run_command("command -v chromium >/dev/null 2>&1").status != 0)
    GTEST_SKIP() << "chromium is not on PATH; the render check needs it (apt install chromium)";
  const std::string page = temp("render.html"), shot = temp("render.png");
  write_report(page, html);
  std::remove(shot.c_str());
  const auto r = fer::testing::run_command(
      "timeout 120 chromium --headless --no-sandbox --disable-gpu --hide-scrollbars "
      "--screenshot=" + shot + " --window-size=1200,3000 file://" + page + " 2>&1");
  ASSERT_EQ(r.status, 0) << r.out;
  const std::vector<uint8_t> png = read_file_bytes(shot);
  const data::Image im = data::decode_image_bytes(png.data(), png.size(), 3, shot);
  EXPECT_EQ(im.width, 1200);
  // The page background is light grey, the sections white: count clearly dark or coloured
  // pixels (text, curves, heatmap cells, faces). A blank or failed render has none.
  size_t inked = 0;
  for (size_t i = 0; i < im.pixels.size(); i += 3) {
    const int r8 = im.pixels[i], g8 = im.pixels[i + 1], b8 = im.pixels[i + 2];
    if (std::min({r8, g8, b8}) < 200) ++inked;
  }
  const double share = double(inked) / (double(im.width) * im.height);
  EXPECT_GT(share, 0.02) << "the rendered page looks blank (" << inked << " inked pixels)";
  std::filesystem::copy_file(shot, "/tmp/sample_report.png",
                             std::filesystem::copy_options::overwrite_existing);
}
