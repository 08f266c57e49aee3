// .npy / .npz reading and writing (fer/npy.h, fer/npz.h, fer/zip.h) and atomic saves
// (fer/atomic_file.h): round trips, float16 rounding, interoperability with numpy (when
// /usr/bin/python3 has numpy), atomicity, and damaged files -- which must give fer::Error
// with a useful message, never a crash.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "fer/atomic_file.h"
#include "fer/error.h"
#include "fer/npy.h"
#include "fer/npz.h"
#include "fer/rng.h"
#include "fer/tensor.h"
#include "fer/zip.h"
#include "tests/error_of.h"

using namespace fer;
namespace fs = std::filesystem;

namespace {

using Bytes = std::vector<uint8_t>;

Bytes hex_bytes(const std::string& hex) {
  Bytes out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(std::stoi(hex.substr(i, 2), nullptr, 16));
  return out;
}

Bytes text_bytes(const std::string& s) { return Bytes(s.begin(), s.end()); }

void write_bytes(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

using fer::testing::error_of;

#define EXPECT_ERROR_HAS(expr, fragment)                                   \
  do {                                                                     \
    const std::string message_ = error_of([&] { (void)(expr); });          \
    EXPECT_NE(message_.find(fragment), std::string::npos)                  \
        << "expected an error containing \"" << (fragment) << "\", got: " << message_; \
  } while (0)

// A .npy file with a hand-written header dict (no padding needed) and raw data bytes.
Bytes raw_npy(const std::string& dict, const Bytes& data, int major = 1) {
  Bytes out = {0x93, 'N', 'U', 'M', 'P', 'Y', static_cast<uint8_t>(major), 0};
  const size_t n = dict.size();
  out.push_back(n & 0xFF);
  out.push_back((n >> 8) & 0xFF);
  if (major >= 2) {
    out.push_back((n >> 16) & 0xFF);
    out.push_back((n >> 24) & 0xFF);
  }
  out.insert(out.end(), dict.begin(), dict.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

template <typename T>
Bytes le_bytes(const std::vector<T>& values) {
  Bytes out(values.size() * sizeof(T));
  if (!values.empty()) std::memcpy(out.data(), values.data(), out.size());
  return out;
}

// A per-test scratch directory, removed afterwards.
class NpzTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "fer_npz_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  std::vector<std::string> files_in_dir() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
  // A ZIP of the given entries, written with ZipWriter (no checks on names or content).
  Bytes zip_of(const std::vector<std::pair<std::string, Bytes>>& entries) {
    const std::string p = path("made.zip");
    write_file_atomically(p, [&](std::FILE* f) {
      ZipWriter zip(f);
      for (const auto& [name, data] : entries) zip.add(name, data);
      zip.finish();
    });
    return read_file_bytes(p);
  }
  std::string dir_;
};

Tensor counting_tensor(const Shape& shape, float scale, float offset) {
  Tensor t(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = i * scale + offset;
  return t;
}

void expect_tensor_eq(const Tensor& a, const Tensor& b) {
  ASSERT_EQ(shape_str(a.shape()), shape_str(b.shape()));
  for (int64_t i = 0; i < a.numel(); ++i) ASSERT_EQ(a.data()[i], b.data()[i]) << "at " << i;
}

const std::string kUnicode = "h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x98\x80 \xce\x95\xce\xbb";  // héllo ✓ 😀 Ελ

// np.savez_compressed(f, **{"w/kernel": np.arange(6, dtype=np.float32).reshape(2, 3) * 0.5,
//                           "label": np.array("héllo")})  -- numpy 1.24: DEFLATED entries
// whose local headers carry ZIP64 extra fields.
const char* kNumpyCompressedHex =
    "504b0304140000000800000021000bc0b07657000000980000000c001400772f6b65726e656c2e6e7079010010009800"
    "00000000000057000000000000009bec17ea1b10c9c850c650ad9e925a9c5ca46ea5a06e9366a2aea3a09e965f545294"
    "98179f5f94920a12774bcc294e058a17672416a402f91a463a0ac69a3a0ab50a64032e0608b067606800e20340cce0c0"
    "c0a0e00000504b030414000000080000002100a609f6084e00000094000000090014006c6162656c2e6e707901001000"
    "94000000000000004e000000000000009bec17ea1b10c9c850c650ad9e925a9c5ca46ea5a06e136aaaaea3a09e965f54"
    "529498179f5f94920a12774bcc294e058a17672416a402f91a9a3a0ab50a1401ae0c06068697409c03c5f9400c00504b"
    "01021403140000000800000021000bc0b07657000000980000000c0000000000000000000000800100000000772f6b65"
    "726e656c2e6e7079504b0102140314000000080000002100a609f6084e00000094000000090000000000000000000000"
    "8001950000006c6162656c2e6e7079504b05060000000002000200710000001e0100000000";

// A one-entry STORED archive with every size and offset in ZIP64 form (0xFFFFFFFF in
// the 32-bit fields, the real values in ZIP64 extra fields, a ZIP64 end record), as a
// writer of huge archives produces.
Bytes zip64_archive(const std::string& name, const Bytes& data) {
  Bytes z;
  auto p16 = [&](uint64_t v) { for (int i = 0; i < 2; ++i) z.push_back((v >> (8 * i)) & 0xFF); };
  auto p32 = [&](uint64_t v) { for (int i = 0; i < 4; ++i) z.push_back((v >> (8 * i)) & 0xFF); };
  auto p64 = [&](uint64_t v) { for (int i = 0; i < 8; ++i) z.push_back((v >> (8 * i)) & 0xFF); };
  auto bytes = [&](const std::string& s) { z.insert(z.end(), s.begin(), s.end()); };
  const uint32_t crc = crc32(data.data(), data.size());
  // local header + ZIP64 extra (uncompressed, compressed size)
  p32(0x04034b50); p16(45); p16(0); p16(0); p16(0); p16(0x21); p32(crc);
  p32(0xFFFFFFFF); p32(0xFFFFFFFF); p16(name.size()); p16(20);
  bytes(name);
  p16(0x0001); p16(16); p64(data.size()); p64(data.size());
  z.insert(z.end(), data.begin(), data.end());
  // central directory + ZIP64 extra (uncompressed, compressed size, local header offset)
  const uint64_t cd_offset = z.size();
  p32(0x02014b50); p16(45); p16(45); p16(0); p16(0); p16(0); p16(0x21); p32(crc);
  p32(0xFFFFFFFF); p32(0xFFFFFFFF); p16(name.size()); p16(28); p16(0); p16(0); p16(0); p32(0);
  p32(0xFFFFFFFF);
  bytes(name);
  p16(0x0001); p16(24); p64(data.size()); p64(data.size()); p64(0);
  const uint64_t cd_size = z.size() - cd_offset;
  // ZIP64 end record, its locator, and the classic end record with saturated fields
  const uint64_t zip64_end = z.size();
  p32(0x06064b50); p64(44); p16(45); p16(45); p32(0); p32(0); p64(1); p64(1); p64(cd_size); p64(cd_offset);
  p32(0x07064b50); p32(0); p64(zip64_end); p32(1);
  p32(0x06054b50); p16(0); p16(0); p16(0xFFFF); p16(0xFFFF); p32(0xFFFFFFFF); p32(0xFFFFFFFF); p16(0);
  return z;
}

}  // namespace

// ---- building blocks ----------------------------------------------------------------------

TEST(Crc32, MatchesTheStandardCheckValue) {
  const Bytes digits = text_bytes("123456789");
  EXPECT_EQ(crc32(digits.data(), digits.size()), 0xCBF43926u);  // the CRC-32 "check" value
  EXPECT_EQ(crc32(nullptr, 0), 0u);
  // Continuing over two pieces equals one pass over the whole.
  EXPECT_EQ(crc32(digits.data() + 4, 5, crc32(digits.data(), 4)), 0xCBF43926u);
}

TEST(Float16, EveryHalfSurvivesTheRoundTripThroughFloat) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = half_to_float(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(half_to_float(float_to_half(f)))) << h;
      EXPECT_EQ((h & 0x7C00), 0x7C00u);
    } else {
      ASSERT_EQ(float_to_half(f), h) << "half 0x" << std::hex << h << " = " << f;
    }
  }
}

