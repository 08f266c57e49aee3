// Winograd F(2x2, 3x3) convolution in Google Highway: 3x3 windows at stride 1, any padding;
// the semantics are those of kernels/conv2d.h.
//
// Why: a 2x2 block of outputs of a 3x3 convolution needs 2*2*9 = 36 multiply-adds per
// (input, output) channel pair done directly, but only 16 in the Winograd domain (Lavin &
// Gray, "Fast Algorithms for Convolutional Neural Networks", 2015). For one 4x4 input tile
// d and one 3x3 filter g (one input channel c, one output channel o):
//
//   Y = A^T [ (G g G^T) (.) (B^T d B) ] A          (.) is the elementwise product
//
//         | 1  0 -1  0 |         | 1    0    0  |
//   B^T = | 0  1  1  0 |     G = | 1/2  1/2  1/2|     A^T = | 1  1  1  0 |
//         | 0 -1  1  0 |         | 1/2 -1/2  1/2|           | 0  1 -1 -1 |
//         | 0  1  0 -1 |         | 0    0    1  |
//
// Summed over input channels, the 16 elementwise products become 16 independent matrix
// products, one per position p of the 4x4 Winograd tile:
//
//   M[p][tile][o] = sum_c V[p][tile][c] * U[p][c][o]
//   V = B^T d B  (the input transform, per tile and channel)
//   U = G g G^T  (the kernel transform, once per call)
//
// and each output tile is A^T M A. The products are the work (2.25x fewer FMAs than the
// direct kernel); the transforms are additions on data already in cache.
//
// Tiles: output tile (ty, tx) holds outputs rows 2ty, 2ty+1 and columns 2tx, 2tx+1; its
// input tile starts at row 2ty - pad_top, column 2tx - pad_left. Input pixels outside the
// image read as zeros; outputs past an odd edge are computed and dropped.
//
// Blocking: each thread takes a contiguous range of tiles (over the whole batch) and works
// through it in blocks of `block` tiles sized so that the block's V and M (tiles x 16
// positions x channels each, one tile's 16 x C values contiguous) stay in the L2 cache:
// transform the block's inputs into V, run the 16 products with a register block of R
// tiles x J output-channel vectors (the micro-kernel of the direct convolution: R
// broadcasts and J loads of U per step of c), then transform M back and write y. Channels
// are vector lanes throughout (NHWC). Tiles wholly inside the image are read in place;
// edge tiles are first copied into a zero-padded 4x4 patch, so the transform itself never
// checks bounds.
//
// Backward to the input at stride 1 is a forward convolution of dy by the spatially
// flipped kernel with C and OC swapped (see conv2d_direct_hwy.cpp); it adds into dx.
#include "kernels/conv2d.h"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "fer/error.h"
#include "fer/tensor.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/conv2d_winograd_hwy.cpp"
#include <hwy/foreach_target.h>  // re-includes this file once per SIMD target

#include <hwy/highway.h>
#include "kernels/conv_block-inl.h"
#include "kernels/hwy_group-inl.h"

namespace fer::kernels {
#ifndef FER_CONV2D_WINOGRAD_PLAN_DEFINED
#define FER_CONV2D_WINOGRAD_PLAN_DEFINED
// One convolution as the Winograd kernel sees it: a 3x3, stride-1 convolution of x
// [N, H, W, C] into y [N, OH, OW, OC] (forward, or backward to the input rewritten so).
// Tiles per block are a multiple of this: whole register blocks of every width.
constexpr int kBlockMultiple = 24;

struct WinogradConv {
  int n, h, w, c, cp;       // input; cp: C rounded up to whole vectors (V's row length)
  int oh, ow, oc, ocp;      // output; ocp: OC rounded up (U's and M's row length)
  int pt, pl;               // padding above and to the left
  int tiles_h, tiles_w;     // ceil(OH / 2), ceil(OW / 2)
  int block;                // tiles per block, a multiple of every register block R
  const float* x;
  const float* u;           // transformed kernel [16, C, OCP], zeros in the padding lanes
  const float* bias;        // [OC] or nullptr
  bool accumulate;          // y += conv (bias ignored) instead of y = bias + conv
  float* y;
};
#endif
}  // namespace fer::kernels

