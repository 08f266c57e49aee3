// Preprocessing (channels, crop, bilinear resize, scaling) and augmentation (flip, affine
// warp, random crop, determinism).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "data/augment.h"
#include "data/image.h"
#include "data/preprocess.h"
#include "fer/error.h"
#include "fer/rng.h"

using namespace fer;
using namespace fer::data;

namespace {

Image make_image(int h, int w, int c, const std::vector<uint8_t>& pixels) {
  Image im;
  im.height = h;
  im.width = w;
  im.channels = c;
  im.pixels = pixels;
  return im;
}

// An h x w gray image whose pixel (y, x) is 10 * y + x: every pixel distinct, so a
// misplaced sample shows.
Image index_image(int h, int w) {
  Image im = make_image(h, w, 1, std::vector<uint8_t>(h * w));
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) im.pixels[y * w + x] = static_cast<uint8_t>(10 * y + x);
  return im;
}

Preprocess shape(int h, int w, int c = 1) {
  Preprocess p;
  p.height = h;
  p.width = w;
  p.channels = c;
  return p;
}

std::vector<float> run_preprocess(const Image& im, const Preprocess& p) {
  std::vector<float> out(p.height * p.width * p.channels);
  preprocess(im, p, out.data());
  return out;
}

std::vector<float> run_draw(const Image& im, const AugmentDraw& d, const Preprocess& p) {
  std::vector<float> out(p.height * p.width * p.channels);
  render(im, augment_geometry(d, im, p.crop), p, out.data());
  return out;
}

std::vector<float> run_augment(const Image& im, const Augment& a, const Preprocess& p,
                               uint64_t seed) {
  std::vector<float> out(p.height * p.width * p.channels);
  Rng rng(seed);
  augment_and_preprocess(im, a, p, rng, out.data());
  return out;
}

// A real face from the committed sample.
Image sample_face() {
  const std::string dir = std::string(FER_SOURCE_DIR) + "/data/sample_faces/val/happy";
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(dir)) files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  return decode_image(files.at(0), 1);
}

}  // namespace

// --- preprocessing -----------------------------------------------------------------------

TEST(Preprocess, ScalesUnitAndSymmetric) {
  const Image im = make_image(1, 3, 1, {0, 51, 255});
  Preprocess p = shape(1, 3);
  const std::vector<float> unit = run_preprocess(im, p);
  EXPECT_FLOAT_EQ(unit[0], 0.f);
  EXPECT_FLOAT_EQ(unit[1], 0.2f);
  EXPECT_FLOAT_EQ(unit[2], 1.f);
  p.scale = "symmetric";
  const std::vector<float> sym = run_preprocess(im, p);
  EXPECT_FLOAT_EQ(sym[0], -1.f);
  EXPECT_NEAR(sym[1], 51 / 127.5 - 1, 1e-6);
  EXPECT_FLOAT_EQ(sym[2], 1.f);
  p.scale = "imagenet";
  EXPECT_THROW(run_preprocess(im, p), Error);
}

TEST(Preprocess, ReplicatesGrayToRgbAndTakesLumaOfRgb) {
  const Image gray = make_image(1, 2, 1, {30, 200});
  const std::vector<float> rgb = run_preprocess(gray, shape(1, 2, 3));
  ASSERT_EQ(rgb.size(), 6u);
  for (int c = 0; c < 3; ++c) {
    EXPECT_FLOAT_EQ(rgb[c], 30 / 255.f);
    EXPECT_FLOAT_EQ(rgb[3 + c], 200 / 255.f);
  }
  const Image color = make_image(1, 2, 3, {255, 0, 0, 10, 100, 200});
  const std::vector<float> luma = run_preprocess(color, shape(1, 2, 1));
  EXPECT_NEAR(luma[0], 0.299 * 255 / 255, 1e-5);
  EXPECT_NEAR(luma[1], (0.299 * 10 + 0.587 * 100 + 0.114 * 200) / 255, 1e-5);
}

