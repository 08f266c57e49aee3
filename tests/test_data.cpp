// Dataset loading (folders and fer2013.csv), bad-input handling, subsets, class weights
// and the background BatchLoader.
#include <gtest/gtest.h>
#include <stb_image_write.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "data/batch_loader.h"
#include "data/dataset.h"
#include "data/image.h"
#include "fer/error.h"

using namespace fer;
using namespace fer::data;
namespace fs = std::filesystem;

namespace {

const std::string kSampleFaces = std::string(FER_SOURCE_DIR) + "/data/sample_faces";
const std::string kFer2013 = std::string(FER_SOURCE_DIR) + "/../shared/datasets/fer2013";

// A fresh folder per test, removed afterwards.
struct TempDir {
  fs::path path;
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path = fs::temp_directory_path() /
           ("fer_test_data_" + std::string(info->name()) + "_" + std::to_string(getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::string& bytes) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

// The first (sorted) committed sample JPEG of a class.
std::string sample_jpeg(const std::string& cls) {
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(kSampleFaces + "/train/" + cls))
    files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  return files.at(0);
}

// root/<class>/ok.jpg for every class: a minimal valid folder dataset.
void make_valid_folder(const std::string& root) {
  for (const std::string& cls : fer2013_classes())
    write_bytes(root + "/" + cls + "/ok.jpg", read_bytes(sample_jpeg(cls)));
}

// The error message of `fn`, or "" when it does not throw fer::Error.
template <typename Fn>
std::string error_of(Fn fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_CONTAINS(text, part) EXPECT_NE((text).find(part), std::string::npos) << (text)

// A synthetic dataset whose example i is a 6x6 gray image filled with i (mod 256).
Dataset numbered_dataset(int n) {
  Dataset d;
  d.classes = fer2013_classes();
  for (int i = 0; i < n; ++i) {
    Image im;
    im.height = im.width = 6;
    im.channels = 1;
    im.pixels.assign(36, static_cast<uint8_t>(i % 256));
    // A gradient in one corner so that augmentations actually change the pixels.
    for (int k = 0; k < 6; ++k) im.pixels[k] = static_cast<uint8_t>((i * 7 + k * 40) % 256);
    d.images.push_back(im);
    d.labels.push_back(i % 7);
    d.sources.push_back("synthetic:" + std::to_string(i));
  }
  return d;
}

}  // namespace

// --- classes and decoding ------------------------------------------------------------

TEST(Data, Fer2013ClassesAreInFolderOrder) {
  const std::vector<std::string> expected = {"angry", "disgust", "fear",    "happy",
                                             "neutral", "sad",   "surprise"};
  EXPECT_EQ(fer2013_classes(), expected);
}

TEST(Data, DecodesJpegAsGrayOrReplicatedRgb) {
  const std::string path = sample_jpeg("happy");
  const Image gray = decode_image(path, 1);
  EXPECT_EQ(gray.height, 48);
  EXPECT_EQ(gray.width, 48);
  EXPECT_EQ(gray.channels, 1);
  ASSERT_EQ(gray.pixels.size(), 48u * 48u);
  const Image rgb = decode_image(path, 3);
  ASSERT_EQ(rgb.pixels.size(), 48u * 48u * 3u);
  for (size_t i = 0; i < gray.pixels.size(); ++i)
    for (int c = 0; c < 3; ++c) ASSERT_EQ(rgb.pixels[i * 3 + c], gray.pixels[i]);
  // A real face, not a blank: the pixel values spread.
  const auto [lo, hi] = std::minmax_element(gray.pixels.begin(), gray.pixels.end());
  EXPECT_GT(*hi - *lo, 60);
}

TEST(Data, DecodesPngExactlyAndConvertsRgbToLuma) {
  TempDir dir;
  // 2x3 RGB image with known colors.
  const std::vector<uint8_t> px = {255, 0, 0, 0, 255, 0, 0, 0, 255,
                                   10, 20, 30, 200, 100, 50, 7, 7, 7};
  const std::string path = dir / "colors.png";
  ASSERT_TRUE(stbi_write_png(path.c_str(), 3, 2, 3, px.data(), 3 * 3));
  const Image rgb = decode_image(path, 3);
  EXPECT_EQ(rgb.height, 2);
  EXPECT_EQ(rgb.width, 3);
  EXPECT_EQ(rgb.pixels, px);
  const Image gray = decode_image(path, 1);
  ASSERT_EQ(gray.pixels.size(), 6u);
  for (int i = 0; i < 6; ++i) {
    const double luma = 0.299 * px[i * 3] + 0.587 * px[i * 3 + 1] + 0.114 * px[i * 3 + 2];
    EXPECT_NEAR(gray.pixels[i], luma, 1.5) << "pixel " << i;
  }
}

TEST(Data, DecodeErrorsNameTheFile) {
  TempDir dir;
  EXPECT_CONTAINS(error_of([&] { decode_image(dir / "missing.jpg", 1); }), "missing.jpg");
  write_bytes(dir / "text.jpg", "this is not an image");
  const std::string e = error_of([&] { decode_image(dir / "text.jpg", 1); });
  EXPECT_CONTAINS(e, "text.jpg");
  EXPECT_CONTAINS(e, "cannot decode");
  write_bytes(dir / "empty.png", "");
  EXPECT_CONTAINS(error_of([&] { decode_image(dir / "empty.png", 1); }), "empty.png");
  EXPECT_CONTAINS(error_of([&] { decode_image(sample_jpeg("sad"), 2); }), "channels");
}

// --- the committed sample and the real dataset ----------------------------------------

TEST(Data, LoadsCommittedSampleFaces) {
  LoadOptions options;
  options.expect_height = options.expect_width = 48;
  const Dataset train = load_image_folder(kSampleFaces + "/train", options);
  EXPECT_EQ(train.size(), 420u);
  EXPECT_EQ(train.class_counts(), std::vector<int64_t>(7, 60));
  EXPECT_EQ(train.skipped, 0);
  EXPECT_EQ(train.classes, fer2013_classes());
  // Sorted paths, labels match the folder each file came from.
  EXPECT_TRUE(std::is_sorted(train.sources.begin(), train.sources.end()));
  for (size_t i = 0; i < train.size(); ++i) {
    ASSERT_EQ(train.labels.size(), train.size());
    EXPECT_CONTAINS(train.sources[i], "/" + train.classes[train.labels[i]] + "/");
    EXPECT_EQ(train.images[i].pixels.size(), 48u * 48u);
  }
  const Dataset val = load_dataset(kSampleFaces + "/val", "ignored for folders", options);
  EXPECT_EQ(val.size(), 105u);
  EXPECT_EQ(val.class_counts(), std::vector<int64_t>(7, 15));
}

TEST(Data, LoadsRealValSplitWhenPresent) {
  if (!fs::is_directory(kFer2013 + "/val"))
    GTEST_SKIP() << "FER2013 not found at " << kFer2013 << " (only the committed sample is tested)";
  LoadOptions options;
  options.expect_height = options.expect_width = 48;
  const Dataset val = load_image_folder(kFer2013 + "/val", options);
  EXPECT_EQ(val.size(), 3589u);
  EXPECT_EQ(val.class_counts(), (std::vector<int64_t>{467, 56, 496, 895, 607, 653, 415}));
  EXPECT_EQ(val.skipped, 0);
  // Same order twice (parallel decoding must not change it).
  const Dataset again = load_image_folder(kFer2013 + "/val", options);
  EXPECT_EQ(again.sources, val.sources);
  EXPECT_EQ(again.images[1234].pixels, val.images[1234].pixels);
}

// --- folder bad input ----------------------------------------------------------------

TEST(DataBadInput, EachBadFileIsAnErrorNamingItOrSkippedAndCounted) {
  const std::string good = read_bytes(sample_jpeg("happy"));
  std::string corrupt = good;  // a valid JPEG start, then garbage where the headers are
  for (size_t i = 2; i < 200 && i < corrupt.size(); ++i) corrupt[i] = static_cast<char>(0xAB);
  struct Case {
    std::string file;
    std::string bytes;
  };
  const std::vector<Case> cases = {
      {"corrupt.jpg", corrupt},
      {"truncated.jpg", good.substr(0, good.size() / 2)},
      {"text_pretending.jpg", "hello, I am text"},
      {"notes.txt", "not an image at all"},
      {"empty.png", ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.file);
    TempDir dir;
    make_valid_folder(dir.path.string());
    write_bytes(dir / ("fear/" + c.file), c.bytes);
    const std::string e = error_of([&] { load_image_folder(dir.path.string(), {}); });
    EXPECT_CONTAINS(e, c.file);

    LoadOptions skip;
    skip.skip_bad = true;
    const Dataset d = load_image_folder(dir.path.string(), skip);
    EXPECT_EQ(d.size(), 7u);
    EXPECT_EQ(d.skipped, 1);
    ASSERT_EQ(d.skipped_reasons.size(), 1u);
    EXPECT_CONTAINS(d.skipped_reasons[0], c.file);
    EXPECT_EQ(d.class_counts(), std::vector<int64_t>(7, 1));
  }
}

TEST(DataBadInput, WrongSizeIsAnErrorOnlyWhenASizeIsExpected) {
  TempDir dir;
  make_valid_folder(dir.path.string());
  std::vector<uint8_t> px(50 * 40, 128);
  const std::string big = dir / "sad/big.png";
  ASSERT_TRUE(stbi_write_png(big.c_str(), 40, 50, 1, px.data(), 40));
  EXPECT_EQ(load_image_folder(dir.path.string(), {}).size(), 8u);  // any size by default

  LoadOptions strict;
  strict.expect_height = strict.expect_width = 48;
  const std::string e = error_of([&] { load_image_folder(dir.path.string(), strict); });
  EXPECT_CONTAINS(e, "big.png");
  EXPECT_CONTAINS(e, "48x48");
  EXPECT_CONTAINS(e, "50x40");
  strict.skip_bad = true;
  const Dataset d = load_image_folder(dir.path.string(), strict);
  EXPECT_EQ(d.size(), 7u);
  EXPECT_EQ(d.skipped, 1);
}

TEST(DataBadInput, FolderStructureErrors) {
  {  // empty class folder: an error even with skip_bad
    TempDir dir;
    make_valid_folder(dir.path.string());
    fs::remove(dir / "disgust/ok.jpg");
    write_bytes(dir / "disgust/.DS_Store", "hidden files are ignored");
    LoadOptions skip;
    skip.skip_bad = true;
    for (const LoadOptions& o : {LoadOptions{}, skip}) {
      const std::string e = error_of([&] { load_image_folder(dir.path.string(), o); });
      EXPECT_CONTAINS(e, "class folder 'disgust' is empty");
      EXPECT_CONTAINS(e, dir.path.string());
    }
  }
  {  // missing class folder
    TempDir dir;
    make_valid_folder(dir.path.string());
    fs::remove_all(dir / "neutral");
    EXPECT_CONTAINS(error_of([&] { load_image_folder(dir.path.string(), {}); }),
                    "missing class folder 'neutral'");
  }
  {  // misspelt class folder
    TempDir dir;
    make_valid_folder(dir.path.string());
    write_bytes(dir / "suprise/x.jpg", read_bytes(sample_jpeg("surprise")));
    EXPECT_CONTAINS(error_of([&] { load_image_folder(dir.path.string(), {}); }),
                    "unexpected folder 'suprise'");
  }
  {  // the dataset root instead of a split: the error says which folder to pass
    TempDir dir;
    make_valid_folder(dir / "train");
    const std::string e = error_of([&] { load_image_folder(dir.path.string(), {}); });
    EXPECT_CONTAINS(e, "unexpected folder 'train'");
    EXPECT_CONTAINS(e, "split folder");
  }
  {  // everything bad: skipping leaves nothing, which is still an error
    TempDir dir;
    for (const std::string& cls : fer2013_classes()) write_bytes(dir / (cls + "/bad.jpg"), "x");
    LoadOptions skip;
    skip.skip_bad = true;
    EXPECT_CONTAINS(error_of([&] { load_image_folder(dir.path.string(), skip); }),
                    "no usable images");
  }
  EXPECT_CONTAINS(error_of([] { load_image_folder("/nonexistent/fer", {}); }), "/nonexistent/fer");
  LoadOptions bad_channels;
  bad_channels.channels = 4;
  EXPECT_CONTAINS(error_of([&] { load_image_folder(kSampleFaces + "/val", bad_channels); }),
                  "channels");
}

// --- fer2013.csv ---------------------------------------------------------------------

namespace {
// A row of `n` pixels starting at `first`, counting up.
std::string pixels(int n, int first) {
  std::string s;
  for (int i = 0; i < n; ++i) s += (i ? " " : "") + std::to_string((first + i) % 256);
  return s;
}
}  // namespace

TEST(DataCsv, MapsLabelsToCanonicalOrderAndFiltersUsage) {
  TempDir dir;
  const std::string csv = dir / "fer2013.csv";
  // CSV labels: 0 angry 1 disgust 2 fear 3 happy 4 sad 5 surprise 6 neutral.
  write_bytes(csv,
              "emotion,pixels,Usage\n"
              "0," + pixels(4, 0) + ",Training\n"      // line 2: angry
              "4," + pixels(4, 10) + ",Training\n"     // line 3: sad
              "6," + pixels(4, 20) + ",PublicTest\n"   // line 4: neutral
              "5," + pixels(4, 30) + ",Training\n"     // line 5: surprise
              "\n"                                     // line 6: blank, ignored
              "3," + pixels(4, 40) + ",PrivateTest\n"  // line 7: happy
              "1," + pixels(4, 250) + ",Training\n");  // line 8: disgust
  LoadOptions o;
  o.expect_height = o.expect_width = 2;
  const Dataset train = load_fer2013_csv(csv, "Training", o);
  ASSERT_EQ(train.size(), 4u);
  // angry=0, sad=5, surprise=6, disgust=1 in fer2013_classes() order.
  EXPECT_EQ(train.labels, (std::vector<int>{0, 5, 6, 1}));
  EXPECT_EQ(train.sources[1], csv + ":line 3");
  EXPECT_EQ(train.sources[3], csv + ":line 8");
  EXPECT_EQ(train.images[1].height, 2);
  EXPECT_EQ(train.images[1].width, 2);
  EXPECT_EQ(train.images[1].pixels, (std::vector<uint8_t>{10, 11, 12, 13}));
  EXPECT_EQ(train.images[3].pixels, (std::vector<uint8_t>{250, 251, 252, 253}));
  EXPECT_EQ(train.class_counts(), (std::vector<int64_t>{1, 1, 0, 0, 0, 1, 1}));

  const Dataset val = load_fer2013_csv(csv, "PublicTest", o);
  ASSERT_EQ(val.size(), 1u);
  EXPECT_EQ(val.labels[0], 4);  // neutral
  EXPECT_EQ(load_fer2013_csv(csv, "val", o).labels, val.labels);
  const Dataset test = load_fer2013_csv(csv, "test", o);
  ASSERT_EQ(test.size(), 1u);
  EXPECT_EQ(test.labels[0], 3);  // happy
  EXPECT_EQ(load_fer2013_csv(csv, "", o).size(), 6u);
  EXPECT_EQ(load_dataset(csv, "all", o).size(), 6u);

  o.channels = 3;  // gray replicated
  const Dataset rgb = load_fer2013_csv(csv, "PublicTest", o);
  EXPECT_EQ(rgb.images[0].channels, 3);
  EXPECT_EQ(rgb.images[0].pixels, (std::vector<uint8_t>{20, 20, 20, 21, 21, 21, 22, 22, 22, 23, 23, 23}));

  EXPECT_CONTAINS(error_of([&] { load_fer2013_csv(csv, "Validation", o); }), "unknown usage 'Validation'");
}

TEST(DataCsv, DefaultsTo48x48AndAcceptsReorderedColumnsAndCrlf) {
  TempDir dir;
  const std::string csv = dir / "reordered.csv";
  write_bytes(csv, "Usage,emotion,pixels\r\nTraining,2,\"" + pixels(2304, 3) + "\"\r\n");
  const Dataset d = load_fer2013_csv(csv, "Training", {});
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d.labels[0], 2);  // fear
  EXPECT_EQ(d.images[0].height, 48);
  EXPECT_EQ(d.images[0].width, 48);
  EXPECT_EQ(d.images[0].pixels[0], 3);
  EXPECT_EQ(d.images[0].pixels[2303], (2303 + 3) % 256);

