// Image decoding with stb_image. The implementation of stb_image is compiled once in
// Debian's libstb (linked through pkg-config), so we only include the header here.
#include "data/image.h"

#include <stb_image.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>

#include "fer/error.h"

namespace fer::data {

const std::vector<std::string>& fer2013_classes() {
  static const std::vector<std::string> classes = {"angry", "disgust", "fear",    "happy",
                                                   "neutral", "sad",   "surprise"};
  return classes;
}

// Anything larger is certainly not a face crop, and refusing it up front means a hostile
// or broken header (a PNG that claims 100000x100000) cannot make us allocate gigabytes.
static constexpr int kMaxSide = 8192;

Image decode_image_bytes(const uint8_t* bytes, size_t size, int channels,
                         const std::string& name) {
  FER_CHECK(channels == 1 || channels == 3, "image '", name, "': channels must be 1 or 3, got ",
            channels);
  FER_CHECK(size > 0, "image '", name, "': the file is empty");
  FER_CHECK(size <= static_cast<size_t>(std::numeric_limits<int>::max()), "image '", name,
            "': the file is too large (", size, " bytes)");
  const int len = static_cast<int>(size);

  // Read the header first: rejects non-images cheaply and bounds the allocation.
  int w = 0, h = 0, file_channels = 0;
  if (!stbi_info_from_memory(bytes, len, &w, &h, &file_channels))
    fail("image '", name, "': cannot decode (", stbi_failure_reason(),
         "); expected a JPEG, PNG or BMP file");
  FER_CHECK(w > 0 && h > 0 && w <= kMaxSide && h <= kMaxSide, "image '", name,
            "': unsupported size ", w, "x", h, " (at most ", kMaxSide, " pixels a side)");

  // stb reports errors through a thread-local reason string (Debian builds it with
  // thread-local storage), so decoding in parallel threads is safe.
  stbi_uc* decoded = stbi_load_from_memory(bytes, len, &w, &h, &file_channels, channels);
  if (decoded == nullptr)
    fail("image '", name, "': cannot decode (", stbi_failure_reason(),
         "); the file is corrupt or truncated");

  Image image;
  image.height = h;
  image.width = w;
  image.channels = channels;  // stb converted to the channel count we asked for
  image.pixels.assign(decoded, decoded + static_cast<size_t>(w) * h * channels);
  stbi_image_free(decoded);
  return image;
}

Image decode_image(const std::string& path, int channels) {
  // We read the bytes ourselves (rather than stbi_load) to tell "cannot open the file"
  // apart from "the file is not a valid image".
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("image '", path, "': cannot read the file (", std::strerror(errno), ")");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) fail("image '", path, "': read error");
  return decode_image_bytes(bytes.data(), bytes.size(), channels, path);
}

}  // namespace fer::data