TEST(Preprocess, BilinearUpscale2x2To4x4MatchesHandValues) {
  // Half-pixel centres: output column o samples input column (o + 0.5) / 2 - 0.5 =
  // -0.25, 0.25, 0.75, 1.25; outside [0, 1] clamps to the edge. So each row [a, b] becomes
  // [a, 0.75a + 0.25b, 0.25a + 0.75b, b], and the same along columns.
  const Image im = make_image(2, 2, 1, {0, 80, 160, 240});
  const std::vector<float> out = run_preprocess(im, shape(4, 4));
  const float expected[16] = {0,   20,  60,  80,   //
                              40,  60,  100, 120,  //
                              120, 140, 180, 200,  //
                              160, 180, 220, 240};
  for (int i = 0; i < 16; ++i) EXPECT_NEAR(out[i] * 255, expected[i], 1e-4) << "pixel " << i;
}

TEST(Preprocess, BilinearDownscaleAveragesPairsAndSameSizeIsExact) {
  // 4 -> 2: output o samples (o + 0.5) * 2 - 0.5 = 0.5, 2.5: the mean of each pair.
  const Image im = index_image(4, 4);  // rows 0,1,2,3 / 10,11,12,13 / ...
  const std::vector<float> out = run_preprocess(im, shape(2, 2));
  EXPECT_NEAR(out[0] * 255, (0 + 1 + 10 + 11) / 4.0, 1e-4);
  EXPECT_NEAR(out[1] * 255, (2 + 3 + 12 + 13) / 4.0, 1e-4);
  EXPECT_NEAR(out[3] * 255, (22 + 23 + 32 + 33) / 4.0, 1e-4);
  // Same size: a plain copy, exact.
  const Image face = sample_face();
  const std::vector<float> same = run_preprocess(face, shape(48, 48));
  for (int i = 0; i < 48 * 48; ++i) ASSERT_EQ(same[i], face.pixels[i] / 255.f);
}

TEST(Preprocess, CenterCropTakesTheMiddleWindow) {
  const Image im = index_image(6, 6);
  Preprocess p = shape(4, 4);
  p.crop = 4;  // window rows/cols 1..4
  const std::vector<float> out = run_preprocess(im, p);
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x) EXPECT_FLOAT_EQ(out[y * 4 + x] * 255, 10 * (y + 1) + (x + 1));
  p.crop = 7;
  EXPECT_THROW(run_preprocess(im, p), Error);
}

TEST(Preprocess, JsonRoundTripAndErrors) {
  Preprocess p;
  p.height = p.width = 96;
  p.channels = 3;
  p.scale = "symmetric";
  p.crop = 44;
  const Preprocess q = Preprocess::from_json(Json::parse(p.to_json().dump()));
  EXPECT_EQ(q.height, 96);
  EXPECT_EQ(q.width, 96);
  EXPECT_EQ(q.channels, 3);
  EXPECT_EQ(q.scale, "symmetric");
  EXPECT_EQ(q.crop, 44);
  EXPECT_EQ(Preprocess::from_json(Json::parse("{}")).height, 48);  // defaults
  EXPECT_THROW(Preprocess::from_json(Json::parse("{\"hieght\": 48}")), Error);
  EXPECT_THROW(Preprocess::from_json(Json::parse("{\"channels\": 2}")), Error);
}

// --- augmentation -------------------------------------------------------------------------

TEST(Augment, IdentityEqualsPlainPreprocess) {
  const Image face = sample_face();
  Preprocess p = shape(40, 40);
  p.crop = 44;
  const Augment none;
  EXPECT_FALSE(none.enabled());
  EXPECT_EQ(run_augment(face, none, p, 1), run_preprocess(face, p));
  EXPECT_EQ(run_draw(face, AugmentDraw{}, p), run_preprocess(face, p));
}