TEST(Float16, KnownValues) {
  EXPECT_EQ(half_to_float(0x3C00), 1.f);
  EXPECT_EQ(half_to_float(0xC000), -2.f);
  EXPECT_EQ(half_to_float(0x7BFF), 65504.f);
  EXPECT_EQ(half_to_float(0x0001), std::ldexp(1.f, -24));  // smallest subnormal
  EXPECT_EQ(float_to_half(1.f / 3.f), 0x3555);
  EXPECT_EQ(float_to_half(0.1f), 0x2E66);
  EXPECT_EQ(float_to_half(65519.f), 0x7BFF);   // below the midpoint to 65536: stays finite
  EXPECT_EQ(float_to_half(65520.f), 0x7C00);   // the midpoint ties to even: infinity
  EXPECT_EQ(float_to_half(1e6f), 0x7C00);
  EXPECT_EQ(float_to_half(-INFINITY), 0xFC00);
  EXPECT_EQ(float_to_half(1e-8f), 0x0000);     // underflows to zero
  EXPECT_EQ(float_to_half(-1e-8f), 0x8000);
  EXPECT_EQ(float_to_half(std::ldexp(1.f, -25)), 0x0000);          // tie: to even (zero)
  EXPECT_EQ(float_to_half(std::ldexp(1.5f, -25)), 0x0001);         // above the tie
  EXPECT_TRUE(std::isnan(half_to_float(float_to_half(NAN))));
}

TEST(Float16, MidpointsRoundToEvenAndNeighboursToNearest) {
  // Between two consecutive finite halves a < b, the midpoint goes to the one with an even
  // bit pattern, and the floats just beside it go to the nearer one.
  for (uint32_t h = 0; h < 0x7BFF; ++h) {
    const float a = half_to_float(h), b = half_to_float(h + 1);
    const float mid = (a + b) / 2;  // exact: halves have 11 significant bits
    const uint16_t even = (h & 1) ? h + 1 : h;
    ASSERT_EQ(float_to_half(mid), even) << "between 0x" << std::hex << h << " and 0x" << h + 1;
    ASSERT_EQ(float_to_half(std::nextafter(mid, 0.f)), h);
    ASSERT_EQ(float_to_half(std::nextafter(mid, INFINITY)), h + 1);
    ASSERT_EQ(float_to_half(-mid), even | 0x8000);
  }
}

TEST(Npy, HeaderIsPaddedTo64BytesAndSpellsTheShapeLikePython) {
  auto header_of = [](const Shape& shape) {
    const Bytes b = encode_npy(Tensor(shape));
    const size_t len = b[8] | (b[9] << 8);
    EXPECT_EQ((10 + len) % 64, 0u);
    EXPECT_EQ(b[10 + len - 1], '\n');
    return std::string(b.begin() + 10, b.begin() + 10 + len);
  };
  EXPECT_NE(header_of({}).find("'shape': (), "), std::string::npos);
  EXPECT_NE(header_of({7}).find("'shape': (7,), "), std::string::npos);
  EXPECT_NE(header_of({2, 48, 48, 1}).find("'shape': (2, 48, 48, 1), "), std::string::npos);
  EXPECT_NE(header_of({3}).find("{'descr': '<f4', 'fortran_order': False,"), std::string::npos);
  const Bytes h = encode_npy(Tensor({3}), /*float16=*/true);
  EXPECT_NE(std::string(h.begin(), h.end()).find("'<f2'"), std::string::npos);
}

