// Batch normalization (kernels/batchnorm.h) in Google Highway, with an optional fused
// ReLU/ReLU6, compiled for every x86 SIMD level and dispatched at run time.
//
// x is [rows, C] with channels innermost, so one vector holds N consecutive channels of
// one row and every per-channel constant (mean, scale, ...) is one load. With few
// channels (MobileNet's 24, 48) a row is only a vector or two, the last one partial, so
// the kernels step through "periods" of R rows whose R * C floats are whole vectors (see
// Period below); the last, partial group of channels of the few rows left over runs the
// same code with masked loads and stores. OpenMP splits the rows into one contiguous
// range per thread.
//
// The work is memory bound, so what matters is how many times each big array crosses
// the memory bus:
//   forward, training:  read x (statistics), read x + write y (normalize)
//   forward, inference: read x + write y
//   backward, training: read x, dy (the two sums), then read x, dy and write dx
//   backward, inference: one pass: read x, dy [, y], read+write dx, sums on the way
// where [, y] is read only with a fused activation (it masks dy). The training backward
// never reads y: it recomputes the activation's input from x with the forward's own
// instructions (MaskFromX below), which saves two of seven passes over memory. The
// unfused pair BatchNorm -> ReLU costs an extra write and read of the intermediate, plus
// the ReLU's own gradient buffer (zeroed, written, read back).
//
// Numerics: a float sum over a whole column (up to ~150K rows in MobileNet's first layer)
// would lose digits, and E[x^2] - E[x]^2 loses all of them when |mean| >> std. So sums run
// in float only within blocks of at most 256 rows (in registers, vectorized over channels)
// and each block's sums are added into per-thread double accumulators. The variance is
// blocked two-pass: each block (small enough to stay in the L1/L2 cache) is read for its
// mean, read again for the squared deviations from that mean, and merged into the
// thread's (mean, M2) with Chan et al.'s pairwise update, in double. The threads' results
// are merged in thread order, so a given thread count always gives the same bits.
#include "kernels/batchnorm.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/batchnorm_hwy.cpp"
#include <hwy/foreach_target.h>  // re-includes this file once per SIMD target

#include <hwy/aligned_allocator.h>
#include <hwy/highway.h>
#include "kernels/hwy_group-inl.h"

// Target-independent definitions, seen once.
#ifndef FER_KERNELS_BATCHNORM_HWY_SHARED
#define FER_KERNELS_BATCHNORM_HWY_SHARED
namespace fer::kernels::bn_detail {

// Rows per block of the float sums: about 4096 floats (16 KB, so the statistics' second
// read of a block hits the L1/L2 cache), at least 8 rows, and at most 256 (a float sum of
// 256 terms keeps ~6 digits even in the worst case).
inline int64_t block_rows(int64_t C) {
  return std::min<int64_t>(256, std::max<int64_t>(8, 4096 / C));
}

// Scratch arrays get this many floats past their width, so a full-vector store of the
// last (partial) group stays inside them (16 lanes is the widest x86 target).
constexpr int64_t kPad = 64;

// The length of each per-thread scratch array: a period (see Period below) of any target
// here, whose vectors have at most 16 lanes, is lcm(C, N) <= lcm(C, 16) floats.
inline int64_t scratch_cap(int64_t C) {
  int64_t a = C, b = 16;
  while (b) {
    const int64_t t = a % b;
    a = b;
    b = t;
  }
  return C / a * 16 + kPad;
}
// Per thread: 5 arrays of `cap` floats (block sums, replicated constants) and 4 of
// doubles. 64-byte aligned (cap is a multiple of 16): a vector load from a merely 16-byte
// aligned constant array splits a cache line every time, which measurably slowed the
// streaming loops here.
struct Scratch {
  int64_t cap = 0;
  hwy::AlignedFreeUniquePtr<float[]> f;
  hwy::AlignedFreeUniquePtr<double[]> d;
};

// The calling thread's scratch, kept between calls (OpenMP reuses its threads, and a
// training step makes dozens of these calls on small tensors, where allocating would
// show) and grown when a C needs more. A larger cap than C needs serves as well.
inline Scratch& thread_scratch(int64_t C) {
  thread_local Scratch s;
  const int64_t cap = scratch_cap(C);
  if (s.cap < cap) {
    s.f = hwy::AllocateAligned<float>(5 * cap);
    s.d = hwy::AllocateAligned<double>(4 * cap);
    s.cap = cap;
  }
  return s;
}

// Chan et al.'s update: merges a part with n_b rows, mean mean_b and sum of squared
// deviations m2_b into the running (n_a rows, *mean, *m2). Exact in exact arithmetic,
// and it never subtracts two large sums of squares.
inline void chan_merge(double n_a, double n_b, double mean_b, double m2_b, double* mean,
                       double* m2) {
  if (n_b == 0) return;
  if (n_a == 0) {
    *mean = mean_b;
    *m2 = m2_b;
    return;
  }
  const double n = n_a + n_b, delta = mean_b - *mean;
  *mean += delta * (n_b / n);
  *m2 += m2_b + delta * delta * (n_a * n_b / n);
}

}  // namespace fer::kernels::bn_detail
#endif  // FER_KERNELS_BATCHNORM_HWY_SHARED

