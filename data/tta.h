// Test-time augmentation (TTA): show the model several views of each image and average
// the class probabilities of the views.
//
//   none     one view: the evaluation path of data/preprocess.h (centre crop if the model
//            was trained with --random-crop, then resize)
//   flip     that view and its mirror image (2 views)
//   tencrop  the ten-crop of the FER2013 literature (Krizhevsky et al.'s ten patches):
//            the four corners and the centre of a slightly smaller crop, and the mirror of
//            each (10 views). The crop is the model's training crop (Preprocess::crop) when
//            it has one, so each view is a window the model saw during training; otherwise
//            90% of the image's shorter side, resized to the model's input size.
//
// Why it helps: a network trained with random crops and flips has seen every one of these
// views; averaging over them smooths out the luck of where one centre crop falls.
#pragma once

#include <string>
#include <vector>

#include "data/image.h"
#include "data/preprocess.h"

namespace fer::data {

// Throws fer::Error for a mode other than none | flip | tencrop.
void check_tta(const std::string& mode);
int tta_view_count(const std::string& mode);  // 1, 2 or 10

// The crop side tencrop uses for `image` under `preprocess` (see above).
int tencrop_size(const Image& image, const Preprocess& preprocess);

// The views' sampling maps, tta_view_count(mode) of them, in a fixed order: for tencrop
// top-left, top-right, bottom-left, bottom-right, centre, then the same five mirrored.
std::vector<Geometry> tta_views(const Image& image, const Preprocess& preprocess,
                                const std::string& mode);

}  // namespace fer::data
