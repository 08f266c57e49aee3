// The shipped model (models/fer2013.npz): small enough to commit, loads without --model,
// and names clear faces correctly. The faces are FER2013 validation (PublicTest) images
// from data/sample_faces/val that the shipped model gets right with high confidence.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cstdio>
#include <string>

#include "command.h"
#include "fer/json.h"
#include "fer/model.h"
#include "fer/npz.h"

namespace fer {
namespace {

const std::string kModel = std::string(FER_SOURCE_DIR) + "/models/fer2013.npz";

bool exists(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0;
}

TEST(ShippedModel, IsSmallHalfPrecisionAndUnderFourMillionParameters) {
  if (!exists(kModel)) GTEST_SKIP() << "no shipped model at " << kModel;
  struct stat st;
  ASSERT_EQ(stat(kModel.c_str(), &st), 0);
  EXPECT_LE(st.st_size, 10 * 1024 * 1024);
  Model m = Model::load(kModel);  // float16 on disk, float32 in memory
  EXPECT_LE(m.parameter_count(), 4000000);
  EXPECT_EQ(m.classes().size(), 7u);
}

TEST(ShippedModel, PredictNamesClearFacesWithoutModelFlag) {
  if (!exists(kModel)) GTEST_SKIP() << "no shipped model at " << kModel;
  const std::string val = std::string(FER_SOURCE_DIR) + "/data/sample_faces/val/";
  const std::pair<const char*, const char*> faces[] = {
      {"happy", "PublicTest_45682182.jpg"}, {"surprise", "PublicTest_71124930.jpg"},
      {"disgust", "PublicTest_1799001.jpg"},  {"fear", "PublicTest_52400353.jpg"},
      {"angry", "PublicTest_54146920.jpg"},   {"sad", "PublicTest_93955309.jpg"}};
  std::string files;
  for (const auto& [label, file] : faces) files += " " + val + label + "/" + file;
  // FER_MODEL unset: the default is the shipped file.
  const auto r = testing::run_command("env -u FER_MODEL " + testing::fer_binary() +
                                      " predict --threads 2" + files + " 2>&1");
  ASSERT_EQ(r.status, 0) << r.out;
  for (const auto& [label, file] : faces) {
    const std::string path = val + label + "/" + file;
    const size_t at = r.out.find(path + ": ");
    ASSERT_NE(at, std::string::npos) << r.out;
    char got[32] = {0};
    float p = 0;
    ASSERT_EQ(std::sscanf(r.out.c_str() + at + path.size() + 2, "%31s %f", got, &p), 2) << r.out;
    EXPECT_EQ(std::string(got), label) << path;
    EXPECT_GE(p, 0.9f) << path;
  }
}

// On the 105 committed validation faces (15 per class, so balanced and harder than the
// full split's class mix) the shipped model is far above chance (1/7).
TEST(ShippedModel, EvalDefaultsToItAndBeatsChanceClearly) {
  if (!exists(kModel)) GTEST_SKIP() << "no shipped model at " << kModel;
  const auto r = testing::run_command("env -u FER_MODEL " + testing::fer_binary() +
                                      " eval --threads 2 --json --data " + FER_SOURCE_DIR +
                                      "/data/sample_faces/val");
  ASSERT_EQ(r.status, 0) << r.out;
  const Json j = Json::parse(r.out);
  EXPECT_GE(j.at("accuracy").as_number(), 0.5) << r.out;
  EXPECT_NE(j.at("model").as_string().find("models/fer2013.npz"), std::string::npos);
}

// The five other members of the README's ensemble (models/ensemble/: four teachers of
// the shipped model, one of them at 128 px instead of 96, and a student of theirs trained
// longer): same classes and size limits as the shipped model, and `fer eval` averaging
// all six runs and stays far above chance on the committed faces.
TEST(ShippedModel, EnsembleMembersLoadAndEvaluateTogether) {
  const std::string dir = std::string(FER_SOURCE_DIR) + "/models/ensemble/";
  const std::string members[] = {dir + "mnv1_40ep.npz", dir + "mnv1_16ep.npz",
                                 dir + "mnv1_seed3_24ep.npz", dir + "mnv1_128_ema.npz",
                                 dir + "mnv1_distill_40ep.npz"};
  if (!exists(kModel)) GTEST_SKIP() << "no shipped model at " << kModel;
  for (const std::string& path : members)
    if (!exists(path)) GTEST_SKIP() << "no shipped ensemble member " << path;
  const Model shipped = Model::load(kModel);
  std::string flags = " --model " + kModel;
  for (const std::string& path : members) {
    Model m = Model::load(path);
    EXPECT_LE(m.parameter_count(), 4000000) << path;
    EXPECT_EQ(m.classes(), shipped.classes()) << path;
    flags += " --model " + path;
  }
  const auto r = testing::run_command(testing::fer_binary() + " eval --threads 2 --json" + flags +
                                      " --data " + FER_SOURCE_DIR + "/data/sample_faces/val");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_GE(Json::parse(r.out).at("accuracy").as_number(), 0.5) << r.out;
}

}  // namespace
}  // namespace fer
