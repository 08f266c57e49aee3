// Optimizers, their update kernels, gradient clipping, learning-rate schedules, the
// weights' moving average and sharpness-aware minimization's ascent step.
//
// The update tests follow one weight through three steps with gradients 0.5, -1, 2 and
// compare with values worked out by hand (the arithmetic is written next to each
// number). A PyTorch cross-check runs when /usr/bin/python3 has torch.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "fer/error.h"
#include "fer/json.h"
#include "fer/rng.h"
#include "kernels/optimizer_update.h"
#include "optim/adam.h"
#include "optim/clip.h"
#include "optim/ema.h"
#include "optim/optimizer.h"
#include "optim/sam.h"
#include "optim/schedule.h"
#include "optim/sgd.h"
#include "tests/error_of.h"

using namespace fer;
using namespace fer::optim;

namespace {

Parameter make_param(const std::string& name, const std::vector<float>& w,
                     bool requires_grad = true) {
  Parameter p;
  p.name = name;
  p.value = Tensor({static_cast<int64_t>(w.size())}, w);
  p.value.set_requires_grad(requires_grad);
  return p;
}

void set_grad(Parameter& p, const std::vector<float>& g) {
  ASSERT_EQ(static_cast<int64_t>(g.size()), p.value.numel());
  for (size_t i = 0; i < g.size(); ++i) p.value.grad()[i] = g[i];
}

// Runs `opt` on a single weight starting at 1 with gradients 0.5, -1, 2 and returns the
// weight after each step.
std::vector<float> three_steps(Optimizer& opt, Parameter& p) {
  std::vector<float> out;
  for (float g : {0.5f, -1.f, 2.f}) {
    opt.zero_grad();
    set_grad(p, {g});
    opt.step();
    out.push_back(p.value.data()[0]);
  }
  return out;
}

void expect_weights(const std::vector<float>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], 1e-6) << "after step " << i + 1;
}

using fer::testing::error_of;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

// --- update rules, by hand ---------------------------------------------------------------

TEST(SGD, PlainStepsAreLrTimesGradient) {
  Parameter p = make_param("w", {1.f});
  SGD opt({&p}, 0.1f);
  // 1 - 0.1*0.5 = 0.95;  0.95 + 0.1*1 = 1.05;  1.05 - 0.1*2 = 0.85
  expect_weights(three_steps(opt, p), {0.95, 1.05, 0.85});
  EXPECT_EQ(opt.steps(), 3);
  EXPECT_TRUE(opt.state_tensors().empty());  // no momentum, no state
}

TEST(SGD, Momentum) {
  Parameter p = make_param("w", {1.f});
  SGD opt({&p}, 0.1f, 0.9f);
  // step 1: buf = 0.5                    w = 1 - 0.1*0.5        = 0.95
  // step 2: buf = 0.9*0.5 - 1 = -0.55     w = 0.95 + 0.1*0.55    = 1.005
  // step 3: buf = 0.9*-0.55 + 2 = 1.505   w = 1.005 - 0.1*1.505  = 0.8545
  expect_weights(three_steps(opt, p), {0.95, 1.005, 0.8545});
  EXPECT_NEAR(opt.state_tensors().at(0).second.data()[0], 1.505f, 1e-6);
}

TEST(SGD, Nesterov) {
  Parameter p = make_param("w", {1.f});
  SGD opt({&p}, 0.1f, 0.9f, /*nesterov=*/true);
  // step 1: buf = 0.5;    d = 0.5 + 0.9*0.5 = 0.95        w = 1 - 0.095      = 0.905
  // step 2: buf = -0.55;  d = -1 + 0.9*-0.55 = -1.495     w = 0.905 + 0.1495 = 1.0545
  // step 3: buf = 1.505;  d = 2 + 0.9*1.505 = 3.3545      w = 1.0545 - 0.33545 = 0.71905
  expect_weights(three_steps(opt, p), {0.905, 1.0545, 0.71905});
}

TEST(SGD, L2WeightDecayIsAddedToTheGradient) {
  Parameter p = make_param("w", {1.f});
  SGD opt({&p}, 0.1f, 0.f, false, /*weight_decay=*/0.1f);
  // step 1: d = 0.5 + 0.1*1 = 0.6              w = 1 - 0.06          = 0.94
  // step 2: d = -1 + 0.1*0.94 = -0.906         w = 0.94 + 0.0906     = 1.0306
  // step 3: d = 2 + 0.1*1.0306 = 2.10306       w = 1.0306 - 0.210306 = 0.820294
  expect_weights(three_steps(opt, p), {0.94, 1.0306, 0.820294});
}

TEST(Adam, ThreeStepsWithBiasCorrection) {
  Parameter p = make_param("w", {1.f});
  Adam opt({&p}, 0.1f);  // beta1 0.9, beta2 0.999, eps 1e-7
  // step 1: m = 0.1*0.5 = 0.05, v = 0.001*0.25 = 0.00025
  //         m_hat = 0.05/(1-0.9) = 0.5, v_hat = 0.00025/(1-0.999) = 0.25
  //         w = 1 - 0.1 * 0.5/(sqrt(0.25) + 1e-7) = 0.90000002
  // step 2: m = 0.9*0.05 - 0.1 = -0.055, v = 0.999*0.00025 + 0.001*1 = 0.00124975
  //         m_hat = -0.055/0.19 = -0.28947368, v_hat = 0.00124975/0.001999 = 0.62518759
  //         w = 0.90000002 + 0.1 * 0.28947368/0.79068805 = 0.93661037
  // step 3: m = 0.9*-0.055 + 0.2 = 0.1505, v = 0.999*0.00124975 + 0.004 = 0.00524850025
  //         m_hat = 0.1505/0.271 = 0.55535055, v_hat = 0.00524850025/0.002997001 = 1.75125075
  //         w = 0.93661037 - 0.1 * 0.55535055/1.32334831 = 0.89464481
  expect_weights(three_steps(opt, p), {0.90000002, 0.93661037, 0.89464481});
  const auto slots = opt.state_tensors();
  ASSERT_EQ(slots.size(), 2u);
  EXPECT_EQ(slots[0].first, "optimizer/w/m");
  EXPECT_EQ(slots[1].first, "optimizer/w/v");
  EXPECT_NEAR(slots[0].second.data()[0], 0.1505f, 1e-7);
  EXPECT_NEAR(slots[1].second.data()[0], 0.00524850025f, 1e-9);
}