HWY_BEFORE_NAMESPACE();
namespace fer::kernels::HWY_NAMESPACE {
namespace winograd_hwy {
namespace hn = hwy::HWY_NAMESPACE;

using D = hn::ScalableTag<float>;
using V = hn::Vec<D>;
using simd::Group;

// The products' register blocks (kernels/conv_block-inl.h): kRows tiles x J vectors of
// output channels.
using conv_block::kMaxJ;
static_assert(kBlockMultiple % conv_block::kRows<1> == 0 &&
                  kBlockMultiple % conv_block::kRows<kMaxJ> == 0,
              "blocks must hold whole register blocks");

// Tile index -> (image, tile row, tile column), stepped without divisions.
struct TileWalker {
  int64_t n;
  int ty, tx;
  TileWalker(const WinogradConv& q, int64_t tile)
      : n(tile / (int64_t(q.tiles_h) * q.tiles_w)),
        ty(static_cast<int>(tile / q.tiles_w % q.tiles_h)),
        tx(static_cast<int>(tile % q.tiles_w)) {}
  void next(const WinogradConv& q) {
    if (++tx < q.tiles_w) return;
    tx = 0;
    if (++ty < q.tiles_h) return;
    ty = 0;
    ++n;
  }
};

// ---- Input transform: V = B^T d B for the channels [c0, c0 + N) of one tile ----------
// d[a][b] is at base + a * rs + b * cs; V's 16 positions go to v + p * cp (the tile's
// [16, cp] slice of the block).
template <bool kTail>
HWY_INLINE void TransformInputChannels(const float* base, int64_t rs, int64_t cs, float* v,
                                       int64_t cp, const Group<kTail>& group) {
  V d[4][4];
  HWY_UNROLL(16)
  for (int a = 0; a < 4; ++a) {
    HWY_UNROLL(16)
    for (int b = 0; b < 4; ++b) d[a][b] = group.Load(base + a * rs + b * cs);
  }
  V t[4][4];  // B^T d: combine rows
  HWY_UNROLL(16)
  for (int b = 0; b < 4; ++b) {
    t[0][b] = hn::Sub(d[0][b], d[2][b]);
    t[1][b] = hn::Add(d[1][b], d[2][b]);
    t[2][b] = hn::Sub(d[2][b], d[1][b]);
    t[3][b] = hn::Sub(d[1][b], d[3][b]);
  }
  const D dd;
  HWY_UNROLL(16)
  for (int a = 0; a < 4; ++a) {  // (B^T d) B: combine columns, store position p = 4a + b
    float* row = v + int64_t(a) * 4 * cp;
    hn::StoreU(hn::Sub(t[a][0], t[a][2]), dd, row);
    hn::StoreU(hn::Add(t[a][1], t[a][2]), dd, row + cp);
    hn::StoreU(hn::Sub(t[a][2], t[a][1]), dd, row + 2 * cp);
    hn::StoreU(hn::Sub(t[a][1], t[a][3]), dd, row + 3 * cp);
  }
}

template <bool kTail>
HWY_INLINE void TransformInputTile(const float* base, int64_t rs, int64_t cs, float* v,
                                   int64_t c, int64_t cp, const Group<kTail>& tail) {
  const D d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const Group<false> full{d, hn::FirstN(d, static_cast<size_t>(N)), static_cast<size_t>(N)};
  int64_t c0 = 0;
  for (; c0 + N <= c; c0 += N) TransformInputChannels(base + c0, rs, cs, v + c0, cp, full);
  if (kTail) TransformInputChannels(base + c0, rs, cs, v + c0, cp, tail);
}

// Tiles [t0, t0 + count) into vb [block][16][cp]; tiles [count, tiles) get zeros, so that
// the products can run whole register blocks. A tile wholly inside the image is read in
// place; one that overlaps the padding is first copied into a zero-padded 4x4 patch.
void TransformInput(const WinogradConv& q, int64_t t0, int count, int tiles, float* vb,
                    float* patch) {
  const D d;
  const int N = static_cast<int>(hn::Lanes(d));
  const int rem = q.c % N;
  const Group<true> tail{d, hn::FirstN(d, static_cast<size_t>(rem)), static_cast<size_t>(rem)};
  const int64_t cp = q.cp, c = q.c, rs = int64_t(q.w) * q.c;
  const int64_t tile_floats = 16 * cp;
  TileWalker at(q, t0);
  for (int i = 0; i < count; ++i, at.next(q)) {
    float* v = vb + i * tile_floats;
    const int ih0 = 2 * at.ty - q.pt, iw0 = 2 * at.tx - q.pl;
    const float* x_n = q.x + at.n * q.h * rs;
    if (ih0 >= 0 && iw0 >= 0 && ih0 + 4 <= q.h && iw0 + 4 <= q.w) {
      const float* base = x_n + int64_t(ih0) * rs + int64_t(iw0) * c;
      // The two columns this tile's rows add three tiles on: at batch 64 the input comes
      // from L3 or memory, and the transform has too little arithmetic to hide the misses.
      if (iw0 + 10 <= q.w)
        for (int a = 0; a < 4; ++a) {
          const char* p = reinterpret_cast<const char*>(base + a * rs + 6 * c);
          for (int64_t off = 0; off < 2 * c * 4; off += 64) __builtin_prefetch(p + off);
        }
      if (rem != 0) TransformInputTile(base, rs, c, v, c, cp, tail);
      else TransformInputTile(base, rs, c, v, c, cp, Group<false>{});
      continue;
    }
    std::fill(patch, patch + tile_floats, 0.f);
    for (int a = 0; a < 4; ++a) {
      const int ih = ih0 + a;
      if (ih < 0 || ih >= q.h) continue;
      for (int b = 0; b < 4; ++b) {
        const int iw = iw0 + b;
        if (iw < 0 || iw >= q.w) continue;
        const float* src = x_n + int64_t(ih) * rs + int64_t(iw) * c;
        std::copy(src, src + c, patch + (a * 4 + b) * cp);
      }
    }
    // The patch rows are cp long and zero-padded: whole vectors, no tail.
    TransformInputTile(patch, 4 * cp, cp, v, cp, cp, Group<false>{});
  }
  std::fill(vb + count * tile_floats, vb + tiles * tile_floats, 0.f);
}

// ---- The 16 products: M[tile][p][o] = sum_c V[tile][p][c] * U[p][c][o] ------------------
template <int J>
HWY_INLINE void Multiply(const WinogradConv& q, const float* vb, float* mb, int tiles, int o0) {
  constexpr int R = conv_block::kRows<J>;
  const D d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const int64_t C = q.c, cp = q.cp, ocp = q.ocp;
  const int64_t v_tile = 16 * cp, m_tile = 16 * ocp;  // floats from one tile to the next
  for (int p = 0; p < 16; ++p) {
    for (int t = 0; t < tiles; t += R) {
      V acc[R][J];
      const float* v[R];  // tile t + r's V[p] row
      HWY_UNROLL(16)
      for (int r = 0; r < R; ++r) {
        v[r] = vb + (t + r) * v_tile + p * cp;
        HWY_UNROLL(16)
        for (int j = 0; j < J; ++j) acc[r][j] = hn::Zero(d);
      }
      conv_block::Accumulate<R, J>(acc, v, q.u + p * C * ocp + o0, C, ocp);
      float* m = mb + t * m_tile + p * ocp + o0;
      HWY_UNROLL(16)
      for (int r = 0; r < R; ++r) {
        HWY_UNROLL(16)
        for (int j = 0; j < J; ++j) hn::StoreU(acc[r][j], d, m + r * m_tile + j * N);
      }
    }
  }
}

// ---- Output transform: Y = A^T M A for the channels [o0, o0 + N) of one tile -------------
// m: the tile's [16, ocp] slice; output (a, b) of the tile goes to py[2a + b] (nullptr:
// past the bottom or right edge).
template <bool kTail>
HWY_INLINE void TransformOutputChannels(const WinogradConv& q, const float* m, float* const* py,
                                        int o0, const Group<kTail>& group) {
  const D d;
  const int64_t ocp = q.ocp;
  V s0[4], s1[4];  // A^T M: combine rows
  HWY_UNROLL(16)
  for (int b = 0; b < 4; ++b) {
    const V m0 = hn::LoadU(d, m + (0 * 4 + b) * ocp + o0);
    const V m1 = hn::LoadU(d, m + (1 * 4 + b) * ocp + o0);
    const V m2 = hn::LoadU(d, m + (2 * 4 + b) * ocp + o0);
    const V m3 = hn::LoadU(d, m + (3 * 4 + b) * ocp + o0);
    s0[b] = hn::Add(hn::Add(m0, m1), m2);
    s1[b] = hn::Sub(hn::Sub(m1, m2), m3);
  }
  V out[4];  // (A^T M) A: combine columns
  out[0] = hn::Add(hn::Add(s0[0], s0[1]), s0[2]);
  out[1] = hn::Sub(hn::Sub(s0[1], s0[2]), s0[3]);
  out[2] = hn::Add(hn::Add(s1[0], s1[1]), s1[2]);
  out[3] = hn::Sub(hn::Sub(s1[1], s1[2]), s1[3]);
  const V bias = (!q.accumulate && q.bias) ? group.Load(q.bias + o0) : hn::Zero(d);
  HWY_UNROLL(16)
  for (int i = 0; i < 4; ++i) {
    if (!py[i]) continue;
    float* p = py[i] + o0;
    group.Store(q.accumulate ? hn::Add(out[i], group.Load(p)) : hn::Add(out[i], bias), p);
  }
}

void TransformOutput(const WinogradConv& q, int64_t t0, int count, const float* mb) {
  const D d;
  const int N = static_cast<int>(hn::Lanes(d));
  const int rem = q.oc % N;
  const Group<false> full{d, hn::FirstN(d, static_cast<size_t>(N)), static_cast<size_t>(N)};
  const Group<true> tail{d, hn::FirstN(d, static_cast<size_t>(rem)), static_cast<size_t>(rem)};
  const int64_t m_tile = 16 * int64_t(q.ocp);
  TileWalker at(q, t0);
  for (int i = 0; i < count; ++i, at.next(q)) {
    float* py[4];
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < 2; ++b) {
        const int oy = 2 * at.ty + a, ox = 2 * at.tx + b;
        py[2 * a + b] = (oy < q.oh && ox < q.ow)
                            ? q.y + ((at.n * q.oh + oy) * q.ow + ox) * int64_t(q.oc)
                            : nullptr;
      }
    const float* m = mb + i * m_tile;
    int o0 = 0;
    for (; o0 + N <= q.oc; o0 += N) TransformOutputChannels(q, m, py, o0, full);
    if (rem != 0) TransformOutputChannels(q, m, py, o0, tail);
  }
}

// Tiles [begin, end) of the whole batch, block by block, with this thread's scratch.
void Tiles(const WinogradConv& q, int64_t begin, int64_t end, float* vb, float* mb,
           float* patch) {
  const D d;
  const int N = static_cast<int>(hn::Lanes(d));
  const int vectors = q.ocp / N;
  for (int64_t t0 = begin; t0 < end; t0 += q.block) {
    const int count = static_cast<int>(std::min<int64_t>(q.block, end - t0));
    const int tiles = (count + kBlockMultiple - 1) / kBlockMultiple * kBlockMultiple;
    TransformInput(q, t0, count, tiles, vb, patch);
    for (int v0 = 0; v0 < vectors; v0 += kMaxJ) {
      switch (std::min(kMaxJ, vectors - v0)) {
        case 1: Multiply<1>(q, vb, mb, tiles, v0 * N); break;
        case 2: Multiply<2>(q, vb, mb, tiles, v0 * N); break;
#if HWY_TARGET <= HWY_AVX3
        case 3: Multiply<3>(q, vb, mb, tiles, v0 * N); break;
        case 4: Multiply<4>(q, vb, mb, tiles, v0 * N); break;
#endif
      }
    }
    TransformOutput(q, t0, count, mb);
  }
}

}  // namespace winograd_hwy

