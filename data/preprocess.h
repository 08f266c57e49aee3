// Preprocessing: from a stored 8-bit image to the float input the model sees.
//
//   1. channels: gray is replicated to RGB when the model wants 3 channels; RGB becomes
//      gray with the ITU-R 601 luma weights (0.299 R + 0.587 G + 0.114 B) when it wants 1;
//   2. optional centre crop (Preprocess::crop, in source pixels) -- the evaluation-time
//      partner of training's random crop (data/augment.h);
//   3. bilinear resize to height x width with half-pixel centres, as TensorFlow's
//      resize(..., half_pixel_centers=True) and OpenCV's INTER_LINEAR do: output pixel o
//      looks at source position (o + 0.5) * in/out - 0.5, and positions outside the image
//      take the nearest edge pixel;
//   4. scale: "unit" x/255 in [0, 1]; "symmetric" x/127.5 - 1 in [-1, 1] (what Keras's
//      MobileNets expect); "caffe" BGR minus the ImageNet mean pixel (Keras's VGG16);
//      "torch" (x/255 - mean) / std per channel with ImageNet's statistics (torchvision).
//
// Every geometric step (crop, resize, and augmentation's flip and affine warp) is folded
// into ONE map from an output pixel to a source position, and the source is sampled
// once (render()). Sampling once blurs less than warping, then cropping, then resizing.
#pragma once

#include <string>

#include "data/image.h"
#include "fer/json.h"

namespace fer::data {

struct Preprocess {
  int height = 48, width = 48, channels = 1;  // the model's input shape (H, W, C)
  std::string scale = "unit";  // "unit" | "symmetric" | "caffe" | "torch" (see above)
  int crop = 0;  // centre crop size (square, source pixels) before resizing; 0 = none

  void check() const;  // throws fer::Error naming the bad field
  Json to_json() const;
  static Preprocess from_json(const Json& json);  // missing keys keep their defaults
};

// Where the output pixels sample the source image. Coordinates are (row, column) in
// source pixels, pixel centres at integers.
struct Geometry {
  // The region of the (warped) image that is resized to the output; 0 = the whole image.
  int crop_height = 0, crop_width = 0;
  int crop_y = 0, crop_x = 0;  // its top-left corner
  bool flip = false;           // mirror the output left-right
  // Affine warp about the image centre c: a position p of the warped image samples the
  // source at c + matrix * (p - c) + offset. Off (identity) unless `affine`.
  bool affine = false;
  double matrix[2][2] = {{1, 0}, {0, 1}};
  double offset[2] = {0, 0};
};

// Samples `image` through `geometry` into out[height][width][channels] (scaled).
void render(const Image& image, const Geometry& geometry, const Preprocess& preprocess,
            float* out);

// The evaluation path: channels, centre crop (when preprocess.crop > 0), resize, scale.
// `out` holds preprocess.height * width * channels floats.
void preprocess(const Image& image, const Preprocess& preprocess, float* out);

// The geometry of a centre crop of size `crop` (0 = none) of an image.
Geometry center_crop(const Image& image, int crop);

}  // namespace fer::data
