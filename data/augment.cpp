#include "data/augment.h"

#include <algorithm>
#include <cmath>

#include "fer/error.h"

namespace fer::data {

bool Augment::enabled() const {
  return horizontal_flip || rotation_range > 0 || width_shift > 0 || height_shift > 0 ||
         shear_range > 0 || zoom_range > 0 || random_crop > 0 || erasing > 0;
}

void Augment::check() const {
  FER_CHECK(rotation_range >= 0 && shear_range >= 0,
            "augment: rotation_range and shear_range must be >= 0 degrees, got ",
            rotation_range, " and ", shear_range);
  FER_CHECK(width_shift >= 0 && width_shift < 1 && height_shift >= 0 && height_shift < 1,
            "augment: width_shift and height_shift are fractions of the size in [0, 1), got ",
            width_shift, " and ", height_shift);
  FER_CHECK(zoom_range >= 0 && zoom_range < 1, "augment: zoom_range must be in [0, 1), got ",
            zoom_range);
  FER_CHECK(random_crop >= 0, "augment: random_crop must be >= 0 (0 = off), got ", random_crop);
  FER_CHECK(erasing >= 0 && erasing <= 1, "augment: erasing is a probability in [0, 1], got ",
            erasing);
}

Json Augment::to_json() const {
  Json j = Json::object();
  j["horizontal_flip"] = horizontal_flip;
  j["rotation_range"] = rotation_range;
  j["width_shift"] = width_shift;
  j["height_shift"] = height_shift;
  j["shear_range"] = shear_range;
  j["zoom_range"] = zoom_range;
  j["random_crop"] = random_crop;
  j["erasing"] = erasing;
  return j;
}

Augment Augment::from_json(const Json& json) {
  FER_CHECK(json.is_object(), "augment: expected a JSON object");
  static const char* const keys[] = {"horizontal_flip", "rotation_range", "width_shift",
                                     "height_shift",    "shear_range",    "zoom_range",
                                     "random_crop",     "erasing"};
  for (const auto& kv : json.as_object()) {  // a typo must not silently disable something
    bool known = false;
    for (const char* k : keys) known = known || kv.first == k;
    FER_CHECK(known, "augment: unknown key '", kv.first,
              "' (expected horizontal_flip, rotation_range, width_shift, height_shift, "
              "shear_range, zoom_range, random_crop, erasing)");
  }
  Augment a;
  a.horizontal_flip = json.get("horizontal_flip", a.horizontal_flip);
  a.rotation_range = static_cast<float>(json.get("rotation_range", double(a.rotation_range)));
  a.width_shift = static_cast<float>(json.get("width_shift", double(a.width_shift)));
  a.height_shift = static_cast<float>(json.get("height_shift", double(a.height_shift)));
  a.shear_range = static_cast<float>(json.get("shear_range", double(a.shear_range)));
  a.zoom_range = static_cast<float>(json.get("zoom_range", double(a.zoom_range)));
  a.random_crop = json.get("random_crop", a.random_crop);
  a.erasing = static_cast<float>(json.get("erasing", double(a.erasing)));
  a.check();
  return a;
}

AugmentDraw draw_augment(const Augment& a, int image_height, int image_width, Rng& rng) {
  a.check();
  AugmentDraw d;
  if (a.rotation_range > 0) d.rotation = rng.uniform(-a.rotation_range, a.rotation_range);
  if (a.height_shift > 0)
    d.shift_rows = rng.uniform(-a.height_shift, a.height_shift) * image_height;
  if (a.width_shift > 0) d.shift_cols = rng.uniform(-a.width_shift, a.width_shift) * image_width;
  if (a.shear_range > 0) d.shear = rng.uniform(-a.shear_range, a.shear_range);
  if (a.zoom_range > 0) {
    d.zoom_rows = rng.uniform(1 - a.zoom_range, 1 + a.zoom_range);
    d.zoom_cols = rng.uniform(1 - a.zoom_range, 1 + a.zoom_range);
  }
  if (a.horizontal_flip) d.flip = rng.bernoulli(0.5);
  if (a.random_crop > 0) {
    FER_CHECK(a.random_crop <= image_height && a.random_crop <= image_width, "augment: random_crop ",
              a.random_crop, " is larger than the ", image_height, "x", image_width, " image");
    d.crop = a.random_crop;
    d.crop_y = static_cast<int>(rng.below(image_height - a.random_crop + 1));
    d.crop_x = static_cast<int>(rng.below(image_width - a.random_crop + 1));
  }
  return d;
}

Geometry augment_geometry(const AugmentDraw& d, const Image& image, int eval_crop) {
  Geometry g = center_crop(image, eval_crop);
  if (d.crop > 0) {
    g.crop_height = g.crop_width = d.crop;
    g.crop_y = d.crop_y;
    g.crop_x = d.crop_x;
  }
  g.flip = d.flip;
  g.affine = d.rotation != 0 || d.shift_rows != 0 || d.shift_cols != 0 || d.shear != 0 ||
             d.zoom_rows != 1 || d.zoom_cols != 1;
  if (!g.affine) return g;  // keeps the identity exact (no rounding from cos/sin)

  // Keras's apply_affine_transform, with (row, column) coordinates about the centre:
  //   R = [cos t, -sin t; sin t, cos t]   rotation by t
  //   S = [1, -sin s; 0, cos s]           shear by s
  //   Z = [zoom_rows, 0; 0, zoom_cols]    zoom
  //   source = centre + R * (S * Z * (p - centre) + shift)
  // It maps OUTPUT positions to SOURCE positions (scipy's affine_transform convention), so
  // each output pixel knows where to sample; no holes, no inverse to compute.
  const double pi = 3.14159265358979323846;
  const double t = d.rotation * pi / 180, s = d.shear * pi / 180;
  const double R[2][2] = {{std::cos(t), -std::sin(t)}, {std::sin(t), std::cos(t)}};
  const double SZ[2][2] = {{d.zoom_rows, -std::sin(s) * d.zoom_cols},
                           {0, std::cos(s) * d.zoom_cols}};
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j) g.matrix[i][j] = R[i][0] * SZ[0][j] + R[i][1] * SZ[1][j];
  g.offset[0] = R[0][0] * d.shift_rows + R[0][1] * d.shift_cols;
  g.offset[1] = R[1][0] * d.shift_rows + R[1][1] * d.shift_cols;
  return g;
}

