#include "fer/tensor.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <limits>
#include <cstring>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <mutex>
#include <new>
#include <unordered_map>
#include <sstream>

#include "fer/error.h"
#include "kernels/parallel_chunks.h"

namespace fer {

std::string shape_str(const Shape& shape) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << "]";
  return out.str();
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    FER_CHECK(d >= 0, "negative dimension in shape ", shape_str(shape));
    n *= d;
  }
  return n;
}

// ---- AlignedBuffer ------------------------------------------------------------------
//
// A training step allocates the same activation and gradient sizes every time. Large
// blocks come from mmap in glibc, so each step would map fresh pages and fault them in
// (the kernel zeroes every page): a third of a step's time on cnn3. Freed large buffers
// are therefore kept in a free list per size and handed out again, so after the first
// step the steady state allocates nothing from the operating system.

namespace {

constexpr size_t kPoolMinBytes = 64 * 1024;            // smaller blocks: plain malloc is fine
constexpr size_t kPoolMaxCachedBytes = size_t(4) << 30;  // cap on memory kept for reuse

class BufferPool {
 public:
  void* take(size_t bytes) {
    if (bytes >= kPoolMinBytes) {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_.find(bytes);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        cached_ -= bytes;
        return p;
      }
    }
    void* p = std::aligned_alloc(64, bytes);
    if (!p) throw std::bad_alloc();
    return p;
  }

  // Frees every cached block; returns their bytes.
  size_t release() {
    std::lock_guard<std::mutex> lock(mutex_);
    const size_t freed = cached_;
    for (auto& [bytes, blocks] : free_)
      for (void* p : blocks) std::free(p);
    free_.clear();
    cached_ = 0;
    return freed;
  }

  size_t cached() {
    std::lock_guard<std::mutex> lock(mutex_);
    return cached_;
  }

  void give(void* p, size_t bytes) {
    if (bytes >= kPoolMinBytes) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (cached_ + bytes <= kPoolMaxCachedBytes) {
        free_[bytes].push_back(p);
        cached_ += bytes;
        return;
      }
    }
    std::free(p);
  }

 private:
  std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  size_t cached_ = 0;
};

// Never destroyed: buffers may be released by static destructors after main returns.
BufferPool& pool() {
  static BufferPool* p = new BufferPool();
  return *p;
}

// Zero-filling a gradient buffer is a pass over memory that the step waits for (every
// activation's gradient starts at zero): split over the threads like the elementwise
// kernels, so the other thread does not spin idle at the next barrier meanwhile.
void zero_fill(void* p, size_t bytes) {
  const int64_t floats = static_cast<int64_t>(bytes / sizeof(float));
  float* f = static_cast<float*>(p);
  kernels::for_each_chunk(floats, int64_t{1} << 18, [f](int64_t begin, int64_t end) {
    std::memset(f + begin, 0, static_cast<size_t>(end - begin) * sizeof(float));
  });
}

size_t padded_bytes(int64_t count) {
  return ((static_cast<size_t>(count) * sizeof(float) + 63) / 64) * 64;
}

}  // namespace

size_t release_cached_buffers() {
  const size_t freed = pool().release();
#ifdef __GLIBC__
  // Blocks below glibc's mmap threshold (32 MB at most) were carved from the heap, where
  // free() keeps their pages: hand those back to the system too.
  malloc_trim(0);
#endif
  return freed;
}

size_t cached_buffer_bytes() { return pool().cached(); }

AlignedBuffer::AlignedBuffer(int64_t count) : AlignedBuffer(count, true) {}

AlignedBuffer::AlignedBuffer(int64_t count, bool zero) : size_(count) {
  if (count == 0) return;
  const size_t bytes = padded_bytes(count);
  data_ = static_cast<float*>(pool().take(bytes));
  if (zero) zero_fill(data_, bytes);
#ifdef FER_POISON_UNINITIALIZED
  else std::fill(data_, data_ + bytes / sizeof(float), std::numeric_limits<float>::quiet_NaN());
#endif
}

AlignedBuffer AlignedBuffer::uninitialized(int64_t count) { return AlignedBuffer(count, false); }

AlignedBuffer::~AlignedBuffer() {
  if (data_) pool().give(data_, padded_bytes(size_));
}

AlignedBuffer::AlignedBuffer(AlignedBuffer&& other) noexcept
    : data_(other.data_), size_(other.size_) {
  other.data_ = nullptr;
  other.size_ = 0;
}

AlignedBuffer& AlignedBuffer::operator=(AlignedBuffer&& other) noexcept {
  if (this != &other) {
    if (data_) pool().give(data_, padded_bytes(size_));
    data_ = other.data_;
    size_ = other.size_;
    other.data_ = nullptr;
    other.size_ = 0;
  }
  return *this;
}

// ---- Tensor -------------------------------------------------------------------------

Tensor::Tensor(const Shape& shape) : impl_(std::make_shared<TensorImpl>()) {
  impl_->shape = shape;
  impl_->data = AlignedBuffer(shape_numel(shape));
}

