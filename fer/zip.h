// The ZIP container, just enough of it for .npz files (numpy's np.savez is a ZIP archive
// holding one .npy file per array).
//
// A ZIP file is laid out as
//
//   [local header 1][data 1][local header 2][data 2]...[central directory][end record]
//
// Each local header repeats the entry's name and sizes; the central directory lists every
// entry again with the offset of its local header; the end-of-central-directory record,
// at the very end of the file, says where the central directory starts. A reader
// therefore starts from the END: find the end record, walk the central directory, and
// jump to each local header. (ZIP64 extends the 32-bit sizes and offsets with "extra
// fields" and a second end record; np.savez always adds a ZIP64 extra field to its local
// headers, so the reader understands them.)
//
// We write entries STORED (uncompressed): model files are float data that barely
// compresses, and stored entries are trivial to verify. We read STORED and DEFLATED
// (np.savez_compressed), inflating with stb's zlib decoder.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace fer {

// CRC-32 as used by ZIP, PNG and gzip (polynomial 0xEDB88320, reflected). Pass the
// previous result as `crc` to continue over several buffers.
uint32_t crc32(const uint8_t* data, size_t size, uint32_t crc = 0);

// Writes a ZIP archive of STORED entries to an open file, one entry at a time, so only
// one entry has to be in memory. Limits (checked): 65535 entries, 4 GiB in all.
class ZipWriter {
 public:
  explicit ZipWriter(std::FILE* f) : f_(f) {}
  // Appends one entry. Names are stored as given (UTF-8); '/' makes folders in unzip.
  void add(const std::string& name, const std::vector<uint8_t>& data);
  // Writes the central directory and the end record. Call once, after the last add().
  void finish();

 private:
  struct Written {
    std::string name;
    uint32_t crc = 0;
    uint32_t size = 0;
    uint32_t offset = 0;  // of the local header
  };
  std::FILE* f_;
  uint64_t offset_ = 0;  // bytes written so far
  std::vector<Written> entries_;
  bool finished_ = false;
};

struct ZipEntry {
  std::string name;
  std::vector<uint8_t> data;  // uncompressed content
};

// Every entry of the ZIP archive `bytes`, in central-directory order, decompressed and
// CRC-checked. Every offset and size is validated against the buffer, so a damaged file
// gives fer::Error "<path>: ..." (naming the entry where there is one), never a crash.
// Directory entries ("folder/") are skipped. Duplicate names are an error.
std::vector<ZipEntry> read_zip(const std::vector<uint8_t>& bytes, const std::string& path);

}  // namespace fer
