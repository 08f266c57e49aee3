// A minimal JSON value: enough to describe architectures inside model files, print
// `--json` results and read small configuration files. Objects keep insertion order so
// what fer writes reads naturally.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace fer {

class Json {
 public:
  enum class Type { Null, Bool, Number, String, Array, Object };
  using Array = std::vector<Json>;
  using Object = std::vector<std::pair<std::string, Json>>;

  Json() = default;
  Json(std::nullptr_t) {}
  Json(bool b) : type_(Type::Bool), bool_(b) {}
  Json(int v) : type_(Type::Number), number_(v) {}
  Json(int64_t v) : type_(Type::Number), number_(static_cast<double>(v)) {}
  Json(size_t v) : type_(Type::Number), number_(static_cast<double>(v)) {}
  Json(double v) : type_(Type::Number), number_(v) {}
  Json(float v) : type_(Type::Number), number_(v) {}
  Json(const char* s) : type_(Type::String), string_(s) {}
  Json(std::string s) : type_(Type::String), string_(std::move(s)) {}
  Json(Array a) : type_(Type::Array), array_(std::move(a)) {}

  static Json object() { Json j; j.type_ = Type::Object; return j; }
  static Json array() { Json j; j.type_ = Type::Array; return j; }
  template <typename T>
  static Json array_of(const std::vector<T>& values) {
    Json j = array();
    for (const T& v : values) j.push_back(Json(v));
    return j;
  }

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::Null; }
  bool is_bool() const { return type_ == Type::Bool; }
  bool is_number() const { return type_ == Type::Number; }
  bool is_string() const { return type_ == Type::String; }
  bool is_array() const { return type_ == Type::Array; }
  bool is_object() const { return type_ == Type::Object; }

  // Typed access; each throws fer::Error naming the expected type when it does not match.
  bool as_bool() const;
  double as_number() const;
  int64_t as_int() const;
  const std::string& as_string() const;
  const Array& as_array() const;
  const Object& as_object() const;

  // Object access. operator[] on a non-const object inserts a null member when missing.
  Json& operator[](const std::string& key);
  const Json& at(const std::string& key) const;  // throws "missing key 'k'"
  bool contains(const std::string& key) const;
  // Member or a default when missing (objects only).
  double get(const std::string& key, double fallback) const;
  int64_t get(const std::string& key, int64_t fallback) const;
  int get(const std::string& key, int fallback) const;
  bool get(const std::string& key, bool fallback) const;
  std::string get(const std::string& key, const char* fallback) const;

  // Array access.
  void push_back(Json value);
  const Json& operator[](size_t index) const;
  size_t size() const;  // array length or object member count

  // Compact (indent < 0) or pretty-printed text.
  std::string dump(int indent = -1) const;
  // Parses text; throws fer::Error with the offending line and column.
  static Json parse(const std::string& text);

 private:
  void dump_to(std::string& out, int indent, int depth) const;

  Type type_ = Type::Null;
  bool bool_ = false;
  double number_ = 0;
  std::string string_;
  Array array_;
  Object object_;
};

}  // namespace fer