Tensor Tensor::uninitialized(const Shape& shape) {
  Tensor t;
  t.impl_ = std::make_shared<TensorImpl>();
  t.impl_->shape = shape;
  t.impl_->data = AlignedBuffer::uninitialized(shape_numel(shape));
  return t;
}

Tensor::Tensor(const Shape& shape, float fill_value) : Tensor(shape) { fill(fill_value); }

Tensor::Tensor(const Shape& shape, const std::vector<float>& values) : Tensor(shape) {
  FER_CHECK(static_cast<int64_t>(values.size()) == numel(), "Tensor: ", values.size(),
            " values given for shape ", shape_str(shape));
  if (!values.empty()) std::memcpy(data(), values.data(), values.size() * sizeof(float));
}

const Shape& Tensor::shape() const {
  FER_CHECK(impl_, "use of an undefined tensor");
  return impl_->shape;
}

int64_t Tensor::dim(int axis) const {
  const int n = ndim();
  const int a = axis < 0 ? axis + n : axis;
  FER_CHECK(a >= 0 && a < n, "axis ", axis, " out of range for shape ", shape_str(shape()));
  return shape()[a];
}

int64_t Tensor::numel() const { return impl_ ? impl_->data.size() : 0; }

uint64_t next_tensor_version() {
  static std::atomic<uint64_t> counter{0};
  return counter.fetch_add(1, std::memory_order_relaxed) + 1;
}

float* Tensor::data() {
  FER_CHECK(impl_, "use of an undefined tensor");
  impl_->version = next_tensor_version();  // the caller may write through the pointer
  return impl_->data.data();
}

uint64_t Tensor::version() const {
  FER_CHECK(impl_, "use of an undefined tensor");
  return impl_->version;
}

const float* Tensor::data() const {
  FER_CHECK(impl_, "use of an undefined tensor");
  return impl_->data.data();
}

float Tensor::item() const {
  FER_CHECK(numel() == 1, "item(): tensor of shape ", shape_str(shape()),
            " has more than one element");
  return data()[0];
}

std::vector<float> Tensor::to_vector() const {
  return std::vector<float>(data(), data() + numel());
}

Tensor Tensor::clone() const {
  Tensor out(shape());
  if (numel()) std::memcpy(out.data(), data(), numel() * sizeof(float));
  return out;
}

Tensor Tensor::reshape(const Shape& new_shape) const {
  FER_CHECK(shape_numel(new_shape) == numel(), "reshape: cannot view ", shape_str(shape()),
            " as ", shape_str(new_shape));
  // A reshaped tensor gets its own copy: sharing storage with a different shape would
  // need a view mechanism that the framework does not otherwise use.
  Tensor out = clone();
  out.impl_->shape = new_shape;
  return out;
}

void Tensor::fill(float value) {
  float* p = data();
  for (int64_t i = 0; i < numel(); ++i) p[i] = value;
}

void Tensor::copy_from(const Tensor& other) {
  FER_CHECK(other.numel() == numel(), "copy_from: ", shape_str(other.shape()), " into ",
            shape_str(shape()));
  if (numel()) std::memcpy(data(), other.data(), numel() * sizeof(float));
}

bool Tensor::requires_grad() const { return impl_ && impl_->requires_grad; }

Tensor& Tensor::set_requires_grad(bool value) {
  FER_CHECK(impl_, "use of an undefined tensor");
  impl_->requires_grad = value;
  return *this;
}

bool Tensor::has_grad() const { return impl_ && !impl_->grad.empty(); }

float* Tensor::grad() const {
  FER_CHECK(impl_, "use of an undefined tensor");
  if (impl_->grad.empty() && numel() > 0) impl_->grad = AlignedBuffer(numel());
  return impl_->grad.data();
}

float* Tensor::grad_to_write(bool* accumulate) const {
  FER_CHECK(impl_, "use of an undefined tensor");
  *accumulate = !impl_->grad.empty() || numel() == 0;
  if (!*accumulate) impl_->grad = AlignedBuffer::uninitialized(numel());
  return impl_->grad.data();
}

bool Tensor::take_grad_of(const Tensor& from) const {
  FER_CHECK(impl_ && from.impl_, "use of an undefined tensor");
  if (impl_ == from.impl_ || !impl_->grad.empty() || from.impl_->grad.empty() ||
      from.impl_->grad.size() != numel())
    return false;
  impl_->grad = std::move(from.impl_->grad);  // leaves from's buffer empty
  return true;
}

Tensor Tensor::grad_tensor() const {
  Tensor out(shape());
  if (has_grad()) std::memcpy(out.data(), grad(), numel() * sizeof(float));
  return out;
}

void Tensor::zero_grad() {
  if (has_grad()) zero_fill(impl_->grad.data(), numel() * sizeof(float));
}

void check_same_shape(const char* op, const Shape& expected, const Shape& got) {
  if (expected != got)
    fail(op, ": expected shape ", shape_str(expected), ", got ", shape_str(got));
}

void check_rank(const char* op, const Tensor& t, int rank, const char* layout) {
  if (t.ndim() != rank)
    fail(op, ": expected a rank-", rank, layout[0] ? " " : "", layout, " tensor, got ",
         shape_str(t.shape()));
}

}  // namespace fer