  // No Usage column: fine when every row is wanted, an error when filtering.
  const std::string plain = dir / "train.csv";
  write_bytes(plain, "emotion,pixels\n6," + pixels(2304, 0) + "\n");
  EXPECT_EQ(load_fer2013_csv(plain, "all", {}).labels, std::vector<int>{4});
  EXPECT_CONTAINS(error_of([&] { load_fer2013_csv(plain, "Training", {}); }), "no Usage column");
}

TEST(DataCsv, MalformedRowsAreErrorsNamingFileAndLineOrSkipped) {
  struct Case {
    std::string row;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"3," + pixels(4, 0), "expected 3 columns, got 2"},
      {"3," + pixels(4, 0) + ",Training,extra", "expected 3 columns, got 4"},
      {"3,1 2 x 4,Training", "pixel 3 is 'x'"},
      {"3,1 2 300 4,Training", "pixel 3 is '300'"},
      {"3,1 2 3,Training", "expected 4 pixels, got 3"},
      {"3,1 2 3 4 5,Training", "expected 4 pixels, got 5"},
      {"7," + pixels(4, 0) + ",Training", "emotion label 7 is out of range 0..6"},
      {"-1," + pixels(4, 0) + ",Training", "out of range"},
      {"happy," + pixels(4, 0) + ",Training", "emotion 'happy' is not an integer"},
      {"3," + pixels(4, 0) + ",Trainin", "unknown Usage 'Trainin'"},
  };
  LoadOptions o;
  o.expect_height = o.expect_width = 2;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.row);
    TempDir dir;
    const std::string csv = dir / "bad.csv";
    write_bytes(csv, "emotion,pixels,Usage\n0,1 2 3 4,Training\n" + c.row + "\n5,5 6 7 8,Training\n");
    const std::string e = error_of([&] { load_fer2013_csv(csv, "Training", o); });
    EXPECT_CONTAINS(e, csv + ":line 3: ");
    EXPECT_CONTAINS(e, c.message);

    LoadOptions skip = o;
    skip.skip_bad = true;
    const Dataset d = load_fer2013_csv(csv, "Training", skip);
    EXPECT_EQ(d.size(), 2u);
    EXPECT_EQ(d.skipped, 1);
    ASSERT_EQ(d.skipped_reasons.size(), 1u);
    EXPECT_CONTAINS(d.skipped_reasons[0], "bad.csv:line 3");
    EXPECT_EQ(d.sources[1], csv + ":line 4");
  }
}

