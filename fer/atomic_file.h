// Whole-file writes that never leave a half-written file behind, and the matching
// whole-file read.
//
// Why: a model checkpoint is overwritten every epoch. If the process dies (Ctrl-C, out of
// disk, power cut) in the middle of writing it, a plain fopen("wb") would already have
// truncated the previous good checkpoint. Instead every fer writer goes through
// write_file_atomically():
//
//   1. write everything to "<path>.tmp.<pid>" in the SAME directory (a rename is only
//      atomic within one file system),
//   2. fflush + fsync, so the bytes are on disk before the name points at them,
//   3. rename() the temporary over `path` -- POSIX guarantees a reader sees either the
//      old file or the new one, never a mix.
//
// On any failure the temporary is removed and the error is thrown; `path` is untouched.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace fer {

// Calls write(f) with a FILE* open for binary writing on the temporary file, then
// publishes it as `path`. Anything write() throws is rethrown after cleanup; I/O errors
// are reported as fer::Error "cannot write '<path>': <reason>".
void write_file_atomically(const std::string& path,
                           const std::function<void(std::FILE*)>& write);

// fwrite that throws fer::Error on a short write (disk full, I/O error), so a writer
// stops at the first failure instead of writing on into a broken stream.
void fwrite_all(std::FILE* f, const void* data, size_t size);

// Whether `path` names a regular file (not a directory, not missing).
bool file_exists(const std::string& path);

// The whole content of a regular file. Throws fer::Error "cannot read '<path>': <reason>".
std::vector<uint8_t> read_file_bytes(const std::string& path);

}  // namespace fer