void WinogradTiles(const WinogradConv& q, int64_t begin, int64_t end, float* vb, float* mb,
                   float* patch) {
  winograd_hwy::Tiles(q, begin, end, vb, mb, patch);
}
int64_t WinogradLanes() { return static_cast<int64_t>(hwy::HWY_NAMESPACE::Lanes(winograd_hwy::D())); }
int64_t WinogradCompiledTarget() { return HWY_TARGET; }

}  // namespace fer::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace fer::kernels {

HWY_EXPORT(WinogradTiles);
HWY_EXPORT(WinogradLanes);
HWY_EXPORT(WinogradCompiledTarget);

namespace {

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// U[p = 4a + b][c][o] = (G g G^T)[a][b] with g[kh][kw] = k[kh, kw, c, o], k in Keras's
// layout [3, 3, C, OC]; OCP - OC zero lanes. G's rows are (1, 0, 0), (1/2, 1/2, 1/2),
// (1/2, -1/2, 1/2), (0, 0, 1), so G g G^T is sums and halvings, written out below as loops
// over o (contiguous, vectorized by the compiler), input channels split over threads.
AlignedBuffer transform_kernel(const float* k, int c, int oc, int64_t ocp) {
  auto u = AlignedBuffer::uninitialized(16 * int64_t(c) * ocp);
  const bool parallel = !omp_in_parallel() && int64_t(c) * oc >= 4096;
#pragma omp parallel if (parallel)
  {
    std::vector<float> gk(12 * size_t(oc));  // (G g)[a][kw][o]
#pragma omp for schedule(static)
    for (int ci = 0; ci < c; ++ci) {
      const auto tap = [&](int kh, int kw) { return k + ((kh * 3 + kw) * int64_t(c) + ci) * oc; };
      for (int kw = 0; kw < 3; ++kw) {
        const float *k0 = tap(0, kw), *k1 = tap(1, kw), *k2 = tap(2, kw);
        float* g0 = gk.data() + (0 * 3 + kw) * size_t(oc);
        float* g1 = gk.data() + (1 * 3 + kw) * size_t(oc);
        float* g2 = gk.data() + (2 * 3 + kw) * size_t(oc);
        float* g3 = gk.data() + (3 * 3 + kw) * size_t(oc);
        for (int o = 0; o < oc; ++o) {
          g0[o] = k0[o];
          g1[o] = 0.5f * (k0[o] + k1[o] + k2[o]);
          g2[o] = 0.5f * (k0[o] - k1[o] + k2[o]);
          g3[o] = k2[o];
        }
      }
      for (int a = 0; a < 4; ++a) {
        const float* r0 = gk.data() + (a * 3 + 0) * size_t(oc);
        const float* r1 = gk.data() + (a * 3 + 1) * size_t(oc);
        const float* r2 = gk.data() + (a * 3 + 2) * size_t(oc);
        float* u0 = u.data() + ((a * 4 + 0) * int64_t(c) + ci) * ocp;
        float* u1 = u0 + int64_t(c) * ocp;
        float* u2 = u1 + int64_t(c) * ocp;
        float* u3 = u2 + int64_t(c) * ocp;
        for (int o = 0; o < oc; ++o) {
          u0[o] = r0[o];
          u1[o] = 0.5f * (r0[o] + r1[o] + r2[o]);
          u2[o] = 0.5f * (r0[o] - r1[o] + r2[o]);
          u3[o] = r2[o];
        }
        for (float* row : {u0, u1, u2, u3}) std::fill(row + oc, row + ocp, 0.f);
      }
    }
  }
  return u;
}

// Runs q over all tiles: threads take contiguous tile ranges, each with its own scratch
// (kept between calls: no allocation once the shapes have been seen).
void run(WinogradConv q) {
  const int64_t lanes = HWY_DYNAMIC_DISPATCH(WinogradLanes)();
  q.cp = static_cast<int>(round_up(q.c, lanes));
  q.tiles_h = (q.oh + 1) / 2;
  q.tiles_w = (q.ow + 1) / 2;
  const int64_t tiles = int64_t(q.n) * q.tiles_h * q.tiles_w;
  // V and M of one block in about 512 KB (half of this core's 1 MB L2). The size hardly
  // mattered in bench_conv2d (16 KB to 512 KB within 10% at cnn3's convs).
  const int64_t per_tile_bytes = 16 * int64_t(q.cp + q.ocp) * 4;
  const int64_t fit = std::max<int64_t>(1, (int64_t{512} << 10) / per_tile_bytes);
  int threads = 1;
  if (!omp_in_parallel() && tiles * 16 * q.c * q.ocp >= (int64_t{1} << 16))
    threads = static_cast<int>(std::min<int64_t>(omp_get_max_threads(),
                                                 (tiles + kBlockMultiple - 1) / kBlockMultiple));
  const int64_t per_thread = (tiles + threads - 1) / threads;
  q.block = static_cast<int>(
      round_up(std::min(std::max<int64_t>(fit, kBlockMultiple), per_thread), kBlockMultiple));
#pragma omp parallel num_threads(threads)
  {
    thread_local std::vector<float> scratch;
    const int64_t vb_size = 16 * int64_t(q.block) * q.cp;
    const int64_t mb_size = 16 * int64_t(q.block) * q.ocp;
    const size_t need = size_t(vb_size + mb_size + 16 * q.cp);  // V, M, a 4x4 patch
    if (scratch.size() < need) scratch.resize(need);
    const int t = omp_get_thread_num(), T = omp_get_num_threads();
    const int64_t begin = tiles * t / T, end = tiles * (t + 1) / T;
    if (begin < end)
      HWY_DYNAMIC_DISPATCH(WinogradTiles)(q, begin, end, scratch.data(),
                                          scratch.data() + vb_size,
                                          scratch.data() + vb_size + mb_size);
  }
}

}  // namespace