TEST(DataCsv, FileLevelErrors) {
  TempDir dir;
  EXPECT_CONTAINS(error_of([&] { load_fer2013_csv(dir / "nope.csv", "all", {}); }), "nope.csv");
  write_bytes(dir / "empty.csv", "\n\n");
  EXPECT_CONTAINS(error_of([&] { load_fer2013_csv(dir / "empty.csv", "all", {}); }), "empty");
  write_bytes(dir / "noheader.csv", "0,1 2 3 4,Training\n");
  EXPECT_CONTAINS(error_of([&] { load_fer2013_csv(dir / "noheader.csv", "all", {}); }),
                  "noheader.csv:line 1: expected a header");
  write_bytes(dir / "onlytest.csv", "emotion,pixels,Usage\n0," + pixels(2304, 0) + ",PrivateTest\n");
  EXPECT_CONTAINS(error_of([&] { load_fer2013_csv(dir / "onlytest.csv", "Training", {}); }),
                  "no usable rows with Usage Training");
  write_bytes(dir / "faces.txt", "whatever");
  EXPECT_CONTAINS(error_of([&] { load_dataset(dir / "faces.txt", "all", {}); }), "faces.txt");
  EXPECT_CONTAINS(error_of([&] { load_dataset(dir / "absent", "all", {}); }), "does not exist");
}