TEST(Augment, FlipExactlyMirrors) {
  const Image face = sample_face();
  const Preprocess p = shape(48, 48);
  const std::vector<float> plain = run_preprocess(face, p);
  AugmentDraw d;
  d.flip = true;
  const std::vector<float> flipped = run_draw(face, d, p);
  for (int y = 0; y < 48; ++y)
    for (int x = 0; x < 48; ++x) ASSERT_EQ(flipped[y * 48 + x], plain[y * 48 + 47 - x]);
  // The random flip is a coin: over seeds, both outcomes occur and nothing else.
  Augment a;
  a.horizontal_flip = true;
  int mirrored = 0, kept = 0;
  for (uint64_t seed = 0; seed < 40; ++seed) {
    const std::vector<float> out = run_augment(face, a, p, seed);
    if (out == plain) ++kept;
    else if (out == flipped) ++mirrored;
    else ADD_FAILURE() << "seed " << seed << " is neither the image nor its mirror";
  }
  EXPECT_GT(mirrored, 5);
  EXPECT_GT(kept, 5);
}

TEST(Augment, Rotation90MovesPixelsWhereExpected) {
  // Keras's rotation matrix [cos, -sin; sin, cos] on (row, col) about the centre: for
  // t = 90 degrees, output (r, c) samples source (H-1-c, r).
  for (int n : {5, 6}) {
    SCOPED_TRACE(n);
    const Image im = index_image(n, n);
    AugmentDraw d;
    d.rotation = 90;
    const std::vector<float> out = run_draw(im, d, shape(n, n));
    for (int r = 0; r < n; ++r)
      for (int c = 0; c < n; ++c)
        EXPECT_NEAR(out[r * n + c] * 255, im.at(n - 1 - c, r), 1e-3) << r << "," << c;
  }
}

TEST(Augment, ShiftFillsWithTheNearestEdgeAndZoomScalesAboutTheCentre) {
  const Image im = index_image(5, 5);
  AugmentDraw shift;
  shift.shift_rows = 1;  // output (r, c) samples (r + 1, c); the last row repeats the edge
  const std::vector<float> shifted = run_draw(im, shift, shape(5, 5));
  for (int r = 0; r < 5; ++r)
    for (int c = 0; c < 5; ++c)
      EXPECT_NEAR(shifted[r * 5 + c] * 255, im.at(std::min(r + 1, 4), c), 1e-4);

  AugmentDraw zoom;
  zoom.zoom_rows = zoom.zoom_cols = 0.5;  // samples 2 + (p - 2) / 2: a 2x magnification
  const std::vector<float> zoomed = run_draw(im, zoom, shape(5, 5));
  EXPECT_NEAR(zoomed[0] * 255, im.at(1, 1), 1e-4);               // (0,0) <- (1,1)
  EXPECT_NEAR(zoomed[2 * 5 + 2] * 255, im.at(2, 2), 1e-4);       // centre fixed
  EXPECT_NEAR(zoomed[1 * 5 + 4] * 255, (im.at(1, 3) + im.at(2, 3)) / 2.0, 1e-4);  // (1.5, 3)
}

TEST(Augment, WarpsKeepTheCentreAndStayInRange) {
  const Image face = sample_face();  // 48x48: the centre (23.5, 23.5) is between pixels
  const Image odd = index_image(7, 7);
  Augment a;
  a.rotation_range = 30;
  a.shear_range = 15;
  a.zoom_range = 0.2f;
  for (uint64_t seed = 0; seed < 10; ++seed) {
    // Rotation, shear and zoom fix the centre pixel of an odd-sized image.
    EXPECT_NEAR(run_augment(odd, a, shape(7, 7), seed)[3 * 7 + 3] * 255, odd.at(3, 3), 1e-3);
    // Bilinear sampling mixes pixels, never leaves [0, 1].
    const std::vector<float> out = run_augment(face, a, shape(48, 48), seed);
    const auto [lo, hi] = std::minmax_element(out.begin(), out.end());
    EXPECT_GE(*lo, 0.f);
    EXPECT_LE(*hi, 1.f);
  }
}