HWY_BEFORE_NAMESPACE();
namespace fer::kernels::HWY_NAMESPACE {
namespace bn_hwy {
namespace hn = hwy::HWY_NAMESPACE;
using bn_detail::block_rows;

using D = hn::ScalableTag<float>;
using V = hn::Vec<D>;
using M = hn::Mask<D>;

// One group of channels (kernels/hwy_group-inl.h).
using simd::Group;

// The vector groups of a row of `width` columns: full vectors for [0, full_end), then a
// tail group if width is not a multiple of the vector width. each(f) calls f(group, c)
// for every group, c being its first column.
struct Groups {
  D d;
  int64_t width, full_end;
  Group<false> full;
  Group<true> tail;
  explicit Groups(int64_t w) : width(w) {
    const int64_t N = static_cast<int64_t>(hn::Lanes(d));
    full_end = width / N * N;
    full = Group<false>{d, hn::FirstN(d, N), size_t(N)};
    tail = Group<true>{d, hn::FirstN(d, size_t(width - full_end)), size_t(width - full_end)};
  }
  template <class F>
  HWY_INLINE void each(const F& f) const {
    const int64_t N = static_cast<int64_t>(hn::Lanes(d));
    for (int64_t c = 0; c < full_end; c += N) f(full, c);
    if (full_end < width) f(tail, full_end);
  }
};

// Rows of a few channels (24, 17, ...) would be mostly tail group and loop overhead, so
// the kernels walk `periods` instead: R consecutive rows, with R the smallest count that
// makes W = R * C floats a whole number of vectors. Column j of a period is channel
// j % C, so with every per-channel constant repeated R times ("replicated") a period is
// one row of W columns that has no tail group, and a span of periods is a [count, W]
// matrix like the [rows, C] one. The rows left after the last whole period (fewer than
// R) run as a [rows, C] span with the tail group. When C is a multiple of the vector
// width, R = 1 and nothing changes.
struct Period {
  int64_t R, W;
  explicit Period(int64_t C) {
    const int64_t N = static_cast<int64_t>(hn::Lanes(D()));
    int64_t a = C, b = N;  // gcd(C, N)
    while (b) {
      const int64_t t = a % b;
      a = b;
      b = t;
    }
    R = N / a;
    W = R * C;
  }
};

// dst[j] = src[j % C] for j < W (a multiple of C), as W / C copies.
HWY_INLINE void Replicate(const float* src, int64_t C, int64_t W, float* dst) {
  for (int64_t j = 0; j < W; j += C) std::copy(src, src + C, dst + j);
}

// Adds the per-column sums of a period (W columns) into per-channel sums (C).
HWY_INLINE void FoldPeriod(const double* part, int64_t C, int64_t W, double* out) {
  for (int64_t j = 0; j < W; j += C)
    for (int64_t c = 0; c < C; ++c) out[c] += part[j + c];
}

// The activation, with exactly relu_forward's and relu6_forward's selects
// (kernels/activation.cpp), so that fusing changes no bit, NaN and -0 included:
// ReLU: v = x > 0 ? x : 0 (NaN and -0 become +0); ReLU6: v < 0 ? 0 : v, then v > 6 ? 6 : v
// (NaN and -0 pass through, as in PyTorch's relu6).
template <Act A>
HWY_INLINE V Activate(D d, V v) {
  const V zero = hn::Zero(d);
  if constexpr (A == Act::kRelu) {
    v = hn::IfThenElse(hn::Gt(v, zero), v, zero);
  } else if constexpr (A == Act::kRelu6) {
    const V six = hn::Set(d, 6.f);
    v = hn::IfThenZeroElse(hn::Lt(v, zero), v);
    v = hn::IfThenElse(hn::Gt(v, six), six, v);
  }
  return v;
}

// dy masked by the activation's derivative, read from its output y: relu_backward's
// y > 0 and relu6_backward's 0 < y < 6. Element i of the arrays; y is read only when
// there is an activation (it is nullptr otherwise).
template <Act A, bool kTail>
HWY_INLINE V MaskedDy(const Group<kTail>& g, const float* dy, const float* y, int64_t i) {
  const V v = g.Load(dy + i);
  if constexpr (A == Act::kNone) {
    return v;
  } else {
    const V out = g.Load(y + i);
    M pass = hn::Gt(out, hn::Zero(g.d));
    if constexpr (A == Act::kRelu6) pass = hn::And(pass, hn::Lt(out, hn::Set(g.d, 6.f)));
    return hn::IfThenElseZero(pass, v);
  }
}

// The training backward's mask without y: the activation's input v = (x - mean) * scale +
// beta, from xd = x - mean with the very instructions of the training forward
// (AffineSpan: MulAdd(Sub(x, center), scale, shift), scale = gamma * inv_std in float),
// so v, and the mask, are the forward's to the bit. v > 0 (and v < 6 for ReLU6) is the
// same test as MaskedDy's on y = act(v): NaN fails both, and ReLU6 maps v >= 6 to 6.
template <Act A>
HWY_INLINE V MaskFromX(D d, V dy, V xd, V scale, V beta) {
  if constexpr (A == Act::kNone) {
    return dy;
  } else {
    const V v = hn::MulAdd(xd, scale, beta);
    M pass = hn::Gt(v, hn::Zero(d));
    if constexpr (A == Act::kRelu6) pass = hn::And(pass, hn::Lt(v, hn::Set(d, 6.f)));
    return hn::IfThenElseZero(pass, dy);
  }
}

// ---- Spans: `count` rows of `width` columns (a [rows, C] block, or periods) -------------

// Mean and M2 (sum of squared deviations from the mean) of every column, in double.
// scratch: 3 arrays of cap >= width + kPad floats.
void StatsSpan(const float* x, int64_t width, int64_t count, double* mean, double* m2,
               float* scratch, int64_t cap) {
  const Groups groups(width);
  const int64_t stride = cap;
  float* bmean = scratch;             // the block's float mean (a shift, corrected below)
  float* bdev = scratch + stride;     // sum of (x - bmean)
  float* bsq = scratch + 2 * stride;  // sum of (x - bmean)^2
  const int64_t B = block_rows(width);
  double done = 0;  // rows merged so far
  for (int64_t r0 = 0; r0 < count; r0 += B) {
    const int64_t nb = std::min(B, count - r0);
    const float* xb = x + r0 * width;
    groups.each([&](const auto& g, int64_t c) {
      const float* p = xb + c;
      // Two accumulator chains hide the latency of the adds.
      V s0 = hn::Zero(g.d), s1 = hn::Zero(g.d);
      int64_t r = 0;
      for (; r + 2 <= nb; r += 2) {
        s0 = hn::Add(s0, g.Load(p + r * width));
        s1 = hn::Add(s1, g.Load(p + (r + 1) * width));
      }
      if (r < nb) s0 = hn::Add(s0, g.Load(p + r * width));
      const V m = hn::Div(hn::Add(s0, s1), hn::Set(g.d, static_cast<float>(nb)));
      // The block again, now from the cache: deviations from its own mean are small, so
      // their squares lose nothing to cancellation.
      V d0 = hn::Zero(g.d), d1 = hn::Zero(g.d), q0 = hn::Zero(g.d), q1 = hn::Zero(g.d);
      for (r = 0; r + 2 <= nb; r += 2) {
        const V a = hn::Sub(g.Load(p + r * width), m);
        const V b = hn::Sub(g.Load(p + (r + 1) * width), m);
        d0 = hn::Add(d0, a);
        d1 = hn::Add(d1, b);
        q0 = hn::MulAdd(a, a, q0);
        q1 = hn::MulAdd(b, b, q1);
      }
      if (r < nb) {
        const V a = hn::Sub(g.Load(p + r * width), m);
        d0 = hn::Add(d0, a);
        q0 = hn::MulAdd(a, a, q0);
      }
      hn::StoreU(m, g.d, bmean + c);  // scratch is padded: full stores are safe
      hn::StoreU(hn::Add(d0, d1), g.d, bdev + c);
      hn::StoreU(hn::Add(q0, q1), g.d, bsq + c);
    });
    // The block's exact mean is bmean + bdev / nb, and its M2 is bsq - bdev^2 / nb
    // (bmean is the float-rounded mean, so bdev is tiny but not zero).
    const double n_b = static_cast<double>(nb);
    for (int64_t c = 0; c < width; ++c) {
      const double dev = bdev[c];
      const double m2_b = std::max(0.0, double(bsq[c]) - dev * dev / n_b);
      bn_detail::chan_merge(done, n_b, double(bmean[c]) + dev / n_b, m2_b, &mean[c], &m2[c]);
    }
    done += n_b;
  }
}

// y = act((x - center) * scale + shift), per column.
template <Act A>
void AffineSpan(const float* x, const float* center, const float* scale, const float* shift,
                int64_t width, int64_t count, float* y) {
  const Groups groups(width);
  for (int64_t r = 0; r < count; ++r) {
    const float* xr = x + r * width;
    float* yr = y + r * width;
    groups.each([&](const auto& g, int64_t c) {
      const V v = hn::MulAdd(hn::Sub(g.Load(xr + c), g.Load(center + c)), g.Load(scale + c),
                             g.Load(shift + c));
      g.Store(Activate<A>(g.d, v), yr + c);
    });
  }
}

// Adds sum(dz) and sum(dz * (x - mean)) per column into sdy and sdyd (double), where dz
// is dy masked by the activation (MaskFromX: scale and beta per column, unused without
// one). scratch: 2 arrays of cap >= width + kPad floats.
template <Act A>
void DySumsSpan(const float* x, const float* dy, const float* mean, const float* scale,
                const float* beta, int64_t width, int64_t count, double* sdy, double* sdyd,
                float* scratch, int64_t cap) {
  const Groups groups(width);
  float* bdy = scratch;
  float* bdyd = scratch + cap;
  const int64_t B = block_rows(width);
  for (int64_t r0 = 0; r0 < count; r0 += B) {
    const int64_t nb = std::min(B, count - r0);
    const int64_t o = r0 * width;
    groups.each([&](const auto& g, int64_t c) {
      const V mu = g.Load(mean + c);
      const V sc = A == Act::kNone ? mu : g.Load(scale + c);
      const V be = A == Act::kNone ? mu : g.Load(beta + c);
      V a0 = hn::Zero(g.d), a1 = hn::Zero(g.d), b0 = hn::Zero(g.d), b1 = hn::Zero(g.d);
      int64_t r = 0;
      for (; r + 2 <= nb; r += 2) {
        const int64_t i = o + r * width + c, j = i + width;
        const V xd0 = hn::Sub(g.Load(x + i), mu), xd1 = hn::Sub(g.Load(x + j), mu);
        const V dz0 = MaskFromX<A>(g.d, g.Load(dy + i), xd0, sc, be);
        const V dz1 = MaskFromX<A>(g.d, g.Load(dy + j), xd1, sc, be);
        a0 = hn::Add(a0, dz0);
        a1 = hn::Add(a1, dz1);
        b0 = hn::MulAdd(dz0, xd0, b0);
        b1 = hn::MulAdd(dz1, xd1, b1);
      }
      if (r < nb) {
        const int64_t i = o + r * width + c;
        const V xd0 = hn::Sub(g.Load(x + i), mu);
        const V dz0 = MaskFromX<A>(g.d, g.Load(dy + i), xd0, sc, be);
        a0 = hn::Add(a0, dz0);
        b0 = hn::MulAdd(dz0, xd0, b0);
      }
      hn::StoreU(hn::Add(a0, a1), g.d, bdy + c);
      hn::StoreU(hn::Add(b0, b1), g.d, bdyd + c);
    });
    for (int64_t c = 0; c < width; ++c) {
      sdy[c] += bdy[c];
      sdyd[c] += bdyd[c];
    }
  }
}

// dx += k * (dz - a - (x - mean) * binv): the training-mode dx with k = gamma * inv_std
// (also the forward's scale, for MaskFromX), a = mean(dz), binv = mean(dz * xhat) *
// inv_std. kAdd false: dx = ... (dx not read).
template <Act A, bool kAdd>
void BackTrainSpan(const float* x, const float* dy, const float* mean, const float* k,
                   const float* beta, const float* a, const float* binv, int64_t width,
                   int64_t count, float* dx) {
  const Groups groups(width);
  for (int64_t r = 0; r < count; ++r) {
    const int64_t o = r * width;
    groups.each([&](const auto& g, int64_t c) {
      const int64_t i = o + c;
      const V xd = hn::Sub(g.Load(x + i), g.Load(mean + c));
      const V dz = MaskFromX<A>(g.d, g.Load(dy + i), xd, g.Load(k + c),
                                A == Act::kNone ? xd : g.Load(beta + c));
      const V t = hn::NegMulAdd(xd, g.Load(binv + c), hn::Sub(dz, g.Load(a + c)));
      if constexpr (kAdd) g.Store(hn::MulAdd(g.Load(k + c), t, g.Load(dx + i)), dx + i);
      else g.Store(hn::Mul(g.Load(k + c), t), dx + i);
    });
  }
}

// Inference-mode backward in one pass: dx += k * dz (kDx) and the two sums of
// DySumsSpan (kSums). scratch: 2 arrays of cap >= width + kPad floats.
template <Act A, bool kSums, bool kDx>
void BackInferSpan(const float* y, const float* x, const float* dy, const float* mean,
                   const float* k, int64_t width, int64_t count, float* dx, double* sdy,
                   double* sdyd, float* scratch, int64_t cap) {
  const Groups groups(width);
  float* bdy = scratch;
  float* bdyd = scratch + cap;
  const int64_t B = block_rows(width);
  for (int64_t r0 = 0; r0 < count; r0 += B) {
    const int64_t nb = std::min(B, count - r0);
    const int64_t o = r0 * width;
    groups.each([&](const auto& g, int64_t c) {
      const V kc = g.Load(k + c);
      V mu = hn::Zero(g.d), a0 = hn::Zero(g.d), b0 = hn::Zero(g.d);
      if constexpr (kSums) mu = g.Load(mean + c);
      for (int64_t r = 0; r < nb; ++r) {
        const int64_t i = o + r * width + c;
        const V dz = MaskedDy<A>(g, dy, y, i);
        if constexpr (kDx) g.Store(hn::MulAdd(kc, dz, g.Load(dx + i)), dx + i);
        if constexpr (kSums) {
          a0 = hn::Add(a0, dz);
          b0 = hn::MulAdd(dz, hn::Sub(g.Load(x + i), mu), b0);
        }
      }
      if constexpr (kSums) {
        hn::StoreU(a0, g.d, bdy + c);
        hn::StoreU(b0, g.d, bdyd + c);
      }
    });
    if constexpr (kSums) {
      for (int64_t c = 0; c < width; ++c) {
        sdy[c] += bdy[c];
        sdyd[c] += bdyd[c];
      }
    }
  }
}

// ---- Rows [begin, end) of [rows, C]: whole periods, then the rows left over -----------
// Scratch (bn_detail::Scratch, one per thread): fs holds 5 arrays of `cap` floats and ds
// 4 of `cap` doubles, each enough for a period of any target here.

// Per channel: mean and M2 of the rows, in double.
void StatsRows(const float* x, int64_t C, int64_t begin, int64_t end, double* mean,
               double* m2, float* fs, double* ds, int64_t cap) {
  const Period P(C);
  const int64_t periods = (end - begin) / P.R, left = (end - begin) - periods * P.R;
  double* pmean = ds;           // per column of a period
  double* pm2 = ds + cap;
  double* lmean = ds + 2 * cap;  // the rows left over, per channel
  double* lm2 = ds + 3 * cap;
  const float* xb = x + begin * C;
  double n = 0;  // rows merged into mean/m2 so far
  if (periods > 0) {
    StatsSpan(xb, P.W, periods, pmean, pm2, fs, cap);
    // Column j of a period is channel j % C: R parts of `periods` rows per channel.
    for (int64_t rep = 0; rep < P.R; ++rep, n += double(periods))
      for (int64_t c = 0; c < C; ++c)
        bn_detail::chan_merge(n, double(periods), pmean[rep * C + c], pm2[rep * C + c],
                              &mean[c], &m2[c]);
  }
  if (left > 0) {
    StatsSpan(xb + periods * P.W, C, left, lmean, lm2, fs, cap);
    for (int64_t c = 0; c < C; ++c)
      bn_detail::chan_merge(n, double(left), lmean[c], lm2[c], &mean[c], &m2[c]);
  }
}

template <Act A>
void AffineRowsT(const float* x, const float* center, const float* scale, const float* shift,
                 int64_t C, int64_t begin, int64_t end, float* y, float* fs, int64_t cap) {
  const Period P(C);
  const int64_t periods = (end - begin) / P.R;
  const float* xb = x + begin * C;
  float* yb = y + begin * C;
  if (periods > 0) {
    float* rc = fs;
    float* rs = fs + cap;
    float* rh = fs + 2 * cap;
    Replicate(center, C, P.W, rc);
    Replicate(scale, C, P.W, rs);
    Replicate(shift, C, P.W, rh);
    AffineSpan<A>(xb, rc, rs, rh, P.W, periods, yb);
  }
  const int64_t done = periods * P.W;
  AffineSpan<A>(xb + done, center, scale, shift, C, (end - begin) - periods * P.R, yb + done);
}

// Adds the rows' sum(dz) and sum(dz * (x - mean)) per channel into sdy and sdyd; scale
// and beta give the activation's mask (MaskFromX; unused without an activation).
template <Act A>
void DySumsRowsT(const float* x, const float* dy, const float* mean, const float* scale,
                 const float* beta, int64_t C, int64_t begin, int64_t end, double* sdy,
                 double* sdyd, float* fs, double* ds, int64_t cap) {
  const Period P(C);
  const int64_t periods = (end - begin) / P.R;
  const int64_t o = begin * C, done = periods * P.W;
  if (periods > 0) {
    float* rmean = fs + 2 * cap;  // after DySumsSpan's 2 cap of block sums
    float* rscale = fs + 3 * cap;
    float* rbeta = fs + 4 * cap;
    Replicate(mean, C, P.W, rmean);
    if (A != Act::kNone) {
      Replicate(scale, C, P.W, rscale);
      Replicate(beta, C, P.W, rbeta);
    }
    std::fill(ds, ds + 2 * cap, 0.0);
    DySumsSpan<A>(x + o, dy + o, rmean, rscale, rbeta, P.W, periods, ds, ds + cap, fs, cap);
    FoldPeriod(ds, C, P.W, sdy);
    FoldPeriod(ds + cap, C, P.W, sdyd);
  }
  DySumsSpan<A>(x + o + done, dy + o + done, mean, scale, beta, C,
                (end - begin) - periods * P.R, sdy, sdyd, fs, cap);
}

template <Act A, bool kAdd>
void BackTrainRowsT(const float* x, const float* dy, const float* mean, const float* k,
                    const float* beta, const float* a, const float* binv, int64_t C,
                    int64_t begin, int64_t end, float* dx, float* fs, int64_t cap) {
  const Period P(C);
  const int64_t periods = (end - begin) / P.R;
  const int64_t o = begin * C, done = periods * P.W;
  if (periods > 0) {
    float* r[5] = {fs, fs + cap, fs + 2 * cap, fs + 3 * cap, fs + 4 * cap};
    Replicate(mean, C, P.W, r[0]);
    Replicate(k, C, P.W, r[1]);
    Replicate(a, C, P.W, r[2]);
    Replicate(binv, C, P.W, r[3]);
    if (A != Act::kNone) Replicate(beta, C, P.W, r[4]);
    BackTrainSpan<A, kAdd>(x + o, dy + o, r[0], r[1], r[4], r[2], r[3], P.W, periods, dx + o);
  }
  BackTrainSpan<A, kAdd>(x + o + done, dy + o + done, mean, k, beta, a, binv, C,
                         (end - begin) - periods * P.R, dx + o + done);
}

template <Act A, bool kSums, bool kDx>
void BackInferRowsT(const float* y, const float* x, const float* dy, const float* mean,
                    const float* k, int64_t C, int64_t begin, int64_t end, float* dx,
                    double* sdy, double* sdyd, float* fs, double* ds, int64_t cap) {
  const Period P(C);
  const int64_t periods = (end - begin) / P.R;
  const int64_t o = begin * C, done = periods * P.W;
  const float* yb = A == Act::kNone ? nullptr : y + o;
  float* dxb = kDx ? dx + o : nullptr;
  if (periods > 0) {
    float* rmean = fs + 2 * cap;
    float* rk = fs + 3 * cap;
    Replicate(mean, C, P.W, rmean);
    Replicate(k, C, P.W, rk);
    if (kSums) std::fill(ds, ds + 2 * cap, 0.0);
    BackInferSpan<A, kSums, kDx>(yb, x + o, dy + o, rmean, rk, P.W, periods, dxb, ds,
                                 ds + cap, fs, cap);
    if (kSums) {
      FoldPeriod(ds, C, P.W, sdy);
      FoldPeriod(ds + cap, C, P.W, sdyd);
    }
  }
  BackInferSpan<A, kSums, kDx>(yb ? yb + done : nullptr, x + o + done, dy + o + done, mean, k,
                               C, (end - begin) - periods * P.R, dxb ? dxb + done : nullptr,
                               sdy, sdyd, fs, cap);
}

}  // namespace bn_hwy

// Entry points per target; the activation selects a template instance.
void BnStatsRows(const float* x, int64_t C, int64_t begin, int64_t end, double* mean,
                 double* m2, float* fs, double* ds, int64_t cap) {
  bn_hwy::StatsRows(x, C, begin, end, mean, m2, fs, ds, cap);
}

void BnAffineRows(Act act, const float* x, const float* center, const float* scale,
                  const float* shift, int64_t C, int64_t begin, int64_t end, float* y,
                  float* fs, int64_t cap) {
  switch (act) {
    case Act::kNone:
      return bn_hwy::AffineRowsT<Act::kNone>(x, center, scale, shift, C, begin, end, y, fs, cap);
    case Act::kRelu:
      return bn_hwy::AffineRowsT<Act::kRelu>(x, center, scale, shift, C, begin, end, y, fs, cap);
    case Act::kRelu6:
      return bn_hwy::AffineRowsT<Act::kRelu6>(x, center, scale, shift, C, begin, end, y, fs, cap);
  }
}

void BnDySumsRows(Act act, const float* x, const float* dy, const float* mean,
                  const float* scale, const float* beta, int64_t C, int64_t begin, int64_t end,
                  double* sdy, double* sdyd, float* fs, double* ds, int64_t cap) {
  switch (act) {
    case Act::kNone:
      return bn_hwy::DySumsRowsT<Act::kNone>(x, dy, mean, scale, beta, C, begin, end, sdy, sdyd,
                                             fs, ds, cap);
    case Act::kRelu:
      return bn_hwy::DySumsRowsT<Act::kRelu>(x, dy, mean, scale, beta, C, begin, end, sdy, sdyd,
                                             fs, ds, cap);
    case Act::kRelu6:
      return bn_hwy::DySumsRowsT<Act::kRelu6>(x, dy, mean, scale, beta, C, begin, end, sdy,
                                              sdyd, fs, ds, cap);
  }
}

template <bool kAdd>
void BnBackTrainRowsT(Act act, const float* x, const float* dy, const float* mean,
                      const float* k, const float* beta, const float* a, const float* binv,
                      int64_t C, int64_t begin, int64_t end, float* dx, float* fs, int64_t cap) {
  switch (act) {
    case Act::kNone:
      return bn_hwy::BackTrainRowsT<Act::kNone, kAdd>(x, dy, mean, k, beta, a, binv, C, begin,
                                                      end, dx, fs, cap);
    case Act::kRelu:
      return bn_hwy::BackTrainRowsT<Act::kRelu, kAdd>(x, dy, mean, k, beta, a, binv, C, begin,
                                                      end, dx, fs, cap);
    case Act::kRelu6:
      return bn_hwy::BackTrainRowsT<Act::kRelu6, kAdd>(x, dy, mean, k, beta, a, binv, C, begin,
                                                       end, dx, fs, cap);
  }
}

void BnBackTrainRows(Act act, bool add, const float* x, const float* dy, const float* mean,
                     const float* k, const float* beta, const float* a, const float* binv,
                     int64_t C, int64_t begin, int64_t end, float* dx, float* fs, int64_t cap) {
  if (add) BnBackTrainRowsT<true>(act, x, dy, mean, k, beta, a, binv, C, begin, end, dx, fs, cap);
  else BnBackTrainRowsT<false>(act, x, dy, mean, k, beta, a, binv, C, begin, end, dx, fs, cap);
}

template <Act A>
void BackInferRowsA(const float* y, const float* x, const float* dy, const float* mean,
                    const float* k, int64_t C, int64_t begin, int64_t end, float* dx,
                    double* sdy, double* sdyd, float* fs, double* ds, int64_t cap) {
  if (dx && sdy)
    bn_hwy::BackInferRowsT<A, true, true>(y, x, dy, mean, k, C, begin, end, dx, sdy, sdyd, fs,
                                          ds, cap);
  else if (dx)
    bn_hwy::BackInferRowsT<A, false, true>(y, x, dy, mean, k, C, begin, end, dx, sdy, sdyd, fs,
                                           ds, cap);
  else if (sdy)
    bn_hwy::BackInferRowsT<A, true, false>(y, x, dy, mean, k, C, begin, end, dx, sdy, sdyd, fs,
                                           ds, cap);
}

void BnBackInferRows(Act act, const float* y, const float* x, const float* dy,
                     const float* mean, const float* k, int64_t C, int64_t begin, int64_t end,
                     float* dx, double* sdy, double* sdyd, float* fs, double* ds, int64_t cap) {
  switch (act) {
    case Act::kNone:
      return BackInferRowsA<Act::kNone>(y, x, dy, mean, k, C, begin, end, dx, sdy, sdyd, fs, ds,
                                        cap);
    case Act::kRelu:
      return BackInferRowsA<Act::kRelu>(y, x, dy, mean, k, C, begin, end, dx, sdy, sdyd, fs, ds,
                                        cap);
    case Act::kRelu6:
      return BackInferRowsA<Act::kRelu6>(y, x, dy, mean, k, C, begin, end, dx, sdy, sdyd, fs, ds,
                                         cap);
  }
}

int64_t BnCompiledTarget() { return HWY_TARGET; }

}  // namespace fer::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace fer::kernels {