// --- subsets and class weights ---------------------------------------------------------

TEST(Data, SubsetKeepsAtMostPerClassInOriginalOrder) {
  Dataset d = numbered_dataset(100);  // labels i % 7: 15 of classes 0,1; 14 of the rest
  const Dataset s = subset(d, 5, 3);
  EXPECT_EQ(s.class_counts(), std::vector<int64_t>(7, 5));
  EXPECT_TRUE(std::is_sorted(s.sources.begin(), s.sources.end(), [](const std::string& a, const std::string& b) {
    return std::stoi(a.substr(10)) < std::stoi(b.substr(10));
  }));
  EXPECT_EQ(subset(d, 5, 3).sources, s.sources);  // deterministic
  EXPECT_NE(subset(d, 5, 4).sources, s.sources);  // depends on the seed
  EXPECT_EQ(subset(d, 1000, 3).size(), 100u);
  EXPECT_THROW(subset(d, 0, 3), Error);
}

// The folds of --holdout-fold / --cv-teacher: every example in exactly one fold, each
// class spread evenly over the folds, shuffled within the class, and the same on every
// call (no seed: the run that trains a fold's model and the run that asks it must agree).
TEST(Data, CrossValidationFoldsAreStratifiedAndFixed) {
  const Dataset d = numbered_dataset(100);  // labels i % 7: 15 of classes 0,1; 14 of the rest
  const std::vector<int> fold = cross_validation_folds(d, 3);
  ASSERT_EQ(fold.size(), 100u);
  int dealt_in_order = 0;  // examples whose fold is what an unshuffled deal would give
  for (int c = 0; c < 7; ++c) {
    std::vector<int> per_fold(3, 0);
    int rank = 0;
    for (size_t i = 0; i < d.size(); ++i) {
      if (d.labels[i] != c) continue;
      ++per_fold.at(fold[i]);  // .at: a fold outside 0..2 fails here
      dealt_in_order += fold[i] == rank++ % 3;
    }
    EXPECT_LE(*std::max_element(per_fold.begin(), per_fold.end()) -
                  *std::min_element(per_fold.begin(), per_fold.end()), 1) << "class " << c;
  }
  EXPECT_LT(dealt_in_order, 60) << "the folds follow the file order";
  EXPECT_EQ(cross_validation_folds(d, 3), fold);

  // select() keeps the marked examples in order: here all but fold 0.
  std::vector<char> keep(d.size());
  for (size_t i = 0; i < d.size(); ++i) keep[i] = fold[i] != 0;
  const Dataset rest = select(d, keep);
  EXPECT_EQ(rest.size(), static_cast<size_t>(std::count(keep.begin(), keep.end(), 1)));
  EXPECT_GE(rest.size(), 64u);
  EXPECT_LE(rest.size(), 68u);
  for (size_t j = 0, i = 0; j < rest.size(); ++j, ++i) {
    while (!keep[i]) ++i;
    EXPECT_EQ(rest.sources[j], d.sources[i]);
    EXPECT_EQ(rest.labels[j], d.labels[i]);
  }
  EXPECT_THROW(cross_validation_folds(d, 1), Error);
  EXPECT_THROW(select(d, std::vector<char>(3, 1)), Error);
}

