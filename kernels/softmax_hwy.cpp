// Softmax rows, their backward, and the fused softmax cross-entropy (kernels/softmax.h) in
// Google Highway, compiled for every x86 SIMD level and dispatched at run time.
//
// Each row [K] is worked along its classes, one vector of N classes at a time, the last,
// partial group masked (kernels/hwy_group-inl.h): K = 7 (FER) is one masked vector, K =
// 1000 (ImageNet) 63 of AVX-512's. A row is: its max (vector max, then across lanes),
// exp(x - max) with Highway's vector exp (contrib/math, max error 1 ulp) stored to the
// output while summing, then a scaling pass. OpenMP splits the rows into one contiguous
// range per thread once there are enough floats to pay for it.
//
// Accuracy against the `_ref` versions (all double), with u = 2^-24:
// - Sums (of exp, of the smoothing terms, of dy * y) add in float only within a block of
//   kBlock vectors per lane, then across the lanes, and the block sums in double
//   (BlockedSum): at most kBlock - 1 + log2(N) <= 7 roundings on any term's path, so a
//   relative error under 7u = 4.2e-7 for a sum of nonnegative terms (of the sum of |terms|
//   otherwise), however long the row. The sum of exponentials S is kept as S - 1 (the max
//   contributes exactly 1; see ExpRow), so that a confident row's loss log1p(S - 1) and
//   label gradient keep their relative precision.
// - exp(x - max) is taken of x - max rounded to float: a relative error of up to
//   |x - max| u in the argument, which exp passes on to its result (besides its own ulp).
//   Classes far below the max carry the most, e.g. 7e-7 at 12 below the max, where their
//   probability is already below 6e-6.
// So probabilities, gradients and losses are within about (1e-6 + |x - max| u) of the
// reference, relative to the magnitude of their terms (tests/test_softmax_hwy.cpp checks
// exactly that bound).
//   The cross-entropy's gradient at the label, (A p_y - a_y) / W, nearly cancels when the
// model is confident (p_y ~ 1); it is computed in double from exp(z_y - max) and S, like
// the reference, rather than in float.
#include "kernels/softmax.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/softmax_hwy.cpp"
#include <hwy/foreach_target.h>  // re-includes this file once per SIMD target

#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>
#include "kernels/hwy_group-inl.h"

HWY_BEFORE_NAMESPACE();
namespace fer::kernels::HWY_NAMESPACE {
namespace softmax_hwy {
namespace hn = hwy::HWY_NAMESPACE;

using D = hn::ScalableTag<float>;
using V = hn::Vec<D>;

// One group of classes (kernels/hwy_group-inl.h).
using simd::Group;
template <class G>
constexpr bool kIsTail = std::is_same_v<std::decay_t<G>, Group<true>>;

// Calls f(group, k) for every group of a row of K floats: full vectors, then the masked
// tail group when K is not a multiple of the vector width. The tail group's loads give 0
// in the lanes past K, and its stores leave those floats (the next row's) alone.
template <class F>
HWY_INLINE void ForGroups(int64_t K, const F& f) {
  const D d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const Group<false> full{d, hn::FirstN(d, size_t(N)), size_t(N)};
  int64_t k = 0;
  for (; k + N <= K; k += N) f(full, k);
  if (k < K) {
    const Group<true> tail{d, hn::FirstN(d, size_t(K - k)), size_t(K - k)};
    f(tail, k);
  }
}

// A sum of vectors, float within blocks of kBlock vectors per lane, then across the lanes,
// then in double (see the top of the file for the error bound).
constexpr int kBlock = 4;
class BlockedSum {
 public:
  HWY_INLINE BlockedSum() : acc_(hn::Zero(d_)) {}
  HWY_INLINE void Add(V v) {
    acc_ = hn::Add(acc_, v);
    if (++count_ == kBlock) Flush();
  }
  HWY_INLINE double Total() {
    Flush();
    return total_;
  }

