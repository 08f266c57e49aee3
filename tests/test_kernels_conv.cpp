// The GEMM, convolution, depthwise and pooling kernels: a few hand-computed values that
// pin down the reference versions (and the TF padding rule), then the fast versions
// against the references over many randomized shapes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "fer/rng.h"
#include "kernels/conv2d.h"
#include "kernels/depthwise_conv2d.h"
#include "kernels/gemm.h"
#include "kernels/padding.h"
#include "kernels/pool.h"
#include "kernel_compare.h"

using namespace fer;
using namespace fer::kernels;
using fer::testing::ConvCase;
using fer::testing::describe;
using fer::testing::expect_close;
using fer::testing::random_values;

namespace {

void expect_values(const std::vector<float>& got, const std::vector<float>& want,
                   const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-5f) << what << "[" << i << "]";
}

// ---- GEMM ---------------------------------------------------------------------------

TEST(Gemm, HandComputedProduct) {
  const std::vector<float> a = {1, 2, 3, 4, 5, 6};     // 2 x 3
  const std::vector<float> b = {7, 8, 9, 10, 11, 12};  // 3 x 2
  for (auto* gemm : {&sgemm_ref, &sgemm}) {
    std::vector<float> c(4, 1.f);
    gemm(false, false, 2, 2, 3, 2.f, a.data(), 3, b.data(), 2, 0.5f, c.data(), 2);
    // A*B = [[58, 64], [139, 154]]; C = 2*A*B + 0.5*1.
    expect_values(c, {116.5f, 128.5f, 278.5f, 308.5f}, "2*A*B + 0.5*C");
    // A^T (3x2) * A (2x3) is symmetric: [[17, 22, 27], [22, 29, 36], [27, 36, 45]].
    std::vector<float> d(9);
    gemm(true, false, 3, 3, 2, 1.f, a.data(), 3, a.data(), 3, 0.f, d.data(), 3);
    expect_values(d, {17, 22, 27, 22, 29, 36, 27, 36, 45}, "A^T*A");
  }
}

TEST(Gemm, MatchesReferenceForAllTransposesAndOddSizes) {
  Rng rng(7);
  struct Size { int m, n, k; };
  const Size sizes[] = {{1, 1, 1}, {7, 13, 5}, {33, 17, 65}, {64, 3, 1}, {2, 50, 31}, {19, 1, 40}};
  for (const Size s : sizes)
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (float beta : {0.f, 1.f, 0.5f}) {
          // Leading dimensions wider than the matrices: a block of a bigger matrix.
          const int lda = (ta ? s.m : s.k) + 3, ldb = (tb ? s.k : s.n) + 2, ldc = s.n + 1;
          const auto a = random_values(size_t(ta ? s.k : s.m) * lda, rng);
          const auto b = random_values(size_t(tb ? s.n : s.k) * ldb, rng);
          auto c_ref = random_values(size_t(s.m) * ldc, rng);
          if (beta == 0.f)  // beta = 0 must ignore C, even NaN
            std::fill(c_ref.begin(), c_ref.end(), std::numeric_limits<float>::quiet_NaN());
          auto c = c_ref;
          const float alpha = beta == 0.5f ? -0.75f : 1.f;
          sgemm_ref(ta, tb, s.m, s.n, s.k, alpha, a.data(), lda, b.data(), ldb, beta,
                    c_ref.data(), ldc);
          sgemm(ta, tb, s.m, s.n, s.k, alpha, a.data(), lda, b.data(), ldb, beta, c.data(), ldc);
          // Compare only the m x n block: the padding columns are not part of C.
          std::vector<float> got, want;
          for (int i = 0; i < s.m; ++i)
            for (int j = 0; j < s.n; ++j) {
              got.push_back(c[size_t(i) * ldc + j]);
              want.push_back(c_ref[size_t(i) * ldc + j]);
            }
          std::ostringstream what;
          what << "m=" << s.m << " n=" << s.n << " k=" << s.k << " ta=" << ta << " tb=" << tb
               << " beta=" << beta;
          expect_close(got, want, what.str());
          for (float v : got) ASSERT_TRUE(std::isfinite(v)) << what.str();
        }
}