TEST(Data, BalancedClassWeights) {
  const std::vector<float> w = balanced_class_weights({10, 30, 0, 60});
  ASSERT_EQ(w.size(), 4u);
  // n = 100 samples, K = 3 classes present: w_k = 100 / (3 * count_k).
  EXPECT_NEAR(w[0], 100.0 / 30, 1e-5);
  EXPECT_NEAR(w[1], 100.0 / 90, 1e-5);
  EXPECT_EQ(w[2], 0.f);
  EXPECT_NEAR(w[3], 100.0 / 180, 1e-5);
  // FER2013 train counts: the rare disgust class weighs about 9.4, happy about 0.57.
  const std::vector<float> fer =
      balanced_class_weights({3995, 436, 4097, 7215, 4965, 4830, 3171});
  EXPECT_NEAR(fer[0], 28709.0 / (7 * 3995), 1e-5);
  EXPECT_NEAR(fer[1], 9.4067, 1e-3);
  EXPECT_NEAR(fer[3], 0.56844, 1e-4);
  EXPECT_EQ(balanced_class_weights({5, 5}), (std::vector<float>{1.f, 1.f}));
}

// --- BatchLoader -----------------------------------------------------------------------

namespace {
// Every batch of one epoch.
std::vector<Batch> run_epoch(BatchLoader& loader, int epoch) {
  loader.start_epoch(epoch);
  std::vector<Batch> batches;
  Batch b;
  while (loader.next(b)) batches.push_back(b);
  return batches;
}
std::vector<float> all_values(const std::vector<Batch>& batches) {
  std::vector<float> v;
  for (const Batch& b : batches) {
    const std::vector<float> x = b.images.to_vector();
    v.insert(v.end(), x.begin(), x.end());
  }
  return v;
}
Preprocess small_preprocess() {
  Preprocess p;
  p.height = p.width = 6;
  return p;
}
}  // namespace