TEST(Adam, EpsilonIsAddedToTheCorrectedRootMeanSquare) {
  Parameter p = make_param("w", {1.f});
  Adam opt({&p}, 0.1f, 0.9f, 0.999f, /*eps=*/0.5f);
  // Same m_hat and sqrt(v_hat) as above, with 0.5 in the denominator:
  // step 1: w = 1 - 0.1 * 0.5/(0.5 + 0.5)                      = 0.95
  // step 2: w = 0.95 + 0.1 * 0.28947368/(0.79068805 + 0.5)      = 0.97242786
  // step 3: w = 0.97242786 - 0.1 * 0.55535055/(1.32334831 + 0.5) = 0.94197013
  expect_weights(three_steps(opt, p), {0.95, 0.97242786, 0.94197013});
}

TEST(Adam, L2WeightDecayGoesThroughTheMoments) {
  Parameter p = make_param("w", {1.f});
  Adam opt({&p}, 0.1f, 0.9f, 0.999f, 1e-7f, /*weight_decay=*/0.1f);
  // step 1: d = 0.5 + 0.1*1 = 0.6; m = 0.06, v = 0.00036; m_hat = 0.6, v_hat = 0.36
  //         w = 1 - 0.1 * 0.6/(0.6 + 1e-7) = 0.90000002
  // step 2: d = -1 + 0.1*0.90000002 = -0.91; m = 0.054 - 0.091 = -0.037
  //         v = 0.999*0.00036 + 0.001*0.8281 = 0.00118774
  //         w = 0.90000002 + 0.1 * (0.037/0.19)/sqrt(0.00118774/0.001999) = 0.92526353
  // step 3: d = 2 + 0.092526353 = 2.09252635; m = -0.0333 + 0.209252635 = 0.17595264
  //         v = 0.999*0.00118774 + 0.001*4.37866656 = 0.00556521880
  //         w = 0.92526353 - 0.1 * (0.17595264/0.271)/sqrt(0.0055652188/0.002997001)
  //           = 0.92526353 - 0.1 * 0.64927172/1.36269191 = 0.87761728
  expect_weights(three_steps(opt, p), {0.90000002, 0.92526353, 0.87761728});
}

TEST(AdamW, DecoupledWeightDecayShrinksTheWeightsFirst) {
  Parameter p = make_param("w", {1.f});
  AdamW opt({&p}, 0.1f, 0.9f, 0.999f, 1e-7f, /*weight_decay=*/0.1f);
  EXPECT_EQ(opt.type(), "adamw");
  // Each step first multiplies w by 1 - lr*wd = 0.99; the Adam part is the one of
  // Adam.ThreeStepsWithBiasCorrection (the decay does not enter the moments):
  // step 1: w = 1*0.99 - 0.09999998                        = 0.89000002
  // step 2: w = 0.89000002*0.99 + 0.1*0.28947368/0.79068805 = 0.88110002 + 0.03661037
  //           = 0.91771037
  // step 3: w = 0.91771037*0.99 - 0.1*0.55535055/1.32334831 = 0.90853326 - 0.04196556
  //           = 0.86656771
  expect_weights(three_steps(opt, p), {0.89000002, 0.91771037, 0.86656771});
}

// --- which parameters are updated -----------------------------------------------------