TEST(Npy, ReadsEveryNumericDtypeAsFloat) {
  struct Case { std::string descr; Bytes data; std::vector<float> expected; };
  const std::vector<Case> cases = {
      {"<f4", le_bytes<float>({1.5f, -2.f}), {1.5f, -2.f}},
      {"<f8", le_bytes<double>({0.25, -1e10}), {0.25f, -1e10f}},
      {"<f2", le_bytes<uint16_t>({0x3C00, 0xC100}), {1.f, -2.5f}},
      {"|i1", le_bytes<int8_t>({-128, 127}), {-128.f, 127.f}},
      {"<i2", le_bytes<int16_t>({-300, 300}), {-300.f, 300.f}},
      {"<i4", le_bytes<int32_t>({-7, 1 << 20}), {-7.f, 1048576.f}},
      {"<i8", le_bytes<int64_t>({-5, int64_t{1} << 40}), {-5.f, 1099511627776.f}},
      {"|u1", le_bytes<uint8_t>({0, 255}), {0.f, 255.f}},
      {"<u2", le_bytes<uint16_t>({65535, 1}), {65535.f, 1.f}},
      {"<u4", le_bytes<uint32_t>({4000000000u, 2}), {4e9f, 2.f}},
      {"<u8", le_bytes<uint64_t>({3, 9}), {3.f, 9.f}},
      {"|b1", Bytes{1, 0}, {1.f, 0.f}},
  };
  for (const Case& c : cases) {
    const Bytes npy = raw_npy("{'descr': '" + c.descr + "', 'fortran_order': False, 'shape': (2,), }", c.data);
    const NpyArray a = decode_npy(npy.data(), npy.size(), c.descr);
    ASSERT_FALSE(a.is_text()) << c.descr;
    EXPECT_EQ(a.dtype, c.descr);
    EXPECT_EQ(a.tensor.to_vector(), c.expected) << c.descr;
  }
}

TEST(Npy, ReadsVersion2And3HeadersAndConvertsFortranOrder) {
  // A 2x3 int32 array v[i][j] = 10 i + j stored column-major: v00 v10 v01 v11 v02 v12.
  const Bytes fortran_data = le_bytes<int32_t>({0, 10, 1, 11, 2, 12});
  for (int major : {1, 2, 3}) {
    const Bytes npy = raw_npy("{'descr': '<i4', 'fortran_order': True, 'shape': (2, 3), }",
                              fortran_data, major);
    const NpyArray a = decode_npy(npy.data(), npy.size(), "f.npy");
    EXPECT_EQ(shape_str(a.shape), "[2, 3]");
    EXPECT_EQ(a.tensor.to_vector(), (std::vector<float>{0, 1, 2, 10, 11, 12})) << "v" << major;
  }
  // Rank 3, float: C-order index (i, j, k) is Fortran offset i + 2 j + 6 k.
  std::vector<float> f(24), expected(24);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) {
        f[i + 2 * j + 6 * k] = 100.f * i + 10.f * j + k;
        expected[(i * 3 + j) * 4 + k] = 100.f * i + 10.f * j + k;
      }
  const Bytes npy = raw_npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3, 4), }", le_bytes(f));
  EXPECT_EQ(decode_npy(npy.data(), npy.size(), "f.npy").tensor.to_vector(), expected);
}

TEST(Npy, ReadsTextArrays) {
  // '<U3' 1-d: "ab", "✓é" (UTF-32LE, zero-padded to 3 characters).
  const Bytes u = le_bytes<uint32_t>({'a', 'b', 0, 0x2713, 0xE9, 0});
  const Bytes npy = raw_npy("{'descr': '<U3', 'fortran_order': False, 'shape': (2,), }", u);
  const NpyArray a = decode_npy(npy.data(), npy.size(), "u.npy");
  ASSERT_TRUE(a.is_text());
  EXPECT_EQ(a.strings, (std::vector<std::string>{"ab", "\xe2\x9c\x93\xc3\xa9"}));
  // '|S4' 0-d bytes, trailing zeros stripped.
  const Bytes s = raw_npy("{'descr': '|S4', 'fortran_order': False, 'shape': (), }", Bytes{'x', 'y', 0, 0});
  EXPECT_EQ(decode_npy(s.data(), s.size(), "s.npy").strings, std::vector<std::string>{"xy"});
  // A code point beyond Unicode is an error, not garbage.
  const Bytes bad = raw_npy("{'descr': '<U1', 'fortran_order': False, 'shape': (), }",
                            le_bytes<uint32_t>({0x110000}));
  EXPECT_ERROR_HAS(decode_npy(bad.data(), bad.size(), "bad.npy"), "invalid character");
}

TEST(Npy, EncodedTextIsUtf32AndDecodesBack) {
  const Bytes b = encode_npy_text(kUnicode);
  const NpyArray a = decode_npy(b.data(), b.size(), "t.npy");
  EXPECT_EQ(a.dtype, "<U12");  // 12 characters, whatever their UTF-8 length
  EXPECT_TRUE(a.shape.empty());
  EXPECT_EQ(a.strings, std::vector<std::string>{kUnicode});
  EXPECT_ERROR_HAS(encode_npy_text("bad \xff utf8"), "not valid UTF-8");
  EXPECT_ERROR_HAS(encode_npy_text("overlong \xc0\xaf"), "not valid UTF-8");
  EXPECT_ERROR_HAS(encode_npy_text("cut \xe2\x9c"), "not valid UTF-8");
}

// ---- round trips --------------------------------------------------------------------------

