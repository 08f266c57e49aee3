#include "fer/npz.h"

#include <set>

#include "fer/atomic_file.h"
#include "fer/error.h"
#include "fer/npy.h"
#include "fer/zip.h"

namespace fer {

namespace {

const std::string kSuffix = ".npy";

// "a, b, c" -- the names a file does have, for "no array 'x'" errors.
std::string list_names(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < 12; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > 12) out += ", ... (" + std::to_string(names.size()) + " in all)";
  return names.empty() ? "nothing" : out;
}

template <typename Map>
const typename Map::mapped_type& lookup(const NpzArrays& npz, const Map& map,
                                        const std::string& name, const char* kind) {
  const auto it = map.find(name);
  if (it != map.end()) return it->second;
  bool exists = false;
  for (const std::string& n : npz.order) exists |= n == name;
  if (exists) fail(npz.path, ": '", name, "' is not a ", kind);
  fail(npz.path, ": no ", kind, " '", name, "' (the file has: ", list_names(npz.order), ")");
}

}  // namespace

const Tensor& NpzArrays::tensor(const std::string& name) const {
  return lookup(*this, tensors, name, "numeric array");
}
const std::string& NpzArrays::string(const std::string& name) const {
  return lookup(*this, strings, name, "0-d text array");
}
const std::vector<std::string>& NpzArrays::string_list(const std::string& name) const {
  return lookup(*this, string_lists, name, "1-d text array");
}

void write_npz(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
               const std::vector<std::pair<std::string, std::string>>& strings, bool float16) {
  // Check everything that can be checked before touching the disk.
  std::set<std::string> names;
  auto check_name = [&](const std::string& name) {
    FER_CHECK(!name.empty(), "cannot write '", path, "': empty array name");
    FER_CHECK(names.insert(name).second, "cannot write '", path, "': duplicate array name '",
              name, "'");
  };
  for (const auto& [name, text] : strings) check_name(name);
  for (const auto& [name, t] : tensors) {
    check_name(name);
    FER_CHECK(t.defined(), "cannot write '", path, "': array '", name, "' is undefined");
  }
  std::vector<std::vector<uint8_t>> texts;
  for (const auto& [name, text] : strings) {
    try {
      texts.push_back(encode_npy_text(text));
    } catch (const Error& e) {
      fail("cannot write '", path, "': string '", name, "': ", e.what());
    }
  }

  // Tensors are encoded one at a time inside the writer, so a large model is never
  // held twice in memory.
  write_file_atomically(path, [&](std::FILE* f) {
    ZipWriter zip(f);
    for (size_t i = 0; i < strings.size(); ++i) zip.add(strings[i].first + kSuffix, texts[i]);
    for (const auto& [name, t] : tensors) zip.add(name + kSuffix, encode_npy(t, float16));
    zip.finish();
  });
}

NpzArrays decode_npz(const std::vector<uint8_t>& bytes, const std::string& path) {
  NpzArrays npz;
  npz.path = path;
  for (const ZipEntry& entry : read_zip(bytes, path)) {
    const std::string where = path + ": entry '" + entry.name + "'";
    const std::string& e = entry.name;
    FER_CHECK(e.size() > kSuffix.size() && e.compare(e.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0,
              where, ": not a .npy array (an .npz holds only NAME.npy entries)");
    const std::string name = e.substr(0, e.size() - kSuffix.size());
    // read_zip already refused duplicate entries; this catches nothing today but keeps
    // the maps and `order` consistent if that ever changes.
    FER_CHECK(!npz.tensors.count(name) && !npz.strings.count(name) && !npz.string_lists.count(name),
              where, ": duplicate array name '", name, "'");

    NpyArray a = decode_npy(entry.data.data(), entry.data.size(), where);
    if (!a.is_text()) {
      npz.tensors.emplace(name, a.tensor);
    } else if (a.shape.empty()) {
      npz.strings.emplace(name, a.strings.at(0));
    } else if (a.shape.size() == 1) {
      npz.string_lists.emplace(name, std::move(a.strings));
    } else {
      fail(where, ": text arrays of rank ", a.shape.size(), " are not supported (only 0-d and 1-d)");
    }
    npz.order.push_back(name);
  }
  return npz;
}

NpzArrays read_npz(const std::string& path) { return decode_npz(read_file_bytes(path), path); }

}  // namespace fer
