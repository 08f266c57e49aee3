// Dropout masks that need no storage: whether element i of a tensor is kept is a hash of
// (i, key), so the backward pass recomputes the forward's mask from the key alone.
//
// Inverted dropout with probability `rate` (kernels do no checking; the layer checks
// 0 <= rate < 1 and n < 2^32):
//   forward:   y[i]   = keep(i) ? x[i] * scale : 0          scale = 1 / (1 - rate)
//   backward:  dx[i] += keep(i) ? dy[i] * scale : 0         (ADDS into dx)
//
// keep(i): h = mix(mix(i ^ key_lo) ^ key_hi), with mix Chris Wellons's "lowbias32"
// integer hash (two xor-shift-multiply rounds, a bijection on 32 bits, so no two elements
// of one tensor share a hash); the element is dropped when the top 24 bits of h are below
// round(rate * 2^24). Each element is therefore dropped with probability rate (to within
// 2^-25), masks for different keys look independent, and the mask depends on nothing but
// (key, i): not on the thread count, not on the SIMD width. A training step draws one
// 64-bit key per Dropout layer from the layer's Rng (instead of one random number per
// element, which made the old layer spend more time drawing masks than convolving).
//
// `_ref` is the plain loop; the unsuffixed versions are Google Highway code (all x86 SIMD
// levels, dispatched at run time, kernels/dropout_hwy.cpp) split over OpenMP threads for
// big tensors. They give the same bits.
#pragma once

#include <cstdint>
#include <vector>

namespace fer::kernels {

// The element-wise hash and threshold, shared by both versions (and readable on its own).
inline uint32_t dropout_mix(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}
inline uint32_t dropout_hash(uint64_t key, uint32_t i) {
  return dropout_mix(dropout_mix(i ^ static_cast<uint32_t>(key)) ^
                     static_cast<uint32_t>(key >> 32));
}
// Elements whose hash's top 24 bits are below this are dropped.
inline uint32_t dropout_threshold(float rate) {
  return static_cast<uint32_t>(static_cast<double>(rate) * 16777216.0 + 0.5);
}

void dropout_forward_ref(const float* x, int64_t n, uint64_t key, float rate, float* y);
void dropout_forward(const float* x, int64_t n, uint64_t key, float rate, float* y);
void dropout_backward_ref(const float* dy, int64_t n, uint64_t key, float rate, float* dx);
void dropout_backward(const float* dy, int64_t n, uint64_t key, float rate, float* dx);

// Test hooks (tests/hwy_targets.h): the Highway targets compiled, forcing one, and which
// one the dispatch picks now.
std::vector<int64_t> dropout_hwy_targets();
void dropout_hwy_force_target(int64_t target);
int64_t dropout_hwy_dispatched_target();
const char* dropout_hwy_target_name(int64_t target);

}  // namespace fer::kernels
