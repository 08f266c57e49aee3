#include "fer/npy.h"

#include <cctype>
#include <cstring>

#include "fer/atomic_file.h"
#include "fer/error.h"
#include "fer/utf8.h"

// .npy data is little-endian and we copy it straight into floats.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "fer's .npy code assumes a little-endian CPU");

namespace fer {

// ---- float16 ----------------------------------------------------------------------------
//
// float32: 1 sign bit, 8 exponent bits (bias 127), 23 mantissa bits.
// float16: 1 sign bit, 5 exponent bits (bias 15), 10 mantissa bits; exponent 0 holds
// the subnormals (mantissa * 2^-24), exponent 31 holds infinity and NaN.

uint16_t float_to_half(float value) {
  uint32_t x;
  std::memcpy(&x, &value, 4);
  const uint32_t sign = (x >> 16) & 0x8000;
  const uint32_t exponent = (x >> 23) & 0xFF;
  uint32_t mantissa = x & 0x7FFFFF;

  if (exponent == 0xFF)  // infinity, or NaN (keep it a NaN: force a mantissa bit)
    return static_cast<uint16_t>(sign | 0x7C00 | (mantissa ? 0x200 | (mantissa >> 13) : 0));

  const int e = static_cast<int>(exponent) - 127 + 15;  // re-biased exponent
  if (e >= 31) return static_cast<uint16_t>(sign | 0x7C00);  // too large: infinity

  // Dropping `shift` low mantissa bits, rounding to nearest with ties to even: round up
  // when the dropped part is above half, or exactly half and the kept part is odd.
  auto round_shift = [](uint32_t m, int shift) {
    const uint32_t kept = m >> shift;
    const uint32_t dropped = m & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    return kept + ((dropped > half || (dropped == half && (kept & 1))) ? 1 : 0);
  };

  if (e <= 0) {
    // A half subnormal (or zero): value = m * 2^-24. Below 2^-25 everything rounds to 0.
    if (e < -10) return static_cast<uint16_t>(sign);
    mantissa |= 0x800000;  // make the implicit leading 1 explicit
    // A carry out of the 10 mantissa bits lands in the exponent field as exponent 1:
    // exactly the smallest normal half, so the bit pattern stays right.
    return static_cast<uint16_t>(sign | round_shift(mantissa, 14 - e));
  }
  // Normal: keep 10 of the 23 mantissa bits. A rounding carry propagates into the
  // exponent (and from exponent 30 to 31 = infinity), which is again the right answer.
  const uint32_t bits = (static_cast<uint32_t>(e) << 10) | (mantissa >> 13);
  const uint32_t dropped = mantissa & 0x1FFF;
  const uint32_t rounded = bits + ((dropped > 0x1000 || (dropped == 0x1000 && (bits & 1))) ? 1 : 0);
  return static_cast<uint16_t>(sign | rounded);
}

float half_to_float(uint16_t half) {
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000) << 16;
  const uint32_t exponent = (half >> 10) & 0x1F;
  const uint32_t mantissa = half & 0x3FF;
  uint32_t x;
  if (exponent == 0x1F) {
    x = sign | 0x7F800000 | (mantissa << 13);  // infinity / NaN
  } else if (exponent == 0) {
    // Zero or subnormal: mantissa * 2^-24, exact in float32.
    const float magnitude = static_cast<float>(mantissa) * (1.0f / 16777216.0f);
    return sign ? -magnitude : magnitude;
  } else {
    x = sign | ((exponent - 15 + 127) << 23) | (mantissa << 13);
  }
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

// ---- UTF-8 <-> code points --------------------------------------------------------------

namespace {

bool valid_code_point(uint32_t cp) { return cp < 0x110000 && !(cp >= 0xD800 && cp < 0xE000); }

// Decodes UTF-8 strictly (no overlong forms, no surrogates); false on invalid input.
bool decode_utf8(const std::string& s, std::vector<uint32_t>& out) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = s[i];
    int extra;
    uint32_t cp, min;
    if (c < 0x80) { cp = c; extra = 0; min = 0; }
    else if ((c & 0xE0) == 0xC0) { cp = c & 0x1F; extra = 1; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { cp = c & 0x0F; extra = 2; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { cp = c & 0x07; extra = 3; min = 0x10000; }
    else return false;
    if (i + extra >= s.size()) return false;  // sequence cut short
    for (int k = 1; k <= extra; ++k) {
      const unsigned char d = s[i + k];
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if (cp < min || !valid_code_point(cp)) return false;
    out.push_back(cp);
    i += 1 + extra;
  }
  return true;
}

// ---- header -----------------------------------------------------------------------------

// "()" for a scalar, "(5,)" for a vector (Python's one-element tuple), "(2, 3)" otherwise.
std::string shape_tuple(const Shape& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  if (shape.size() == 1) s += ",";
  return s + ")";
}

// Magic, version 1.0, header length and the header dict, padded so that the data that
// follows starts at a multiple of 64 bytes (numpy's alignment, good for mmap).
std::vector<uint8_t> npy_header(const std::string& descr, const Shape& shape) {
  std::string dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " +
                     shape_tuple(shape) + ", }";
  const size_t unpadded = 10 + dict.size() + 1;  // + the final '\n'
  dict.append((64 - unpadded % 64) % 64, ' ');
  dict += '\n';
  FER_CHECK(dict.size() <= 0xFFFF, ".npy header too long for shape ", shape_str(shape));
  std::vector<uint8_t> out(10 + dict.size());
  std::memcpy(out.data(), "\x93NUMPY", 6);
  out[6] = 1;  // version 1.0
  out[7] = 0;
  out[8] = dict.size() & 0xFF;  // header length, little-endian
  out[9] = static_cast<uint8_t>(dict.size() >> 8);
  std::memcpy(out.data() + 10, dict.data(), dict.size());
  return out;
}

struct Header {
  std::string descr;
  bool fortran_order = false;
  Shape shape;
};

// A tiny parser for the one Python literal numpy writes:
//   {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& where) : s_(text), where_(where) {}

  Header parse() {
    Header h;
    bool has_descr = false, has_order = false, has_shape = false;
    expect('{');
    while (true) {
      skip_space();
      if (peek() == '}') break;
      const std::string key = quoted();
      expect(':');
      skip_space();
      if (key == "descr") {
        if (peek() == '[') bad("structured dtypes (record arrays) are not supported");
        h.descr = quoted();
        has_descr = true;
      } else if (key == "fortran_order") {
        const std::string word = identifier();
        if (word != "True" && word != "False") bad("fortran_order is '", word, "'");
        h.fortran_order = word == "True";
        has_order = true;
      } else if (key == "shape") {
        h.shape = tuple();
        has_shape = true;
      } else {
        bad("unexpected key '", key, "'");
      }
      skip_space();
      if (peek() == ',') ++i_;
    }
    if (!has_descr || !has_order || !has_shape)
      bad("missing ", !has_descr ? "'descr'" : !has_order ? "'fortran_order'" : "'shape'");
    return h;
  }

 private:
  template <typename... Parts>
  [[noreturn]] void bad(Parts&&... parts) const {
    fail(where_, ": bad .npy header: ", std::forward<Parts>(parts)..., " in \"", printable(), "\"");
  }
  std::string printable() const {
    std::string p;
    for (char c : s_.substr(0, 120)) p += (c >= 32 && c < 127) ? c : '?';
    return p;
  }
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void skip_space() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r'))
      ++i_;
  }
  void expect(char c) {
    skip_space();
    if (peek() != c) bad("expected '", c, "'");
    ++i_;
  }
  std::string quoted() {
    skip_space();
    const char q = peek();
    if (q != '\'' && q != '"') bad("expected a quoted string");
    const size_t close = s_.find(q, i_ + 1);
    if (close == std::string::npos) bad("unterminated string");
    std::string out = s_.substr(i_ + 1, close - i_ - 1);
    i_ = close + 1;
    return out;
  }
  std::string identifier() {
    const size_t start = i_;
    while (i_ < s_.size() && std::isalpha(static_cast<unsigned char>(s_[i_]))) ++i_;
    return s_.substr(start, i_ - start);
  }
  Shape tuple() {
    Shape shape;
    expect('(');
    while (true) {
      skip_space();
      if (peek() == ')') { ++i_; break; }
      if (!std::isdigit(static_cast<unsigned char>(peek()))) bad("expected a dimension");
      int64_t d = 0;
      int digits = 0;
      while (std::isdigit(static_cast<unsigned char>(peek()))) {
        if (++digits > 15) bad("dimension too large");
        d = d * 10 + (s_[i_++] - '0');
      }
      if (peek() == 'L') ++i_;  // Python 2 long literal
      shape.push_back(d);
      if (shape.size() > 32) bad("more than 32 dimensions");
      skip_space();
      if (peek() == ',') ++i_;
      else if (peek() != ')') bad("expected ',' or ')' in shape");
    }
    return shape;
  }