bool conv2d_winograd_covers(const Conv2DGeometry& g) {
  return g.kh == 3 && g.kw == 3 && g.stride_h == 1 && g.stride_w == 1;
}

WinogradKernel conv2d_winograd_transform_kernel(const float* kernel, int c, int oc) {
  WinogradKernel k;
  k.c = c;
  k.oc = oc;
  // Rounded to whole 16-float vectors whatever the target (a multiple of every x86 vector
  // width), so that a transform made under one SIMD target stays valid under another
  // (the tests force targets one after the other).
  k.ocp = round_up(oc, std::max<int64_t>(16, HWY_DYNAMIC_DISPATCH(WinogradLanes)()));
  if (c > 0 && oc > 0) k.u = transform_kernel(kernel, c, oc, k.ocp);
  return k;
}

void conv2d_forward_winograd_transformed(const Conv2DGeometry& g, const WinogradKernel& k,
                                         const float* x, const float* bias, float* y) {
  FER_CHECK(conv2d_winograd_covers(g), "conv2d_forward_winograd: 3x3 stride 1 only, got ",
            g.kh, "x", g.kw, " stride ", g.stride_h, ",", g.stride_w);
  FER_CHECK(k.c == g.c, "conv2d_forward_winograd_transformed: kernel transformed for ", k.c,
            " input channels, input has ", g.c);
  FER_CHECK(k.ocp % HWY_DYNAMIC_DISPATCH(WinogradLanes)() == 0,
            "conv2d_forward_winograd_transformed: kernel transformed for narrower vectors");
  const int oc = k.oc;
  if (g.n <= 0 || g.oh <= 0 || g.ow <= 0 || oc <= 0) return;
  if (g.c <= 0) {  // no inputs: y = bias
    for (int64_t i = 0; i < int64_t(g.n) * g.oh * g.ow; ++i)
      for (int o = 0; o < oc; ++o) y[i * oc + o] = bias ? bias[o] : 0.f;
    return;
  }
  WinogradConv q{};
  q.n = g.n; q.h = g.h; q.w = g.w; q.c = g.c;
  q.oh = g.oh; q.ow = g.ow; q.oc = oc; q.ocp = static_cast<int>(k.ocp);
  q.pt = g.pad_top; q.pl = g.pad_left;
  q.x = x; q.u = k.u.data(); q.bias = bias; q.accumulate = false; q.y = y;
  run(q);
}