TEST_F(NpzTest, RoundTripKeepsNamesOrderShapesValuesAndText) {
  Rng rng(3);
  Tensor kernel({3, 3, 2, 4});
  for (int64_t i = 0; i < kernel.numel(); ++i) kernel.data()[i] = static_cast<float>(rng.normal());
  const std::vector<std::pair<std::string, Tensor>> tensors = {
      {"conv1/kernel", kernel},
      {"dense/bias", counting_tensor({5}, 0.5f, -1.f)},
      {"step", Tensor::scalar(3.5f)},
      {"empty", Tensor({0, 3})},
      {"empty1d", Tensor({0})},
  };
  const std::string arch = R"({"name": "mini_xception", "layers": [{"type": "Conv2D", "filters": 8}]})";
  const std::vector<std::pair<std::string, std::string>> strings = {
      {"architecture", arch}, {"note", kUnicode}, {"blank", ""}};
  const std::string p = path("model.npz");
  write_npz(p, tensors, strings);

  const NpzArrays m = read_npz(p);
  EXPECT_EQ(m.order, (std::vector<std::string>{"architecture", "note", "blank", "conv1/kernel",
                                               "dense/bias", "step", "empty", "empty1d"}));
  for (const auto& [name, t] : tensors) {
    ASSERT_TRUE(m.has_tensor(name)) << name;
    expect_tensor_eq(m.tensor(name), t);
  }
  EXPECT_EQ(m.tensor("step").ndim(), 0);
  EXPECT_EQ(m.string("architecture"), arch);
  EXPECT_EQ(m.string("note"), kUnicode);
  EXPECT_EQ(m.string("blank"), "");
  EXPECT_TRUE(m.has_string("note"));
  EXPECT_FALSE(m.has_tensor("note"));

  // Lookups that fail name the file and what it does have.
  EXPECT_ERROR_HAS(m.tensor("conv2/kernel"), "no numeric array 'conv2/kernel'");
  EXPECT_ERROR_HAS(m.tensor("conv2/kernel"), p);
  EXPECT_ERROR_HAS(m.tensor("conv2/kernel"), "conv1/kernel, dense/bias");
  EXPECT_ERROR_HAS(m.tensor("note"), "'note' is not a numeric array");
  EXPECT_ERROR_HAS(m.string("step"), "'step' is not a 0-d text array");

  // Saving the same content twice gives the same bytes (no timestamps inside).
  const Bytes first = read_file_bytes(p);
  write_npz(p, tensors, strings);
  EXPECT_EQ(read_file_bytes(p), first);
}

TEST_F(NpzTest, Float16RoundTrip) {
  const std::vector<float> exact = {0.f, 1.f, -2.f, 0.5f, 0.0999755859375f, 65504.f, -65504.f,
                                    std::ldexp(1.f, -24), std::ldexp(3.f, -20), 1025.f};
  Rng rng(7);
  std::vector<float> approx(200);
  for (float& v : approx) v = static_cast<float>(rng.normal() * std::pow(10.0, rng.uniform(-3, 4)));
  const std::string p = path("half.npz");
  write_npz(p, {{"exact", Tensor({2, 5}, exact)}, {"approx", Tensor({200}, approx)}}, {}, true);
  const Bytes raw = read_file_bytes(p);
  EXPECT_NE(std::string(raw.begin(), raw.end()).find("'descr': '<f2'"), std::string::npos);

  const NpzArrays m = read_npz(p);
  EXPECT_EQ(m.tensor("exact").to_vector(), exact);
  const std::vector<float> back = m.tensor("approx").to_vector();
  for (size_t i = 0; i < approx.size(); ++i) {
    // Half precision keeps 11 significant bits: relative error at most 2^-11 when normal,
    // absolute 2^-25 in the subnormal range.
    const float tol = std::max(std::fabs(approx[i]) * std::ldexp(1.f, -11), std::ldexp(1.f, -25));
    EXPECT_NEAR(back[i], approx[i], tol) << i;
  }
}

TEST_F(NpzTest, SingleNpyRoundTripAndMixUps) {
  const Tensor t = counting_tensor({2, 3, 4}, 0.25f, -2.f);
  write_npy(path("x.npy"), t);
  expect_tensor_eq(read_npy(path("x.npy")), t);
  write_npy(path("h.npy"), t, /*float16=*/true);
  expect_tensor_eq(read_npy(path("h.npy")), t);  // quarters are exact in float16

  write_npz(path("m.npz"), {{"x", t}}, {{"s", "text"}});
  EXPECT_ERROR_HAS(read_npy(path("m.npz")), "is an .npz archive");
  EXPECT_ERROR_HAS(read_npz(path("x.npy")), "single .npy array, not an .npz");
  write_bytes(path("t.npy"), encode_npy_text("words"));
  EXPECT_ERROR_HAS(read_npy(path("t.npy")), "holds text");
}

TEST_F(NpzTest, ReadsNumpyCompressedFileWithoutNumpy) {
  const NpzArrays m = decode_npz(hex_bytes(kNumpyCompressedHex), "numpy.npz");
  EXPECT_EQ(m.order, (std::vector<std::string>{"w/kernel", "label"}));
  EXPECT_EQ(shape_str(m.tensor("w/kernel").shape()), "[2, 3]");
  EXPECT_EQ(m.tensor("w/kernel").to_vector(), (std::vector<float>{0, 0.5f, 1, 1.5f, 2, 2.5f}));
  EXPECT_EQ(m.string("label"), "h\xc3\xa9llo");
}

TEST_F(NpzTest, WriterRefusesBadInputBeforeTouchingTheDisk) {
  const std::string p = path("m.npz");
  EXPECT_ERROR_HAS(write_npz(p, {{"a", Tensor({1})}, {"a", Tensor({1})}}, {}), "duplicate array name 'a'");
  EXPECT_ERROR_HAS(write_npz(p, {{"a", Tensor({1})}}, {{"a", "x"}}), "duplicate array name 'a'");
  EXPECT_ERROR_HAS(write_npz(p, {{"", Tensor({1})}}, {}), "empty array name");
  EXPECT_ERROR_HAS(write_npz(p, {{"u", Tensor()}}, {}), "'u' is undefined");
  EXPECT_ERROR_HAS(write_npz(p, {}, {{"s", "\xff"}}), "string 's'");
  EXPECT_TRUE(files_in_dir().empty());
}

// ---- atomicity ----------------------------------------------------------------------------

