// Blocks built from layers: the depthwise-separable block (depthwise 3x3 -> BN -> ReLU6
// -> pointwise 1x1 -> BN -> ReLU6) and the Sequential container that holds it.
#include <gtest/gtest.h>

#include "fer/architectures.h"
#include "fer/autograd.h"
#include "layers/registry.h"
#include "layers/sequential.h"
#include "tests/gradcheck.h"

using namespace fer;

namespace {

struct BlockCase {
  int n, h, w, c, filters, stride;
};

class DepthwiseSeparable : public ::testing::TestWithParam<BlockCase> {};

TEST_P(DepthwiseSeparable, ShapesParametersAndGradients) {
  const BlockCase k = GetParam();
  auto block = make_layer(arch::depthwise_separable("block", k.filters, k.stride, 6));
  Rng rng(17);
  const Shape out = block->build({k.h, k.w, k.c}, rng);
  const int oh = (k.h + k.stride - 1) / k.stride, ow = (k.w + k.stride - 1) / k.stride;
  EXPECT_EQ(out, (Shape{oh, ow, k.filters}));

  // 3x3 depthwise + 1x1 pointwise, no biases; two BatchNorms with 4 arrays each.
  int64_t count = 0;
  for (Parameter* p : block->parameters()) count += p->value.numel();
  EXPECT_EQ(count, 9 * k.c + k.c * k.filters + 4 * k.c + 4 * k.filters);
  EXPECT_EQ(block->parameters().front()->name, "block_dw/depthwise_kernel");

  // Training mode (BatchNorm on batch statistics), gradients for input and parameters.
  // Inputs are scaled so few pre-activations sit within the finite-difference step of
  // ReLU6's kinks.
  Tensor x = fer::testing::random_tensor({k.n, k.h, k.w, k.c}, rng, -2, 2);
  x.set_requires_grad(true);
  std::vector<std::pair<std::string, Tensor>> wrt = {{"x", x}};
  for (Parameter* p : block->parameters())
    if (p->trainable) wrt.emplace_back(p->name, p->value);
  fer::testing::GradCheckOptions opt;
  opt.step = 5e-4;
  opt.rtol = 5e-2;
  opt.atol = 5e-3;
  fer::testing::check_gradients([&]() { return block->forward(x, true); }, wrt, 5, opt);
}

INSTANTIATE_TEST_SUITE_P(Shapes, DepthwiseSeparable,
                         ::testing::Values(BlockCase{2, 5, 5, 3, 4, 1}, BlockCase{2, 6, 6, 4, 5, 2},
                                           BlockCase{3, 7, 5, 5, 3, 2},
                                           BlockCase{1, 4, 4, 2, 3, 1}));

TEST(Sequential, ConfigRoundTripGivesTheSameNetwork) {
  const Json cfg = arch::depthwise_separable("sep", 8, 2, 6);
  auto a = make_layer(cfg);
  Rng rng(1);
  a->build({9, 9, 4}, rng);
  auto b = make_layer(Json::parse(a->config().dump()));
  Rng rng2(1);
  b->build({9, 9, 4}, rng2);
  Tensor x = fer::testing::random_tensor({2, 9, 9, 4}, rng, -1, 1);
  NoGradGuard no_grad;
  EXPECT_EQ(a->forward(x, false).to_vector(), b->forward(x, false).to_vector());
  EXPECT_EQ(a->config().dump(), b->config().dump());
}

TEST(Sequential, DuplicateNamesAreRejected) {
  const Json cfg = arch::sequential("s", {arch::relu("r"), arch::relu("r")});
  auto s = make_layer(cfg);
  Rng rng(1);
  EXPECT_THROW(s->build({4, 4, 2}, rng), Error);
}

TEST(Sequential, FreezingReachesEveryChild) {
  auto block = make_layer(arch::depthwise_separable("b", 4, 1));
  Rng rng(1);
  block->build({5, 5, 3}, rng);
  block->set_frozen(true);
  for (Parameter* p : block->parameters()) EXPECT_FALSE(p->value.requires_grad()) << p->name;
  block->set_frozen(false);
  for (Parameter* p : block->parameters())
    EXPECT_EQ(p->value.requires_grad(), p->trainable) << p->name;
}

}  // namespace
