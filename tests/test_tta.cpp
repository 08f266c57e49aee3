// Test-time augmentation views, their averaging in evaluation, ensembles, `fer export
// --float16`, and the shipped-model default of `fer predict` / `fer eval`.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "command.h"
#include "data/preprocess.h"
#include "data/tta.h"
#include "error_of.h"
#include "fer/architectures.h"
#include "fer/autograd.h"
#include "fer/error.h"
#include "fer/evaluate.h"
#include "fer/model.h"
#include "fer/rng.h"
#include "layers/loss.h"

namespace fer {
namespace {

using data::Geometry;
using data::Image;
using data::Preprocess;
using testing::error_of;
using testing::run_fer;

std::string temp_path(const std::string& name) {
  return std::string(FER_BINARY_DIR) + "/test_tta_" + name;
}

Image random_image(int h, int w, int channels, uint64_t seed) {
  Rng rng(seed);
  Image img;
  img.height = h;
  img.width = w;
  img.channels = channels;
  img.pixels.resize(static_cast<size_t>(h) * w * channels);
  for (uint8_t& p : img.pixels) p = static_cast<uint8_t>(rng.below(256));
  return img;
}

// The window [y, y+h) x [x, x+w), mirrored left-right if asked: what a view should show.
Image cut(const Image& img, int y, int x, int h, int w, bool mirror) {
  Image out;
  out.height = h;
  out.width = w;
  out.channels = img.channels;
  for (int r = 0; r < h; ++r)
    for (int c = 0; c < w; ++c)
      for (int ch = 0; ch < img.channels; ++ch)
        out.pixels.push_back(img.at(y + r, mirror ? x + w - 1 - c : x + c, ch));
  return out;
}

Model small_cnn3(int size, uint64_t seed) {
  Json opts = Json::object();
  opts["size"] = size;
  return Model::from_architecture(make_architecture("cnn3", opts), seed);
}

data::Dataset random_dataset(const Model& model, int n, int image_size, uint64_t seed) {
  data::Dataset ds;
  ds.classes = model.classes();
  for (int i = 0; i < n; ++i) {
    ds.images.push_back(random_image(image_size, image_size, 1, seed + i));
    ds.labels.push_back(i % static_cast<int>(ds.classes.size()));
    ds.sources.push_back("image" + std::to_string(i));
  }
  return ds;
}

// Softmax of the model on one rendered view.
std::vector<float> probabilities_of_view(Model& model, const Image& img, const Geometry& g) {
  const Preprocess pre = Preprocess::from_json(model.preprocess());
  Tensor x({1, pre.height, pre.width, pre.channels});
  data::render(img, g, pre, x.data());
  NoGradGuard no_grad;
  return softmax_probabilities(model.forward(x, false));
}

TEST(Tta, ViewCountsAndBadMode) {
  EXPECT_EQ(data::tta_view_count("none"), 1);
  EXPECT_EQ(data::tta_view_count("flip"), 2);
  EXPECT_EQ(data::tta_view_count("tencrop"), 10);
  EXPECT_NE(error_of([] { data::check_tta("tencrops"); }).find("'tencrops'"), std::string::npos);
}

TEST(Tta, TencropTakesTheTrainingCropOrNinetyPercent) {
  const Image img = random_image(48, 48, 1, 1);
  Preprocess pre;
  EXPECT_EQ(data::tencrop_size(img, pre), 43);  // round(0.9 * 48)
  pre.crop = 44;
  EXPECT_EQ(data::tencrop_size(img, pre), 44);
  const std::vector<Geometry> v = data::tta_views(img, pre, "tencrop");
  ASSERT_EQ(v.size(), 10u);
  const int expect[5][2] = {{0, 0}, {0, 4}, {4, 0}, {4, 4}, {2, 2}};
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(v[i].crop_height, 44);
    EXPECT_EQ(v[i].crop_width, 44);
    EXPECT_EQ(v[i].crop_y, expect[i % 5][0]) << i;
    EXPECT_EQ(v[i].crop_x, expect[i % 5][1]) << i;
    EXPECT_EQ(v[i].flip, i >= 5) << i;
  }
}

// Each view renders exactly the pixels of its window (mirrored for the second five):
// compared with cutting the window out by hand and preprocessing that. Odd sizes and RGB
// check that the bottom-right window ends on the image's last row and column.
TEST(Tta, ViewsShowTheirWindowsPixelForPixel) {
  const Image img = random_image(37, 41, 3, 2);
  Preprocess pre;
  pre.height = pre.width = 30;
  pre.channels = 3;
  pre.crop = 30;  // no resize, so windows compare pixel for pixel
  Preprocess plain = pre;
  plain.crop = 0;
  const std::vector<Geometry> v = data::tta_views(img, pre, "tencrop");
  const int corners[5][2] = {{0, 0}, {0, 11}, {7, 0}, {7, 11}, {3, 5}};
  const size_t n = 30 * 30 * 3;
  for (int i = 0; i < 10; ++i) {
    std::vector<float> got(n), want(n);
    data::render(img, v[i], pre, got.data());
    data::preprocess(cut(img, corners[i % 5][0], corners[i % 5][1], 30, 30, i >= 5), plain,
                     want.data());
    for (size_t j = 0; j < n; ++j) ASSERT_FLOAT_EQ(got[j], want[j]) << "view " << i << " at " << j;
  }
  // flip: the plain view and its mirror image.
  plain.height = 37;
  plain.width = 41;
  const std::vector<Geometry> f = data::tta_views(img, plain, "flip");
  ASSERT_EQ(f.size(), 2u);
  std::vector<float> got(37 * 41 * 3), want(37 * 41 * 3);
  data::render(img, f[1], plain, got.data());
  data::preprocess(cut(img, 0, 0, 37, 41, true), plain, want.data());
  for (size_t j = 0; j < got.size(); ++j) ASSERT_FLOAT_EQ(got[j], want[j]) << j;
}

// evaluate(..., tta) averages the views' probabilities: checked against running each
// view through the model by hand. Images of 52 px for a 48 px model also exercise the
// resize in every view.
TEST(Tta, EvaluationAveragesTheViewsProbabilities) {
  Model model = small_cnn3(48, 3);
  const data::Dataset ds = random_dataset(model, 9, 52, 100);
  const Preprocess pre = Preprocess::from_json(model.preprocess());
  for (const std::string mode : {"flip", "tencrop"}) {
    // batch 16: tencrop runs 1 image (10 views) per pass, flip 8 images; 9 images leave a
    // partial last pass either way.
    const Evaluation ev = evaluate(model, ds, 16, /*keep_probabilities=*/true, 1, mode);
    ASSERT_EQ(ev.probabilities.size(), ds.size());
    double loss = 0;
    for (size_t i = 0; i < ds.size(); ++i) {
      std::vector<double> mean(7, 0.0);
      const std::vector<Geometry> views = data::tta_views(ds.images[i], pre, mode);
      for (const Geometry& g : views) {
        const std::vector<float> p = probabilities_of_view(model, ds.images[i], g);
        for (int c = 0; c < 7; ++c) mean[c] += p[c] / views.size();
      }
      for (int c = 0; c < 7; ++c) EXPECT_NEAR(ev.probabilities[i][c], mean[c], 2e-6) << mode << i;
      loss -= std::log(mean[ds.labels[i]]);
      EXPECT_EQ(ev.predictions[i], std::max_element(mean.begin(), mean.end()) - mean.begin());
    }
    EXPECT_NEAR(ev.loss, loss / ds.size(), 1e-5) << mode;
  }
  // "none" is the plain evaluation path: one centre view per image.
  const Evaluation none = evaluate(model, ds, 4, true, 1, "none");
  const std::vector<float> p0 = probabilities_of_view(model, ds.images[0], data::center_crop(ds.images[0], 0));
  for (int c = 0; c < 7; ++c) EXPECT_NEAR(none.probabilities[0][c], p0[c], 1e-6);
  // The flip average differs from the single view (a random net is not mirror-symmetric),
  // so the test above cannot pass by evaluating one view.
  const Evaluation flip = evaluate(model, ds, 16, true, 1, "flip");
  double diff = 0;
  for (int c = 0; c < 7; ++c) diff += std::fabs(flip.probabilities[0][c] - none.probabilities[0][c]);
  EXPECT_GT(diff, 1e-4);
}

TEST(Ensemble, AveragesTheModelsProbabilities) {
  Model a = small_cnn3(40, 11), b = small_cnn3(40, 12);
  const data::Dataset ds = random_dataset(a, 10, 40, 200);
  const Evaluation ea = evaluate(a, ds, 8, true), eb = evaluate(b, ds, 8, true);
  const Evaluation both = evaluate_ensemble({&a, &b}, {&ds, &ds}, 8, true);
  double loss = 0;
  for (size_t i = 0; i < ds.size(); ++i) {
    std::vector<double> mean(7);
    for (int c = 0; c < 7; ++c) {
      mean[c] = (ea.probabilities[i][c] + eb.probabilities[i][c]) / 2;
      EXPECT_NEAR(both.probabilities[i][c], mean[c], 1e-6);
    }
    loss -= std::log(mean[ds.labels[i]]);
    EXPECT_EQ(both.predictions[i], std::max_element(mean.begin(), mean.end()) - mean.begin());
  }
  EXPECT_NEAR(both.loss, loss / ds.size(), 1e-5);
  EXPECT_EQ(both.confusion.total(), 10);
  // One model: the same as evaluate().
  const Evaluation one = evaluate_ensemble({&a}, {&ds}, 8, true);
  EXPECT_EQ(one.predictions, ea.predictions);
  EXPECT_DOUBLE_EQ(one.loss, ea.loss);
  // Data that is not the same examples is refused.
  data::Dataset other = ds;
  std::swap(other.labels[0], other.labels[1]);
  EXPECT_NE(error_of([&] { evaluate_ensemble({&a, &b}, {&ds, &other}); }).find("differs"),
            std::string::npos);
}

off_t file_size(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? st.st_size : -1;
}

// fer export --float16 halves the file, loads back as float32 within float16 rounding,
// and keeps the model's predictions.
TEST(Export, Float16HalvesTheFileAndKeepsPredictions) {
  Model m = small_cnn3(48, 21);
  const std::string in = temp_path("full.npz"), out = temp_path("half.npz");
  m.save(in, {}, {{"training", "{\"epoch\": 3}"}});
  const auto r = run_fer("export --model " + in + " --out " + out + " --float16");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("float16"), std::string::npos) << r.out;
  EXPECT_LT(file_size(out), file_size(in) * 0.55);
  Model back = Model::load(out);
  auto pa = m.parameters(), pb = back.parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (size_t i = 0; i < pa.size(); ++i)
    for (int64_t j = 0; j < pa[i]->value.numel(); ++j) {
      const float x = pa[i]->value.data()[j], y = pb[i]->value.data()[j];
      ASSERT_NEAR(y, x, std::fabs(x) * 1e-3 + 1e-7) << pa[i]->name;  // half: 11-bit mantissa
    }
  const data::Dataset ds = random_dataset(m, 12, 48, 300);
  const Evaluation ea = evaluate(m, ds, 12, true), eb = evaluate(back, ds, 12, true);
  for (size_t i = 0; i < ds.size(); ++i)
    for (int c = 0; c < 7; ++c) EXPECT_NEAR(ea.probabilities[i][c], eb.probabilities[i][c], 5e-3);
  // Exporting over the input is refused (it would read and write the same file).
  EXPECT_NE(run_fer("export --model " + in + " --out " + in).status, 0);
}

