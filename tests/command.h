// Running programs from tests: the `fer` binary this build made, and Debian's Python
// (/usr/bin/python3, which has numpy/torch/h5py; the `python3` on PATH may not).
// Tests that need Python skip, with a message, when python_has() says no.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace fer::testing {

inline const char* const kPython = "/usr/bin/python3";

struct CommandResult {
  int status = -1;  // exit status; -1 when the command could not run or was killed
  std::string out;  // what it printed on stdout (add "2>&1" to the command for stderr too)
};

// Runs `command` through the shell and captures its standard output.
inline CommandResult run_command(const std::string& command) {
  CommandResult r;
  FILE* p = popen(command.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

inline std::string fer_binary() { return std::string(FER_BINARY_DIR) + "/fer"; }

// `fer ARGS`, stdout and stderr together.
inline CommandResult run_fer(const std::string& args) {
  return run_command(fer_binary() + " " + args + " 2>&1");
}

// True when kPython imports every module of `modules` ("torch, numpy").
inline bool python_has(const std::string& modules) {
  return std::system((std::string(kPython) + " -c 'import " + modules + "' >/dev/null 2>&1").c_str()) == 0;
}

}  // namespace fer::testing
