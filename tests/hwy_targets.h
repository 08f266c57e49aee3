// Running a test body once per Highway target a kernel file was compiled for, with its
// dynamic dispatch forced to that target (so AVX2/SSE4/scalar code is tested on an
// AVX-512 machine too). Each kernel file exports the same four hooks:
//   <kernel>_hwy_targets(), <kernel>_hwy_target_name(t), <kernel>_hwy_force_target(t)
//   (0 = back to the CPU's best), <kernel>_hwy_dispatched_target().
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace fer::testing {

template <typename Targets, typename Name, typename Force, typename Dispatched, typename Body>
void for_each_hwy_target(const char* kernel, Targets targets_fn, Name name_fn, Force force,
                         Dispatched dispatched, Body body) {
  const std::vector<int64_t> targets = targets_fn();
  ASSERT_FALSE(targets.empty());
  std::string names;
  for (int64_t target : targets) {
    const std::string name = name_fn(target);
    force(target);
    // The mock must really switch the code that runs, or this would test one target
    // several times.
    EXPECT_EQ(dispatched(), target) << name;
    SCOPED_TRACE("Highway target " + name);
    body();
    names += (names.empty() ? "" : ", ") + name;
  }
  force(0);
  std::printf("%s Highway targets tested: %s\n", kernel, names.c_str());
}

}  // namespace fer::testing