HWY_EXPORT(BnStatsRows);
HWY_EXPORT(BnAffineRows);
HWY_EXPORT(BnDySumsRows);
HWY_EXPORT(BnBackTrainRows);
HWY_EXPORT(BnBackInferRows);
HWY_EXPORT(BnCompiledTarget);

namespace {

// Threads for rows x C floats: one below ~32K floats (forking costs more than it saves),
// never more than there are rows, and one inside an enclosing parallel region.
int thread_count(int64_t rows, int64_t C) {
  if (omp_in_parallel()) return 1;
  if (rows * C < (int64_t{1} << 15)) return 1;
  return static_cast<int>(std::min<int64_t>(omp_get_max_threads(), rows));
}

// Contiguous share t of T of [0, rows).
void share(int64_t rows, int t, int T, int64_t* begin, int64_t* end) {
  *begin = rows * t / T;
  *end = rows * (t + 1) / T;
}

// Runs first(t, T, begin, end) on every thread's share of the rows, then between(T) once
// (after all of them, before any second), then second(t, T, begin, end): one parallel
// region with a barrier. With one thread it calls the three straight, since a parallel
// region, even of one thread, costs microseconds that small tensors (batch 1, the late
// MobileNet layers) notice.
template <class First, class Between, class Second>
void in_phases(int threads, int64_t rows, const First& first, const Between& between,
               const Second& second) {
  if (threads == 1) {
    first(0, 1, int64_t{0}, rows);
    between(1);
    second(0, 1, int64_t{0}, rows);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), T = omp_get_num_threads();
    int64_t begin, end;
    share(rows, t, T, &begin, &end);
    first(t, T, begin, end);
#pragma omp barrier
#pragma omp single
    between(T);
    // (implicit barrier: every thread sees what `between` wrote)
    second(t, T, begin, end);
  }
}

