// Splitting an elementwise kernel over n floats into one contiguous chunk per OpenMP
// thread. Used by the Highway activation and optimizer kernels (kernels/activation_hwy.cpp,
// kernels/optimizer_update_hwy.cpp).
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>

namespace fer::kernels {

// Chunk boundaries fall on multiples of this many floats (64 bytes, a cache line, and a
// whole number of vectors on every x86 target), so every chunk but the last is whole
// vectors and only the very end of the array runs the masked tail; with 64-byte aligned
// tensors no two threads write into the same cache line either.
constexpr int64_t kChunkAlign = 16;

// Calls f(begin, end) on contiguous chunks that cover [0, n): one call on the calling
// thread when n < min_parallel (elementwise work is memory bound and starting a parallel
// region costs a few microseconds, what one core needs for tens of thousands of floats)
// or inside an enclosing parallel region; else one chunk per thread. Nothing for n <= 0.
template <class F>
void for_each_chunk(int64_t n, int64_t min_parallel, const F& f) {
  if (n <= 0) return;
  const int threads = (n < min_parallel || omp_in_parallel()) ? 1 : omp_get_max_threads();
  if (threads <= 1) {
    f(int64_t{0}, n);
    return;
  }
  const int64_t units = (n + kChunkAlign - 1) / kChunkAlign;
#pragma omp parallel num_threads(threads)
  {
    const int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
    const int64_t begin = std::min(n, units * t / T * kChunkAlign);
    const int64_t end = std::min(n, units * (t + 1) / T * kChunkAlign);
    if (begin < end) f(begin, end);
  }
}

}  // namespace fer::kernels