 private:
  HWY_INLINE void Flush() {
    if (count_ == 0) return;
    total_ += double(hn::GetLane(hn::SumOfLanes(d_, acc_)));
    acc_ = hn::Zero(d_);
    count_ = 0;
  }
  D d_;
  V acc_;
  int count_ = 0;
  double total_ = 0;
};

// max_k x[k], or NaN when the row holds a NaN or its max is infinite. The reference gives
// a row of NaN then (exp(NaN), exp(inf - inf)), and so do the callers, so that a diverged
// model's loss is NaN; Highway's Exp would turn those into 0 and a finite loss.
HWY_INLINE float RowMax(const float* x, int64_t K) {
  const D d;
  const V lowest = hn::Set(d, -std::numeric_limits<float>::infinity());
  V m = lowest, nan = hn::Zero(d);
  ForGroups(K, [&](const auto& grp, int64_t k) {
    V v = grp.Load(x + k);
    nan = hn::Or(nan, hn::VecFromMask(d, hn::IsNaN(v)));
    if constexpr (kIsTail<decltype(grp)>) v = hn::IfThenElse(grp.m, v, lowest);
    m = hn::Max(m, v);
  });
  const float mx = hn::GetLane(hn::MaxOfLanes(d, m));
  if (!hn::AllFalse(d, hn::MaskFromVec(nan)) || !std::isfinite(mx))
    return std::numeric_limits<float>::quiet_NaN();
  return mx;
}

// Fills a row with NaN (see RowMax).
HWY_INLINE void NanRow(float* y, int64_t K) {
  const V nan = hn::Set(D(), std::numeric_limits<float>::quiet_NaN());
  ForGroups(K, [&](const auto& grp, int64_t k) { grp.Store(nan, y + k); });
}

// e[k] = exp(x[k] - mx) (e may be x), with mx the row's max; returns S - 1, where
// S = sum_k e[k] >= 1. The classes at the max contribute exactly exp(0) = 1 each and are
// counted, not summed, so the float rounding of the sum is relative to S - 1 alone: a
// confident row has S - 1 tiny, and its loss log(S) = log1p(S - 1) and its label's
// gradient, proportional to p_y - 1 = -(S - 1) / S, keep their relative precision.
HWY_INLINE double ExpRow(const float* x, int64_t K, float mx, float* e) {
  const D d;
  const V vmx = hn::Set(d, mx);
  BlockedSum below_sum;
  int64_t below = 0;  // classes below the max
  ForGroups(K, [&](const auto& grp, int64_t k) {
    const V v = grp.Load(x + k);
    const V ev = hn::Exp(d, hn::Sub(v, vmx));
    auto is_below = hn::Lt(v, vmx);
    if constexpr (kIsTail<decltype(grp)>) is_below = hn::And(is_below, grp.m);
    grp.Store(ev, e + k);
    below_sum.Add(hn::IfThenElseZero(is_below, ev));
    below += static_cast<int64_t>(hn::CountTrue(d, is_below));
  });
  return double(K - below - 1) + below_sum.Total();
}

void SoftmaxRows(const float* x, int64_t K, int64_t begin, int64_t end, float* y) {
  const D d;
  for (int64_t r = begin; r < end; ++r) {
    const float* xr = x + r * K;
    float* yr = y + r * K;
    const float mx = RowMax(xr, K);
    if (std::isnan(mx)) {
      NanRow(yr, K);
      continue;
    }
    const double sum = 1 + ExpRow(xr, K, mx, yr);
    const V inv = hn::Set(d, static_cast<float>(1.0 / sum));
    ForGroups(K, [&](const auto& grp, int64_t k) {
      grp.Store(hn::Mul(grp.Load(yr + k), inv), yr + k);
    });
  }
}

void SoftmaxBackwardRows(const float* y, const float* dy, int64_t K, int64_t begin,
                         int64_t end, float* dx) {
  const D d;
  for (int64_t r = begin; r < end; ++r) {
    const float* yr = y + r * K;
    const float* dyr = dy + r * K;
    float* dxr = dx + r * K;
    BlockedSum dot;  // sum_j dy_j y_j
    ForGroups(K, [&](const auto& grp, int64_t k) {
      dot.Add(hn::Mul(grp.Load(dyr + k), grp.Load(yr + k)));
    });
    const V vdot = hn::Set(d, static_cast<float>(dot.Total()));
    ForGroups(K, [&](const auto& grp, int64_t k) {
      const V g = hn::Mul(grp.Load(yr + k), hn::Sub(grp.Load(dyr + k), vdot));
      grp.Store(hn::Add(grp.Load(dxr + k), g), dxr + k);
    });
  }
}

// Rows [begin, end) of the cross-entropy (see softmax.h for a, A and W): row_loss[i] gets
// row i's -sum_k a[i,k] logp[i,k]; dlogits (if not null) row i's (A p - a) / W. Without
// dlogits, `scratch` (K floats) holds the row's exponentials.
void CrossEntropyRows(const float* z, const int* labels, int64_t K, int64_t begin,
                      int64_t end, double eps, const float* w, double sum_w, double W,
                      float* dlogits, float* scratch, double* row_loss) {
  const D d;
  for (int64_t i = begin; i < end; ++i) {
    const float* zi = z + i * K;
    float* p = dlogits ? dlogits + i * K : scratch;
    const float mx = RowMax(zi, K);
    if (std::isnan(mx)) {
      row_loss[i] = std::numeric_limits<double>::quiet_NaN();
      if (dlogits) NanRow(p, K);
      continue;
    }
    const double sum_m1 = ExpRow(zi, K, mx, p);  // p[k] = exp(z[k] - mx)
    const double sum = 1 + sum_m1, log_sum = std::log1p(sum_m1);  // lse = mx + log_sum
    const int y = labels[i];
    const double wy = w ? w[y] : 1.0;

    // The smoothing part, sum_k w[k] (lse - z[k]), as sum_k w[k] ((mx - z[k]) + log_sum):
    // nonnegative terms, so the float rounding stays relative to the sum.
    double smooth = 0;
    if (eps != 0) {
      const V vmx = hn::Set(d, mx), vls = hn::Set(d, static_cast<float>(log_sum));
      BlockedSum s;
      ForGroups(K, [&](const auto& grp, int64_t k) {
        V t = hn::Add(hn::Sub(vmx, grp.Load(zi + k)), vls);
        if (w) t = hn::Mul(t, grp.Load(w + k));
        if constexpr (kIsTail<decltype(grp)>) t = hn::IfThenElseZero(grp.m, t);
        s.Add(t);
      });
      smooth = s.Total();
    }
    // lse - z[y] as (mx - z[y]) + log_sum: the difference is exact in double, and a
    // confident row's tiny log_sum is not rounded away against a large lse.
    row_loss[i] = (1 - eps) * wy * ((double(mx) - zi[y]) + log_sum) + eps / double(K) * smooth;

    if (dlogits) {
      // dlogits[k] = (A p[k] - a[k]) / W = c1 exp(z[k] - mx) - c2 w[k]  (k != y).
      const double e_y = p[y];
      const double A = (1 - eps) * wy + eps / double(K) * sum_w;
      const V c1 = hn::Set(d, static_cast<float>(A / (sum * W)));
      const V c2 = hn::Set(d, static_cast<float>(eps / double(K) / W));
      ForGroups(K, [&](const auto& grp, int64_t k) {
        const V spread = w ? hn::Mul(c2, grp.Load(w + k)) : c2;
        grp.Store(hn::Sub(hn::Mul(c1, grp.Load(p + k)), spread), p + k);
      });
      // The label's element nearly cancels when p_y ~ 1: in double, as the reference.
      const double a_y = (1 - eps) * wy + eps / double(K) * wy;
      p[y] = static_cast<float>((A * (e_y / sum) - a_y) / W);
    }
  }
}

}  // namespace softmax_hwy

// Entry points per target.
void SmRows(const float* x, int64_t K, int64_t begin, int64_t end, float* y) {
  softmax_hwy::SoftmaxRows(x, K, begin, end, y);
}
void SmBackwardRows(const float* y, const float* dy, int64_t K, int64_t begin, int64_t end,
                    float* dx) {
  softmax_hwy::SoftmaxBackwardRows(y, dy, K, begin, end, dx);
}
void SmCrossEntropyRows(const float* z, const int* labels, int64_t K, int64_t begin,
                        int64_t end, double eps, const float* w, double sum_w, double W,
                        float* dlogits, float* scratch, double* row_loss) {
  softmax_hwy::CrossEntropyRows(z, labels, K, begin, end, eps, w, sum_w, W, dlogits, scratch,
                                row_loss);
}
int64_t SmCompiledTarget() { return HWY_TARGET; }

}  // namespace fer::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace fer::kernels {

