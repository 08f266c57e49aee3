// Direct Highway convolution (kernels/conv2d_direct_hwy.cpp) against the reference loops of
// kernels/conv2d.h, on every SIMD target compiled that this CPU runs: forward and weight
// gradient for any window/stride/padding, backward to the input for stride 1 (the
// backward functions accumulate into dx, dk, db). Shapes
// include channel counts that are not a multiple of any vector width, more output channels
// than one register block holds, 1x1 maps, batch 1 and stride-2 edges.
#include <gtest/gtest.h>

#include "hwy_targets.h"
#include "kernel_compare.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <sstream>
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
      {2, 5, 5, 3, 4, 3, 3, 1, 1, Padding::Same},
      {1, 6, 6, 17, 5, 3, 3, 2, 2, Padding::Same},      // even input, stride 2 same
      {2, 7, 7, 5, 3, 3, 3, 2, 2, Padding::Same},       // odd input, stride 2 same
      {3, 7, 6, 2, 6, 3, 2, 2, 1, Padding::Valid},
      {1, 1, 1, 20, 7, 3, 3, 1, 1, Padding::Same},      // 1x1 map: kernel mostly padding
      {1, 1, 1, 9, 4, 1, 1, 1, 1, Padding::Valid},      // 1x1 map, 1x1 kernel
      {1, 9, 9, 3, 2, 5, 5, 3, 3, Padding::Same},
      {2, 8, 8, 4, 4, 4, 4, 1, 1, Padding::Same},       // even kernel, asymmetric padding
      {1, 13, 14, 3, 32, 3, 3, 1, 1, Padding::Same},    // cnn3's first conv, rows of 14
      {1, 12, 11, 32, 33, 3, 3, 1, 1, Padding::Same},   // OC one past two AVX-512 vectors
      {2, 6, 19, 8, 70, 3, 3, 1, 1, Padding::Same},     // OC over kMaxJ vectors: two groups
      {1, 9, 9, 24, 65, 3, 3, 2, 2, Padding::Same},     // stride 2, OC = 4*16 + 1
      {1, 5, 5, 4, 129, 3, 3, 1, 1, Padding::Valid},    // several channel groups and a tail
  };
  Rng rng(77);
  for (int i = 0; i < 30; ++i) {
    ConvCase t = fer::testing::random_conv_case(rng, 10, 16, 20, 70);
    if (i % 3 == 0) t.sh = t.sw = 1;  // enough stride-1 cases for backward
    list.push_back(t);
  }
  return list;
}

void check_all_cases() {
  Rng rng(11);
  int index = 0, backward_checked = 0;
  for (const ConvCase& t : cases()) {
    const std::string what = describe(t);
    const Conv2DGeometry g = make_geometry(t.n, t.h, t.w, t.c, t.kh, t.kw, t.sh, t.sw, t.padding);
    ASSERT_GT(g.oh, 0) << what;
    const bool use_bias = index++ % 2 == 0;
    const auto x = random_values(size_t(t.n) * t.h * t.w * t.c, rng);
    const auto k = random_values(size_t(t.kh) * t.kw * t.c * t.oc, rng);
    const auto b = random_values(t.oc, rng);
    const size_t ysize = size_t(t.n) * g.oh * g.ow * t.oc;
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      fer::testing::expect_forward_matches(g, t.oc, x, k, use_bias ? b.data() : nullptr,
                                           conv2d_forward_direct, what);
      {  // weight gradient, any stride; adds into dk and db
        const auto dy = random_values(ysize, rng);
        const auto dk0 = random_values(k.size(), rng), db0 = random_values(b.size(), rng);
        auto dk_ref = dk0, dk = dk0, db_ref = db0, db = db0;
        conv2d_backward_weights_ref(g, t.oc, x.data(), dy.data(), dk_ref.data(),
                                    use_bias ? db_ref.data() : nullptr);
        conv2d_backward_weights_direct(g, t.oc, x.data(), dy.data(), dk.data(),
                                       use_bias ? db.data() : nullptr);
        expect_close(dk, dk_ref, what + " backward kernel");
        expect_close(db, db_ref, what + " backward bias");
        auto db_frozen = db0;  // kernel frozen (dk null): the bias gradient alone
        conv2d_backward_weights_direct(g, t.oc, x.data(), dy.data(), nullptr, db_frozen.data());
        auto db_expect = db0;
        conv2d_backward_weights_ref(g, t.oc, x.data(), dy.data(), nullptr, db_expect.data());
        expect_close(db_frozen, db_expect, what + " bias with frozen kernel");
      }
      if (!conv2d_direct_covers_backward_input(g)) continue;
      const auto dy = random_values(ysize, rng);
      fer::testing::expect_backward_input_matches(g, t.oc, dy, k, x.size(), rng,
                                                  conv2d_backward_input_direct, what);
      ++backward_checked;
    }
  }
  omp_set_num_threads(omp_get_num_procs());
  EXPECT_GT(backward_checked, 20);  // the stride-1 cases really ran backward
}

}  // namespace

TEST(Conv2DDirect, MatchesReferenceOnEveryTarget) {
  fer::testing::for_each_hwy_target("conv2d_direct", conv2d_direct_hwy_targets,
                                    conv2d_direct_hwy_target_name,
                                    conv2d_direct_hwy_force_target,
                                    conv2d_direct_hwy_dispatched_target, check_all_cases);
}

TEST(Conv2DDirect, BackwardInputRefusesStrides) {
  const Conv2DGeometry g = make_geometry(1, 4, 4, 2, 3, 3, 2, 2, Padding::Same);
  EXPECT_FALSE(conv2d_direct_covers_backward_input(g));
  std::vector<float> dy(size_t(g.oh) * g.ow * 3), k(3 * 3 * 2 * 3), dx(4 * 4 * 2);
  EXPECT_THROW(conv2d_backward_input_direct(g, 3, dy.data(), k.data(), dx.data()),
               std::exception);
}
