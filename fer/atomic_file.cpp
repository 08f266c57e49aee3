#include "fer/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "fer/error.h"

namespace fer {

namespace {

std::string directory_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// After the rename, the new directory entry itself must reach the disk too; otherwise a
// crash could forget the rename. Best effort: some file systems refuse fsync on a
// directory, which is not worth failing a save over.
void sync_directory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

void fwrite_all(std::FILE* f, const void* data, size_t size) {
  if (size == 0) return;
  errno = 0;
  if (std::fwrite(data, 1, size, f) != size)
    fail("write failed: ", std::strerror(errno ? errno : EIO));
}

void write_file_atomically(const std::string& path,
                           const std::function<void(std::FILE*)>& write) {
  FER_CHECK(!path.empty(), "cannot write a file with an empty path");
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());

  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail("cannot write '", path, "': cannot create '", tmp, "': ", std::strerror(errno));

  // From here on, every exit path either renames the temporary or removes it.
  try {
    write(f);
    errno = 0;
    if (std::fflush(f) != 0 || std::ferror(f))
      fail("write failed: ", std::strerror(errno ? errno : EIO));
    if (::fsync(::fileno(f)) != 0) fail("fsync failed: ", std::strerror(errno));
  } catch (const Error& e) {
    std::fclose(f);
    std::remove(tmp.c_str());
    // Name the file unless the writer already did.
    const std::string what = e.what();
    if (what.find(path) != std::string::npos) throw;
    fail("cannot write '", path, "': ", what);
  } catch (...) {
    std::fclose(f);
    std::remove(tmp.c_str());
    throw;
  }
  if (std::fclose(f) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    fail("cannot write '", path, "': close failed: ", std::strerror(err));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    fail("cannot write '", path, "': rename from '", tmp, "' failed: ", std::strerror(err));
  }
  sync_directory(directory_of(path));
}

bool file_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) fail("cannot read '", path, "': ", std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail("cannot read '", path, "': not a regular file");

  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) fail("cannot read '", path, "': ", std::strerror(errno));
  std::vector<uint8_t> bytes(static_cast<size_t>(st.st_size));
  const size_t got = bytes.empty() ? 0 : std::fread(bytes.data(), 1, bytes.size(), f);
  const bool error = std::ferror(f) != 0;
  std::fclose(f);
  if (error || got != bytes.size())
    fail("cannot read '", path, "': read ", got, " of ", bytes.size(), " bytes");
  return bytes;
}

}  // namespace fer
