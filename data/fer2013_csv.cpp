// Loading Kaggle's fer2013.csv:
//
//   emotion,pixels,Usage
//   0,70 80 82 72 58 58 60 63 54 58 60 48 89 115 121 ...,Training
//
// The file is read whole (about 290 MB for the full dataset), split into lines, and the
// rows are parsed in parallel, each into its own slot; the slots are then walked in file
// order to keep, throw on or skip (skip_bad) each row, as the folder loader does.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <exception>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "data/dataset.h"
#include "fer/error.h"

namespace fer::data {

namespace {

// The CSV's emotion numbers, in fer2013_classes() (alphabetical) order:
//   CSV:       0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral
//   canonical: 0 angry, 1 disgust, 2 fear, 3 happy, 4 neutral, 5 sad, 6 surprise
constexpr int kCsvLabelToClass[7] = {0, 1, 2, 3, 5, 6, 4};

const char* const kUsages[3] = {"Training", "PublicTest", "PrivateTest"};

// Strips blanks, a trailing '\r' (Windows line ends) and surrounding double quotes.
std::string_view trim(std::string_view s) {
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && blank(s.back())) s.remove_suffix(1);
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  return s;
}

std::vector<std::string_view> split_commas(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t start = 0;
  while (true) {
    const size_t comma = line.find(',', start);
    fields.push_back(trim(line.substr(start, comma == std::string_view::npos ? comma : comma - start)));
    if (comma == std::string_view::npos) return fields;
    start = comma + 1;
  }
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// A short, printable excerpt of user text for error messages.
std::string excerpt(std::string_view s) {
  return s.size() <= 40 ? std::string(s) : std::string(s.substr(0, 40)) + "...";
}

// The usage argument as it appears in the file's Usage column; "" keeps every row.
std::string usage_filter(const std::string& usage) {
  const std::string u = lower(usage);
  if (u.empty() || u == "all") return "";
  if (u == "training" || u == "train") return "Training";
  if (u == "publictest" || u == "val") return "PublicTest";
  if (u == "privatetest" || u == "test") return "PrivateTest";
  fail("fer2013 CSV: unknown usage '", usage,
       "' (expected Training, PublicTest, PrivateTest, their short names train, val, test, "
       "or 'all')");
}

struct Columns {
  int count = 0;
  int emotion = -1, pixels = -1, usage = -1;
};

struct Row {
  int line = 0;             // 1-based line number in the file
  bool selected = false;    // passes the usage filter and parsed cleanly
  int label = 0;            // canonical class index
  std::vector<uint8_t> pixels;
  std::string error;        // non-empty: this row is malformed, and why
};

// Parses one data row into `row`; throws fer::Error (without the file:line prefix, which
// the caller adds) when the row is malformed.
void parse_row(std::string_view line, const Columns& columns, const std::string& filter,
               int expect_pixels, Row& row) {
  const std::vector<std::string_view> fields = split_commas(line);
  if (static_cast<int>(fields.size()) != columns.count)
    fail("expected ", columns.count, " columns, got ", fields.size());

  // Usage is checked on every row, selected or not: a misspelt split name is a broken
  // file, and it would otherwise silently move a row out of its split.
  if (columns.usage >= 0) {
    const std::string_view usage = fields[columns.usage];
    if (std::find(std::begin(kUsages), std::end(kUsages), usage) == std::end(kUsages))
      fail("unknown Usage '", excerpt(usage), "' (expected Training, PublicTest or PrivateTest)");
    if (!filter.empty() && usage != filter) return;  // not in the requested split
  }

  const std::string_view emotion = fields[columns.emotion];
  int csv_label = -1;
  const auto [end, ec] = std::from_chars(emotion.data(), emotion.data() + emotion.size(), csv_label);
  if (ec != std::errc() || end != emotion.data() + emotion.size() || emotion.empty())
    fail("emotion '", excerpt(emotion), "' is not an integer");
  if (csv_label < 0 || csv_label > 6) fail("emotion label ", csv_label, " is out of range 0..6");
  row.label = kCsvLabelToClass[csv_label];

  // Pixels: whitespace-separated integers in 0..255, exactly expect_pixels of them.
  const std::string_view text = fields[columns.pixels];
  row.pixels.reserve(expect_pixels);
  int64_t count = 0;
  size_t i = 0;
  while (true) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
    if (i == text.size()) break;
    size_t j = i;
    while (j < text.size() && text[j] != ' ' && text[j] != '\t') ++j;
    const std::string_view token = text.substr(i, j - i);
    int value = -1;
    const auto [p, err] = std::from_chars(token.data(), token.data() + token.size(), value);
    if (err != std::errc() || p != token.data() + token.size() || value < 0 || value > 255)
      fail("pixel ", count + 1, " is '", excerpt(token), "', expected an integer in 0..255");
    if (count < expect_pixels) row.pixels.push_back(static_cast<uint8_t>(value));
    ++count;
    i = j;
  }
  if (count != expect_pixels) fail("expected ", expect_pixels, " pixels, got ", count);
  row.selected = true;
}

}  // namespace