HWY_EXPORT(SmRows);
HWY_EXPORT(SmBackwardRows);
HWY_EXPORT(SmCrossEntropyRows);
HWY_EXPORT(SmCompiledTarget);

namespace {

// Threads for rows x K floats: one below 16K floats (a [64, 7] batch is 448: forking
// costs more than it saves), never more than there are rows, and one inside an enclosing
// parallel region.
int thread_count(int64_t rows, int64_t K) {
  if (omp_in_parallel()) return 1;
  if (rows * K < (int64_t{1} << 14)) return 1;
  return static_cast<int>(std::min<int64_t>(omp_get_max_threads(), rows));
}

// Runs f(begin, end) on contiguous shares of [0, rows), one per thread; with one thread,
// straight (a parallel region, even of one thread, costs microseconds).
template <class F>
void in_shares(int64_t rows, int64_t K, const F& f) {
  if (rows <= 0 || K <= 0) return;
  const int threads = thread_count(rows, K);
  if (threads == 1) return f(int64_t{0}, rows);
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), T = omp_get_num_threads();
    const int64_t begin = rows * t / T, end = rows * (t + 1) / T;
    if (begin < end) f(begin, end);
  }
}

}  // namespace

void softmax_rows(const float* x, int64_t rows, int64_t K, float* y) {
  in_shares(rows, K,
            [&](int64_t b, int64_t e) { HWY_DYNAMIC_DISPATCH(SmRows)(x, K, b, e, y); });
}