// Without --model, predict and eval use $FER_MODEL (else models/fer2013.npz), and say so
// when there is none.
TEST(ShippedModel, PredictUsesFerModelAndNamesMissingOnes) {
  Model m = small_cnn3(48, 31);
  const std::string path = temp_path("shipped.npz");
  m.save(path);
  const std::string face = std::string(FER_SOURCE_DIR) + "/data/sample_faces/val/happy";
  const auto list = testing::run_command("ls " + face + " | head -1");
  ASSERT_FALSE(list.out.empty()) << "no sample faces in " << face;
  const std::string image = face + "/" + list.out.substr(0, list.out.find('\n'));
  const auto ok = testing::run_command("FER_MODEL=" + path + " " + testing::fer_binary() +
                                       " predict --tta flip " + image + " 2>&1");
  ASSERT_EQ(ok.status, 0) << ok.out;
  EXPECT_EQ(ok.out.rfind(image + ": ", 0), 0u) << ok.out;
  const auto missing = testing::run_command("FER_MODEL=/nonexistent/m.npz " + testing::fer_binary() +
                                            " predict " + image + " 2>&1");
  EXPECT_NE(missing.status, 0);
  EXPECT_NE(missing.out.find("/nonexistent/m.npz"), std::string::npos) << missing.out;
  const auto bad_tta = run_fer("predict --model " + path + " --tta ten " + image);
  EXPECT_NE(bad_tta.out.find("--tta"), std::string::npos) << bad_tta.out;
}

}  // namespace
}  // namespace fer