TEST(Optimizer, FrozenAndGradientlessParametersStayBitIdentical) {
  Parameter live = make_param("live/kernel", {0.3f, -0.7f});
  Parameter frozen = make_param("frozen/kernel", {0.1f, 0.2f, 0.3f}, /*requires_grad=*/false);
  Parameter untouched = make_param("untouched/kernel", {-0.25f, 0.5f});  // no gradient
  Parameter stats = make_param("bn/moving_mean", {5.f}, false);
  stats.trainable = false;
  // A stale gradient on the frozen parameter (it was frozen after a backward pass).
  set_grad(frozen, {1.f, 1.f, 1.f});
  const std::vector<float> frozen_before = frozen.value.to_vector();
  const std::vector<float> untouched_before = untouched.value.to_vector();

  AdamW opt({&live, &frozen, &untouched, &stats}, 0.1f, 0.9f, 0.999f, 1e-7f, 0.5f);
  EXPECT_EQ(opt.parameters().size(), 3u);  // the moving mean is not trained
  for (int step = 0; step < 3; ++step) {
    set_grad(live, {1.f, -1.f});
    opt.step();
  }
  EXPECT_NE(live.value.data()[0], 0.3f);
  EXPECT_EQ(std::memcmp(frozen.value.data(), frozen_before.data(), 3 * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(untouched.value.data(), untouched_before.data(), 2 * sizeof(float)), 0);
  EXPECT_FALSE(untouched.value.has_grad());

  // Unfrozen later, the parameter starts its own bias correction at t = 1, so its first
  // step is lr * g_hat/|g_hat| (after the decoupled decay 1 - 0.1*0.5 = 0.95).
  frozen.value.set_requires_grad(true);
  set_grad(frozen, {2.f, -2.f, 2.f});
  opt.step();
  EXPECT_NEAR(frozen.value.data()[0], 0.1f * 0.95f - 0.1f, 1e-6);
  EXPECT_NEAR(frozen.value.data()[1], 0.2f * 0.95f + 0.1f, 1e-6);
  EXPECT_EQ(opt.state_json().at("param_steps").at("frozen/kernel").as_int(), 1);
  EXPECT_EQ(opt.state_json().at("param_steps").at("live/kernel").as_int(), 4);
}

TEST(Optimizer, ZeroGradClearsTheGradients) {
  Parameter p = make_param("w", {1.f, 2.f});
  set_grad(p, {3.f, 4.f});
  SGD opt({&p}, 0.1f);
  opt.zero_grad();
  EXPECT_EQ(p.value.grad()[0], 0.f);
  EXPECT_EQ(p.value.grad()[1], 0.f);
}

TEST(Optimizer, LrScaleOfTheLongestMatchingPrefix) {
  Parameter a = make_param("conv1/kernel", {0.f});
  Parameter b = make_param("conv2/kernel", {0.f});
  Parameter c = make_param("dense/kernel", {0.f});
  SGD opt({&a, &b, &c}, 1.f);
  opt.set_lr_scale("conv", 0.5f);
  opt.set_lr_scale("conv1/", 0.1f);
  EXPECT_FLOAT_EQ(opt.lr_scale("conv1/kernel"), 0.1f);
  EXPECT_FLOAT_EQ(opt.lr_scale("conv2/kernel"), 0.5f);
  EXPECT_FLOAT_EQ(opt.lr_scale("dense/kernel"), 1.f);
  for (Parameter* p : {&a, &b, &c}) set_grad(*p, {1.f});
  opt.step();  // w = 0 - lr * scale * 1
  EXPECT_FLOAT_EQ(a.value.data()[0], -0.1f);
  EXPECT_FLOAT_EQ(b.value.data()[0], -0.5f);
  EXPECT_FLOAT_EQ(c.value.data()[0], -1.f);
  opt.set_lr_scale("conv1/", 0.f);  // re-setting a prefix replaces its scale
  opt.step();
  EXPECT_FLOAT_EQ(a.value.data()[0], -0.1f);
  EXPECT_FLOAT_EQ(b.value.data()[0], -1.f);
}

TEST(Optimizer, DuplicateNamesAndBadSettingsAreRejected) {
  Parameter a = make_param("x/kernel", {0.f});
  Parameter b = make_param("x/kernel", {0.f});
  EXPECT_TRUE(contains(error_of([&] { SGD opt({&a, &b}, 0.1f); }), "'x/kernel'"));
  EXPECT_THROW(SGD({&a}, 0.1f, 0.f, /*nesterov=*/true), Error);
  EXPECT_THROW(SGD({&a}, -1.f), Error);
  EXPECT_THROW(Adam({&a}, 0.1f, 1.f), Error);
}

// --- checkpointing ----------------------------------------------------------------------

namespace {

// Two steps with optimizer A, save, load into a fresh optimizer B over a copy of the
// weights, then one more identical step on both: the weights must agree bit for bit.
void check_resume(const std::string& name, const Json& options) {
  Rng rng(3);
  auto random_values = [&](int n) {
    std::vector<float> v(n);
    for (float& x : v) x = static_cast<float>(rng.uniform(-1, 1));
    return v;
  };
  Parameter a1 = make_param("conv/kernel", random_values(6));
  Parameter a2 = make_param("dense/bias", random_values(3));
  auto opt_a = make_optimizer(name, {&a1, &a2}, options);
  opt_a->set_lr_scale("dense/", 0.5f);
  std::vector<std::vector<float>> grads;
  for (int step = 0; step < 3; ++step) {
    grads.push_back(random_values(6));
    grads.push_back(random_values(3));
  }
  for (int step = 0; step < 2; ++step) {
    set_grad(a1, grads[2 * step]);
    set_grad(a2, grads[2 * step + 1]);
    opt_a->step();
  }
  opt_a->set_lr(opt_a->lr() * 0.3f);  // as a schedule would

  // Save through text and deep copies, as a checkpoint file would.
  const Json saved = Json::parse(opt_a->state_json().dump());
  std::map<std::string, Tensor> tensors;
  for (const auto& [key, t] : opt_a->state_tensors()) tensors[key] = t.clone();
  tensors["conv/kernel"] = a1.value.clone();  // unrelated entries are ignored

  Parameter b1 = make_param("conv/kernel", a1.value.to_vector());
  Parameter b2 = make_param("dense/bias", a2.value.to_vector());
  auto opt_b = make_optimizer(name, {&b1, &b2}, options);
  opt_b->load_state(saved, tensors);
  EXPECT_EQ(opt_b->steps(), 2);
  EXPECT_EQ(opt_b->lr(), opt_a->lr());
  EXPECT_EQ(opt_b->lr_scale("dense/bias"), 0.5f);

  for (auto [p, q, g] : {std::tuple{&a1, &b1, grads[4]}, std::tuple{&a2, &b2, grads[5]}}) {
    set_grad(*p, g);
    set_grad(*q, g);
  }
  opt_a->step();
  opt_b->step();
  EXPECT_EQ(std::memcmp(a1.value.data(), b1.value.data(), 6 * sizeof(float)), 0) << name;
  EXPECT_EQ(std::memcmp(a2.value.data(), b2.value.data(), 3 * sizeof(float)), 0) << name;
}

}  // namespace

TEST(Optimizer, SaveLoadGivesAnIdenticalNextStep) {
  check_resume("sgd", Json::parse(R"({"lr": 0.1, "momentum": 0.9, "nesterov": true,
                                      "weight_decay": 0.01})"));
  check_resume("adam", Json::parse(R"({"lr": 0.01, "weight_decay": 0.001})"));
  check_resume("adamw", Json::parse(R"({"lr": 0.01, "beta2": 0.99})"));
}

TEST(Optimizer, LoadStateErrorsNameTheSlot) {
  Parameter p = make_param("conv/kernel", {1.f, 2.f});
  Adam opt({&p}, 0.1f);
  set_grad(p, {1.f, 1.f});
  opt.step();
  const Json state = opt.state_json();
  std::map<std::string, Tensor> tensors;
  for (const auto& [key, t] : opt.state_tensors()) tensors[key] = t.clone();

  Adam fresh({&p}, 0.1f);
  auto missing = tensors;
  missing.erase("optimizer/conv/kernel/v");
  EXPECT_TRUE(contains(error_of([&] { fresh.load_state(state, missing); }),
                       "missing tensor 'optimizer/conv/kernel/v'"));
  auto misshaped = tensors;
  misshaped["optimizer/conv/kernel/m"] = Tensor({3});
  const std::string err = error_of([&] { fresh.load_state(state, misshaped); });
  EXPECT_TRUE(contains(err, "'optimizer/conv/kernel/m': expected shape [2]")) << err;
  EXPECT_TRUE(contains(err, "got [3]")) << err;
  EXPECT_EQ(fresh.steps(), 0);  // a failed load changes nothing

  SGD sgd({&p}, 0.1f, 0.9f);
  EXPECT_TRUE(contains(error_of([&] { sgd.load_state(state, tensors); }), "'adam'"));
}

TEST(Optimizer, FactoryNamesAndOptions) {
  Parameter p = make_param("w", {1.f});
  auto sgd = make_optimizer("sgd", {&p}, Json::parse(R"({"lr": 0.1, "momentum": 0.9})"));
  EXPECT_EQ(sgd->type(), "sgd");
  EXPECT_FLOAT_EQ(sgd->lr(), 0.1f);
  EXPECT_FLOAT_EQ(dynamic_cast<SGD&>(*sgd).momentum(), 0.9f);
  auto adam = make_optimizer("adam", {&p}, Json());
  EXPECT_FLOAT_EQ(adam->lr(), 0.001f);
  EXPECT_FLOAT_EQ(dynamic_cast<Adam&>(*adam).eps(), 1e-7f);
  auto adamw = make_optimizer("adamw", {&p}, Json::object());
  EXPECT_FLOAT_EQ(dynamic_cast<Adam&>(*adamw).weight_decay(), 0.01f);

  EXPECT_TRUE(contains(error_of([&] { make_optimizer("rmsprop", {&p}, Json()); }),
                       "unknown optimizer 'rmsprop' (known: sgd, adam, adamw)"));
  const std::string err =
      error_of([&] { make_optimizer("adam", {&p}, Json::parse(R"({"momentum": 0.9})")); });
  EXPECT_TRUE(contains(err, "unknown option 'momentum'")) << err;
  EXPECT_TRUE(contains(err, "beta1")) << err;
}

// --- kernels: optimized against reference -------------------------------------------------

TEST(OptimizerKernels, OptimizedMatchesReference) {
  Rng rng(11);
  // Sizes below and above the threading threshold, odd ones for the vector tails.
  for (int64_t n : {1, 7, 64, 1001, 33001}) {
    auto random_values = [&](float lo, float hi) {
      std::vector<float> v(n);
      for (float& x : v) x = static_cast<float>(rng.uniform(lo, hi));
      return v;
    };
    const std::vector<float> w0 = random_values(-1, 1), g = random_values(-2, 2);
    const std::vector<float> m0 = random_values(-0.5f, 0.5f), v0 = random_values(0, 0.5f);
    auto check = [&](const std::vector<float>& a, const std::vector<float>& b, const char* what) {
      for (int64_t i = 0; i < n; ++i)
        ASSERT_NEAR(a[i], b[i], 1e-6 * std::max(1.f, std::fabs(b[i])))
            << what << " n=" << n << " i=" << i;
    };
    for (int variant = 0; variant < 4; ++variant) {
      kernels::SgdConfig c;
      c.lr = 0.05f;
      c.momentum = variant == 0 ? 0.f : 0.9f;
      c.nesterov = variant == 2;
      c.weight_decay = variant == 3 ? 0.01f : 0.f;
      std::vector<float> w_ref = w0, w_opt = w0, b_ref = m0, b_opt = m0;
      for (int step = 0; step < 3; ++step) {
        kernels::sgd_update_ref(w_ref.data(), g.data(), b_ref.data(), n, c);
        kernels::sgd_update(w_opt.data(), g.data(), b_opt.data(), n, c);
      }
      check(w_opt, w_ref, "sgd w");
      check(b_opt, b_ref, "sgd buf");
    }
    for (int variant = 0; variant < 3; ++variant) {
      kernels::AdamConfig c;
      c.lr = 0.01f;
      c.weight_decay = variant == 1 ? 0.01f : 0.f;
      c.decoupled_weight_decay = variant == 2 ? 0.05f : 0.f;
      std::vector<float> w_ref = w0, w_opt = w0, m_ref = m0, m_opt = m0, v_ref = v0, v_opt = v0;
      for (int step = 1; step <= 3; ++step) {
        c.step = step;
        kernels::adam_update_ref(w_ref.data(), g.data(), m_ref.data(), v_ref.data(), n, c);
        kernels::adam_update(w_opt.data(), g.data(), m_opt.data(), v_opt.data(), n, c);
      }
      check(w_opt, w_ref, "adam w");
      check(m_opt, m_ref, "adam m");
      check(v_opt, v_ref, "adam v");
    }
  }
}

// --- PyTorch cross-check ------------------------------------------------------------------

namespace {
std::string floats_literal(const std::vector<float>& v) {
  std::string s = "[";
  char buf[40];
  for (float x : v) {
    std::snprintf(buf, sizeof buf, "%.9g,", x);  // 9 digits: the exact float
    s += buf;
  }
  return s + "]";
}

std::string float_literal(float x) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", double(x));  // the float's exact value
  return buf;
}
}  // namespace