TEST(Gemm, EmptyInnerDimensionScalesC) {
  std::vector<float> c = {1, 2, 3, 4};
  sgemm(false, false, 2, 2, 0, 1.f, nullptr, 1, nullptr, 2, 0.5f, c.data(), 2);
  expect_values(c, {0.5f, 1.f, 1.5f, 2.f}, "k = 0");
}

TEST(Gemm, BiasHelpers) {
  std::vector<float> m(6, -1.f);
  const std::vector<float> bias = {1, 2, 3};
  broadcast_rows(2, 3, bias.data(), m.data());
  expect_values(m, {1, 2, 3, 1, 2, 3}, "broadcast_rows");
  std::vector<float> sums = {10, 0, 0};
  add_column_sums(2, 3, m.data(), sums.data());
  expect_values(sums, {12, 4, 6}, "add_column_sums");
}

// ---- Padding geometry (TensorFlow's 'same') -----------------------------------------

TEST(Padding, SameStride2PadsBottomRightOnEvenInput) {
  Window1D w = window_1d(4, 3, 2, Padding::Same);
  EXPECT_EQ(w.out, 2);
  EXPECT_EQ(w.pad_before, 0);
  EXPECT_EQ(w.pad_after, 1);
  w = window_1d(5, 3, 2, Padding::Same);
  EXPECT_EQ(w.out, 3);
  EXPECT_EQ(w.pad_before, 1);
  EXPECT_EQ(w.pad_after, 1);
  w = window_1d(48, 3, 2, Padding::Same);
  EXPECT_EQ(w.out, 24);
  EXPECT_EQ(w.pad_before, 0);
  EXPECT_EQ(w.pad_after, 1);
  EXPECT_EQ(window_1d(5, 3, 2, Padding::Valid).out, 2);
  EXPECT_EQ(window_1d(2, 3, 1, Padding::Valid).out, 0);
}

// ---- Conv2D: hand-computed ----------------------------------------------------------

using ConvForward = void (*)(const Conv2DGeometry&, int, const float*, const float*,
                             const float*, float*);
using ConvBackwardInput = void (*)(const Conv2DGeometry&, int, const float*, const float*,
                                   float*);
using ConvBackwardWeights = void (*)(const Conv2DGeometry&, int, const float*, const float*,
                                     float*, float*);

TEST(Conv2D, HandComputed3x3InputWith2x2Kernel) {
  // x = [[1,2,3],[4,5,6],[7,8,9]], kernel = [[1,2],[3,4]], one channel in and out.
  const std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  const std::vector<float> k = {1, 2, 3, 4};
  const float bias = 0.5f;
  const Conv2DGeometry g = make_geometry(1, 3, 3, 1, 2, 2, 1, 1, Padding::Valid);
  ASSERT_EQ(g.oh, 2);
  ASSERT_EQ(g.ow, 2);
  const std::pair<ConvForward, ConvBackwardInput> impls[] = {
      {conv2d_forward_ref, conv2d_backward_input_ref},
      {conv2d_forward, [](const Conv2DGeometry& g, int oc, const float* dy, const float* k,
                          float* dx) { conv2d_backward_input(g, oc, dy, k, dx); }}};
  const ConvBackwardWeights weight_impls[] = {conv2d_backward_weights_ref,
                                              conv2d_backward_weights};
  for (int v = 0; v < 2; ++v) {
    const std::string which = v ? "fast" : "ref";
    std::vector<float> y(4);
    impls[v].first(g, 1, x.data(), k.data(), &bias, y.data());
    // y[0][0] = 1*1 + 2*2 + 4*3 + 5*4 = 37, and so on, plus the bias.
    expect_values(y, {37.5f, 47.5f, 67.5f, 77.5f}, which + " forward");

    // dy = 1 everywhere: each input collects the kernel weights that touched it.
    const std::vector<float> dy(4, 1.f);
    std::vector<float> dx(9, 0.f);
    impls[v].second(g, 1, dy.data(), k.data(), dx.data());
    expect_values(dx, {1, 3, 2, 4, 10, 6, 3, 7, 4}, which + " backward input");

    // dkernel[kh][kw] = sum of the inputs under that weight; dbias = number of outputs.
    // Both start at 1 to check that they accumulate.
    std::vector<float> dk(4, 1.f);
    float db = 1.f;
    weight_impls[v](g, 1, x.data(), dy.data(), dk.data(), &db);
    expect_values(dk, {13, 17, 25, 29}, which + " backward weights");
    EXPECT_FLOAT_EQ(db, 5.f) << which;
  }
}

