// .npz model files: a ZIP archive (fer/zip.h) of .npy arrays (fer/npy.h), exactly what
// numpy.savez writes and numpy.load reads, so a model can be inspected in Python with
//
//   m = np.load("model.npz")
//   m["conv1/kernel"].shape            # every parameter as its own float32 array
//   json.loads(str(m["architecture"])) # JSON text stored as a 0-d unicode array
//
// An array named "conv1/kernel" is the ZIP entry "conv1/kernel.npy" (numpy strips the
// ".npy" when keying). No pickles: numpy.load's default allow_pickle=False works.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "fer/tensor.h"

namespace fer {

// Everything read from one .npz file.
struct NpzArrays {
  std::string path;                          // where it was read from (for errors)
  std::vector<std::string> order;            // every name, in file order
  std::map<std::string, Tensor> tensors;     // numeric arrays, as float32
  std::map<std::string, std::string> strings;  // 0-d text arrays (UTF-8)
  std::map<std::string, std::vector<std::string>> string_lists;  // 1-d text arrays

  bool has_tensor(const std::string& name) const { return tensors.count(name) != 0; }
  bool has_string(const std::string& name) const { return strings.count(name) != 0; }
  // Each throws fer::Error "<path>: no array 'name' (the file has: ...)" when missing.
  const Tensor& tensor(const std::string& name) const;
  const std::string& string(const std::string& name) const;
  const std::vector<std::string>& string_list(const std::string& name) const;
};

// Writes `tensors` as float32 arrays (float16 '<f2' when `float16`, rounding to nearest
// even) and `strings` as 0-d '<U' text arrays, text first, each in the order given.
// Names must be unique and non-empty. The file is replaced atomically: on any failure
// the previous file at `path` is left untouched (fer/atomic_file.h).
void write_npz(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
               const std::vector<std::pair<std::string, std::string>>& strings,
               bool float16 = false);

// Reads an .npz written by fer, np.savez or np.savez_compressed. Numeric arrays of any
// supported dtype become float32 tensors; text arrays go to `strings` (0-d) or
// `string_lists` (1-d). Any damage gives fer::Error naming the file and the entry.
NpzArrays read_npz(const std::string& path);
// The same from bytes already in memory; `path` only names them in errors.
NpzArrays decode_npz(const std::vector<uint8_t>& bytes, const std::string& path);

}  // namespace fer