TEST_F(NpzTest, MissingDirectoryThrowsAndLeavesNothing) {
  const std::string p = path("no_such_dir/model.npz");
  EXPECT_ERROR_HAS(write_npz(p, {{"a", Tensor({2})}}, {}), "cannot write '" + p + "'");
  EXPECT_ERROR_HAS(write_npy(p, Tensor({2})), "No such file or directory");
  EXPECT_TRUE(files_in_dir().empty());
}

TEST_F(NpzTest, FailedWriteLeavesThePreviousFileByteIdentical) {
  const std::string p = path("model.npz");
  write_npz(p, {{"w", counting_tensor({10}, 1.f, 0.f)}}, {{"architecture", "{}"}});
  const Bytes before = read_file_bytes(p);

  // A writer that dies half-way, with a foreign exception: rethrown as is.
  EXPECT_THROW(write_file_atomically(p,
                                     [](std::FILE* f) {
                                       std::fputs("partial", f);
                                       throw std::runtime_error("boom");
                                     }),
               std::runtime_error);
  EXPECT_EQ(read_file_bytes(p), before);
  EXPECT_EQ(files_in_dir(), std::vector<std::string>{"model.npz"});

  // A fer::Error from the writer gets the path in its message.
  EXPECT_ERROR_HAS(write_file_atomically(p, [](std::FILE*) { fail("disk on fire"); }),
                   "cannot write '" + p + "': disk on fire");
  EXPECT_EQ(read_file_bytes(p), before);
  EXPECT_EQ(files_in_dir(), std::vector<std::string>{"model.npz"});

  // Refused input does not touch the file either.
  EXPECT_ERROR_HAS(write_npz(p, {{"w", Tensor({1})}}, {{"w", ""}}), "duplicate");
  EXPECT_EQ(read_file_bytes(p), before);

  // A successful save replaces it.
  write_npz(p, {{"w", counting_tensor({3}, 2.f, 1.f)}}, {});
  EXPECT_EQ(read_npz(p).tensor("w").to_vector(), (std::vector<float>{1, 3, 5}));
  EXPECT_EQ(files_in_dir(), std::vector<std::string>{"model.npz"});
}

TEST_F(NpzTest, RenameOntoADirectoryFailsAndCleansUp) {
  fs::create_directory(path("taken"));
  EXPECT_ERROR_HAS(write_npy(path("taken"), Tensor({2})), "rename");
  EXPECT_EQ(files_in_dir(), std::vector<std::string>{"taken"});
}

// ---- damaged and unsupported files --------------------------------------------------------

TEST_F(NpzTest, MissingFile) {
  EXPECT_ERROR_HAS(read_npz(path("nope.npz")), "cannot read '" + path("nope.npz") + "'");
  EXPECT_ERROR_HAS(read_npy(path("nope.npy")), "No such file");
}

TEST_F(NpzTest, NotAZip) {
  write_bytes(path("a.npz"), text_bytes("this is a text file, not a model\n"));
  EXPECT_ERROR_HAS(read_npz(path("a.npz")), "not a ZIP/.npz archive");
  write_bytes(path("empty.npz"), {});
  EXPECT_ERROR_HAS(read_npz(path("empty.npz")), "not a ZIP/.npz archive");
}

TEST_F(NpzTest, TruncatedZip) {
  const std::string p = path("m.npz");
  write_npz(p, {{"w", Tensor({100}, 1.f)}}, {});
  Bytes bytes = read_file_bytes(p);
  bytes.resize(bytes.size() / 2);
  write_bytes(p, bytes);
  EXPECT_ERROR_HAS(read_npz(p), "truncated");
  EXPECT_ERROR_HAS(read_npz(p), p);
}

TEST_F(NpzTest, CorruptEntryFailsTheCrcCheck) {
  const std::string p = path("m.npz");
  write_npz(p, {{"a", Tensor({4}, 2.f)}, {"conv/w", Tensor({8}, 1.f)}}, {});
  Bytes bytes = read_file_bytes(p);
  const Bytes one = le_bytes<float>({1.f});
  const auto it = std::search(bytes.begin(), bytes.end(), one.begin(), one.end());
  ASSERT_NE(it, bytes.end());
  *it ^= 0x01;  // one flipped bit in the data of conv/w
  write_bytes(p, bytes);
  EXPECT_ERROR_HAS(read_npz(p), "CRC-32 mismatch");
  EXPECT_ERROR_HAS(read_npz(p), p + ": entry 'conv/w.npy'");
}

TEST_F(NpzTest, TruncatedNpyData) {
  const Bytes npy = raw_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", Bytes(12, 0));
  EXPECT_ERROR_HAS(decode_npz(zip_of({{"w.npy", npy}}), "m.npz"), "m.npz: entry 'w.npy': truncated data");
  EXPECT_ERROR_HAS(decode_npz(zip_of({{"w.npy", npy}}), "m.npz"), "needs 16 bytes, found 12");
  write_bytes(path("t.npy"), npy);
  EXPECT_ERROR_HAS(read_npy(path("t.npy")), "truncated data");
  // And data beyond what the shape needs is not silently ignored.
  const Bytes longer = raw_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", Bytes(20, 0));
  EXPECT_ERROR_HAS(decode_npz(zip_of({{"w.npy", longer}}), "m.npz"), "unexpected bytes");
}

TEST_F(NpzTest, BadNpyHeader) {
  const Bytes npy = raw_npy("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,), }", Bytes(8, 0));
  EXPECT_ERROR_HAS(decode_npz(zip_of({{"w.npy", npy}}), "m.npz"), "entry 'w.npy': bad .npy header");
  const Bytes no_shape = raw_npy("{'descr': '<f4', 'fortran_order': False}", Bytes(4, 0));
  EXPECT_ERROR_HAS(decode_npz(zip_of({{"w.npy", no_shape}}), "m.npz"), "missing 'shape'");
  const Bytes magic = text_bytes("\x93NUMPX not really");
  EXPECT_ERROR_HAS(decode_npz(zip_of({{"w.npy", magic}}), "m.npz"), "not a .npy array");
  Bytes long_header = raw_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", Bytes(4, 0));
  long_header[9] = 0x7F;  // header length far beyond the entry
  EXPECT_ERROR_HAS(decode_npz(zip_of({{"w.npy", long_header}}), "m.npz"), "truncated .npy header");
  const Bytes version = raw_npy("{}", {}, 9);
  EXPECT_ERROR_HAS(decode_npz(zip_of({{"w.npy", version}}), "m.npz"), "unsupported .npy version 9.0");
}