void augment_and_preprocess(const Image& image, const Augment& augment,
                            const Preprocess& preprocess, Rng& rng, float* out) {
  const AugmentDraw draw = draw_augment(augment, image.height, image.width, rng);
  render(image, augment_geometry(draw, image, preprocess.crop), preprocess, out);
  if (augment.erasing > 0)  // drawn last, so enabling it leaves the other draws unchanged
    apply_erasing(draw_erasing(augment.erasing, preprocess.height, preprocess.width, rng),
                  preprocess.width, preprocess.channels, out);
}

EraseBox draw_erasing(float probability, int height, int width, Rng& rng) {
  EraseBox box;
  if (probability <= 0 || !rng.bernoulli(probability)) return box;
  const double area = static_cast<double>(height) * width;
  const double log_lo = std::log(0.3), log_hi = std::log(3.3);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * rng.uniform(0.02, 0.33);
    const double aspect = std::exp(rng.uniform(log_lo, log_hi));
    const int h = static_cast<int>(std::lround(std::sqrt(target * aspect)));
    const int w = static_cast<int>(std::lround(std::sqrt(target / aspect)));
    if (h < 1 || w < 1 || h >= height || w >= width) continue;
    box.height = h;
    box.width = w;
    box.y = static_cast<int>(rng.below(height - h + 1));
    box.x = static_cast<int>(rng.below(width - w + 1));
    return box;
  }
  return box;
}

void apply_erasing(const EraseBox& box, int width, int channels, float* out) {
  for (int y = box.y; y < box.y + box.height; ++y)
    std::fill(out + (static_cast<size_t>(y) * width + box.x) * channels,
              out + (static_cast<size_t>(y) * width + box.x + box.width) * channels, 0.0f);
}

}  // namespace fer::data