TEST(Conv2D, HandComputedPointwiseUsesKerasLayout) {
  // 1x1 conv = a matrix product per pixel; kernel [1, 1, C=2, OC=3] read as [C, OC].
  const std::vector<float> x = {1, 2, 3, 4};             // [1, 1, 2, 2]: pixels (1,2), (3,4)
  const std::vector<float> k = {1, 0, 2, 0, 1, -1};      // rows = input channels
  const Conv2DGeometry g = make_geometry(1, 1, 2, 2, 1, 1, 1, 1, Padding::Same);
  for (ConvForward f : {ConvForward(conv2d_forward_ref), ConvForward(conv2d_forward)}) {
    std::vector<float> y(6);
    f(g, 3, x.data(), k.data(), nullptr, y.data());
    expect_values(y, {1, 2, 0, 3, 4, 2}, "pointwise");
  }
}

TEST(Conv2D, SameStride2PadsBottomRight) {
  // All-ones input and 3x3 kernel: each output counts the window's cells inside the image.
  for (ConvForward f : {ConvForward(conv2d_forward_ref), ConvForward(conv2d_forward)}) {
    // 4x4: pad_top = 0, pad_bottom = 1, so the first window is fully inside (9 cells).
    Conv2DGeometry g = make_geometry(1, 4, 4, 1, 3, 3, 2, 2, Padding::Same);
    std::vector<float> x(16, 1.f), k(9, 1.f), y(4);
    f(g, 1, x.data(), k.data(), nullptr, y.data());
    expect_values(y, {9, 6, 6, 4}, "4x4 same stride 2");
    // 5x5: one row/column of padding on each side.
    g = make_geometry(1, 5, 5, 1, 3, 3, 2, 2, Padding::Same);
    x.assign(25, 1.f);
    y.assign(9, 0.f);
    f(g, 1, x.data(), k.data(), nullptr, y.data());
    expect_values(y, {4, 6, 4, 6, 9, 6, 4, 6, 4}, "5x5 same stride 2");
  }
}

// ---- Conv2D: fast vs reference ------------------------------------------------------

// Hand-picked edge cases, then random ones (kept small: the reference is O(everything)).
std::vector<ConvCase> conv_cases() {
  std::vector<ConvCase> cases = {
      {2, 5, 5, 3, 4, 3, 3, 1, 1, Padding::Same},
      {1, 6, 6, 17, 5, 3, 3, 2, 2, Padding::Same},    // even input, stride 2 same
      {2, 7, 7, 5, 3, 3, 3, 2, 2, Padding::Same},     // odd input, stride 2 same
      {3, 7, 6, 2, 6, 3, 2, 2, 1, Padding::Valid},
      {1, 1, 1, 20, 7, 3, 3, 1, 1, Padding::Same},    // 1x1 map, kernel mostly padding
      {2, 1, 1, 9, 4, 1, 1, 1, 1, Padding::Valid},    // 1x1 map, pointwise
      {2, 4, 5, 33, 18, 1, 1, 1, 1, Padding::Same},   // pointwise GEMM path
      {2, 5, 4, 6, 3, 1, 1, 2, 2, Padding::Same},     // 1x1 kernel but strided: im2col path
      {1, 9, 9, 3, 2, 5, 5, 3, 3, Padding::Same},
      {2, 8, 8, 4, 4, 4, 4, 1, 1, Padding::Same},     // even kernel, asymmetric same padding
      // Big enough per image that the batch goes through im2col in several chunks.
      {11, 40, 40, 16, 8, 3, 3, 1, 1, Padding::Same},
  };
  Rng rng(2024);
  for (int i = 0; i < 25; ++i) {
    cases.push_back(fer::testing::random_conv_case(rng, 9, 9, 20, 9));
  }
  return cases;
}