  const std::string& s_;
  const std::string& where_;
  size_t i_ = 0;
};

// ---- dtypes -----------------------------------------------------------------------------

struct Dtype {
  char kind = 0;        // 'f', 'i', 'u', 'b', 'U', 'S'
  uint64_t size = 0;    // bytes per element (for 'U': 4 * characters)
};

Dtype parse_dtype(const std::string& descr, const std::string& where) {
  const std::string supported =
      " (supported: float16/32/64, int8-64, uint8-64, bool, str '<U', bytes '|S')";
  if (descr.size() >= 2 && descr[1] == 'O')
    fail(where, ": object arrays (Python pickles) are not supported; save numeric arrays "
         "or plain strings (numpy.save with allow_pickle=False)");
  const char order = descr.empty() ? 0 : descr[0];
  FER_CHECK(descr.size() >= 3 && (order == '<' || order == '>' || order == '|' || order == '='),
            where, ": unsupported dtype '", descr, "'", supported);
  Dtype d;
  d.kind = descr[1];
  uint64_t n = 0;
  for (size_t i = 2; i < descr.size(); ++i) {
    FER_CHECK(std::isdigit(static_cast<unsigned char>(descr[i])) && i < 12, where,
              ": unsupported dtype '", descr, "'", supported);
    n = n * 10 + (descr[i] - '0');
  }
  d.size = d.kind == 'U' ? 4 * n : n;
  FER_CHECK(order != '>' || (d.size <= 1 && d.kind != 'U'), where, ": big-endian data ('",
            descr, "') is not supported; convert it with arr.astype('<", descr.substr(1), "')");
  bool ok = false;
  switch (d.kind) {
    case 'f': ok = n == 2 || n == 4 || n == 8; break;
    case 'i': case 'u': ok = n == 1 || n == 2 || n == 4 || n == 8; break;
    case 'b': ok = n == 1; break;
    case 'U': case 'S': ok = true; break;
  }
  FER_CHECK(ok, where, ": unsupported dtype '", descr, "'", supported);
  return d;
}

// Reads `count` little-endian T's (unaligned) and converts each to float.
template <typename T>
void to_float(const uint8_t* src, int64_t count, float* dst) {
  for (int64_t i = 0; i < count; ++i) {
    T v;
    std::memcpy(&v, src + i * sizeof(T), sizeof(T));
    dst[i] = static_cast<float>(v);
  }
}

void convert_numbers(const Dtype& d, const uint8_t* src, int64_t count, float* dst) {
  switch (d.kind) {
    case 'f':
      if (d.size == 4) {
        if (count) std::memcpy(dst, src, count * 4);
      } else if (d.size == 8) {
        to_float<double>(src, count, dst);
      } else {
        for (int64_t i = 0; i < count; ++i) dst[i] = half_to_float(src[2 * i] | (src[2 * i + 1] << 8));
      }
      return;
    case 'i':
      if (d.size == 1) to_float<int8_t>(src, count, dst);
      if (d.size == 2) to_float<int16_t>(src, count, dst);
      if (d.size == 4) to_float<int32_t>(src, count, dst);
      if (d.size == 8) to_float<int64_t>(src, count, dst);
      return;
    case 'u':
      if (d.size == 1) to_float<uint8_t>(src, count, dst);
      if (d.size == 2) to_float<uint16_t>(src, count, dst);
      if (d.size == 4) to_float<uint32_t>(src, count, dst);
      if (d.size == 8) to_float<uint64_t>(src, count, dst);
      return;
    case 'b':
      for (int64_t i = 0; i < count; ++i) dst[i] = src[i] ? 1.f : 0.f;
      return;
  }
}

// One text element. numpy pads short strings with zero characters and strips them when
// reading, so we strip them too.
std::string decode_text(const Dtype& d, const uint8_t* src, const std::string& where) {
  std::string out;
  if (d.kind == 'S') {
    size_t len = d.size;
    while (len > 0 && src[len - 1] == 0) --len;
    return std::string(reinterpret_cast<const char*>(src), len);
  }
  size_t chars = d.size / 4;  // UTF-32LE
  auto code_at = [&](size_t i) {
    return src[4 * i] | (src[4 * i + 1] << 8) | (src[4 * i + 2] << 16) |
           (static_cast<uint32_t>(src[4 * i + 3]) << 24);
  };
  while (chars > 0 && code_at(chars - 1) == 0) --chars;
  for (size_t i = 0; i < chars; ++i) {
    const uint32_t cp = code_at(i);
    FER_CHECK(valid_code_point(cp), where, ": invalid character U+", std::hex, cp,
              " in text array");
    append_utf8(out, cp);
  }
  return out;
}

// numpy's fortran_order=True stores the FIRST axis fastest. Reorders to C order (last
// axis fastest) by walking the C-order index and tracking its Fortran-order offset.
template <typename T>
void fortran_to_c_order(T* values, const Shape& shape) {
  const int rank = static_cast<int>(shape.size());
  const int64_t count = shape_numel(shape);
  if (rank < 2 || count == 0) return;  // 0-d and 1-d arrays read the same either way
  std::vector<T> fortran(values, values + count);
  std::vector<int64_t> index(rank, 0), stride(rank);
  int64_t s = 1;
  for (int a = 0; a < rank; ++a) { stride[a] = s; s *= shape[a]; }
  for (int64_t i = 0; i < count; ++i) {
    int64_t offset = 0;
    for (int a = 0; a < rank; ++a) offset += index[a] * stride[a];
    values[i] = fortran[offset];
    for (int a = rank - 1; a >= 0; --a) {  // next C-order index
      if (++index[a] < shape[a]) break;
      index[a] = 0;
    }
  }
}

}  // namespace

