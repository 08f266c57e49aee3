// The reports written by `fer train` (RUN/report.html) and `fer eval --report`, and the
// AUCs of `fer eval --json`: the page draws the same numbers the JSON reports.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "command.h"
#include "fer/json.h"

namespace fer {
namespace {

using testing::run_fer;

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// The data-value of the element with id `id`, or NaN when absent.
double value_of(const std::string& html, const std::string& id) {
  const size_t at = html.find("id=\"" + id + "\" data-value=\"");
  if (at == std::string::npos) return NAN;
  const size_t start = html.find("data-value=\"", at) + 12;
  return std::stod(html.substr(start, html.find('"', start) - start));
}

// The data-auc of the ROC curve of `cls`, or NaN when absent.
double auc_of(const std::string& html, const std::string& cls) {
  const size_t at = html.find("data-class=\"" + cls + "\" data-auc=\"");
  if (at == std::string::npos) return NAN;
  const size_t start = html.find("data-auc=\"", at) + 10;
  return std::stod(html.substr(start, html.find('"', start) - start));
}

class ReportCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // One short run on the committed sample, shared by the tests below.
    const std::string sample = std::string(FER_SOURCE_DIR) + "/data/sample_faces";
    // One directory per process: ctest runs each test of the suite as its own process,
    // two at a time, and each trains this run; a shared name let one delete the other's.
    run_ = std::string(FER_BINARY_DIR) + "/test_report_cli_run_" + std::to_string(::getpid());
    testing::run_command("rm -rf " + run_);
    const auto r = run_fer("train --data " + sample + "/train --val " + sample +
                           "/val --size 32 --epochs 2 --batch 32 --threads 1 --quiet --out " + run_);
    ASSERT_EQ(r.status, 0) << r.out;
  }
  static void TearDownTestSuite() { testing::run_command("rm -rf " + run_); }
  static std::string run_;
};
std::string ReportCli::run_;

TEST_F(ReportCli, TrainWritesAReportWithBestNpzsNumbers) {
  const std::string html = read_file(run_ + "/report.html");
  ASSERT_FALSE(html.empty()) << "no " << run_ << "/report.html";
  EXPECT_NE(html.find("id=\"chart-accuracy\""), std::string::npos);
  EXPECT_NE(html.find("id=\"chart-roc\""), std::string::npos);
  EXPECT_NE(html.find("data:image/png;base64,"), std::string::npos);  // mistakes shown
  const std::string sample_val = std::string(FER_SOURCE_DIR) + "/data/sample_faces/val";
  const auto r = testing::run_command(testing::fer_binary() + " eval --model " + run_ +
                                      "/best.npz --data " + sample_val + " --json --threads 1");
  ASSERT_EQ(r.status, 0) << r.out;
  const Json j = Json::parse(r.out);
  EXPECT_NEAR(value_of(html, "accuracy"), j.at("accuracy").as_number(), 1e-9);
  EXPECT_NEAR(value_of(html, "macro-f1"), j.at("macro_f1").as_number(), 1e-9);
  EXPECT_NEAR(value_of(html, "macro-auc"), j.at("macro_auc").as_number(), 1e-7);
  EXPECT_NEAR(value_of(html, "f1-happy"), j.at("per_class").at("happy").at("f1").as_number(), 1e-9);
  EXPECT_NEAR(auc_of(html, "fear"), j.at("per_class").at("fear").at("auc").as_number(), 1e-7);
  // The training section has one point per epoch: best epoch and accuracy from history.
  EXPECT_FALSE(std::isnan(value_of(html, "best-val-accuracy")));
}

TEST_F(ReportCli, EvalReportMatchesItsJsonWithTtaAndHistory) {
  const std::string sample_val = std::string(FER_SOURCE_DIR) + "/data/sample_faces/val";
  const std::string out = run_ + "/eval.html";
  std::remove(out.c_str());
  const auto r = testing::run_command(
      testing::fer_binary() + " eval --model " + run_ + "/best.npz --data " + sample_val +
      " --tta tencrop --json --threads 1 --report " + out + " --history " + run_ + "/history.csv");
  ASSERT_EQ(r.status, 0) << r.out;
  const Json j = Json::parse(r.out);
  EXPECT_EQ(j.at("tta").as_string(), "tencrop");
  const std::string html = read_file(out);
  ASSERT_FALSE(html.empty());
  EXPECT_NE(html.find("TTA: tencrop"), std::string::npos);
  EXPECT_NE(html.find("id=\"chart-loss\""), std::string::npos);  // from --history
  for (const std::string cls : {"angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"}) {
    const double auc = j.at("per_class").at(cls).at("auc").as_number();
    EXPECT_GE(auc, 0.0);
    EXPECT_LE(auc, 1.0);
    EXPECT_NEAR(auc_of(html, cls), auc, 1e-7) << cls;
  }
  EXPECT_NEAR(value_of(html, "accuracy"), j.at("accuracy").as_number(), 1e-9);
  // --history alone is refused, and a missing history file is named before evaluating.
  EXPECT_NE(run_fer("eval --model " + run_ + "/best.npz --data " + sample_val + " --history x.csv")
                .out.find("--history goes with --report"), std::string::npos);
  EXPECT_NE(run_fer("eval --model " + run_ + "/best.npz --data " + sample_val + " --report " + out +
                    " --history /nonexistent/history.csv").out.find("/nonexistent/history.csv"),
            std::string::npos);
}

}  // namespace
}  // namespace fer