TEST(Conv2D, FastMatchesReference) {
  Rng rng(11);
  int index = 0;
  for (const ConvCase& t : conv_cases()) {
    const std::string what = describe(t);
    const Conv2DGeometry g =
        make_geometry(t.n, t.h, t.w, t.c, t.kh, t.kw, t.sh, t.sw, t.padding);
    ASSERT_GT(g.oh, 0) << what;
    const bool use_bias = index++ % 2 == 0;
    const auto x = random_values(size_t(t.n) * t.h * t.w * t.c, rng);
    const auto k = random_values(size_t(t.kh) * t.kw * t.c * t.oc, rng);
    const auto b = random_values(t.oc, rng);
    const size_t ysize = size_t(t.n) * g.oh * g.ow * t.oc;

    fer::testing::expect_forward_matches(g, t.oc, x, k, use_bias ? b.data() : nullptr,
                                         conv2d_forward, what);

    // Backward to the input from a random dy: adding into a random dx, and overwriting.
    const auto dy = random_values(ysize, rng);
    fer::testing::expect_backward_input_matches(g, t.oc, dy, k, x.size(), rng,
                                                conv2d_backward_input, what);
    fer::testing::expect_backward_input_matches(g, t.oc, dy, k, x.size(), rng,
                                                conv2d_backward_input_im2col, what + " im2col");

    const auto dk0 = random_values(k.size(), rng);
    const auto db0 = random_values(b.size(), rng);
    auto dk_ref = dk0, dk = dk0, db_ref = db0, db = db0;
    conv2d_backward_weights_ref(g, t.oc, x.data(), dy.data(), dk_ref.data(),
                                use_bias ? db_ref.data() : nullptr);
    conv2d_backward_weights(g, t.oc, x.data(), dy.data(), dk.data(),
                            use_bias ? db.data() : nullptr);
    expect_close(dk, dk_ref, what + " backward kernel");
    expect_close(db, db_ref, what + " backward bias");
    if (!use_bias) expect_values(db, db0, what + " bias untouched without bias");
  }
}

TEST(Conv2D, BiasGradientAloneWhenKernelIsFrozen) {
  Rng rng(3);
  const Conv2DGeometry g = make_geometry(2, 5, 5, 3, 3, 3, 1, 1, Padding::Same);
  const auto x = random_values(2 * 25 * 3, rng);
  const auto dy = random_values(2 * 25 * 4, rng);
  std::vector<float> db_ref(4, 0.f), db(4, 0.f);
  conv2d_backward_weights_ref(g, 4, x.data(), dy.data(), nullptr, db_ref.data());
  conv2d_backward_weights(g, 4, x.data(), dy.data(), nullptr, db.data());
  expect_close(db, db_ref, "bias only");
  float sum0 = 0;
  for (int i = 0; i < 50; ++i) sum0 += dy[i * 4];
  EXPECT_NEAR(db[0], sum0, 1e-4f);
}

// ---- Depthwise ----------------------------------------------------------------------

