// Arrays for the kernel benchmarks: 64-byte aligned like fer's tensors (AlignedBuffer), so
// the kernels see the memory layout they see in training. (A std::vector<float> of more
// than 128 KiB comes from glibc's mmap 16 bytes past a page boundary: every 64-byte
// AVX-512 load of it would straddle two cache lines, which no load of a fer tensor does.)
#pragma once

#include <cstdint>

#include "fer/rng.h"
#include "fer/tensor.h"

namespace fer::bench {

using Array = fer::AlignedBuffer;

// n values drawn uniformly from [lo, hi).
inline Array random_values(int64_t n, fer::Rng& rng, double lo = -1.0, double hi = 1.0) {
  Array v(n);
  for (int64_t i = 0; i < n; ++i) v.data()[i] = static_cast<float>(rng.uniform(lo, hi));
  return v;
}

// n copies of `value`.
inline Array filled(int64_t n, float value) {
  Array v(n);
  for (int64_t i = 0; i < n; ++i) v.data()[i] = value;
  return v;
}

}  // namespace fer::bench