Dataset load_fer2013_csv(const std::string& csv_path, const std::string& usage,
                         const LoadOptions& options) {
  options.check();
  const std::string filter = usage_filter(usage);
  const int height = options.expect_height ? options.expect_height : 48;
  const int width = options.expect_width ? options.expect_width : 48;

  std::ifstream in(csv_path, std::ios::binary);
  if (!in) fail("fer2013 CSV '", csv_path, "': cannot open the file");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) fail("fer2013 CSV '", csv_path, "': read error");

  // Split into lines, remembering each one's number; blank lines are skipped.
  std::vector<std::pair<int, std::string_view>> lines;
  {
    const std::string_view all(text);
    size_t start = 0;
    int number = 0;
    while (start < all.size()) {
      size_t stop = all.find('\n', start);
      if (stop == std::string_view::npos) stop = all.size();
      ++number;
      const std::string_view line = all.substr(start, stop - start);
      if (!trim(line).empty()) lines.emplace_back(number, line);
      start = stop + 1;
    }
  }
  if (lines.empty()) fail("fer2013 CSV '", csv_path, "': the file is empty");

  // The header names the columns; find ours by name so their order does not matter.
  Columns columns;
  {
    const auto [number, header] = lines.front();
    const std::vector<std::string_view> names = split_commas(header);
    columns.count = static_cast<int>(names.size());
    for (int c = 0; c < columns.count; ++c) {
      const std::string name = lower(names[c]);
      if (name == "emotion") columns.emotion = c;
      if (name == "pixels") columns.pixels = c;
      if (name == "usage") columns.usage = c;
    }
    if (columns.emotion < 0 || columns.pixels < 0)
      fail(csv_path, ":line ", number, ": expected a header with columns emotion,pixels,Usage; got '",
           excerpt(header), "'");
    if (columns.usage < 0 && !filter.empty())
      fail(csv_path, ":line ", number, ": no Usage column, so rows cannot be filtered by usage '",
           usage, "' (pass 'all')");
  }

  // Rows in parallel; each slot records its own error.
  const int64_t n = static_cast<int64_t>(lines.size()) - 1;
  std::vector<Row> rows(n);
#pragma omp parallel for schedule(dynamic, 64)
  for (int64_t r = 0; r < n; ++r) {
    rows[r].line = lines[r + 1].first;
    try {
      parse_row(lines[r + 1].second, columns, filter, height * width, rows[r]);
    } catch (const std::exception& e) {
      rows[r].selected = false;
      rows[r].pixels.clear();
      rows[r].error = csv_path + ":line " + std::to_string(rows[r].line) + ": " + e.what();
    }
  }

  Dataset dataset;
  dataset.classes = fer2013_classes();
  for (Row& row : rows) {
    if (!row.error.empty()) {
      if (!options.skip_bad) throw Error(row.error);
      ++dataset.skipped;
      dataset.skipped_reasons.push_back(std::move(row.error));
      continue;
    }
    if (!row.selected) continue;
    Image image;
    image.height = height;
    image.width = width;
    image.channels = options.channels;
    if (options.channels == 1) {
      image.pixels = std::move(row.pixels);
    } else {  // gray replicated to RGB
      image.pixels.resize(row.pixels.size() * 3);
      for (size_t i = 0; i < row.pixels.size(); ++i)
        for (int c = 0; c < 3; ++c) image.pixels[i * 3 + c] = row.pixels[i];
    }
    dataset.images.push_back(std::move(image));
    dataset.labels.push_back(row.label);
    dataset.sources.push_back(csv_path + ":line " + std::to_string(row.line));
  }
  if (dataset.images.empty())
    fail("fer2013 CSV '", csv_path, "': no usable rows",
         filter.empty() ? std::string() : " with Usage " + filter, " (", dataset.skipped,
         " bad rows skipped", dataset.skipped ? "; first: " + dataset.skipped_reasons.front() : "",
         ")");
  return dataset;
}

}  // namespace fer::data