TEST(DepthwiseConv2D, HandComputedChannelsDoNotMix) {
  // Two channels: channel 0 = 1..9 with kernel [[1,2],[3,4]]; channel 1 = 10..90 with
  // kernel [[1,0],[0,-1]], which takes x[i][j] - x[i+1][j+1] = -40 everywhere.
  std::vector<float> x(18), k = {1, 1, 2, 0, 3, 0, 4, -1};  // [2, 2, C=2] interleaved
  for (int i = 0; i < 9; ++i) {
    x[2 * i] = float(i + 1);
    x[2 * i + 1] = 10.f * float(i + 1);
  }
  const Conv2DGeometry g = make_geometry(1, 3, 3, 2, 2, 2, 1, 1, Padding::Valid);
  const std::vector<float> bias = {0.5f, 0.f};
  for (auto f : {&depthwise_conv2d_forward_ref, &depthwise_conv2d_forward}) {
    std::vector<float> y(8);
    f(g, x.data(), k.data(), bias.data(), y.data());
    expect_values(y, {37.5f, -40, 47.5f, -40, 67.5f, -40, 77.5f, -40}, "depthwise forward");
  }
  const std::vector<float> dy(8, 1.f);
  using DwBackInput = void (*)(const Conv2DGeometry&, const float*, const float*, float*);
  const DwBackInput dw_fast = [](const Conv2DGeometry& g, const float* dy, const float* k,
                                 float* dx) { depthwise_conv2d_backward_input(g, dy, k, dx); };
  for (DwBackInput f : {DwBackInput(&depthwise_conv2d_backward_input_ref), dw_fast}) {
    std::vector<float> dx(18, 0.f);
    f(g, dy.data(), k.data(), dx.data());
    // Channel 0 as in the Conv2D hand test; channel 1 gets +1 at the top-left 2x2 (from
    // weight 1) and -1 at the bottom-right 2x2 (from weight -1), 0 at the center.
    expect_values(dx, {1, 1, 3, 1, 2, 0, 4, 1, 10, 0, 6, -1, 3, 0, 7, -1, 4, -1},
                  "depthwise backward input");
  }
  for (auto f : {&depthwise_conv2d_backward_weights_ref, &depthwise_conv2d_backward_weights}) {
    std::vector<float> dk(8, 0.f), db(2, 0.f);
    f(g, x.data(), dy.data(), dk.data(), db.data());
    expect_values(dk, {12, 120, 16, 160, 24, 240, 28, 280}, "depthwise backward kernel");
    expect_values(db, {4, 4}, "depthwise backward bias");
  }
}

TEST(DepthwiseConv2D, FastMatchesReference) {
  Rng rng(12);
  int index = 0;
  for (const ConvCase& t : conv_cases()) {
    if (t.n * t.h * t.w > 2000) continue;  // the chunking case is for Conv2D only
    const std::string what = describe(t);
    const Conv2DGeometry g =
        make_geometry(t.n, t.h, t.w, t.c, t.kh, t.kw, t.sh, t.sw, t.padding);
    const bool use_bias = index++ % 2 == 1;
    const auto x = random_values(size_t(t.n) * t.h * t.w * t.c, rng);
    const auto k = random_values(size_t(t.kh) * t.kw * t.c, rng);
    const auto b = random_values(t.c, rng);
    const size_t ysize = size_t(t.n) * g.oh * g.ow * t.c;

    std::vector<float> y_ref(ysize), y(ysize, 123.f);
    depthwise_conv2d_forward_ref(g, x.data(), k.data(), use_bias ? b.data() : nullptr,
                                 y_ref.data());
    depthwise_conv2d_forward(g, x.data(), k.data(), use_bias ? b.data() : nullptr, y.data());
    expect_close(y, y_ref, what + " depthwise forward");

    const auto dy = random_values(ysize, rng);
    const auto dx0 = random_values(x.size(), rng);
    auto dx_ref = dx0, dx = dx0;
    depthwise_conv2d_backward_input_ref(g, dy.data(), k.data(), dx_ref.data());
    depthwise_conv2d_backward_input(g, dy.data(), k.data(), dx.data());
    expect_close(dx, dx_ref, what + " depthwise backward input");

    const auto dk0 = random_values(k.size(), rng);
    const auto db0 = random_values(b.size(), rng);
    auto dk_ref = dk0, dk = dk0, db_ref = db0, db = db0;
    depthwise_conv2d_backward_weights_ref(g, x.data(), dy.data(), dk_ref.data(),
                                          use_bias ? db_ref.data() : nullptr);
    depthwise_conv2d_backward_weights(g, x.data(), dy.data(), dk.data(),
                                      use_bias ? db.data() : nullptr);
    expect_close(dk, dk_ref, what + " depthwise backward kernel");
    expect_close(db, db_ref, what + " depthwise backward bias");
  }
}

// ---- Pooling: hand-computed ---------------------------------------------------------