TEST(DataLoader, CoversEveryExampleOncePerEpochInBatchesOfTheRightShape) {
  const Dataset d = numbered_dataset(50);
  BatchLoader loader(d, small_preprocess(), Augment{}, 7, /*shuffle=*/true, /*seed=*/11, /*workers=*/2);
  EXPECT_EQ(loader.batches_per_epoch(), 8);
  for (int epoch = 0; epoch < 3; ++epoch) {
    const std::vector<Batch> batches = run_epoch(loader, epoch);
    ASSERT_EQ(batches.size(), 8u);
    std::multiset<int64_t> seen;
    for (size_t b = 0; b < batches.size(); ++b) {
      const int64_t n = b + 1 < batches.size() ? 7 : 1;  // 50 = 7 * 7 + 1
      EXPECT_EQ(batches[b].images.shape(), (Shape{n, 6, 6, 1}));
      ASSERT_EQ(batches[b].labels.size(), static_cast<size_t>(n));
      for (int64_t k = 0; k < n; ++k) {
        const int64_t index = batches[b].indices[k];
        seen.insert(index);
        EXPECT_EQ(batches[b].labels[k], index % 7);
        // The pixels are the example's: pixel 6 holds the index (unit scale: /255).
        EXPECT_FLOAT_EQ(batches[b].images.data()[k * 36 + 6], index / 255.f);
      }
    }
    ASSERT_EQ(seen.size(), 50u);
    for (int64_t i = 0; i < 50; ++i) EXPECT_EQ(seen.count(i), 1u) << "example " << i;
  }
}