TEST_F(NpzTest, UnsupportedDtype) {
  const Bytes npy = raw_npy("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", Bytes(8, 0));
  EXPECT_ERROR_HAS(decode_npz(zip_of({{"z.npy", npy}}), "m.npz"), "entry 'z.npy': unsupported dtype '<c8'");
  const Bytes time = raw_npy("{'descr': '<M8[ns]', 'fortran_order': False, 'shape': (1,), }", Bytes(8, 0));
  EXPECT_ERROR_HAS(decode_npz(zip_of({{"t.npy", time}}), "m.npz"), "unsupported dtype '<M8[ns]'");
  const Bytes record = raw_npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", Bytes(4, 0));
  EXPECT_ERROR_HAS(decode_npz(zip_of({{"r.npy", record}}), "m.npz"), "structured dtypes");
}

TEST_F(NpzTest, BigEndianIsRefused) {
  const Bytes npy = raw_npy("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", Bytes(4, 0));
  EXPECT_ERROR_HAS(decode_npz(zip_of({{"b.npy", npy}}), "m.npz"), "big-endian data ('>f4')");
  // Single bytes have no byte order: '>u1' / '|u1' are fine.
  const Bytes byte = raw_npy("{'descr': '>u1', 'fortran_order': False, 'shape': (1,), }", Bytes{9});
  EXPECT_EQ(decode_npz(zip_of({{"b.npy", byte}}), "m.npz").tensor("b").item(), 9.f);
}

TEST_F(NpzTest, ObjectArraysAreRefused) {
  const Bytes npy = raw_npy("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", text_bytes("\x80\x04pickle"));
  EXPECT_ERROR_HAS(decode_npz(zip_of({{"o.npy", npy}}), "m.npz"), "entry 'o.npy': object arrays (Python pickles)");
}

TEST_F(NpzTest, DuplicateNames) {
  const Bytes a = encode_npy(Tensor({1}));
  EXPECT_ERROR_HAS(decode_npz(zip_of({{"w.npy", a}, {"w.npy", a}}), "m.npz"), "entry 'w.npy': duplicate");
}

TEST_F(NpzTest, EntriesThatAreNotNpyArrays) {
  EXPECT_ERROR_HAS(decode_npz(zip_of({{"README.txt", text_bytes("hi")}}), "m.npz"),
                   "entry 'README.txt': not a .npy array");
  // Folder entries (from `zip -r`) are skipped.
  const NpzArrays m = decode_npz(zip_of({{"conv/", {}}, {"conv/w.npy", encode_npy(Tensor({2}, 4.f))}}), "m.npz");
  EXPECT_EQ(m.order, std::vector<std::string>{"conv/w"});
  // Text of rank 2 has no place in the maps.
  const Bytes text2 = raw_npy("{'descr': '<U1', 'fortran_order': False, 'shape': (1, 1), }", le_bytes<uint32_t>({'a'}));
  EXPECT_ERROR_HAS(decode_npz(zip_of({{"t.npy", text2}}), "m.npz"), "text arrays of rank 2");
}

TEST_F(NpzTest, AbsurdShapesAreRefusedWithoutAllocating) {
  const Bytes huge = raw_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }", {});
  EXPECT_ERROR_HAS(decode_npz(zip_of({{"h.npy", huge}}), "m.npz"), "too large");
  const Bytes big = raw_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000,), }", Bytes(16, 0));
  EXPECT_ERROR_HAS(decode_npz(zip_of({{"h.npy", big}}), "m.npz"), "truncated data");
  const Bytes zero_size = raw_npy("{'descr': '<U0', 'fortran_order': False, 'shape': (1000000000000,), }", {});
  EXPECT_ERROR_HAS(decode_npz(zip_of({{"z.npy", zero_size}}), "m.npz"), "elements of zero size");
}

// ---- fuzzing: damaged bytes give fer::Error, never a crash or another exception ------------

namespace {

// Runs `decode` on every truncation and on single-byte mutations at every position.
// Returns how many of the mutated inputs were rejected. A crash fails the whole test
// binary; any exception other than fer::Error fails the test.
template <typename Decode>
int fuzz(const Bytes& good, Decode decode, bool every_truncation_must_fail) {
  for (size_t len = 0; len < good.size(); ++len) {
    const Bytes cut(good.begin(), good.begin() + len);
    const std::string message = error_of([&] { decode(cut); });
    if (every_truncation_must_fail) {
      EXPECT_NE(message, "<no error>") << "truncated to " << len;
    }
  }
  int rejected = 0;
  const uint8_t replacements[] = {0x00, 0xFF, '0', '9', ' ', ',', ')', '\''};
  for (size_t pos = 0; pos < good.size(); ++pos) {
    Bytes bad = good;
    bad[pos] ^= 0xFF;
    rejected += error_of([&] { decode(bad); }) != "<no error>";
    for (uint8_t r : replacements) {
      bad[pos] = r;
      error_of([&] { decode(bad); });
    }
  }
  // Random multi-byte damage.
  Rng rng(11);
  for (int trial = 0; trial < 2000; ++trial) {
    Bytes bad = good;
    const int flips = 1 + static_cast<int>(rng.below(4));
    for (int k = 0; k < flips; ++k) bad[rng.below(bad.size())] = static_cast<uint8_t>(rng.below(256));
    if (rng.bernoulli(0.3)) bad.resize(rng.below(bad.size()));
    error_of([&] { decode(bad); });
  }
  return rejected;
}

}  // namespace

