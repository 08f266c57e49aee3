// Errors that name the thing at fault.
//
// Every failure a user can cause (bad file, wrong shape, unknown flag) is reported by
// throwing fer::Error with a message that says what was wrong and where; the CLI catches
// it at the top and prints one line. Programming errors use the same type: a clear
// message beats an abort in a framework people learn from.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace fer {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Builds a message from any streamable pieces: fail("conv1: expected ", 3, " channels").
template <typename... Parts>
[[noreturn]] void fail(Parts&&... parts) {
  std::ostringstream out;
  (out << ... << std::forward<Parts>(parts));
  throw Error(out.str());
}

}  // namespace fer

#define FER_CHECK(cond, ...)        \
  do {                              \
    if (!(cond)) ::fer::fail(__VA_ARGS__); \
  } while (0)