const auto nothing = [](int, int, int64_t, int64_t) {};

}  // namespace

void batchnorm_forward_train_fused(Act act, const float* x, const float* gamma,
                                   const float* beta, int64_t rows, int64_t C, float eps,
                                   float* y, float* mean, float* var, float* inv_std) {
  if (rows <= 0 || C <= 0) return;
  const int threads = thread_count(rows, C);
  // Per thread: its rows' mean and M2, merged in thread order.
  std::vector<double> part_mean(size_t(threads) * C), part_m2(size_t(threads) * C);
  std::vector<float> scale(C);
  in_phases(
      threads, rows,
      [&](int t, int, int64_t begin, int64_t end) {
        bn_detail::Scratch& sc = bn_detail::thread_scratch(C);
        if (begin < end)
          HWY_DYNAMIC_DISPATCH(BnStatsRows)(x, C, begin, end, part_mean.data() + t * C,
                                            part_m2.data() + t * C, sc.f.get(), sc.d.get(),
                                            sc.cap);
      },
      [&](int T) {
        for (int64_t c = 0; c < C; ++c) {
          double m = 0, m2 = 0, n = 0;
          for (int u = 0; u < T; ++u) {
            int64_t b, e;
            share(rows, u, T, &b, &e);
            bn_detail::chan_merge(n, double(e - b), part_mean[size_t(u) * C + c],
                                  part_m2[size_t(u) * C + c], &m, &m2);
            n += double(e - b);
          }
          const double v = m2 / double(rows);  // biased, as Keras/TF normalize
          const double is = 1.0 / std::sqrt(v + eps);
          mean[c] = static_cast<float>(m);
          var[c] = static_cast<float>(v);
          inv_std[c] = static_cast<float>(is);
          // In float, as the training backward computes it again (MaskFromX).
          scale[c] = gamma[c] * inv_std[c];
        }
      },
      // Subtracting the mean before scaling (rather than folding it into the shift) keeps
      // the precision when |mean| >> std.
      [&](int, int, int64_t begin, int64_t end) {
        bn_detail::Scratch& sc = bn_detail::thread_scratch(C);
        if (begin < end)
          HWY_DYNAMIC_DISPATCH(BnAffineRows)(act, x, mean, scale.data(), beta, C, begin, end,
                                             y, sc.f.get(), sc.cap);
      });
}