// ---- encode / decode --------------------------------------------------------------------

std::vector<uint8_t> encode_npy(const Tensor& t, bool float16) {
  FER_CHECK(t.defined(), "encode_npy: undefined tensor");
  std::vector<uint8_t> out = npy_header(float16 ? "<f2" : "<f4", t.shape());
  const int64_t n = t.numel();
  const size_t start = out.size();
  if (float16) {
    out.resize(start + 2 * n);
    for (int64_t i = 0; i < n; ++i) {
      const uint16_t h = float_to_half(t.data()[i]);
      out[start + 2 * i] = h & 0xFF;
      out[start + 2 * i + 1] = h >> 8;
    }
  } else {
    out.resize(start + 4 * n);
    if (n) std::memcpy(out.data() + start, t.data(), 4 * n);
  }
  return out;
}

std::vector<uint8_t> encode_npy_text(const std::string& utf8) {
  std::vector<uint32_t> cps;
  FER_CHECK(decode_utf8(utf8, cps), "text is not valid UTF-8");
  // numpy has no '<U0' for a value: the empty string is '<U1' holding one zero character.
  const size_t chars = cps.empty() ? 1 : cps.size();
  std::vector<uint8_t> out = npy_header("<U" + std::to_string(chars), Shape{});
  for (size_t i = 0; i < chars; ++i) {
    const uint32_t cp = i < cps.size() ? cps[i] : 0;
    for (int b = 0; b < 4; ++b) out.push_back((cp >> (8 * b)) & 0xFF);
  }
  return out;
}