TEST(DataLoader, ShuffleDependsOnSeedAndEpochOnly) {
  const Dataset d = numbered_dataset(40);
  BatchLoader a(d, small_preprocess(), Augment{}, 8, true, 5, 2);
  BatchLoader b(d, small_preprocess(), Augment{}, 8, true, 5, 1);
  a.start_epoch(0);
  const std::vector<int64_t> order0 = a.epoch_order();
  a.start_epoch(1);
  const std::vector<int64_t> order1 = a.epoch_order();
  EXPECT_NE(order0, order1);
  b.start_epoch(1);
  EXPECT_EQ(b.epoch_order(), order1);  // a resumed run sees the same order
  BatchLoader c(d, small_preprocess(), Augment{}, 8, true, 6, 1);
  c.start_epoch(1);
  EXPECT_NE(c.epoch_order(), order1);
  BatchLoader plain(d, small_preprocess(), Augment{}, 8, /*shuffle=*/false, 5, 1);
  plain.start_epoch(3);
  for (int64_t i = 0; i < 40; ++i) EXPECT_EQ(plain.epoch_order()[i], i);
}

TEST(DataLoader, AugmentedBatchesDependOnSeedNotOnThreads) {
  const Dataset d = numbered_dataset(30);
  Augment aug;
  aug.horizontal_flip = true;
  aug.rotation_range = 20;
  aug.width_shift = aug.height_shift = 0.1f;
  aug.zoom_range = 0.1f;
  BatchLoader sync(d, small_preprocess(), aug, 4, true, 9, /*workers=*/0);
  BatchLoader two(d, small_preprocess(), aug, 4, true, 9, /*workers=*/2);
  BatchLoader three(d, small_preprocess(), aug, 4, true, 9, /*workers=*/3);
  const std::vector<float> v0 = all_values(run_epoch(sync, 2));
  EXPECT_EQ(all_values(run_epoch(two, 2)), v0);
  EXPECT_EQ(all_values(run_epoch(three, 2)), v0);
  EXPECT_NE(all_values(run_epoch(two, 3)), v0);  // next epoch: new order and new draws
  BatchLoader other_seed(d, small_preprocess(), aug, 4, true, 10, 2);
  EXPECT_NE(all_values(run_epoch(other_seed, 2)), v0);
}