void batchnorm_forward_train(const float* x, const float* gamma, const float* beta,
                             int64_t rows, int64_t C, float eps, float* y, float* mean,
                             float* var, float* inv_std) {
  batchnorm_forward_train_fused(Act::kNone, x, gamma, beta, rows, C, eps, y, mean, var,
                                inv_std);
}

void batchnorm_forward_inference_fused(Act act, const float* x, const float* gamma,
                                       const float* beta, const float* moving_mean,
                                       const float* moving_var, int64_t rows, int64_t C,
                                       float eps, float* y) {
  if (rows <= 0 || C <= 0) return;
  std::vector<float> scale(C);
  for (int64_t c = 0; c < C; ++c)
    scale[c] = static_cast<float>(gamma[c] / std::sqrt(double(moving_var[c]) + eps));
  in_phases(thread_count(rows, C), rows, nothing, [](int) {},
            [&](int, int, int64_t begin, int64_t end) {
              bn_detail::Scratch& sc = bn_detail::thread_scratch(C);
              if (begin < end)
                HWY_DYNAMIC_DISPATCH(BnAffineRows)(act, x, moving_mean, scale.data(), beta, C,
                                                   begin, end, y, sc.f.get(), sc.cap);
            });
}

void batchnorm_forward_inference(const float* x, const float* gamma, const float* beta,
                                 const float* moving_mean, const float* moving_var,
                                 int64_t rows, int64_t C, float eps, float* y) {
  batchnorm_forward_inference_fused(Act::kNone, x, gamma, beta, moving_mean, moving_var, rows,
                                    C, eps, y);
}