NpyArray decode_npy(const uint8_t* b, size_t n, const std::string& where) {
  FER_CHECK(n >= 10 && b[0] == 0x93 && std::memcmp(b + 1, "NUMPY", 5) == 0, where,
            ": not a .npy array (missing the \\x93NUMPY magic)");
  const int major = b[6], minor = b[7];
  size_t header_len = 0, start = 0;
  if (major == 1) {
    header_len = b[8] | (b[9] << 8);
    start = 10;
  } else if (major == 2 || major == 3) {  // 4-byte header length (3.0: UTF-8 header)
    FER_CHECK(n >= 12, where, ": truncated .npy header");
    header_len = b[8] | (b[9] << 8) | (b[10] << 16) | (static_cast<size_t>(b[11]) << 24);
    start = 12;
  } else {
    fail(where, ": unsupported .npy version ", major, ".", minor);
  }
  FER_CHECK(header_len <= n - start, where, ": truncated .npy header (", header_len,
            " bytes announced, ", n - start, " present)");
  const std::string text(reinterpret_cast<const char*>(b + start), header_len);
  const Header h = HeaderParser(text, where).parse();
  const Dtype d = parse_dtype(h.descr, where);

  // Element count and byte size, refusing anything that could overflow.
  const uint64_t limit = uint64_t{1} << 62;
  uint64_t count = 1;
  for (int64_t dim : h.shape) {
    FER_CHECK(dim == 0 || count <= limit / static_cast<uint64_t>(dim), where,
              ": shape ", shape_str(h.shape), " is too large");
    count *= static_cast<uint64_t>(dim);
  }
  FER_CHECK(d.size == 0 || count <= limit / d.size, where, ": shape ", shape_str(h.shape),
            " is too large");
  // Zero-size items ('<U0') take no bytes, so the data size cannot bound their count.
  FER_CHECK(d.size > 0 || count <= (uint64_t{1} << 20), where, ": ", count,
            " elements of zero size");
  const uint64_t need = count * d.size;
  const uint64_t have = n - start - header_len;
  FER_CHECK(have >= need, where, ": truncated data: shape ", shape_str(h.shape), " of '",
            h.descr, "' needs ", need, " bytes, found ", have);
  FER_CHECK(have == need, where, ": ", have - need, " unexpected bytes after the data of shape ",
            shape_str(h.shape), " '", h.descr, "' (damaged file)");
  const uint8_t* data = b + start + header_len;

  NpyArray a;
  a.shape = h.shape;
  a.dtype = h.descr;
  if (d.kind == 'U' || d.kind == 'S') {
    a.strings.reserve(count);
    for (uint64_t i = 0; i < count; ++i) a.strings.push_back(decode_text(d, data + i * d.size, where));
    if (h.fortran_order) fortran_to_c_order(a.strings.data(), a.shape);
  } else {
    a.tensor = Tensor(h.shape);
    convert_numbers(d, data, static_cast<int64_t>(count), a.tensor.data());
    if (h.fortran_order) fortran_to_c_order(a.tensor.data(), a.shape);
  }
  return a;
}

// ---- files ------------------------------------------------------------------------------

Tensor read_npy(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  if (bytes.size() >= 4 && bytes[0] == 'P' && bytes[1] == 'K')
    fail(path, ": this is an .npz archive (several arrays), not a single .npy array");
  NpyArray a = decode_npy(bytes.data(), bytes.size(), path);
  FER_CHECK(!a.is_text(), path, ": holds text (dtype '", a.dtype, "'), not numbers");
  return a.tensor;
}

void write_npy(const std::string& path, const Tensor& t, bool float16) {
  const std::vector<uint8_t> bytes = encode_npy(t, float16);
  write_file_atomically(path, [&](std::FILE* f) { fwrite_all(f, bytes.data(), bytes.size()); });
}

}  // namespace fer
