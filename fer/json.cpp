#include "fer/json.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "fer/error.h"
#include "fer/utf8.h"

namespace fer {

namespace {
const char* type_name(Json::Type t) {
  switch (t) {
    case Json::Type::Null: return "null";
    case Json::Type::Bool: return "a boolean";
    case Json::Type::Number: return "a number";
    case Json::Type::String: return "a string";
    case Json::Type::Array: return "an array";
    case Json::Type::Object: return "an object";
  }
  return "?";
}
}  // namespace

#define FER_JSON_EXPECT(t) \
  FER_CHECK(type_ == (t), "JSON: expected ", type_name(t), ", got ", type_name(type_))

bool Json::as_bool() const { FER_JSON_EXPECT(Type::Bool); return bool_; }
double Json::as_number() const { FER_JSON_EXPECT(Type::Number); return number_; }
int64_t Json::as_int() const {
  FER_JSON_EXPECT(Type::Number);
  FER_CHECK(std::floor(number_) == number_, "JSON: expected an integer, got ", number_);
  return static_cast<int64_t>(number_);
}
const std::string& Json::as_string() const { FER_JSON_EXPECT(Type::String); return string_; }
const Json::Array& Json::as_array() const { FER_JSON_EXPECT(Type::Array); return array_; }
const Json::Object& Json::as_object() const { FER_JSON_EXPECT(Type::Object); return object_; }

Json& Json::operator[](const std::string& key) {
  if (type_ == Type::Null) type_ = Type::Object;
  FER_JSON_EXPECT(Type::Object);
  for (auto& kv : object_)
    if (kv.first == key) return kv.second;
  object_.emplace_back(key, Json());
  return object_.back().second;
}

const Json& Json::at(const std::string& key) const {
  FER_JSON_EXPECT(Type::Object);
  for (const auto& kv : object_)
    if (kv.first == key) return kv.second;
  fail("JSON: missing key '", key, "'");
}

bool Json::contains(const std::string& key) const {
  if (type_ != Type::Object) return false;
  for (const auto& kv : object_)
    if (kv.first == key) return true;
  return false;
}

double Json::get(const std::string& key, double fallback) const {
  return contains(key) ? at(key).as_number() : fallback;
}
int64_t Json::get(const std::string& key, int64_t fallback) const {
  return contains(key) ? at(key).as_int() : fallback;
}
int Json::get(const std::string& key, int fallback) const {
  return contains(key) ? static_cast<int>(at(key).as_int()) : fallback;
}
bool Json::get(const std::string& key, bool fallback) const {
  return contains(key) ? at(key).as_bool() : fallback;
}
std::string Json::get(const std::string& key, const char* fallback) const {
  return contains(key) ? at(key).as_string() : std::string(fallback);
}

void Json::push_back(Json value) {
  if (type_ == Type::Null) type_ = Type::Array;
  FER_JSON_EXPECT(Type::Array);
  array_.push_back(std::move(value));
}

const Json& Json::operator[](size_t index) const {
  FER_JSON_EXPECT(Type::Array);
  FER_CHECK(index < array_.size(), "JSON: index ", index, " out of range (size ",
            array_.size(), ")");
  return array_[index];
}

size_t Json::size() const {
  if (type_ == Type::Array) return array_.size();
  if (type_ == Type::Object) return object_.size();
  return 0;
}

// ---- writing --------------------------------------------------------------------------

namespace {
void dump_string(std::string& out, const std::string& s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

void newline(std::string& out, int indent, int depth) {
  if (indent < 0) return;
  out += '\n';
  out.append(static_cast<size_t>(indent * depth), ' ');
}
}  // namespace

void Json::dump_to(std::string& out, int indent, int depth) const {
  switch (type_) {
    case Type::Null: out += "null"; break;
    case Type::Bool: out += bool_ ? "true" : "false"; break;
    case Type::Number: {
      if (!std::isfinite(number_)) { out += "null"; break; }  // JSON has no NaN/Inf
      char buf[32];
      if (std::floor(number_) == number_ && std::fabs(number_) < 1e15)
        std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(number_));
      else
        std::snprintf(buf, sizeof buf, "%.9g", number_);
      out += buf;
      break;
    }
    case Type::String: dump_string(out, string_); break;
    case Type::Array:
      out += '[';
      for (size_t i = 0; i < array_.size(); ++i) {
        if (i) out += indent < 0 ? "," : ",";
        newline(out, indent, depth + 1);
        array_[i].dump_to(out, indent, depth + 1);
      }
      if (!array_.empty()) newline(out, indent, depth);
      out += ']';
      break;
    case Type::Object:
      out += '{';
      for (size_t i = 0; i < object_.size(); ++i) {
        if (i) out += ",";
        newline(out, indent, depth + 1);
        dump_string(out, object_[i].first);
        out += indent < 0 ? ":" : ": ";
        object_[i].second.dump_to(out, indent, depth + 1);
      }
      if (!object_.empty()) newline(out, indent, depth);
      out += '}';
      break;
  }
}

std::string Json::dump(int indent) const {
  std::string out;
  dump_to(out, indent, 0);
  return out;
}

// ---- parsing --------------------------------------------------------------------------

namespace {
class Parser {
 public:
  explicit Parser(const std::string& text) : s_(text) {}

