// The .npy format: one numpy array in a file (and, inside a ZIP, one array of an .npz).
//
//   "\x93NUMPY" | major, minor version | header length (2 bytes in v1.0, 4 in v2.0/3.0)
//   | header: a Python dict literal, e.g.
//       {'descr': '<f4', 'fortran_order': False, 'shape': (64, 3, 3, 1), }
//     padded with spaces and a final '\n' so the data starts at a multiple of 64 bytes
//   | the raw elements, row-major (C order) unless fortran_order is True.
//
// 'descr' is the dtype: byte order ('<' little, '>' big, '|' not applicable), kind
// ('f' float, 'i' signed, 'u' unsigned, 'b' bool, 'U' UTF-32 text, 'S' bytes) and size
// in bytes (characters for 'U').
//
// fer writes '<f4' (or '<f2' on request) and 0-d '<U{n}' text. It reads any little-endian
// float, integer or bool array, converting to float32 (integers above 2^24 lose
// precision), and text arrays ('<U', '|S') as UTF-8 strings. Fortran-ordered arrays are
// converted to C order. Big-endian data, object arrays (pickles) and structured dtypes
// are refused with a message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fer/tensor.h"

namespace fer {

// IEEE half precision <-> float. float_to_half rounds to nearest, ties to even (as numpy's
// astype(np.float16) does); values beyond 65504 become infinity, NaN stays NaN.
uint16_t float_to_half(float value);
float half_to_float(uint16_t half);

// A decoded .npy array: numbers or text.
struct NpyArray {
  Shape shape;
  std::string dtype;                 // as stored, e.g. "<f8", "<U12" (for messages)
  Tensor tensor;                     // numeric arrays, converted to float32
  std::vector<std::string> strings;  // text arrays, UTF-8, C order (numel entries)
  bool is_text() const { return !tensor.defined(); }
};

// The bytes of a .npy file (v1.0 header) holding `t` as '<f4', or '<f2' if float16.
std::vector<uint8_t> encode_npy(const Tensor& t, bool float16 = false);
// The bytes of a .npy file holding `utf8` as a 0-d '<U{n}' array, which numpy turns
// back into the same text with str(array). Throws if `utf8` is not valid UTF-8.
std::vector<uint8_t> encode_npy_text(const std::string& utf8);

// Decodes a .npy file held in memory. `where` names it in errors ("m.npz: entry 'a.npy'").
NpyArray decode_npy(const uint8_t* bytes, size_t size, const std::string& where);

// Single-array files, e.g. an input for `fer infer`. read_npy refuses text arrays;
// write_npy replaces `path` atomically (fer/atomic_file.h).
Tensor read_npy(const std::string& path);
void write_npy(const std::string& path, const Tensor& t, bool float16 = false);

}  // namespace fer
