// Tensor storage, shape errors, the autograd tape and the JSON value.
#include <gtest/gtest.h>

#include <cstdint>

#include "fer/autograd.h"
#include "fer/error.h"
#include "fer/json.h"
#include "fer/tensor.h"

using namespace fer;

TEST(Tensor, StorageIsZeroedAnd64ByteAligned) {
  for (int64_t n : {1, 3, 17, 1000}) {
    Tensor t({n});
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data()) % 64, 0u);
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(t.data()[i], 0.f);
  }
}

TEST(Tensor, ReleasingTheBufferPoolFreesWhatItHolds) {
  // Freed blocks of 64 KB and more are kept for the next buffer of their size ...
  release_cached_buffers();
  ASSERT_EQ(cached_buffer_bytes(), 0u);
  constexpr int64_t kFloats = int64_t{1} << 20;  // 4 MB
  { AlignedBuffer a(kFloats), b(kFloats / 2); }
  const size_t held = size_t(kFloats + kFloats / 2) * sizeof(float);
  EXPECT_EQ(cached_buffer_bytes(), held);
  {
    AlignedBuffer again(kFloats);  // reuses a's block
    EXPECT_EQ(cached_buffer_bytes(), held - size_t(kFloats) * sizeof(float));
  }
  // ... until released, as training does after its teachers' pass; blocks are then
  // allocated afresh, still zeroed and aligned.
  EXPECT_EQ(release_cached_buffers(), held);
  EXPECT_EQ(cached_buffer_bytes(), 0u);
  AlignedBuffer fresh(kFloats);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(fresh.data()) % 64, 0u);
  EXPECT_EQ(fresh.data()[kFloats - 1], 0.f);
  // Small blocks never enter the pool.
  { AlignedBuffer small(16); }
  EXPECT_EQ(cached_buffer_bytes(), 0u);
}

TEST(Tensor, CopiesShareStorageAndCloneDoesNot) {
  Tensor a({2, 2}, 1.f);
  Tensor b = a;
  Tensor c = a.clone();
  a.data()[0] = 5.f;
  EXPECT_EQ(b.data()[0], 5.f);
  EXPECT_EQ(c.data()[0], 1.f);
}

TEST(Tensor, ShapeErrorsNameTheOpAndBothShapes) {
  try {
    check_same_shape("add", {2, 3}, {3, 2});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "add: expected shape [2, 3], got [3, 2]");
  }
  Tensor t({4});
  EXPECT_THROW(t.reshape({3}), Error);
  EXPECT_THROW(Tensor({2}, std::vector<float>{1, 2, 3}), Error);
}

TEST(Tensor, VersionMovesWheneverTheDataMayChange) {
  Tensor a({3}), b({3});
  EXPECT_NE(a.version(), b.version());  // unique, even between fresh tensors
  const Tensor& view = a;
  const uint64_t v0 = a.version();
  (void)view.data();  // read-only access: unchanged
  EXPECT_EQ(a.version(), v0);
  Tensor copy = a;  // a handle on the same storage sees the same version
  EXPECT_EQ(copy.version(), v0);
  copy.data()[0] = 1.f;  // a writable pointer: moved, for every handle
  const uint64_t v1 = a.version();
  EXPECT_NE(v1, v0);
  a.fill(2.f);
  EXPECT_NE(a.version(), v1);
  const uint64_t v2 = a.version();
  a.copy_from(b);
  EXPECT_NE(a.version(), v2);
}

TEST(Tensor, GradientIsAllocatedLazilyAndZeroed) {
  Tensor t({3});
  EXPECT_FALSE(t.has_grad());
  t.grad()[1] = 2.f;
  EXPECT_TRUE(t.has_grad());
  t.zero_grad();
  EXPECT_EQ(t.grad()[1], 0.f);
}