TEST_F(NpzTest, FuzzedStoredNpzOnlyEverThrowsFerError) {
  const std::string p = path("m.npz");
  write_npz(p, {{"conv/kernel", counting_tensor({2, 2, 1, 3}, 0.5f, 0.f)}, {"b", Tensor({3}, 1.f)}},
            {{"architecture", "{\"name\": \"tiny\"}"}});
  const Bytes good = read_file_bytes(p);
  const int rejected = fuzz(good, [](const Bytes& b) { decode_npz(b, "fuzz.npz"); }, true);
  // Every byte of data and most header bytes are covered by CRCs and offsets; only
  // fields nobody reads (timestamps, versions, the local copies of sizes...) pass.
  EXPECT_GT(rejected, static_cast<int>(good.size()) * 2 / 3) << "of " << good.size();
}

TEST_F(NpzTest, FuzzedDeflatedNpzOnlyEverThrowsFerError) {
  fuzz(hex_bytes(kNumpyCompressedHex), [](const Bytes& b) { decode_npz(b, "fuzz.npz"); }, true);
}

TEST_F(NpzTest, FuzzedNpyOnlyEverThrowsFerError) {
  // The .npy parser is behind the CRC in an .npz, so it gets its own fuzzing.
  for (const Bytes& good : {encode_npy(counting_tensor({2, 3}, 1.f, 0.f)), encode_npy(Tensor({2}), true),
                            encode_npy_text(kUnicode),
                            raw_npy("{'descr': '<f8', 'fortran_order': True, 'shape': (2, 2), }", Bytes(32, 1))}) {
    fuzz(good, [](const Bytes& b) { decode_npy(b.data(), b.size(), "fuzz.npy"); }, true);
  }
}

TEST_F(NpzTest, ReadsZip64ExtraFieldsAndEndRecord) {
  const Bytes z = zip64_archive("conv/w.npy", encode_npy(counting_tensor({2, 2}, 1.5f, 0.f)));
  const NpzArrays m = decode_npz(z, "zip64.npz");
  EXPECT_EQ(m.order, std::vector<std::string>{"conv/w"});
  EXPECT_EQ(m.tensor("conv/w").to_vector(), (std::vector<float>{0, 1.5f, 3, 4.5f}));
  fuzz(z, [](const Bytes& b) { decode_npz(b, "fuzz.npz"); }, true);
}

// ---- numpy interoperability ---------------------------------------------------------------

namespace {

const char* kPython = "/usr/bin/python3";

bool have_numpy() {
  return ::access(kPython, X_OK) == 0 &&
         std::system((std::string(kPython) + " -c 'import numpy' >/dev/null 2>&1").c_str()) == 0;
}

// Runs a Python script with arguments; returns its exit status, its output in `output`.
int run_python(const std::string& script_path, const std::string& script, const std::string& args,
               std::string& output) {
  std::ofstream(script_path) << script;
  const std::string command = std::string(kPython) + " " + script_path + " " + args + " 2>&1";
  std::FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) return -1;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, n);
  const int status = ::pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

#define SKIP_WITHOUT_NUMPY() \
  if (!have_numpy()) GTEST_SKIP() << kPython << " with numpy is not available; numpy interop not tested"

}  // namespace

TEST_F(NpzTest, NumpyReadsOurFiles) {
  SKIP_WITHOUT_NUMPY();
  const std::string arch = R"({"name": "mini_xception", "classes": ["angry", "happy"], "note": ")" + kUnicode + "\"}";
  write_npz(path("model.npz"),
            {{"conv1/kernel", counting_tensor({3, 3, 1, 8}, 0.25f, -3.f)},
             {"bn/moving_mean", counting_tensor({8}, -1.f, 0.5f)},
             {"step", Tensor::scalar(7.f)},
             {"empty", Tensor({0, 4})}},
            {{"architecture", arch}, {"note", kUnicode}});
  // float16: the same values written as float32 and as float16; numpy's own rounding
  // (astype(np.float16), round-to-nearest-even) must give exactly our bits.
  std::vector<float> values = {0.1f, 1.f / 3.f, 65519.f, 65520.f, 1e-8f, std::ldexp(1.f, -25),
                               std::ldexp(1.5f, -25), -2.5f, 1e6f, 1025.f, 2049.f, 2051.f};
  Rng rng(5);
  for (int i = 0; i < 500; ++i) values.push_back(static_cast<float>(rng.normal() * std::pow(10.0, rng.uniform(-8, 5))));
  const Tensor v({static_cast<int64_t>(values.size())}, values);
  write_npz(path("f32.npz"), {{"x", v}}, {});
  write_npz(path("f16.npz"), {{"x", v}}, {}, true);
  write_npy(path("single.npy"), counting_tensor({2, 5}, 1.f, 0.f));

  const std::string script = R"PY(
import sys, json, zipfile, numpy as np
d = sys.argv[1]
m = np.load(d + "/model.npz")  # allow_pickle=False by default: no pickles inside
assert list(m.keys()) == ["architecture", "note", "conv1/kernel", "bn/moving_mean", "step", "empty"], list(m.keys())
k = m["conv1/kernel"]
assert k.dtype == np.float32 and k.shape == (3, 3, 1, 8), (k.dtype, k.shape)
assert np.array_equal(k.ravel(), np.arange(72, dtype=np.float32) * 0.25 - 3)
mm = m["bn/moving_mean"]
assert mm.shape == (8,) and mm[0] == 0.5 and mm[7] == -6.5, mm
s = m["step"]
assert s.shape == () and s.dtype == np.float32 and s == 7, s
assert m["empty"].shape == (0, 4) and m["empty"].dtype == np.float32
a = m["architecture"]
assert a.shape == () and a.dtype.kind == "U", a.dtype
arch = json.loads(str(a))
assert arch["name"] == "mini_xception" and arch["classes"] == ["angry", "happy"], arch
assert arch["note"] == "h\u00e9llo \u2713 \U0001F600 \u0395\u03bb", arch["note"]
assert str(m["note"]) == arch["note"]
z = zipfile.ZipFile(d + "/model.npz")
assert z.testzip() is None  # Python agrees with every CRC
for info in z.infolist():
    raw = z.read(info.filename)
    assert raw[:8] == b"\x93NUMPY\x01\x00"
    assert (10 + int.from_bytes(raw[8:10], "little")) % 64 == 0, info.filename
