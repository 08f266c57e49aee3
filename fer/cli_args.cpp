#include "fer/cli_args.h"

#include <algorithm>
#include <cstdlib>

#include "fer/error.h"

namespace fer {

namespace {
// Levenshtein distance, for "did you mean" suggestions.
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}
}  // namespace

Args::Args(const std::string& command, const std::vector<FlagSpec>& specs, int argc, char** argv)
    : command_(command), specs_(specs) {
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      help_ = true;
      continue;
    }
    if (arg.size() < 3 || arg.compare(0, 2, "--") != 0) {
      positional_.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2), value;
    bool inline_value = false;
    const size_t eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_value = true;
    }
    const FlagSpec* spec = find(name);
    if (!spec) {
      std::string best;
      size_t best_d = 3;
      for (const auto& s : specs_) {
        const size_t d = edit_distance(name, s.name);
        if (d < best_d) { best_d = d; best = s.name; }
      }
      fail("fer ", command_, ": unknown flag --", name,
           best.empty() ? std::string(" (see fer " + command_ + " --help)")
                        : std::string(" (did you mean --" + best + "?)"));
    }
    if (spec->value.empty()) {
      FER_CHECK(!inline_value, "fer ", command_, ": --", name, " takes no value");
      values_.emplace(name, "1");
      continue;
    }
    if (!inline_value) {
      FER_CHECK(i + 1 < argc, "fer ", command_, ": --", name, " needs a value (", spec->value, ")");
      value = argv[++i];
    }
    values_.emplace(name, value);
  }
}

const FlagSpec* Args::find(const std::string& name) const {
  for (const auto& s : specs_)
    if (s.name == name) return &s;
  return nullptr;
}

bool Args::has(const std::string& name) const { return values_.count(name) > 0; }

std::string Args::str(const std::string& name, const std::string& fallback) const {
  auto range = values_.equal_range(name);
  if (range.first == range.second) return fallback;
  return std::prev(range.second)->second;  // the last occurrence wins
}

std::vector<std::string> Args::all(const std::string& name) const {
  std::vector<std::string> out;
  auto range = values_.equal_range(name);
  for (auto it = range.first; it != range.second; ++it) out.push_back(it->second);
  return out;
}

int Args::integer(const std::string& name, int fallback) const {
  if (!has(name)) return fallback;
  const std::string v = str(name);
  char* end = nullptr;
  const long x = std::strtol(v.c_str(), &end, 10);
  FER_CHECK(!v.empty() && *end == '\0', "fer ", command_, ": --", name,
            " expects an integer, got '", v, "'");
  return static_cast<int>(x);
}

double Args::number(const std::string& name, double fallback) const {
  if (!has(name)) return fallback;
  const std::string v = str(name);
  char* end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  FER_CHECK(!v.empty() && *end == '\0', "fer ", command_, ": --", name,
            " expects a number, got '", v, "'");
  return x;
}

std::string Args::usage() const {
  std::string out;
  for (const auto& s : specs_) {
    std::string left = "  --" + s.name + (s.value.empty() ? "" : " " + s.value);
    if (left.size() < 28) left.resize(28, ' ');
    else left += "  ";
    out += left + s.help + "\n";
  }
  return out;
}

}  // namespace fer
