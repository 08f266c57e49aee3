// error_of(f): the message of the fer::Error that f throws, or "(no error)". Any other
// exception escapes and fails the test: bad input must only ever produce fer::Error.
#pragma once

#include <functional>
#include <string>

#include "fer/error.h"

namespace fer::testing {

inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace fer::testing