void batchnorm_backward_train_fused(Act act, const float* x, const float* dy,
                                    const float* gamma, const float* beta, const float* mean,
                                    const float* inv_std, int64_t rows, int64_t C, float* dx,
                                    float* dgamma, float* dbeta, bool dx_accumulate) {
  if (rows <= 0 || C <= 0 || (!dx && !dgamma && !dbeta)) return;
  const int threads = thread_count(rows, C);
  // Per thread: [sum(dz) | sum(dz * (x - mean))], added up in thread order.
  std::vector<double> part(size_t(threads) * 2 * C, 0.0);
  std::vector<float> k(C), a(C), binv(C);
  // The forward's scale (batchnorm_forward_train_fused), for the activation's mask.
  for (int64_t c = 0; c < C; ++c) k[c] = gamma[c] * inv_std[c];
  const double inv_rows = 1.0 / double(rows);
  in_phases(
      threads, rows,
      [&](int t, int, int64_t begin, int64_t end) {
        bn_detail::Scratch& sc = bn_detail::thread_scratch(C);
        double* mine = part.data() + size_t(t) * 2 * C;
        if (begin < end)
          HWY_DYNAMIC_DISPATCH(BnDySumsRows)(act, x, dy, mean, k.data(), beta, C, begin, end,
                                             mine, mine + C, sc.f.get(), sc.d.get(), sc.cap);
      },
      [&](int T) {
        for (int64_t c = 0; c < C; ++c) {
          double sum_dy = 0, sum_dyd = 0;
          for (int u = 0; u < T; ++u) {
            sum_dy += part[size_t(u) * 2 * C + c];
            sum_dyd += part[size_t(u) * 2 * C + C + c];
          }
          const double sum_dy_xhat = sum_dyd * inv_std[c];
          if (dbeta) dbeta[c] += static_cast<float>(sum_dy);
          if (dgamma) dgamma[c] += static_cast<float>(sum_dy_xhat);
          // dx = gamma*inv_std * (dz - mean(dz) - xhat * mean(dz*xhat)); the three terms
          // are the paths through xhat, the mean and the variance.
          a[c] = static_cast<float>(sum_dy * inv_rows);
          binv[c] = static_cast<float>(sum_dy_xhat * inv_rows * inv_std[c]);
        }
      },
      [&](int, int, int64_t begin, int64_t end) {
        bn_detail::Scratch& sc = bn_detail::thread_scratch(C);
        if (dx && begin < end)
          HWY_DYNAMIC_DISPATCH(BnBackTrainRows)(act, dx_accumulate, x, dy, mean, k.data(), beta,
                                                a.data(), binv.data(), C, begin, end, dx,
                                                sc.f.get(), sc.cap);
      });
}