  Json parse_document() {
    Json v = parse_value(0);
    skip_ws();
    if (pos_ != s_.size()) error("unexpected text after the value");
    return v;
  }

 private:
  [[noreturn]] void error(const std::string& what) const {
    int line = 1, col = 1;
    for (size_t i = 0; i < pos_ && i < s_.size(); ++i) {
      if (s_[i] == '\n') { ++line; col = 1; } else { ++col; }
    }
    fail("JSON parse error at line ", line, ", column ", col, ": ", what);
  }

  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\t' ||
                                s_[pos_] == '\r'))
      ++pos_;
  }

  bool consume(const char* word) {
    size_t n = 0;
    while (word[n]) ++n;
    if (s_.compare(pos_, n, word) == 0) { pos_ += n; return true; }
    return false;
  }

  Json parse_value(int depth) {
    if (depth > 256) error("nesting too deep");
    skip_ws();
    if (pos_ >= s_.size()) error("unexpected end of text");
    const char c = s_[pos_];
    if (c == '{') return parse_object(depth);
    if (c == '[') return parse_array(depth);
    if (c == '"') return Json(parse_string());
    if (consume("true")) return Json(true);
    if (consume("false")) return Json(false);
    if (consume("null")) return Json();
    if (c == '-' || (c >= '0' && c <= '9')) return parse_number();
    error(std::string("unexpected character '") + c + "'");
  }

  Json parse_number() {
    const char* begin = s_.c_str() + pos_;
    char* end = nullptr;
    const double v = std::strtod(begin, &end);
    if (end == begin) error("bad number");
    pos_ += static_cast<size_t>(end - begin);
    return Json(v);
  }

  unsigned parse_hex4() {
    if (pos_ + 4 > s_.size()) error("bad \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; ++i) {
      const char h = s_[pos_++];
      v <<= 4;
      if (h >= '0' && h <= '9') v |= static_cast<unsigned>(h - '0');
      else if (h >= 'a' && h <= 'f') v |= static_cast<unsigned>(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F') v |= static_cast<unsigned>(h - 'A' + 10);
      else error("bad \\u escape");
    }
    return v;
  }

  std::string parse_string() {
    ++pos_;  // opening quote
    std::string out;
    while (true) {
      if (pos_ >= s_.size()) error("unterminated string");
      const char c = s_[pos_++];
      if (c == '"') break;
      if (c != '\\') { out += c; continue; }
      if (pos_ >= s_.size()) error("unterminated string");
      const char e = s_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = parse_hex4();
          if (cp >= 0xD800 && cp < 0xDC00 && consume("\\u")) {
            const unsigned lo = parse_hex4();
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          append_utf8(out, cp);
          break;
        }
        default: error("bad escape in string");
      }
    }
    return out;
  }

  Json parse_array(int depth) {
    ++pos_;
    Json arr = Json::array();
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == ']') { ++pos_; return arr; }
    while (true) {
      arr.push_back(parse_value(depth + 1));
      skip_ws();
      if (pos_ < s_.size() && s_[pos_] == ',') { ++pos_; continue; }
      if (pos_ < s_.size() && s_[pos_] == ']') { ++pos_; return arr; }
      error("expected ',' or ']' in array");
    }
  }

  Json parse_object(int depth) {
    ++pos_;
    Json obj = Json::object();
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == '}') { ++pos_; return obj; }
    while (true) {
      skip_ws();
      if (pos_ >= s_.size() || s_[pos_] != '"') error("expected a string key in object");
      std::string key = parse_string();
      skip_ws();
      if (pos_ >= s_.size() || s_[pos_] != ':') error("expected ':' after object key");
      ++pos_;
      obj[key] = parse_value(depth + 1);
      skip_ws();
      if (pos_ < s_.size() && s_[pos_] == ',') { ++pos_; continue; }
      if (pos_ < s_.size() && s_[pos_] == '}') { ++pos_; return obj; }
      error("expected ',' or '}' in object");
    }
  }

  const std::string& s_;
  size_t pos_ = 0;
};
}  // namespace

Json Json::parse(const std::string& text) { return Parser(text).parse_document(); }

}  // namespace fer
