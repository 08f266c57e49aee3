#include "data/preprocess.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "fer/error.h"

namespace fer::data {

void Preprocess::check() const {
  FER_CHECK(height > 0 && width > 0, "preprocess: height and width must be > 0, got ", height,
            "x", width);
  FER_CHECK(channels == 1 || channels == 3, "preprocess: channels must be 1 or 3, got ",
            channels);
  FER_CHECK(scale == "unit" || scale == "symmetric" || scale == "caffe" || scale == "torch",
            "preprocess: unknown scale '", scale,
            "' (expected 'unit', 'symmetric', 'caffe' or 'torch')");
  FER_CHECK((scale != "caffe" && scale != "torch") || channels == 3, "preprocess: scale '",
            scale, "' needs 3 channels (RGB), got ", channels);
  FER_CHECK(crop >= 0, "preprocess: crop must be >= 0 (0 = none), got ", crop);
}

Json Preprocess::to_json() const {
  Json j = Json::object();
  j["height"] = height;
  j["width"] = width;
  j["channels"] = channels;
  j["scale"] = scale;
  j["crop"] = crop;
  return j;
}

Preprocess Preprocess::from_json(const Json& json) {
  FER_CHECK(json.is_object(), "preprocess: expected a JSON object");
  for (const auto& kv : json.as_object())  // a typo must not silently fall back to a default
    FER_CHECK(kv.first == "height" || kv.first == "width" || kv.first == "channels" ||
                  kv.first == "scale" || kv.first == "crop",
              "preprocess: unknown key '", kv.first,
              "' (expected height, width, channels, scale, crop)");
  Preprocess p;
  p.height = json.get("height", p.height);
  p.width = json.get("width", p.width);
  p.channels = json.get("channels", p.channels);
  p.scale = json.get("scale", p.scale.c_str());
  p.crop = json.get("crop", p.crop);
  p.check();
  return p;
}

Geometry center_crop(const Image& image, int crop) {
  Geometry g;
  if (crop <= 0) return g;
  FER_CHECK(crop <= image.height && crop <= image.width, "preprocess: crop ", crop,
            " is larger than the ", image.height, "x", image.width, " image");
  g.crop_height = g.crop_width = crop;
  g.crop_y = (image.height - crop) / 2;
  g.crop_x = (image.width - crop) / 2;
  return g;
}

namespace {

// Step 1: the image as floats with the model's channel count.
std::vector<float> convert_channels(const Image& image, int channels) {
  FER_CHECK(image.height > 0 && image.width > 0 &&
                image.pixels.size() ==
                    static_cast<size_t>(image.height) * image.width * image.channels,
            "preprocess: malformed image (", image.height, "x", image.width, "x", image.channels,
            " with ", image.pixels.size(), " bytes)");
  FER_CHECK(image.channels == 1 || image.channels == 3,
            "preprocess: images must have 1 or 3 channels, got ", image.channels);
  const size_t n = static_cast<size_t>(image.height) * image.width;
  std::vector<float> out(n * channels);
  const uint8_t* px = image.pixels.data();
  for (size_t i = 0; i < n; ++i) {
    if (image.channels == channels) {
      for (int c = 0; c < channels; ++c) out[i * channels + c] = px[i * channels + c];
    } else if (image.channels == 1) {  // gray -> RGB: the same value in every channel
      for (int c = 0; c < 3; ++c) out[i * 3 + c] = px[i];
    } else {  // RGB -> gray: ITU-R BT.601 luma, the weights JPEG and stb_image use
      out[i] = 0.299f * px[i * 3] + 0.587f * px[i * 3 + 1] + 0.114f * px[i * 3 + 2];
    }
  }
  return out;
}

}  // namespace

void render(const Image& image, const Geometry& g, const Preprocess& p, float* out) {
  p.check();
  const std::vector<float> src = convert_channels(image, p.channels);
  const int h = image.height, w = image.width, C = p.channels;
  const int crop_h = g.crop_height ? g.crop_height : h;
  const int crop_w = g.crop_width ? g.crop_width : w;
  FER_CHECK(crop_h > 0 && crop_w > 0 && g.crop_y >= 0 && g.crop_x >= 0 &&
                g.crop_y + crop_h <= h && g.crop_x + crop_w <= w,
            "preprocess: crop ", crop_h, "x", crop_w, " at (", g.crop_y, ", ", g.crop_x,
            ") does not fit the ", h, "x", w, " image");

  // Resize: output pixel o covers crop positions (o + 0.5) * scale - 0.5.
  const double scale_y = static_cast<double>(crop_h) / p.height;
  const double scale_x = static_cast<double>(crop_w) / p.width;
  const double centre_y = (h - 1) / 2.0, centre_x = (w - 1) / 2.0;
  // Step 4: "unit" divides by 255, "symmetric" maps 0..255 onto -1..1; "caffe" (Keras's
  // VGG16) reorders RGB to BGR and subtracts the ImageNet mean pixel; "torch"
  // (torchvision) standardizes x/255 per channel with ImageNet's mean and std.
  enum { kUnit, kSymmetric, kCaffe, kTorch } mode =
      p.scale == "unit" ? kUnit : p.scale == "symmetric" ? kSymmetric
                                  : p.scale == "caffe"   ? kCaffe : kTorch;
  static const float kCaffeMeanBGR[3] = {103.939f, 116.779f, 123.68f};
  static const float kTorchMean[3] = {0.485f, 0.456f, 0.406f};
  static const float kTorchStd[3] = {0.229f, 0.224f, 0.225f};

  for (int oy = 0; oy < p.height; ++oy) {
    for (int ox = 0; ox < p.width; ++ox) {
      // Flip mirrors the output, so a flipped image is exactly the mirror of the plain one.
      const int fx = g.flip ? p.width - 1 - ox : ox;
      // Output pixel -> position in the warped image (resize, then crop offset).
      double y = (oy + 0.5) * scale_y - 0.5 + g.crop_y;
      double x = (fx + 0.5) * scale_x - 0.5 + g.crop_x;
      // Warped image -> source image (the inverse map, as Keras/scipy apply it).
      if (g.affine) {
        const double dy = y - centre_y, dx = x - centre_x;
        y = centre_y + g.matrix[0][0] * dy + g.matrix[0][1] * dx + g.offset[0];
        x = centre_x + g.matrix[1][0] * dy + g.matrix[1][1] * dx + g.offset[1];
      }
      // Bilinear sampling. Neighbours outside the image are clamped to the edge, which is
      // both the resize's border rule and Keras's fill_mode='nearest' for warps.
      // (Clamping the position first keeps the int conversion defined for wild warps.)
      y = std::clamp(y, -1.0, static_cast<double>(h));
      x = std::clamp(x, -1.0, static_cast<double>(w));
      const double y0 = std::floor(y), x0 = std::floor(x);
      const double wy = y - y0, wx = x - x0;  // weights of the lower/right neighbours
      const int ya = std::clamp(static_cast<int>(y0), 0, h - 1);
      const int yb = std::clamp(static_cast<int>(y0) + 1, 0, h - 1);
      const int xa = std::clamp(static_cast<int>(x0), 0, w - 1);
      const int xb = std::clamp(static_cast<int>(x0) + 1, 0, w - 1);
      const float* top_left = &src[(static_cast<size_t>(ya) * w + xa) * C];
      const float* top_right = &src[(static_cast<size_t>(ya) * w + xb) * C];
      const float* bottom_left = &src[(static_cast<size_t>(yb) * w + xa) * C];
      const float* bottom_right = &src[(static_cast<size_t>(yb) * w + xb) * C];
      float* o = out + (static_cast<size_t>(oy) * p.width + ox) * C;
      for (int c = 0; c < C; ++c) {
        const double top = (1 - wx) * top_left[c] + wx * top_right[c];
        const double bottom = (1 - wx) * bottom_left[c] + wx * bottom_right[c];
        const float v = static_cast<float>((1 - wy) * top + wy * bottom);
        switch (mode) {
          case kUnit: o[c] = v / 255.f; break;
          case kSymmetric: o[c] = v / 127.5f - 1.f; break;
          case kCaffe: o[C - 1 - c] = v - kCaffeMeanBGR[C - 1 - c]; break;  // C == 3
          case kTorch: o[c] = (v / 255.f - kTorchMean[c]) / kTorchStd[c]; break;
        }
      }
    }
  }
}

void preprocess(const Image& image, const Preprocess& p, float* out) {
  render(image, center_crop(image, p.crop), p, out);
}

}  // namespace fer::data
