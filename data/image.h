// Images as they come off disk: 8-bit pixels, height x width x channels (HWC), the same
// layout the model's NHWC tensors use, so turning one into the other is a plain loop.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace fer::data {

struct Image {
  int height = 0, width = 0, channels = 0;  // channels: 1 (gray) or 3 (RGB)
  std::vector<uint8_t> pixels;              // height * width * channels, row-major HWC

  uint8_t at(int y, int x, int c = 0) const {
    return pixels[(static_cast<size_t>(y) * width + x) * channels + c];
  }
};

// The seven FER2013 expressions in folder (alphabetical) order:
//   angry, disgust, fear, happy, neutral, sad, surprise.
// This is the model's output order everywhere in fer. Kaggle's fer2013.csv numbers the
// same classes differently (see data/dataset.h); loaders map to this order.
const std::vector<std::string>& fer2013_classes();

// Decodes a JPEG/PNG/BMP file with stb_image into `channels` channels (1: gray, 3: RGB;
// stb converts color to gray with the ITU-R 601 luma weights). Throws fer::Error naming
// the file and the reason (unreadable, not an image, corrupt, truncated, too large).
Image decode_image(const std::string& path, int channels);

// Same, from bytes already in memory; `name` is only used in error messages.
Image decode_image_bytes(const uint8_t* bytes, size_t size, int channels,
                         const std::string& name);

}  // namespace fer::data