TEST(Pool, MaxPoolHandComputed) {
  std::vector<float> x(16);
  for (int i = 0; i < 16; ++i) x[i] = float(i);  // 4x4, one channel
  const Conv2DGeometry g = make_geometry(1, 4, 4, 1, 2, 2, 2, 2, Padding::Valid);
  const std::vector<float> dy = {1, 2, 3, 4};
  for (int v = 0; v < 2; ++v) {
    std::vector<float> y(4), dx(16, 0.f);
    (v ? max_pool2d_forward : max_pool2d_forward_ref)(g, x.data(), y.data());
    expect_values(y, {5, 7, 13, 15}, "max pool");
    (v ? max_pool2d_backward : max_pool2d_backward_ref)(g, x.data(), dy.data(), dx.data());
    std::vector<float> want(16, 0.f);
    want[5] = 1, want[7] = 2, want[13] = 3, want[15] = 4;
    expect_values(dx, want, "max pool backward: only the winners");
  }
}

TEST(Pool, MaxPoolSamePadsWithMinusInfinityAndTiesGoToTheFirst) {
  // Negative values: a zero-padded max would return 0 at the right and bottom edges.
  std::vector<float> x(9);
  for (int i = 0; i < 9; ++i) x[i] = -float(i + 1);
  const Conv2DGeometry g = make_geometry(1, 3, 3, 1, 2, 2, 2, 2, Padding::Same);
  ASSERT_EQ(g.oh, 2);
  ASSERT_EQ(g.pad_top, 0);  // the padding row/column is at the bottom/right
  for (int v = 0; v < 2; ++v) {
    std::vector<float> y(4);
    (v ? max_pool2d_forward : max_pool2d_forward_ref)(g, x.data(), y.data());
    expect_values(y, {-1, -3, -7, -9}, "max pool same");
  }
  // A window of equal values sends its gradient to the first cell only.
  const std::vector<float> ties(4, 2.f), dy = {1.f};
  const Conv2DGeometry g2 = make_geometry(1, 2, 2, 1, 2, 2, 2, 2, Padding::Valid);
  for (int v = 0; v < 2; ++v) {
    std::vector<float> dx(4, 0.f);
    (v ? max_pool2d_backward : max_pool2d_backward_ref)(g2, ties.data(), dy.data(), dx.data());
    expect_values(dx, {1, 0, 0, 0}, "max pool tie");
  }
}

TEST(Pool, AvgPoolSameExcludesPaddingFromTheCount) {
  const std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  const Conv2DGeometry g = make_geometry(1, 3, 3, 1, 2, 2, 1, 1, Padding::Same);
  ASSERT_EQ(g.oh, 3);
  const std::vector<float> dy(9, 1.f);
  for (int v = 0; v < 2; ++v) {
    std::vector<float> y(9), dx(9, 0.f);
    (v ? avg_pool2d_forward : avg_pool2d_forward_ref)(g, x.data(), y.data());
    // Windows reach down/right; at the edges only the cells inside are averaged.
    expect_values(y, {3, 4, 4.5f, 6, 7, 7.5f, 7.5f, 8.5f, 9}, "avg pool same");
    (v ? avg_pool2d_backward : avg_pool2d_backward_ref)(g, dy.data(), dx.data());
    // x[2][2] is in windows counting 4, 2, 2 and 1 cells: 1/4 + 1/2 + 1/2 + 1.
    expect_values(dx, {0.25f, 0.5f, 0.75f, 0.5f, 1.f, 1.5f, 0.75f, 1.5f, 2.25f},
                  "avg pool same backward");
  }
}

TEST(Pool, GlobalAveragePoolHandComputed) {
  // [1, 2, 2, 2]: channel 0 = 1, 2, 3, 4; channel 1 = 10, 20, 30, 40.
  const std::vector<float> x = {1, 10, 2, 20, 3, 30, 4, 40};
  const std::vector<float> dy = {4, 8};
  for (int v = 0; v < 2; ++v) {
    std::vector<float> y(2), dx(8, 1.f);
    (v ? global_avg_pool2d_forward : global_avg_pool2d_forward_ref)(1, 4, 2, x.data(), y.data());
    expect_values(y, {2.5f, 25.f}, "global average");
    (v ? global_avg_pool2d_backward : global_avg_pool2d_backward_ref)(1, 4, 2, dy.data(),
                                                                      dx.data());
    expect_values(dx, {2, 3, 2, 3, 2, 3, 2, 3}, "global average backward (accumulates)");
  }
}