TEST(Augment, SameSeedSameResultDifferentSeedDifferent) {
  const Image face = sample_face();
  Augment a;
  a.horizontal_flip = true;
  a.rotation_range = 10;
  a.width_shift = a.height_shift = 0.1f;
  a.shear_range = 5;
  a.zoom_range = 0.1f;
  a.random_crop = 44;
  Preprocess p = shape(44, 44);
  p.crop = 44;
  EXPECT_TRUE(a.enabled());
  const std::vector<float> first = run_augment(face, a, p, 123);
  EXPECT_EQ(run_augment(face, a, p, 123), first);
  EXPECT_NE(run_augment(face, a, p, 124), first);
  EXPECT_NE(run_preprocess(face, p), first);
}

TEST(Augment, RandomCropTakesAWindowAndEvalTakesTheCentre) {
  const Image face = sample_face();
  Augment a;
  a.random_crop = 44;
  Preprocess p = shape(44, 44);
  p.crop = 44;  // the evaluation partner of random_crop = 44
  std::vector<int> offsets_seen;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    Rng draw_rng(seed);
    const AugmentDraw d = draw_augment(a, 48, 48, draw_rng);
    ASSERT_EQ(d.crop, 44);
    ASSERT_GE(d.crop_y, 0);
    ASSERT_LE(d.crop_y, 4);
    ASSERT_GE(d.crop_x, 0);
    ASSERT_LE(d.crop_x, 4);
    offsets_seen.push_back(d.crop_y * 5 + d.crop_x);
    // augment_and_preprocess with the same seed makes the same draw: the output is
    // exactly that 44x44 window of the source.
    const std::vector<float> out = run_augment(face, a, p, seed);
    ASSERT_EQ(out.size(), 44u * 44u);
    for (int y = 0; y < 44; ++y)
      for (int x = 0; x < 44; ++x)
        ASSERT_EQ(out[y * 44 + x], face.at(y + d.crop_y, x + d.crop_x) / 255.f);
  }
  std::sort(offsets_seen.begin(), offsets_seen.end());
  EXPECT_GT(std::unique(offsets_seen.begin(), offsets_seen.end()) - offsets_seen.begin(), 5);
  // Eval: the centre window, offset (48 - 44) / 2 = 2.
  const std::vector<float> eval = run_preprocess(face, p);
  for (int y = 0; y < 44; ++y)
    for (int x = 0; x < 44; ++x) ASSERT_EQ(eval[y * 44 + x], face.at(y + 2, x + 2) / 255.f);
  // Cropped then resized to the model's size: the output shape follows Preprocess.
  EXPECT_EQ(run_augment(face, a, shape(48, 48, 3), 0).size(), 48u * 48u * 3u);
  a.random_crop = 49;
  EXPECT_THROW(run_augment(face, a, shape(48, 48), 0), Error);
}

TEST(Augment, JsonRoundTripAndChecks) {
  Augment a;
  a.horizontal_flip = true;
  a.rotation_range = 10;
  a.width_shift = 0.1f;
  a.height_shift = 0.2f;
  a.shear_range = 5;
  a.zoom_range = 0.15f;
  a.random_crop = 44;
  const Augment b = Augment::from_json(Json::parse(a.to_json().dump()));
  EXPECT_EQ(b.horizontal_flip, true);
  EXPECT_FLOAT_EQ(b.rotation_range, 10);
  EXPECT_FLOAT_EQ(b.width_shift, 0.1f);
  EXPECT_FLOAT_EQ(b.height_shift, 0.2f);
  EXPECT_FLOAT_EQ(b.shear_range, 5);
  EXPECT_FLOAT_EQ(b.zoom_range, 0.15f);
  EXPECT_EQ(b.random_crop, 44);
  EXPECT_FALSE(Augment::from_json(Json::parse("{}")).enabled());
  EXPECT_THROW(Augment::from_json(Json::parse("{\"rotation\": 10}")), Error);
  EXPECT_THROW(Augment::from_json(Json::parse("{\"zoom_range\": 1.5}")), Error);
  EXPECT_THROW(Augment::from_json(Json::parse("{\"width_shift\": -0.1}")), Error);
}