f32 = np.load(d + "/f32.npz")["x"]
f16 = np.load(d + "/f16.npz")["x"]
assert f16.dtype == np.float16 and f32.dtype == np.float32
expected = f32.astype(np.float16)
bad = np.nonzero(expected.view(np.uint16) != f16.view(np.uint16))[0]
assert len(bad) == 0, [(f32[i], expected[i], f16[i]) for i in bad[:5]]
one = np.load(d + "/single.npy")
assert one.dtype == np.float32 and one.shape == (2, 5) and one[1, 4] == 9
print("ok")
)PY";
  std::string output;
  EXPECT_EQ(run_python(path("check.py"), script, dir_, output), 0) << output;
}

TEST_F(NpzTest, WeReadNumpyFiles) {
  SKIP_WITHOUT_NUMPY();
  const std::string script = R"PY(
import sys, numpy as np
d = sys.argv[1]
arrays = {
    "f32": np.arange(12, dtype=np.float32).reshape(3, 4) / 8,
    "f64": np.array([[1.5, -2.25], [1e-3, 3e5]]),
    "f16": np.array([0.1, 65504, -2], dtype=np.float16),
    "i64": np.array([-3, 0, 7, 2**24]),
    "i32": np.array([[-1], [2]], dtype=np.int32),
    "u8": np.arange(250, 256, dtype=np.uint8),
    "flags": np.array([True, False, True]),
    "scalar": np.array(2.5, dtype=np.float32),
    "layer/sub/kernel": -np.ones((2, 1, 1, 3), dtype=np.float32),
    "text": np.array("\u00fcn\u00efcode \u2713 \U0001F600"),
    "labels": np.array(["angry", "happy", "neutral"]),
    "bytes": np.array(b"raw\xffbytes"),
    "fortran": np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)),
    "empty": np.zeros((0, 5), dtype=np.float32),
}
np.savez(d + "/plain.npz", **arrays)
np.savez_compressed(d + "/compressed.npz", **arrays)
np.save(d + "/fortran.npy", np.asfortranarray(np.arange(24, dtype=np.float64).reshape(2, 3, 4)))
for version in [(2, 0), (3, 0)]:
    with open(d + "/v%d.npy" % version[0], "wb") as f:
        np.lib.format.write_array(f, np.arange(5, dtype=np.int16) - 2, version=version)
np.save(d + "/big_endian.npy", np.arange(3, dtype=">f4"))
np.save(d + "/objects.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
print("ok")
)PY";
  std::string output;
  ASSERT_EQ(run_python(path("make.py"), script, dir_, output), 0) << output;

  for (const std::string name : {"plain.npz", "compressed.npz"}) {
    SCOPED_TRACE(name);
    const NpzArrays m = read_npz(path(name));
    EXPECT_EQ(m.order.size(), 14u);
    EXPECT_EQ(m.order.front(), "f32");
    EXPECT_EQ(shape_str(m.tensor("f32").shape()), "[3, 4]");
    EXPECT_EQ(m.tensor("f32").data()[11], 11.f / 8);
    EXPECT_EQ(m.tensor("f64").to_vector(), (std::vector<float>{1.5f, -2.25f, 1e-3f, 3e5f}));
    EXPECT_EQ(m.tensor("f16").to_vector(), (std::vector<float>{0.0999755859375f, 65504.f, -2.f}));
    EXPECT_EQ(m.tensor("i64").to_vector(), (std::vector<float>{-3, 0, 7, 16777216}));
    EXPECT_EQ(shape_str(m.tensor("i32").shape()), "[2, 1]");
    EXPECT_EQ(m.tensor("i32").to_vector(), (std::vector<float>{-1, 2}));
    EXPECT_EQ(m.tensor("u8").to_vector(), (std::vector<float>{250, 251, 252, 253, 254, 255}));
    EXPECT_EQ(m.tensor("flags").to_vector(), (std::vector<float>{1, 0, 1}));
    EXPECT_EQ(m.tensor("scalar").ndim(), 0);
    EXPECT_EQ(m.tensor("scalar").item(), 2.5f);
    EXPECT_EQ(m.tensor("layer/sub/kernel").to_vector(), std::vector<float>(6, -1.f));
    EXPECT_EQ(m.string("text"), "\xc3\xbcn\xc3\xaf" "code \xe2\x9c\x93 \xf0\x9f\x98\x80");
    EXPECT_EQ(m.string_list("labels"), (std::vector<std::string>{"angry", "happy", "neutral"}));
    EXPECT_EQ(m.string("bytes"), "raw\xff" "bytes");
    EXPECT_EQ(m.tensor("fortran").to_vector(), (std::vector<float>{0, 1, 2, 3, 4, 5}));
    EXPECT_EQ(shape_str(m.tensor("empty").shape()), "[0, 5]");
  }
  const Tensor f = read_npy(path("fortran.npy"));
  EXPECT_EQ(shape_str(f.shape()), "[2, 3, 4]");
  for (int i = 0; i < 24; ++i) EXPECT_EQ(f.data()[i], static_cast<float>(i));
  EXPECT_EQ(read_npy(path("v2.npy")).to_vector(), (std::vector<float>{-2, -1, 0, 1, 2}));
  EXPECT_EQ(read_npy(path("v3.npy")).to_vector(), (std::vector<float>{-2, -1, 0, 1, 2}));
  EXPECT_ERROR_HAS(read_npy(path("big_endian.npy")), "big-endian data ('>f4')");
  EXPECT_ERROR_HAS(read_npy(path("objects.npy")), "object arrays");
}
