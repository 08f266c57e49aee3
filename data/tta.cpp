#include "data/tta.h"

#include <algorithm>
#include <cmath>

#include "fer/error.h"

namespace fer::data {

void check_tta(const std::string& mode) {
  FER_CHECK(mode == "none" || mode == "flip" || mode == "tencrop", "--tta: expected none, flip "
            "or tencrop, got '", mode, "'");
}

int tta_view_count(const std::string& mode) {
  check_tta(mode);
  return mode == "none" ? 1 : mode == "flip" ? 2 : 10;
}

int tencrop_size(const Image& image, const Preprocess& preprocess) {
  const int side = std::min(image.height, image.width);
  if (preprocess.crop > 0) return std::min(preprocess.crop, side);
  return std::max(1, static_cast<int>(std::lround(0.9 * side)));
}

std::vector<Geometry> tta_views(const Image& image, const Preprocess& preprocess,
                                const std::string& mode) {
  check_tta(mode);
  std::vector<Geometry> views;
  if (mode == "none" || mode == "flip") {
    views.push_back(center_crop(image, preprocess.crop));
  } else {
    const int c = tencrop_size(image, preprocess);
    const int bottom = image.height - c, right = image.width - c;
    const int corners[5][2] = {{0, 0}, {0, right}, {bottom, 0}, {bottom, right},
                               {bottom / 2, right / 2}};
    for (const auto& yx : corners) {
      Geometry g;
      g.crop_height = g.crop_width = c;
      g.crop_y = yx[0];
      g.crop_x = yx[1];
      views.push_back(g);
    }
  }
  if (mode != "none") {  // the mirror of every view so far
    const size_t n = views.size();
    for (size_t i = 0; i < n; ++i) {
      Geometry g = views[i];
      g.flip = true;
      views.push_back(g);
    }
  }
  return views;
}

}  // namespace fer::data