// A tiny op written the way layers are: y = a * x (elementwise), recording its backward.
static Tensor scale(const Tensor& x, const Tensor& a) {
  Tensor y(x.shape());
  for (int64_t i = 0; i < x.numel(); ++i) y.data()[i] = a.data()[i] * x.data()[i];
  Tape& tape = Tape::current();
  if (tape.wants({&x, &a})) {
    y.set_requires_grad(true);
    tape.record([x, a, y]() mutable {
      for (int64_t i = 0; i < x.numel(); ++i) {
        if (x.requires_grad()) x.grad()[i] += a.data()[i] * y.grad()[i];
        if (a.requires_grad()) a.grad()[i] += x.data()[i] * y.grad()[i];
      }
    });
  }
  return y;
}

static Tensor sum(const Tensor& x) {
  Tensor s = Tensor::scalar(0.f);
  for (int64_t i = 0; i < x.numel(); ++i) s.data()[0] += x.data()[i];
  Tape& tape = Tape::current();
  if (tape.wants({&x})) {
    s.set_requires_grad(true);
    tape.record([x, s]() mutable {
      for (int64_t i = 0; i < x.numel(); ++i) x.grad()[i] += s.grad()[0];
    });
  }
  return s;
}

TEST(Autograd, BackwardThroughAChainAndAccumulation) {
  Tensor x({3}, std::vector<float>{1, 2, 3});
  Tensor a({3}, std::vector<float>{4, 5, 6});
  a.set_requires_grad(true);
  Tensor y = scale(scale(x, a), a);  // y = a^2 x
  Tensor loss = sum(y);
  EXPECT_EQ(Tape::current().size(), 3u);
  backward(loss);
  EXPECT_EQ(Tape::current().size(), 0u);
  // d/da sum(a^2 x) = 2 a x
  EXPECT_FLOAT_EQ(a.grad()[0], 8.f);
  EXPECT_FLOAT_EQ(a.grad()[2], 36.f);
  EXPECT_FALSE(x.has_grad());
  // A second pass accumulates, as in PyTorch.
  Tensor loss2 = sum(scale(x, a));
  backward(loss2);
  EXPECT_FLOAT_EQ(a.grad()[0], 8.f + 1.f);
  a.zero_grad();
  EXPECT_FLOAT_EQ(a.grad()[0], 0.f);
}

TEST(Autograd, NoGradRecordsNothingAndKeepsNothingAlive) {
  Tensor a({1000}, 1.f);
  a.set_requires_grad(true);
  std::weak_ptr<int> dummy;
  {
    NoGradGuard guard;
    Tensor y = scale(a, a);
    EXPECT_FALSE(y.requires_grad());
    EXPECT_EQ(Tape::current().size(), 0u);
  }
  EXPECT_TRUE(Tape::current().enabled());
  Tensor loss = Tensor::scalar(1.f);
  EXPECT_THROW(backward(loss), Error);  // does not require a gradient
}

TEST(Json, RoundTripAndErrors) {
  Json j = Json::object();
  j["name"] = "conv1";
  j["filters"] = 32;
  j["rate"] = 0.25;
  j["kernel"] = Json::array_of(std::vector<int64_t>{3, 3});
  j["ok"] = true;
  j["text"] = "quote \" and\nnewline";
  const Json k = Json::parse(j.dump(2));
  EXPECT_EQ(k.at("name").as_string(), "conv1");
  EXPECT_EQ(k.at("filters").as_int(), 32);
  EXPECT_DOUBLE_EQ(k.at("rate").as_number(), 0.25);
  EXPECT_EQ(k.at("kernel")[1].as_int(), 3);
  EXPECT_TRUE(k.at("ok").as_bool());
  EXPECT_EQ(k.at("text").as_string(), "quote \" and\nnewline");
  EXPECT_EQ(k.get("missing", 7), 7);
  EXPECT_EQ(Json::parse("\"\\u00e9\"").as_string(), "\xc3\xa9");
  try {
    Json::parse("{\"a\": 1,\n \"b\": }");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(k.at("name").as_int(), Error);
  EXPECT_THROW(k.at("nope"), Error);
}
