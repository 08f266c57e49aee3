#include "fer/zip.h"

#include <stb_image.h>  // stbi_zlib_decode_noheader_buffer (implementation in libstb)

#include <array>
#include <climits>
#include <cstring>
#include <set>

#include "fer/atomic_file.h"
#include "fer/error.h"

namespace fer {

// ---- CRC-32 -----------------------------------------------------------------------------

namespace {

// The byte-at-a-time table: table[b] is the CRC register's update for input byte b.
std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t b = 0; b < 256; ++b) {
    uint32_t c = b;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[b] = c;
  }
  return table;
}

}  // namespace

uint32_t crc32(const uint8_t* data, size_t size, uint32_t crc) {
  static const std::array<uint32_t, 256> table = make_crc_table();
  // The register starts at all ones and the result is inverted (part of the standard),
  // so continuing from a previous result first undoes that final inversion.
  uint32_t c = crc ^ 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) c = table[(c ^ data[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

// ---- little-endian fields ---------------------------------------------------------------

namespace {

// ZIP record signatures ("PK" followed by two bytes).
constexpr uint32_t kLocalHeaderSig = 0x04034b50;
constexpr uint32_t kCentralHeaderSig = 0x02014b50;
constexpr uint32_t kEndRecordSig = 0x06054b50;
constexpr uint32_t kZip64EndRecordSig = 0x06064b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50;
constexpr uint16_t kZip64ExtraId = 0x0001;

constexpr size_t kLocalHeaderSize = 30;
constexpr size_t kCentralHeaderSize = 46;
constexpr size_t kEndRecordSize = 22;
constexpr size_t kZip64LocatorSize = 20;
constexpr size_t kZip64EndRecordSize = 56;

void put16(std::vector<uint8_t>& out, uint32_t v) {
  out.push_back(v & 0xFF);
  out.push_back((v >> 8) & 0xFF);
}
void put32(std::vector<uint8_t>& out, uint32_t v) {
  put16(out, v & 0xFFFF);
  put16(out, v >> 16);
}
// Readers: the caller has checked that the bytes exist.
uint32_t get16(const uint8_t* p) { return p[0] | (p[1] << 8); }
uint32_t get32(const uint8_t* p) { return get16(p) | (static_cast<uint32_t>(get16(p + 2)) << 16); }
uint64_t get64(const uint8_t* p) { return get32(p) | (static_cast<uint64_t>(get32(p + 4)) << 32); }

// Version 2.0 of the ZIP spec is enough for stored entries and folder names; "made by"
// UNIX (3) so that unzip reads the external attributes as Unix permissions (rw-r--r--).
constexpr uint32_t kVersionNeeded = 20;
constexpr uint32_t kVersionMadeBy = (3 << 8) | 20;
constexpr uint32_t kUnixFileMode = 0100644u << 16;
// Flag bit 11: the name is UTF-8. Set only when it matters (non-ASCII), as Python does.
uint32_t name_flags(const std::string& name) {
  for (unsigned char c : name)
    if (c >= 0x80) return 0x0800;
  return 0;
}
// A fixed timestamp (1980-01-01 00:00, the earliest DOS date) rather than "now", so that
// saving the same model twice gives byte-identical files.
constexpr uint32_t kDosTime = 0;
constexpr uint32_t kDosDate = (0 << 9) | (1 << 5) | 1;

}  // namespace

// ---- writer -----------------------------------------------------------------------------

void ZipWriter::add(const std::string& name, const std::vector<uint8_t>& data) {
  FER_CHECK(!finished_, "ZipWriter: add() after finish()");
  FER_CHECK(!name.empty() && name.size() <= 0xFFFF, "ZIP entry name of ", name.size(),
            " bytes (must be 1..65535)");
  FER_CHECK(entries_.size() < 0xFFFF, "more than 65534 entries in one ZIP archive");
  const uint64_t end = offset_ + kLocalHeaderSize + name.size() + data.size();
  FER_CHECK(end < 0xFFFFFFFFull, "ZIP archive larger than 4 GiB at entry '", name,
            "' (ZIP64 writing is not supported)");

  Written e;
  e.name = name;
  e.crc = crc32(data.data(), data.size());
  e.size = static_cast<uint32_t>(data.size());
  e.offset = static_cast<uint32_t>(offset_);

  std::vector<uint8_t> h;
  put32(h, kLocalHeaderSig);
  put16(h, kVersionNeeded);
  put16(h, name_flags(name));
  put16(h, 0);  // method 0: stored
  put16(h, kDosTime);
  put16(h, kDosDate);
  put32(h, e.crc);
  put32(h, e.size);  // compressed size (= size, stored)
  put32(h, e.size);  // uncompressed size
  put16(h, static_cast<uint32_t>(name.size()));
  put16(h, 0);  // no extra field
  h.insert(h.end(), name.begin(), name.end());
  fwrite_all(f_, h.data(), h.size());
  fwrite_all(f_, data.data(), data.size());
  offset_ = end;
  entries_.push_back(std::move(e));
}

void ZipWriter::finish() {
  FER_CHECK(!finished_, "ZipWriter: finish() called twice");
  finished_ = true;
  std::vector<uint8_t> cd;
  for (const Written& e : entries_) {
    put32(cd, kCentralHeaderSig);
    put16(cd, kVersionMadeBy);
    put16(cd, kVersionNeeded);
    put16(cd, name_flags(e.name));
    put16(cd, 0);  // stored
    put16(cd, kDosTime);
    put16(cd, kDosDate);
    put32(cd, e.crc);
    put32(cd, e.size);
    put32(cd, e.size);
    put16(cd, static_cast<uint32_t>(e.name.size()));
    put16(cd, 0);  // extra field length
    put16(cd, 0);  // comment length
    put16(cd, 0);  // disk number
    put16(cd, 0);  // internal attributes
    put32(cd, kUnixFileMode);
    put32(cd, e.offset);
    cd.insert(cd.end(), e.name.begin(), e.name.end());
  }
  FER_CHECK(offset_ + cd.size() < 0xFFFFFFFFull,
            "ZIP archive larger than 4 GiB (ZIP64 writing is not supported)");
  std::vector<uint8_t> end;
  put32(end, kEndRecordSig);
  put16(end, 0);  // this disk
  put16(end, 0);  // disk where the central directory starts
  put16(end, static_cast<uint32_t>(entries_.size()));  // entries on this disk
  put16(end, static_cast<uint32_t>(entries_.size()));  // entries in all
  put32(end, static_cast<uint32_t>(cd.size()));
  put32(end, static_cast<uint32_t>(offset_));  // where the central directory starts
  put16(end, 0);  // comment length
  fwrite_all(f_, cd.data(), cd.size());
  fwrite_all(f_, end.data(), end.size());
  offset_ += cd.size() + end.size();
}

// ---- reader -----------------------------------------------------------------------------

namespace {

// One central-directory record, with the ZIP64 extra field already applied.
struct CentralEntry {
  std::string name;
  uint32_t flags = 0;
  uint32_t method = 0;
  uint32_t crc = 0;
  uint64_t compressed = 0;
  uint64_t uncompressed = 0;
  uint64_t local_offset = 0;
};

// "[start, start + size) lies inside [0, limit)", without overflow.
bool fits(uint64_t start, uint64_t size, uint64_t limit) {
  return start <= limit && size <= limit - start;
}

// Where the end-of-central-directory record starts, or -1. It is the last 22 bytes of
// the file unless the archive has a comment (up to 65535 bytes) after it.
int64_t find_end_record(const std::vector<uint8_t>& bytes) {
  const uint64_t n = bytes.size();
  if (n < kEndRecordSize) return -1;
  const uint64_t lowest = n > kEndRecordSize + 0xFFFF ? n - kEndRecordSize - 0xFFFF : 0;
  for (uint64_t p = n - kEndRecordSize + 1; p-- > lowest;) {
    if (get32(&bytes[p]) != kEndRecordSig) continue;
    const uint64_t comment = get16(&bytes[p + 20]);
    if (p + kEndRecordSize + comment <= n) return static_cast<int64_t>(p);
  }
  return -1;
}

// Applies a ZIP64 extended-information extra field: each 32-bit field that holds
// 0xFFFFFFFF ("see ZIP64") is replaced by the next 64-bit value, in this fixed order.
void apply_zip64_extra(const uint8_t* extra, size_t extra_len, CentralEntry& e,
                       const std::string& where) {
  size_t p = 0;
  while (p + 4 <= extra_len) {
    const uint32_t id = get16(extra + p);
    const size_t size = get16(extra + p + 2);
    FER_CHECK(p + 4 + size <= extra_len, where, ": extra field runs past its record");
    if (id == kZip64ExtraId) {
      const uint8_t* f = extra + p + 4;
      size_t used = 0;
      auto take = [&](uint64_t& field) {
        if (field != 0xFFFFFFFFu) return;
        FER_CHECK(used + 8 <= size, where, ": ZIP64 extra field too short");
        field = get64(f + used);
        used += 8;
      };
      take(e.uncompressed);
      take(e.compressed);
      take(e.local_offset);
    }
    p += 4 + size;
  }
}

std::vector<uint8_t> extract(const std::vector<uint8_t>& bytes, const CentralEntry& e,
                             const std::string& where) {
  const uint64_t n = bytes.size();
  FER_CHECK(fits(e.local_offset, kLocalHeaderSize, n), where,
            ": local header offset ", e.local_offset, " is past the end of the file (",
            n, " bytes; truncated?)");
  const uint8_t* h = &bytes[e.local_offset];
  FER_CHECK(get32(h) == kLocalHeaderSig, where, ": no local header at offset ",
            e.local_offset, " (damaged file)");
  // The local header's own sizes may be 0 or 0xFFFFFFFF (data descriptor, ZIP64);
  // the central directory's are authoritative. We only need its variable-length parts.
  const uint64_t start = e.local_offset + kLocalHeaderSize + get16(h + 26) + get16(h + 28);
  FER_CHECK(fits(start, e.compressed, n), where, ": data (", e.compressed,
            " bytes) runs past the end of the file (truncated?)");
  const uint8_t* data = bytes.data() + start;

  std::vector<uint8_t> out;
  if (e.method == 0) {  // stored
    FER_CHECK(e.compressed == e.uncompressed, where, ": stored entry with compressed size ",
              e.compressed, " != size ", e.uncompressed);
    out.assign(data, data + e.compressed);
  } else {  // deflate (method 8)
    FER_CHECK(e.compressed <= INT_MAX - 8 && e.uncompressed <= INT_MAX, where,
              ": compressed entries over 2 GiB are not supported");
    // Deflate cannot expand data by more than ~1032:1; a larger claim is a damaged
    // header, and trusting it could allocate gigabytes.
    FER_CHECK(e.uncompressed <= e.compressed * 1032 + 1024, where, ": size ",
              e.uncompressed, " is impossible for ", e.compressed, " compressed bytes");
    // stb_image 2.27 (Debian 12) refuses to decode a Huffman code when fewer than 16
    // bits of input remain, even though the stream's last codes can be shorter: valid
    // data then fails with "bad huffman code". A few zero bytes after the stream fix
    // that; the decoder stops at the final block and never uses them as data (and the
    // CRC below still vouches for the result).
    std::vector<char> input(e.compressed + 8, 0);
    if (e.compressed) std::memcpy(input.data(), data, e.compressed);
    out.resize(e.uncompressed);
    char dummy = 0;  // stb wants a valid pointer even for an empty output
    char* dst = out.empty() ? &dummy : reinterpret_cast<char*>(out.data());
    const int got = stbi_zlib_decode_noheader_buffer(dst, static_cast<int>(out.size()),
                                                     input.data(), static_cast<int>(input.size()));
    FER_CHECK(got >= 0 && static_cast<uint64_t>(got) == e.uncompressed, where,
              ": corrupt deflate data (", got < 0 ? "decoder error" : "wrong size", ")");
  }
  const uint32_t crc = crc32(out.data(), out.size());
  FER_CHECK(crc == e.crc, where, ": CRC-32 mismatch (stored ", std::hex, e.crc,
            ", computed ", crc, std::dec, "): the entry is corrupt");
  return out;
}

}  // namespace

std::vector<ZipEntry> read_zip(const std::vector<uint8_t>& bytes, const std::string& path) {
  const uint64_t n = bytes.size();
  const int64_t end_pos = find_end_record(bytes);
  if (end_pos < 0) {
    if (n >= 6 && bytes[0] == 0x93 && std::string(bytes.begin() + 1, bytes.begin() + 6) == "NUMPY")
      fail(path, ": this is a single .npy array, not an .npz archive");
    if (n >= 4 && get32(bytes.data()) == kLocalHeaderSig)
      fail(path, ": damaged or truncated ZIP archive (no end-of-central-directory record)");
    fail(path, ": not a ZIP/.npz archive (no end-of-central-directory record)");
  }
  const uint8_t* end = &bytes[end_pos];
  uint64_t count = get16(end + 10);
  uint64_t cd_size = get32(end + 12);
  uint64_t cd_offset = get32(end + 16);
  uint32_t disk = get16(end + 4), cd_disk = get16(end + 6);

  // ZIP64: the 16/32-bit fields saturate and a locator just before the end record points
  // at a ZIP64 end record with the 64-bit values.
  if (count == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_offset == 0xFFFFFFFFu) {
    const int64_t loc = end_pos - static_cast<int64_t>(kZip64LocatorSize);
    if (loc >= 0 && get32(&bytes[loc]) == kZip64LocatorSig) {
      const uint64_t z = get64(&bytes[loc + 8]);
      FER_CHECK(fits(z, kZip64EndRecordSize, static_cast<uint64_t>(loc)) &&
                    get32(&bytes[z]) == kZip64EndRecordSig,
                path, ": damaged ZIP64 end record");
      disk = get32(&bytes[z + 16]);
      cd_disk = get32(&bytes[z + 20]);
      count = get64(&bytes[z + 32]);
      cd_size = get64(&bytes[z + 40]);
      cd_offset = get64(&bytes[z + 48]);
    }
  }
  FER_CHECK(disk == 0 && cd_disk == 0, path, ": multi-part ZIP archives are not supported");
  FER_CHECK(fits(cd_offset, cd_size, static_cast<uint64_t>(end_pos)), path,
            ": central directory (offset ", cd_offset, ", ", cd_size,
            " bytes) lies outside the file (truncated?)");
  FER_CHECK(count <= cd_size / kCentralHeaderSize, path, ": central directory of ", cd_size,
            " bytes cannot hold ", count, " entries (damaged file)");

  std::vector<ZipEntry> entries;
  std::set<std::string> seen;
  const uint64_t cd_end = cd_offset + cd_size;
  uint64_t p = cd_offset;
  for (uint64_t i = 0; i < count; ++i) {
    FER_CHECK(fits(p, kCentralHeaderSize, cd_end) && get32(&bytes[p]) == kCentralHeaderSig,
              path, ": damaged central directory at entry ", i);
    const uint8_t* c = &bytes[p];
    const uint64_t name_len = get16(c + 28), extra_len = get16(c + 30),
                   comment_len = get16(c + 32);
    FER_CHECK(fits(p + kCentralHeaderSize, name_len + extra_len + comment_len, cd_end), path,
              ": damaged central directory at entry ", i);
    CentralEntry e;
    e.flags = get16(c + 8);
    e.method = get16(c + 10);
    e.crc = get32(c + 16);
    e.compressed = get32(c + 20);
    e.uncompressed = get32(c + 24);
    e.local_offset = get32(c + 42);
    e.name.assign(reinterpret_cast<const char*>(c + kCentralHeaderSize), name_len);
    const std::string where = path + ": entry '" + e.name + "'";
    apply_zip64_extra(c + kCentralHeaderSize + name_len, extra_len, e, where);
    p += kCentralHeaderSize + name_len + extra_len + comment_len;

    FER_CHECK(!(e.flags & 1), where, ": encrypted entries are not supported");
    FER_CHECK(e.method == 0 || e.method == 8, where, ": compression method ", e.method,
              " is not supported (only stored and deflate)");
    FER_CHECK(seen.insert(e.name).second, where, ": duplicate entry name");
    if (!e.name.empty() && e.name.back() == '/' && e.uncompressed == 0) continue;  // folder
    entries.push_back({e.name, extract(bytes, e, where)});
  }
  return entries;
}

}  // namespace fer
