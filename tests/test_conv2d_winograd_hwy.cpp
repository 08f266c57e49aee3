// Winograd F(2x2, 3x3) convolution (kernels/conv2d_winograd_hwy.cpp) against the reference
// loops of kernels/conv2d.h, on every SIMD target compiled that this CPU runs: forward
// (overwrites y, with and without bias) and backward to the input (adds into dx), for 3x3
// stride-1 shapes with odd and even sizes (partial output tiles), both paddings, channel
// counts that are not a multiple of any vector width, more output channels than one
// register block holds, 1x1 and 2x2 maps, batch 1, and batches whose tiles span several
// blocks and threads. The forward with the kernel transformed once
// (conv2d_winograd_transform_kernel + conv2d_forward_winograd_transformed) must equal the
// one-call forward bit for bit.
#include <gtest/gtest.h>

#include "hwy_targets.h"
#include "kernel_compare.h"

#include <omp.h>

#include <algorithm>
#include <string>
#include <vector>

#include "fer/rng.h"
#include "kernels/conv2d.h"
#include "kernels/padding.h"

using namespace fer;
using namespace fer::kernels;
using fer::testing::ConvCase;
using fer::testing::describe;
using fer::testing::expect_close;
using fer::testing::random_values;

namespace {

std::vector<ConvCase> cases() {
  std::vector<ConvCase> list = {
      {2, 5, 5, 3, 4, 3, 3, 1, 1, Padding::Same},       // odd size: partial tiles
      {1, 1, 1, 20, 7, 3, 3, 1, 1, Padding::Same},      // 1x1 map: one tile, mostly padding
      {1, 2, 2, 5, 3, 3, 3, 1, 1, Padding::Same},
      {1, 3, 3, 5, 3, 3, 3, 1, 1, Padding::Valid},      // valid: a single output
      {3, 7, 6, 2, 6, 3, 3, 1, 1, Padding::Valid},
      {1, 12, 11, 32, 33, 3, 3, 1, 1, Padding::Same},   // OC one past two AVX-512 vectors
      {2, 6, 19, 8, 70, 3, 3, 1, 1, Padding::Same},     // OC over kMaxJ vectors: two groups
      {1, 5, 5, 17, 129, 3, 3, 1, 1, Padding::Valid},   // several channel groups and a tail
      {4, 12, 12, 64, 128, 3, 3, 1, 1, Padding::Same},  // cnn3 block 3 shape, batch 4
      {9, 24, 24, 32, 64, 3, 3, 1, 1, Padding::Same},   // many blocks per thread
      {2, 13, 14, 1, 32, 3, 3, 1, 1, Padding::Same},    // one input channel
  };
  Rng rng(78);
  for (int i = 0; i < 30; ++i) {
    ConvCase t = fer::testing::random_conv_case(rng, 14, 16, 40, 70);
    t.kh = t.kw = 3;
    t.sh = t.sw = 1;
    if (t.padding == Padding::Valid && (t.h < 3 || t.w < 3)) t.padding = Padding::Same;
    list.push_back(t);
  }
  return list;
}

void check_all_cases() {
  Rng rng(12);
  int index = 0;
  for (const ConvCase& t : cases()) {
    const std::string what = describe(t);
    const Conv2DGeometry g = make_geometry(t.n, t.h, t.w, t.c, t.kh, t.kw, t.sh, t.sw, t.padding);
    ASSERT_TRUE(conv2d_winograd_covers(g)) << what;
    ASSERT_GT(g.oh, 0) << what;
    const bool use_bias = index++ % 2 == 0;
    const auto x = random_values(size_t(t.n) * t.h * t.w * t.c, rng);
    const auto k = random_values(size_t(9) * t.c * t.oc, rng);
    const auto b = random_values(t.oc, rng);
    const size_t ysize = size_t(t.n) * g.oh * g.ow * t.oc;
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      fer::testing::expect_forward_matches(g, t.oc, x, k, use_bias ? b.data() : nullptr,
                                           conv2d_forward_winograd, what);
      // The kernel transformed once and reused: the same values bit for bit, twice.
      std::vector<float> y_once(ysize), y_kept(ysize);
      conv2d_forward_winograd(g, t.oc, x.data(), k.data(), use_bias ? b.data() : nullptr,
                              y_once.data());
      const WinogradKernel kept = conv2d_winograd_transform_kernel(k.data(), t.c, t.oc);
      for (int call = 0; call < 2; ++call) {
        std::fill(y_kept.begin(), y_kept.end(), -1.f);
        conv2d_forward_winograd_transformed(g, kept, x.data(), use_bias ? b.data() : nullptr,
                                            y_kept.data());
        ASSERT_EQ(y_kept, y_once) << what << ", transformed kernel, call " << call;
      }
      const auto dy = random_values(ysize, rng);
      fer::testing::expect_backward_input_matches(g, t.oc, dy, k, x.size(), rng,
                                                  conv2d_backward_input_winograd, what);
    }
  }
  omp_set_num_threads(omp_get_num_procs());
}

}  // namespace

TEST(Conv2DWinograd, MatchesReferenceOnEveryTarget) {
  fer::testing::for_each_hwy_target("conv2d_winograd", conv2d_winograd_hwy_targets,
                                    conv2d_winograd_hwy_target_name,
                                    conv2d_winograd_hwy_force_target,
                                    conv2d_winograd_hwy_dispatched_target, check_all_cases);
}

TEST(Conv2DWinograd, RefusesOtherWindowsAndStrides) {
  for (const Conv2DGeometry& g : {make_geometry(1, 6, 6, 2, 3, 3, 2, 2, Padding::Same),
                                  make_geometry(1, 6, 6, 2, 5, 5, 1, 1, Padding::Same),
                                  make_geometry(1, 6, 6, 2, 1, 1, 1, 1, Padding::Same)}) {
    EXPECT_FALSE(conv2d_winograd_covers(g));
    std::vector<float> x(6 * 6 * 2), k(size_t(g.kh) * g.kw * 2 * 3),
        y(size_t(g.oh) * g.ow * 3);
    EXPECT_THROW(conv2d_forward_winograd(g, 3, x.data(), k.data(), nullptr, y.data()),
                 std::exception);
    EXPECT_THROW(conv2d_backward_input_winograd(g, 3, y.data(), k.data(), x.data()),
                 std::exception);
  }
}