void softmax_rows_backward(const float* y, const float* dy, int64_t rows, int64_t K,
                           float* dx) {
  in_shares(rows, K, [&](int64_t b, int64_t e) {
    HWY_DYNAMIC_DISPATCH(SmBackwardRows)(y, dy, K, b, e, dx);
  });
}

double softmax_cross_entropy(const float* logits, const int* labels, int64_t N, int64_t K,
                             float label_smoothing, const float* class_weights,
                             float* dlogits) {
  double W = 0, sum_w = 0;  // the label weights' total, and sum_k w[k]
  for (int64_t i = 0; i < N; ++i) W += class_weights ? class_weights[labels[i]] : 1.0;
  for (int64_t k = 0; k < K; ++k) sum_w += class_weights ? class_weights[k] : 1.0;
  // Row losses go to their own slots and are added in order afterwards, so the result
  // does not depend on how rows were shared among threads.
  std::vector<double> row_loss(N);
  in_shares(N, K, [&](int64_t b, int64_t e) {
    std::vector<float> scratch(dlogits ? 0 : K);
    HWY_DYNAMIC_DISPATCH(SmCrossEntropyRows)(logits, labels, K, b, e, label_smoothing,
                                             class_weights, sum_w, W, dlogits, scratch.data(),
                                             row_loss.data());
  });
  if (W == 0) return std::numeric_limits<double>::quiet_NaN();
  double total = 0;
  for (int64_t i = 0; i < N; ++i) total += row_loss[i];
  return total / W;
}

double softmax_cross_entropy_soft(const float* logits, const float* targets, int64_t N,
                                  int64_t K, float* dlogits) {
  // p = softmax(z) by the SIMD kernel, into dlogits (or scratch), then per row
  //   -sum_k t[k] logp[k],  logp[k] = z[k] - max z + log p[m]   (m = the argmax),
  // because log sum_j exp(z[j] - max z) = -log p[m]; p[m] >= 1/K never underflows, where
  // log p[k] of a small p[k] would give -inf. K is the class count (7 here): the rows'
  // exponentials are the only work worth vectorizing.
  std::vector<float> scratch(dlogits ? 0 : N * K);
  float* p = dlogits ? dlogits : scratch.data();
  softmax_rows(logits, N, K, p);
  double total = 0;
  const float inv_N = 1.f / static_cast<float>(N);
  for (int64_t i = 0; i < N; ++i) {
    const float* z = logits + i * K;
    const float* t = targets + i * K;
    float* pi = p + i * K;
    int64_t m = 0;
    for (int64_t k = 1; k < K; ++k) m = z[k] > z[m] ? k : m;
    const double log_pm = std::log(static_cast<double>(pi[m]));
    double row = 0, mass = 0;
    for (int64_t k = 0; k < K; ++k) {
      row += double(t[k]) * (double(z[k]) - z[m]);
      mass += t[k];
    }
    total -= row + mass * log_pm;
    if (dlogits)
      for (int64_t k = 0; k < K; ++k) pi[k] = (pi[k] - t[k]) * inv_N;
  }
  return total / static_cast<double>(N);
}

std::vector<int64_t> softmax_hwy_targets() { return hwy::SupportedAndGeneratedTargets(); }

void softmax_hwy_force_target(int64_t target) { hwy::SetSupportedTargetsForTest(target); }

int64_t softmax_hwy_dispatched_target() { return HWY_DYNAMIC_DISPATCH(SmCompiledTarget)(); }

const char* softmax_hwy_target_name(int64_t target) { return hwy::TargetName(target); }

}  // namespace fer::kernels
#endif  // HWY_ONCE