// ---- Pooling: fast vs reference -----------------------------------------------------

TEST(Pool, FastMatchesReference) {
  Rng rng(13);
  struct PoolCase { int n, h, w, c, kh, kw, sh, sw; Padding padding; };
  std::vector<PoolCase> cases = {
      {2, 6, 6, 17, 2, 2, 2, 2, Padding::Valid}, {1, 7, 7, 3, 2, 2, 2, 2, Padding::Same},
      {2, 5, 6, 4, 3, 3, 2, 2, Padding::Same},   {1, 1, 1, 5, 2, 2, 2, 2, Padding::Same},
      {3, 7, 5, 2, 3, 3, 1, 1, Padding::Same},   {2, 9, 9, 6, 3, 2, 2, 3, Padding::Valid},
  };
  for (int i = 0; i < 20; ++i) {
    PoolCase t{1 + int(rng.below(3)), 1 + int(rng.below(9)), 1 + int(rng.below(9)),
               1 + int(rng.below(20)), 1 + int(rng.below(3)), 1 + int(rng.below(3)),
               1 + int(rng.below(3)), 1 + int(rng.below(3)),
               rng.bernoulli(0.5) ? Padding::Same : Padding::Valid};
    if (t.padding == Padding::Valid && (t.h < t.kh || t.w < t.kw)) t.padding = Padding::Same;
    cases.push_back(t);
  }
  for (const PoolCase& t : cases) {
    std::ostringstream s;
    s << "x [" << t.n << "," << t.h << "," << t.w << "," << t.c << "] pool " << t.kh << "x"
      << t.kw << " stride " << t.sh << "," << t.sw << " " << padding_name(t.padding);
    const std::string what = s.str();
    const Conv2DGeometry g = make_geometry(t.n, t.h, t.w, t.c, t.kh, t.kw, t.sh, t.sw, t.padding);
    const auto x = random_values(size_t(t.n) * t.h * t.w * t.c, rng);
    const size_t ysize = size_t(t.n) * g.oh * g.ow * t.c;
    const auto dy = random_values(ysize, rng);
    const auto dx0 = random_values(x.size(), rng);

    std::vector<float> y_ref(ysize), y(ysize);
    max_pool2d_forward_ref(g, x.data(), y_ref.data());
    max_pool2d_forward(g, x.data(), y.data());
    expect_close(y, y_ref, what + " max forward");
    auto dx_ref = dx0, dx = dx0;
    max_pool2d_backward_ref(g, x.data(), dy.data(), dx_ref.data());
    max_pool2d_backward(g, x.data(), dy.data(), dx.data());
    expect_close(dx, dx_ref, what + " max backward");

    avg_pool2d_forward_ref(g, x.data(), y_ref.data());
    avg_pool2d_forward(g, x.data(), y.data());
    expect_close(y, y_ref, what + " avg forward");
    dx_ref = dx0, dx = dx0;
    avg_pool2d_backward_ref(g, dy.data(), dx_ref.data());
    avg_pool2d_backward(g, dy.data(), dx.data());
    expect_close(dx, dx_ref, what + " avg backward");

    const int hw = t.h * t.w;
    std::vector<float> gy_ref(size_t(t.n) * t.c), gy(gy_ref.size());
    global_avg_pool2d_forward_ref(t.n, hw, t.c, x.data(), gy_ref.data());
    global_avg_pool2d_forward(t.n, hw, t.c, x.data(), gy.data());
    expect_close(gy, gy_ref, what + " global forward");
    dx_ref = dx0, dx = dx0;
    global_avg_pool2d_backward_ref(t.n, hw, t.c, dy.data(), dx_ref.data());
    global_avg_pool2d_backward(t.n, hw, t.c, dy.data(), dx.data());
    expect_close(dx, dx_ref, what + " global backward");
  }
}

}  // namespace