void conv2d_forward_winograd(const Conv2DGeometry& g, int oc, const float* x,
                             const float* kernel, const float* bias, float* y) {
  conv2d_forward_winograd_transformed(g, conv2d_winograd_transform_kernel(kernel, g.c, oc), x,
                                      bias, y);
}

void conv2d_backward_input_winograd(const Conv2DGeometry& g, int oc, const float* dy,
                                    const float* kernel, float* dx, bool accumulate) {
  FER_CHECK(conv2d_winograd_covers(g), "conv2d_backward_input_winograd: 3x3 stride 1 only, got ",
            g.kh, "x", g.kw, " stride ", g.stride_h, ",", g.stride_w);
  if (g.n <= 0 || g.h <= 0 || g.w <= 0 || g.c <= 0) return;  // dx is empty
  if (g.oh <= 0 || g.ow <= 0 || oc <= 0) {  // nothing reaches dx
    if (!accumulate) std::fill(dx, dx + int64_t(g.n) * g.h * g.w * g.c, 0.f);
    return;
  }
  // dx is the convolution of dy by k'[kh, kw, o, c] = k[2 - kh, 2 - kw, c, o], padded by
  // 2 - pad_top and 2 - pad_left (conv2d_direct_hwy.cpp derives it).
  const int64_t cp = round_up(g.c, HWY_DYNAMIC_DISPATCH(WinogradLanes)());
  auto flipped = AlignedBuffer::uninitialized(9 * int64_t(oc) * g.c);  // [3, 3, OC, C]
  for (int kh = 0; kh < 3; ++kh)
    for (int kw = 0; kw < 3; ++kw) {
      const float* src = kernel + ((2 - kh) * 3 + (2 - kw)) * int64_t(g.c) * oc;
      float* dst = flipped.data() + (kh * 3 + kw) * int64_t(oc) * g.c;
      for (int c = 0; c < g.c; ++c)
        for (int o = 0; o < oc; ++o) dst[int64_t(o) * g.c + c] = src[int64_t(c) * oc + o];
    }
  const AlignedBuffer u = transform_kernel(flipped.data(), oc, g.c, cp);
  WinogradConv q{};
  q.n = g.n; q.h = g.oh; q.w = g.ow; q.c = oc;
  q.oh = g.h; q.ow = g.w; q.oc = g.c; q.ocp = static_cast<int>(cp);
  q.pt = 2 - g.pad_top; q.pl = 2 - g.pad_left;
  q.x = dy; q.u = u.data(); q.bias = nullptr; q.accumulate = accumulate; q.y = dx;
  run(q);
}

std::vector<int64_t> conv2d_winograd_hwy_targets() { return hwy::SupportedAndGeneratedTargets(); }

void conv2d_winograd_hwy_force_target(int64_t target) { hwy::SetSupportedTargetsForTest(target); }

int64_t conv2d_winograd_hwy_dispatched_target() {
  return HWY_DYNAMIC_DISPATCH(WinogradCompiledTarget)();
}

const char* conv2d_winograd_hwy_target_name(int64_t target) { return hwy::TargetName(target); }

}  // namespace fer::kernels
#endif  // HWY_ONCE