void batchnorm_backward_train(const float* x, const float* dy, const float* gamma,
                              const float* mean, const float* inv_std, int64_t rows,
                              int64_t C, float* dx, float* dgamma, float* dbeta) {
  batchnorm_backward_train_fused(Act::kNone, x, dy, gamma, nullptr, mean, inv_std, rows, C, dx,
                                 dgamma, dbeta);
}

void batchnorm_backward_inference_fused(Act act, const float* y, const float* x,
                                        const float* dy, const float* gamma, const float* mean,
                                        const float* inv_std, int64_t rows, int64_t C,
                                        float* dx, float* dgamma, float* dbeta) {
  const bool sums = dgamma || dbeta;
  if (rows <= 0 || C <= 0 || (!dx && !sums)) return;
  std::vector<float> k(C);
  for (int64_t c = 0; c < C; ++c) k[c] = gamma[c] * inv_std[c];
  const int threads = thread_count(rows, C);
  std::vector<double> part(sums ? size_t(threads) * 2 * C : 0, 0.0);
  // One pass (dx and the sums together), then the sums added up in thread order.
  in_phases(
      threads, rows,
      [&](int t, int, int64_t begin, int64_t end) {
        bn_detail::Scratch& sc = bn_detail::thread_scratch(C);
        double* mine = sums ? part.data() + size_t(t) * 2 * C : nullptr;
        if (begin < end)
          HWY_DYNAMIC_DISPATCH(BnBackInferRows)(act, y, x, dy, mean, k.data(), C, begin, end,
                                                dx, mine, sums ? mine + C : nullptr,
                                                sc.f.get(), sc.d.get(), sc.cap);
      },
      [&](int T) {
        if (!sums) return;
        for (int64_t c = 0; c < C; ++c) {
          double sum_dy = 0, sum_dyd = 0;
          for (int u = 0; u < T; ++u) {
            sum_dy += part[size_t(u) * 2 * C + c];
            sum_dyd += part[size_t(u) * 2 * C + C + c];
          }
          if (dbeta) dbeta[c] += static_cast<float>(sum_dy);
          if (dgamma) dgamma[c] += static_cast<float>(sum_dyd * inv_std[c]);
        }
      },
      nothing);
}

void batchnorm_backward_inference(const float* x, const float* dy, const float* gamma,
                                  const float* mean, const float* inv_std, int64_t rows,
                                  int64_t C, float* dx, float* dgamma, float* dbeta) {
  batchnorm_backward_inference_fused(Act::kNone, nullptr, x, dy, gamma, mean, inv_std, rows, C,
                                     dx, dgamma, dbeta);
}

std::vector<int64_t> batchnorm_hwy_targets() { return hwy::SupportedAndGeneratedTargets(); }

void batchnorm_hwy_force_target(int64_t target) { hwy::SetSupportedTargetsForTest(target); }

int64_t batchnorm_hwy_dispatched_target() { return HWY_DYNAMIC_DISPATCH(BnCompiledTarget)(); }

const char* batchnorm_hwy_target_name(int64_t target) { return hwy::TargetName(target); }

}  // namespace fer::kernels
#endif  // HWY_ONCE