TEST(DataLoader, DropLast) {
  const Dataset d = numbered_dataset(50);
  BatchLoader loader(d, small_preprocess(), Augment{}, 7, false, 1, 1, /*drop_last=*/true);
  EXPECT_EQ(loader.batches_per_epoch(), 7);
  const std::vector<Batch> batches = run_epoch(loader, 0);
  ASSERT_EQ(batches.size(), 7u);
  for (const Batch& b : batches) EXPECT_EQ(b.images.dim(0), 7);
  EXPECT_THROW(BatchLoader(d, small_preprocess(), Augment{}, 64, false, 1, 1, true), Error);
}

// A hang here would show as the test never finishing (ctest's timeout), not as a failure.
TEST(DataLoader, StopsCleanlyMidEpochAndRestarts) {
  const Dataset d = numbered_dataset(200);
  for (int workers : {0, 1, 4}) {
    BatchLoader loader(d, small_preprocess(), Augment{}, 3, true, 2, workers);
    loader.start_epoch(0);
    Batch b;
    ASSERT_TRUE(loader.next(b));
    // Restart mid-epoch: the pending batches are discarded, the new epoch is whole.
    const std::vector<Batch> full = run_epoch(loader, 1);
    EXPECT_EQ(full.size(), 67u);
    loader.start_epoch(2);
    ASSERT_TRUE(loader.next(b));
    // ~BatchLoader runs here with workers waiting on a full window.
  }
  {
    BatchLoader never_started(d, small_preprocess(), Augment{}, 3, true, 2, 2);
    Batch b;
    EXPECT_CONTAINS(error_of([&] { never_started.next(b); }), "start_epoch");
  }
}

TEST(DataLoader, ErrorsWhileBuildingReachTheConsumerWithTheExampleSource) {
  const Dataset d = numbered_dataset(10);  // 6x6 images
  Augment aug;
  aug.random_crop = 8;  // larger than the images
  BatchLoader loader(d, small_preprocess(), aug, 4, false, 1, 2);
  loader.start_epoch(0);
  Batch b;
  const std::string e = error_of([&] { loader.next(b); });
  EXPECT_CONTAINS(e, "synthetic:0");
  EXPECT_CONTAINS(e, "random_crop 8");
}