TEST(Optimizer, MatchesPyTorchOverFiveSteps) {
  if (!std::ifstream("/usr/bin/python3")) GTEST_SKIP() << "no /usr/bin/python3";
  const int n = 7, steps = 5;
  Rng rng(5);
  std::vector<float> w0(n);
  for (float& x : w0) x = static_cast<float>(rng.uniform(-1, 1));
  std::vector<std::vector<float>> grads(steps, std::vector<float>(n));
  for (auto& g : grads)
    for (float& x : g) x = static_cast<float>(rng.uniform(-2, 2));

  struct Case {
    std::string name;
    Json options;
    std::string torch;  // constructor call on `ps`
  };
  // lr, momentum, eps and weight decay are floats here: torch gets their exact values. The
  // betas are doubles on both sides (see kernels/optimizer_update.h).
  const float lr = 0.05f, mom = 0.9f, wd = 0.02f, eps = 1e-6f;
  const double b1 = 0.85, b2 = 0.99;
  const std::string L = float_literal(lr), M = float_literal(mom), WD = float_literal(wd),
                    B1 = "0.85", B2 = "0.99", E = float_literal(eps);
  auto opts = [&](bool adam) {
    Json j = Json::object();
    j["lr"] = lr;
    j["weight_decay"] = wd;
    if (adam) {
      j["beta1"] = b1;
      j["beta2"] = b2;
      j["eps"] = eps;
    } else {
      j["momentum"] = mom;
    }
    return j;
  };
  Json nesterov = opts(false);
  nesterov["nesterov"] = true;
  const std::vector<Case> cases = {
      {"sgd", opts(false), "torch.optim.SGD(ps, lr=" + L + ", momentum=" + M +
                               ", weight_decay=" + WD + ")"},
      {"sgd", nesterov, "torch.optim.SGD(ps, lr=" + L + ", momentum=" + M +
                            ", nesterov=True, weight_decay=" + WD + ")"},
      {"adam", opts(true), "torch.optim.Adam(ps, lr=" + L + ", betas=(" + B1 + ", " + B2 +
                               "), eps=" + E + ", weight_decay=" + WD + ")"},
      {"adamw", opts(true), "torch.optim.AdamW(ps, lr=" + L + ", betas=(" + B1 + ", " + B2 +
                                "), eps=" + E + ", weight_decay=" + WD + ")"},
  };

  std::ostringstream py;
  // Importing torch takes seconds, so the script itself reports when it is missing.
  py << "try:\n    import torch\nexcept ImportError:\n    print('no-torch')\n    raise SystemExit\n"
     << "torch.set_num_threads(1)\n"
     << "w0 = " << floats_literal(w0) << "\ngrads = [";
  for (const auto& g : grads) py << floats_literal(g) << ",";
  py << "]\n"
     << "def run(make):\n"
     << "    p = torch.nn.Parameter(torch.tensor(w0, dtype=torch.float32))\n"
     << "    opt = make([p])\n"
     << "    for g in grads:\n"
     << "        p.grad = torch.tensor(g, dtype=torch.float32)\n"
     << "        opt.step()\n"
     << "        print(' '.join(repr(x) for x in p.detach().tolist()))\n";
  for (const Case& c : cases) py << "run(lambda ps: " << c.torch << ")\n";
  const std::string script = ::testing::TempDir() + "fer_optim_torch_check.py";
  std::ofstream(script) << py.str();

  FILE* pipe = popen(("/usr/bin/python3 " + script).c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::vector<double> torch_values;
  double x;
  while (std::fscanf(pipe, "%lf", &x) == 1) torch_values.push_back(x);
  char word[16] = "";
  const bool no_torch = torch_values.empty() && std::fscanf(pipe, "%15s", word) == 1 &&
                        std::string(word) == "no-torch";
  const int status = pclose(pipe);
  if (no_torch) GTEST_SKIP() << "/usr/bin/python3 has no torch; PyTorch cross-check skipped";
  ASSERT_EQ(status, 0) << "python failed; script: " << script;
  ASSERT_EQ(torch_values.size(), cases.size() * steps * n);

  size_t at = 0;
  for (const Case& c : cases) {
    Parameter p = make_param("w", w0);
    auto opt = make_optimizer(c.name, {&p}, c.options);
    for (int s = 0; s < steps; ++s) {
      opt->zero_grad();
      set_grad(p, grads[s]);
      opt->step();
      for (int i = 0; i < n; ++i, ++at) {
        // Relative to the weights' scale (~1): a weight near 0 is a difference of
        // numbers near 1 and carries their rounding.
        const double want = torch_values[at];
        EXPECT_NEAR(p.value.data()[i], want, 1e-5 * std::max(1.0, std::fabs(want)))
            << c.torch << " step " << s + 1 << " element " << i;
      }
    }
  }
}

// --- clipping -----------------------------------------------------------------------------

TEST(Clip, GlobalNormOverAllGradients) {
  Parameter a = make_param("a", {0.f, 0.f});
  Parameter b = make_param("b", {0.f});
  Parameter frozen = make_param("frozen", {0.f}, false);
  set_grad(a, {3.f, 4.f});
  set_grad(b, {12.f});
  set_grad(frozen, {100.f});  // not trained: neither counted nor clipped
  const std::vector<Parameter*> params = {&a, &b, &frozen};

  // sqrt(3^2 + 4^2 + 12^2) = 13, below 20: unchanged.
  EXPECT_NEAR(clip_grad_norm(params, 20.f), 13.f, 1e-5);
  EXPECT_EQ(a.value.grad()[0], 3.f);
  // max_norm 6.5: every gradient scaled by 6.5 / (13 + 1e-6), about one half.
  EXPECT_NEAR(clip_grad_norm(params, 6.5f), 13.f, 1e-5);
  EXPECT_NEAR(a.value.grad()[0], 1.5f, 1e-6);
  EXPECT_NEAR(a.value.grad()[1], 2.f, 1e-6);
  EXPECT_NEAR(b.value.grad()[0], 6.f, 1e-6);
  EXPECT_EQ(frozen.value.grad()[0], 100.f);
  EXPECT_NEAR(clip_grad_norm(params, 100.f), 6.5f, 1e-5);
}

TEST(Clip, ValueClampsEachElement) {
  Parameter a = make_param("a", {0.f, 0.f, 0.f});
  set_grad(a, {-3.f, 0.5f, 2.f});
  clip_grad_value({&a}, 1.f);
  EXPECT_EQ(a.value.grad()[0], -1.f);
  EXPECT_EQ(a.value.grad()[1], 0.5f);
  EXPECT_EQ(a.value.grad()[2], 1.f);
  EXPECT_THROW(clip_grad_value({&a}, 0.f), Error);
}

// --- schedules ----------------------------------------------------------------------------

TEST(Schedule, StepDecayPerEpoch) {
  StepDecay s(0.1f, /*step_epochs=*/2, /*gamma=*/0.5f);
  const int64_t spe = 10;  // steps per epoch
  EXPECT_FLOAT_EQ(s.lr(0, spe), 0.1f);     // epoch 0
  EXPECT_FLOAT_EQ(s.lr(19, spe), 0.1f);    // epoch 1
  EXPECT_FLOAT_EQ(s.lr(20, spe), 0.05f);   // epoch 2: one decay
  EXPECT_FLOAT_EQ(s.lr(45, spe), 0.025f);  // epoch 4: two decays
  EXPECT_FLOAT_EQ(Constant(0.3f).lr(12345, spe), 0.3f);
}

TEST(Schedule, CosineWithWarmup) {
  CosineWarmup s(1.f, /*warmup_epochs=*/1, /*total_epochs=*/5, /*min_lr=*/0.1f);
  const int64_t spe = 4;  // warm-up W = 4 steps, total T = 20 steps
  EXPECT_FLOAT_EQ(s.lr(0, spe), 0.25f);  // 1 * (0 + 1) / 4
  EXPECT_FLOAT_EQ(s.lr(2, spe), 0.75f);
  EXPECT_FLOAT_EQ(s.lr(3, spe), 1.f);    // end of warm-up
  EXPECT_FLOAT_EQ(s.lr(4, spe), 1.f);    // cosine at progress 0
  // progress (8 - 4) / 16 = 0.25: 0.1 + 0.9 * (1 + cos(pi/4)) / 2 = 0.86819805
  EXPECT_NEAR(s.lr(8, spe), 0.86819805, 1e-6);
  EXPECT_NEAR(s.lr(12, spe), 0.55, 1e-6);  // progress 0.5: 0.1 + 0.9 * 0.5
  EXPECT_FLOAT_EQ(s.lr(20, spe), 0.1f);    // the end
  EXPECT_FLOAT_EQ(s.lr(500, spe), 0.1f);   // and after it
  EXPECT_THROW(s.lr(0, 0), Error);
}

TEST(Schedule, FactoryAndConfigRoundTrip) {
  auto s = make_schedule("cosine", Json::parse(R"({"lr": 0.01, "total_epochs": 30,
                                                   "warmup_epochs": 2})"));
  auto again = make_schedule(s->type(), s->config());
  EXPECT_EQ(again->lr(100, 7), s->lr(100, 7));
  EXPECT_EQ(make_schedule("step", Json::parse(R"({"lr": 1, "step_epochs": 3})"))->lr(3, 1),
            0.1f);
  EXPECT_TRUE(contains(error_of([] { make_schedule("cosine", Json::parse(R"({"lr": 1})")); }),
                       "'total_epochs' is required"));
  EXPECT_TRUE(contains(error_of([] { make_schedule("poly", Json()); }),
                       "(known: constant, step, cosine)"));
  EXPECT_TRUE(contains(
      error_of([] { make_schedule("step", Json::parse(R"({"lr": 1, "step": 3})")); }),
      "unknown option 'step'"));
}

TEST(ReduceLROnPlateau, KerasSequence) {
  // mode max, factor 0.5, patience 2, min_lr 0.02, min_delta 0.01, cooldown 2
  ReduceLROnPlateau r("max", 0.5f, 2, 0.02f, 0.01f, 2);
  float lr = 0.1f;
  struct Epoch {
    float metric, lr;
    int wait, cooldown;
  };
  const std::vector<Epoch> expected = {
      {0.50f, 0.1f, 0, 0},     // first value always improves on -inf
      {0.505f, 0.1f, 1, 0},    // not better than 0.50 + 0.01
      {0.52f, 0.1f, 0, 0},     // improved: wait resets
      {0.52f, 0.1f, 1, 0},
      {0.50f, 0.05f, 0, 2},    // patience used up: halve, start the cooldown
      {0.51f, 0.05f, 0, 1},    // cooldown: not waiting
      {0.51f, 0.05f, 1, 0},    // last cooldown epoch counts down, then waits
      {0.51f, 0.025f, 0, 2},   // reduce again
      {0.51f, 0.025f, 0, 1},
      {0.51f, 0.025f, 1, 0},
      {0.51f, 0.02f, 0, 2},    // 0.0125 is below min_lr: floor at 0.02
      {0.51f, 0.02f, 0, 1},
      {0.51f, 0.02f, 1, 0},
      {0.51f, 0.02f, 2, 0},    // at min_lr: nothing to reduce, wait keeps counting
      {0.51f, 0.02f, 3, 0},
      {0.60f, 0.02f, 0, 0},    // an improvement still resets the wait
  };
  for (size_t e = 0; e < expected.size(); ++e) {
    lr = r.on_epoch_end(expected[e].metric, lr);
    EXPECT_FLOAT_EQ(lr, expected[e].lr) << "epoch " << e + 1;
    EXPECT_EQ(r.wait(), expected[e].wait) << "epoch " << e + 1;
    EXPECT_EQ(r.cooldown_counter(), expected[e].cooldown) << "epoch " << e + 1;
  }
  EXPECT_FLOAT_EQ(r.best(), 0.60f);
}

TEST(ReduceLROnPlateau, MinModeAndStateRoundTrip) {
  ReduceLROnPlateau a("min", 0.1f, /*patience=*/1, 0.f, 0.f);
  // Before any epoch the best is +inf, saved as null.
  ReduceLROnPlateau fresh("min", 0.1f, 1, 0.f, 0.f);
  fresh.load_state(Json::parse(a.state().dump()));
  EXPECT_TRUE(std::isinf(fresh.best()) && fresh.best() > 0);

  float lr = 1.f;
  lr = a.on_epoch_end(2.f, lr);  // improves (loss goes down from +inf)
  lr = a.on_epoch_end(1.f, lr);  // improves
  EXPECT_FLOAT_EQ(lr, 1.f);
  // Resume from here: both must continue identically.
  ReduceLROnPlateau b("min", 0.1f, 1, 0.f, 0.f);
  b.load_state(Json::parse(a.state().dump()));
  EXPECT_FLOAT_EQ(b.best(), 1.f);
  float lr_b = lr;
  lr = a.on_epoch_end(1.5f, lr);  // worse: patience 1 is used up at once
  lr_b = b.on_epoch_end(1.5f, lr_b);
  EXPECT_NEAR(lr, 0.1f, 1e-7);
  EXPECT_EQ(lr, lr_b);
  EXPECT_THROW(ReduceLROnPlateau("auto"), Error);
  EXPECT_THROW(ReduceLROnPlateau("max").load_state(a.state()), Error);  // mode differs
}

// --- moving average of the weights (optim/ema.h) ---------------------------------------

TEST(WeightEma, DecayRampsUpThenHolds) {
  Parameter p = make_param("w", {0.f});
  WeightEma ema({&p}, 0.9f);
  EXPECT_FLOAT_EQ(ema.decay_at(0), 0.1f);          // (1 + 0) / (10 + 0)
  EXPECT_FLOAT_EQ(ema.decay_at(10), 11.f / 20.f);  // still below 0.9
  EXPECT_FLOAT_EQ(ema.decay_at(80), 0.9f);         // 81 / 90 = 0.9: the cap from here on
  EXPECT_FLOAT_EQ(ema.decay_at(1000), 0.9f);
  EXPECT_NE(error_of([] {
              Parameter q = make_param("q", {0.f});
              WeightEma bad({&q}, 1.f);
            }).find("decay"),
            std::string::npos);
}

// Three updates worked by hand, for a trainable weight and a BatchNorm-style statistic
// (trainable = false: averaged all the same); swap exchanges and a second swap restores.
TEST(WeightEma, UpdatesByHandAndSwapsBothWays) {
  Parameter w = make_param("conv/kernel", {1.f, -2.f});
  Parameter stat = make_param("bn/moving_mean", {4.f}, /*requires_grad=*/false);
  stat.trainable = false;
  WeightEma ema({&w, &stat}, 0.5f);
  // Weights move to 3 then 5 then 7 (the statistic to 0, 0, 0); decays are
  // min(0.5, 1/10) = 0.1, min(0.5, 2/11) = 2/11, min(0.5, 3/12) = 0.25.
  double a = 1, s = 4;
  const double decays[] = {0.1, 2.0 / 11.0, 0.25};
  for (int t = 0; t < 3; ++t) {
    w.value.data()[0] = 3.f + 2.f * t;
    stat.value.data()[0] = 0.f;
    ema.update(t);
    a = decays[t] * a + (1 - decays[t]) * (3 + 2 * t);
    s = decays[t] * s;
  }
  // a: 0.1 * 1 + 0.9 * 3 = 2.8, 2/11 * 2.8 + 9/11 * 5 = 4.6, 0.25 * 4.6 + 0.75 * 7 = 6.4;
  // s: 0.4, 0.0727..., 0.0181...
  EXPECT_NEAR(a, 6.4, 1e-12);
  ema.swap();
  EXPECT_NEAR(w.value.data()[0], 6.4, 1e-5);
  EXPECT_NEAR(w.value.data()[1], -2.0, 1e-6);  // a weight that never moves keeps its value
  EXPECT_NEAR(stat.value.data()[0], s, 1e-6);
  ema.swap();
  EXPECT_EQ(w.value.data()[0], 7.f);
  EXPECT_EQ(w.value.data()[1], -2.f);
  EXPECT_EQ(stat.value.data()[0], 0.f);
  {
    EmaSwap guard(&ema);
    EXPECT_NEAR(w.value.data()[0], a, 1e-5);
  }
  EXPECT_EQ(w.value.data()[0], 7.f);
  EmaSwap nothing(nullptr);  // no average: no-op
  EXPECT_EQ(w.value.data()[0], 7.f);
}

TEST(WeightEma, StateRoundTripsAndLoadErrorsNameTheArray) {
  Parameter w = make_param("conv/kernel", {1.f, 2.f});
  WeightEma ema({&w}, 0.9f);
  w.value.data()[0] = 5.f;
  ema.update(100);
  std::map<std::string, Tensor> saved;
  for (const auto& [key, t] : ema.state_tensors()) saved[key] = t.clone();
  ASSERT_EQ(saved.count("optimizer/ema/conv/kernel"), 1u);
  EXPECT_FLOAT_EQ(saved.at("optimizer/ema/conv/kernel").data()[0], 0.9f * 1.f + 0.1f * 5.f);

  WeightEma fresh({&w}, 0.9f);  // starts from w = [5, 2]
  auto misshaped = saved;
  misshaped["optimizer/ema/conv/kernel"] = Tensor({3});
  const std::string err = error_of([&] { fresh.load_state(misshaped, "run/last.npz"); });
  EXPECT_TRUE(contains(err, "run/last.npz")) << err;
  EXPECT_TRUE(contains(err, "'optimizer/ema/conv/kernel' has shape [3]")) << err;
  EXPECT_TRUE(contains(error_of([&] { fresh.load_state({}, "run/last.npz"); }),
                       "no weight average 'optimizer/ema/conv/kernel'"));
  fresh.load_state(saved, "run/last.npz");
  fresh.swap();
  EXPECT_FLOAT_EQ(w.value.data()[0], 0.9f * 1.f + 0.1f * 5.f);
  EXPECT_FLOAT_EQ(w.value.data()[1], 2.f);
}

// --- sharpness-aware minimization (optim/sam.h) -------------------------------------------

// SAM's ascent by hand: gradients (3, 4) and (12) have norm 13, so rho = 0.13 moves the
// weights by 0.01 * g. A frozen weight and a running statistic do not move; restore()
// brings back the weights bit for bit and the statistic as ascend() found it, whatever
// the second pass wrote there.
TEST(SharpnessAware, AscendMovesByRhoAlongTheGradientAndRestoreIsExact) {
  Parameter a = make_param("a", {1.f, 2.f});
  Parameter b = make_param("b", {3.f});
  Parameter frozen = make_param("frozen", {0.5f}, /*requires_grad=*/false);
  Parameter stat = make_param("bn/moving_mean", {4.f}, /*requires_grad=*/false);
  stat.trainable = false;
  Parameter no_grad = make_param("no_grad", {7.f});  // a weight the loss did not reach
  set_grad(a, {3.f, 4.f});
  set_grad(b, {12.f});
  set_grad(frozen, {100.f});
  SharpnessAwareStep sam({&a, &b, &frozen, &stat, &no_grad}, 0.13f, /*adaptive=*/false);
  EXPECT_NEAR(sam.ascend(), 13.f, 1e-5);
  EXPECT_NEAR(a.value.data()[0], 1.03f, 1e-6);
  EXPECT_NEAR(a.value.data()[1], 2.04f, 1e-6);
  EXPECT_NEAR(b.value.data()[0], 3.12f, 1e-6);
  EXPECT_EQ(frozen.value.data()[0], 0.5f);
  EXPECT_EQ(stat.value.data()[0], 4.f);
  EXPECT_EQ(no_grad.value.data()[0], 7.f);
  // The second forward pass moves the running statistic; the step's weights would too.
  stat.value.data()[0] = -1.f;
  sam.restore();
  EXPECT_EQ(a.value.to_vector(), (std::vector<float>{1.f, 2.f}));
  EXPECT_EQ(b.value.data()[0], 3.f);
  EXPECT_EQ(stat.value.data()[0], 4.f);
  // The gradients are left for the caller to zero (the second pass fills them again).
  EXPECT_EQ(a.value.grad()[0], 3.f);
}

// ASAM by hand: T = |w| + 0.01 per weight; e = rho * T^2 g / ||T g||.
// w = (1, -2), g = (3, 4): T = (1.01, 2.01), T g = (3.03, 8.04), ||T g|| = 8.59200...,
// e = 0.5 * (1.0201 * 3, 4.0401 * 4) / 8.59200 = (0.178090, 0.940433).
TEST(SharpnessAware, AdaptiveScalesTheBallByTheWeights) {
  Parameter w = make_param("w", {1.f, -2.f});
  set_grad(w, {3.f, 4.f});
  SharpnessAwareStep asam({&w}, 0.5f, /*adaptive=*/true);
  const double norm = std::sqrt(3.03 * 3.03 + 8.04 * 8.04);
  EXPECT_NEAR(asam.ascend(), norm, 1e-5);
  EXPECT_NEAR(w.value.data()[0], 1.0 + 0.5 * 1.01 * 1.01 * 3 / norm, 1e-6);
  EXPECT_NEAR(w.value.data()[1], -2.0 + 0.5 * 2.01 * 2.01 * 4 / norm, 1e-6);
  EXPECT_NEAR(w.value.data()[1], -2.0 + 0.940433, 1e-5);
  asam.restore();
  EXPECT_EQ(w.value.to_vector(), (std::vector<float>{1.f, -2.f}));
}

TEST(SharpnessAware, ZeroGradientMovesNothingAndMisuseIsAnError) {
  Parameter w = make_param("w", {1.f});
  set_grad(w, {0.f});
  SharpnessAwareStep sam({&w}, 0.05f, false);
  EXPECT_EQ(sam.ascend(), 0.f);
  EXPECT_EQ(w.value.data()[0], 1.f);
  EXPECT_NE(error_of([&] { sam.ascend(); }).find("twice"), std::string::npos);
  sam.restore();
  EXPECT_NE(error_of([&] { sam.restore(); }).find("without ascend"), std::string::npos);
  EXPECT_NE(error_of([&] { SharpnessAwareStep bad({&w}, 0.f, false); }).find("rho"),
            std::string::npos);
  EXPECT_NE(error_of([&] { SharpnessAwareStep bad({&w}, NAN, true); }).find("rho"),
            std::string::npos);
}
