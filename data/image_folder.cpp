// Loading the folder layout root/<class>/<image files>.
//
// Three steps: (1) check the folder structure and list the files, sorted, so the order is
// the same on every machine; (2) decode every file in parallel, each thread writing its
// own slot, errors caught per file; (3) walk the slots in order, keeping good images and
// either throwing on the first bad one or skipping and counting it (skip_bad). Doing (3)
// sequentially makes the first error reported the same whatever the thread timing.
#include <algorithm>
#include <cctype>
#include <exception>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "data/dataset.h"
#include "fer/error.h"

namespace fer::data {

namespace fs = std::filesystem;

namespace {

bool is_hidden(const fs::path& p) {
  const std::string name = p.filename().string();
  return !name.empty() && name[0] == '.';
}

bool has_image_extension(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp";
}

std::string class_list() {
  std::string out;
  for (const std::string& c : fer2013_classes()) out += (out.empty() ? "" : ", ") + c;
  return out;
}

// Directory entries, without hidden ones, as sorted path strings. Turns the file
// system's exceptions into our errors.
std::vector<fs::path> list_entries(const fs::path& dir) {
  std::vector<fs::path> entries;
  std::error_code ec;
  fs::directory_iterator it(dir, ec), end;
  for (; !ec && it != end; it.increment(ec))
    if (!is_hidden(it->path())) entries.push_back(it->path());
  if (ec) fail("cannot list folder '", dir.string(), "': ", ec.message());
  std::sort(entries.begin(), entries.end());
  return entries;
}

struct Item {
  std::string path;
  int label = 0;
  Image image;
  std::string error;  // non-empty: this item is bad, and why
};

std::string size_text(int height, int width) {
  return (height ? std::to_string(height) : std::string("any")) + "x" +
         (width ? std::to_string(width) : std::string("any"));
}

}  // namespace

Dataset load_image_folder(const std::string& root, const LoadOptions& options) {
  options.check();
  std::error_code ec;
  if (!fs::is_directory(root, ec))
    fail("image folder '", root, "' does not exist or is not a folder");
  const std::vector<std::string>& classes = fer2013_classes();

  // (1) Structure. Every sub-folder must be a class: a misspelt class folder would
  // otherwise vanish from training without a word.
  for (const fs::path& entry : list_entries(root)) {
    if (!fs::is_directory(entry, ec)) continue;  // README.md and the like
    const std::string name = entry.filename().string();
    if (std::find(classes.begin(), classes.end(), name) != classes.end()) continue;
    const bool looks_like_split = fs::is_directory(entry / classes[0], ec);
    fail("image folder '", root, "': unexpected folder '", name,
         "' (expected only the FER2013 class folders: ", class_list(), ")",
         looks_like_split ? "; '" + entry.string() + "' looks like a split folder, pass that instead"
                          : std::string());
  }
  std::vector<Item> items;
  for (size_t label = 0; label < classes.size(); ++label) {
    const fs::path dir = fs::path(root) / classes[label];
    if (!fs::is_directory(dir, ec))
      fail("image folder '", root, "': missing class folder '", classes[label],
           "' (expected all of: ", class_list(), ")");
    const std::vector<fs::path> files = list_entries(dir);
    // A class without examples cannot be learned or evaluated; that is a broken dataset,
    // not a bad file, so it is an error even with skip_bad.
    if (files.empty()) fail("class folder '", classes[label], "' is empty: ", dir.string());
    for (const fs::path& file : files) {
      Item item;
      item.path = file.string();
      item.label = static_cast<int>(label);
      if (!fs::is_regular_file(file, ec) || !has_image_extension(file))
        item.error = "'" + item.path + "': not an image file (expected .jpg, .jpeg, .png or .bmp)";
      items.push_back(std::move(item));
    }
  }

  // (2) Decode in parallel. Exceptions must not escape an OpenMP region, so each one is
  // caught and stored with its item.
  const int64_t n = static_cast<int64_t>(items.size());
#pragma omp parallel for schedule(dynamic, 32)
  for (int64_t i = 0; i < n; ++i) {
    Item& item = items[i];
    if (!item.error.empty()) continue;
    try {
      item.image = decode_image(item.path, options.channels);
      const bool height_ok = !options.expect_height || item.image.height == options.expect_height;
      const bool width_ok = !options.expect_width || item.image.width == options.expect_width;
      if (!height_ok || !width_ok) {
        item.error = "image '" + item.path + "': expected " +
                     size_text(options.expect_height, options.expect_width) + " pixels, got " +
                     size_text(item.image.height, item.image.width);
        item.image = Image();
      }
    } catch (const std::exception& e) {
      item.error = e.what();
    }
  }

  // (3) Keep, throw or skip, in order.
  Dataset dataset;
  dataset.classes = classes;
  for (Item& item : items) {
    if (!item.error.empty()) {
      if (!options.skip_bad) throw Error(item.error);
      ++dataset.skipped;
      dataset.skipped_reasons.push_back(std::move(item.error));
      continue;
    }
    dataset.images.push_back(std::move(item.image));
    dataset.labels.push_back(item.label);
    dataset.sources.push_back(std::move(item.path));
  }
  if (dataset.images.empty())
    fail("image folder '", root, "': no usable images (", dataset.skipped,
         " bad files skipped; first: ", dataset.skipped_reasons.front(), ")");
  return dataset;
}

}  // namespace fer::data
