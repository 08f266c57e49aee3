// Training-time augmentation: Keras's ImageDataGenerator set (horizontal flip, rotation,
// width/height shift, shear, zoom; fill_mode='nearest') plus a random crop.
//
// Keras composes rotation, shift, shear and zoom into ONE affine transform about the image
// centre and samples the image once; so do we, and the crop and resize to the model's
// input size are folded into the same map (data/preprocess.h), so an augmented example
// is sampled exactly once. Order, from the output pixel back to the source:
//   flip the output column -> resize (output -> crop) -> crop offset -> affine warp ->
//   bilinear sample of the source (edge pixels extend outwards: 'nearest' fill).
//
// Random crop pairing: with random_crop = k, training sees a random k x k window of the
// (warped) image, resized to the model's input size. Evaluation must see the same scale,
// so set Preprocess::crop = k: the evaluation path then takes the centre k x k window.
// (When random_crop is 0, training also uses Preprocess::crop's centre crop.)
//
// With every range at 0 (enabled() false), augment_and_preprocess() equals preprocess().
#pragma once

#include "data/image.h"
#include "data/preprocess.h"
#include "fer/json.h"
#include "fer/rng.h"

namespace fer::data {

struct Augment {
  bool horizontal_flip = false;  // mirror left-right with probability 1/2
  float rotation_range = 0;      // degrees: angle uniform in [-r, r]
  float width_shift = 0;         // fraction of the width: shift uniform in [-f, f] * width
  float height_shift = 0;        // fraction of the height
  float shear_range = 0;         // degrees: shear angle uniform in [-s, s]
  float zoom_range = 0;          // zoom factors (rows and columns, drawn separately) in [1-z, 1+z]
  int random_crop = 0;           // crop size (square, source pixels); 0 = off
  float erasing = 0;             // RandomErasing probability (Zhong et al. 2017); 0 = off

  bool enabled() const;
  void check() const;  // throws fer::Error naming the bad field
  Json to_json() const;
  static Augment from_json(const Json& json);  // missing keys keep their defaults
};

// One example's random draws, in Keras's terms. Zoom > 1 samples a larger region of the
// source, so the face looks smaller (zooms out), as in Keras.
struct AugmentDraw {
  double rotation = 0;                     // degrees
  double shift_rows = 0, shift_cols = 0;   // pixels
  double shear = 0;                        // degrees
  double zoom_rows = 1, zoom_cols = 1;
  bool flip = false;
  int crop = 0, crop_y = 0, crop_x = 0;    // random crop size and top-left; crop 0 = none
};

// RandomErasing (Zhong et al. 2017, torchvision.transforms.RandomErasing with its defaults
// scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0): with probability `erasing`, a rectangle
// covering 2-33% of the model's input, of aspect ratio 0.3-3.3 (log-uniform), is set to 0
// in the model's input scale (black for "unit", mid-gray for "symmetric", the mean pixel
// for "caffe"/"torch"). It is drawn on the OUTPUT (after crop and resize), as torchvision
// applies it to the final tensor. Occluding part of the face makes the network use all of
// it rather than one cue (the mouth for "happy"). Up to 10 tries find a box that fits; if
// none does, nothing is erased (torchvision's rule).
struct EraseBox {
  int y = 0, x = 0, height = 0, width = 0;  // height 0 = nothing erased
};
EraseBox draw_erasing(float probability, int height, int width, Rng& rng);
// Zeroes the box in out[height][width][channels].
void apply_erasing(const EraseBox& box, int width, int channels, float* out);

// Draws one example's parameters for an image_height x image_width image. Only the
// enabled augmentations consume random numbers, in the order of the fields above.
AugmentDraw draw_augment(const Augment& augment, int image_height, int image_width, Rng& rng);

// The sampling map of a draw (Keras's transform matrix M = R * Shear * Zoom, with the shift
// rotated by R). Without a random crop, `eval_crop` (Preprocess::crop) is the centre crop.
Geometry augment_geometry(const AugmentDraw& draw, const Image& image, int eval_crop);

// The training path: draw, then render. `out` holds preprocess.height * width * channels.
void augment_and_preprocess(const Image& image, const Augment& augment,
                            const Preprocess& preprocess, Rng& rng, float* out);

}  // namespace fer::data
