// Tensor: an n-dimensional float32 array with an optional gradient.
//
// Activations are NHWC (batch, height, width, channels): channels are innermost, so a
// 1x1 convolution is a matrix product and depthwise kernels vectorize over channels.
// Storage is 64-byte aligned (one cache line, one AVX-512 register).
//
// A Tensor is a cheap handle: copies share the same storage, as in PyTorch. Use clone()
// for a deep copy. The gradient lives beside the data and is allocated (as zeros) the
// first time something accumulates into it; see fer/autograd.h for how it is filled.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

namespace fer {

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& shape);  // "[64, 48, 48, 1]"
int64_t shape_numel(const Shape& shape);

// Freed buffers of 64 KB and more are kept, per size, for the next buffer of that size
// (fer/tensor.cpp: a training step then allocates nothing from the system). After a phase
// whose sizes will not come again -- the teachers' pass over the training set, at their
// own batch and input size -- release_cached_buffers() frees them all and returns the
// bytes it released; cached_buffer_bytes() is what the pool holds now.
size_t release_cached_buffers();
size_t cached_buffer_bytes();

// A 64-byte aligned float array that owns its memory.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(int64_t count);  // zero-filled
  // Scratch memory whose contents are garbage: for buffers the caller fully overwrites
  // (im2col columns), where zeroing would be a wasted pass over memory.
  static AlignedBuffer uninitialized(int64_t count);
  ~AlignedBuffer();
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  AlignedBuffer(AlignedBuffer&& other) noexcept;
  AlignedBuffer& operator=(AlignedBuffer&& other) noexcept;

  float* data() { return data_; }
  const float* data() const { return data_; }
  int64_t size() const { return size_; }
  bool empty() const { return data_ == nullptr; }

 private:
  AlignedBuffer(int64_t count, bool zero);
  float* data_ = nullptr;
  int64_t size_ = 0;
};

// A number unique across the whole run, for TensorImpl::version.
uint64_t next_tensor_version();

struct TensorImpl {
  Shape shape;
  AlignedBuffer data;
  AlignedBuffer grad;  // empty until something accumulates into it
  bool requires_grad = false;
  // Renewed (a number no tensor ever had) whenever the data may change: at creation and
  // at every non-const data() -- fill, copy_from and the optimizers' updates go through
  // it. Equal versions mean equal contents, so a layer can keep something computed from
  // its weights (Conv2D: the Winograd kernel transform) until the version moves.
  uint64_t version = next_tensor_version();
};

class Tensor {
 public:
  Tensor() = default;                 // undefined tensor (defined() is false)
  explicit Tensor(const Shape& shape);  // zero-filled
  Tensor(const Shape& shape, float fill);
  Tensor(const Shape& shape, const std::vector<float>& values);

  static Tensor zeros(const Shape& shape) { return Tensor(shape); }
  // Contents are garbage: for a layer's output that its kernel overwrites entirely, where
  // zero-filling would be one more pass over the whole activation (buffers come back from
  // the pool dirty). Building with -DFER_POISON_UNINITIALIZED=ON fills them with NaN
  // instead, so a kernel that reads before it writes shows up in the tests.
  static Tensor uninitialized(const Shape& shape);
  static Tensor scalar(float value) { return Tensor(Shape{}, value); }

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  int ndim() const { return static_cast<int>(shape().size()); }
  int64_t dim(int axis) const;  // negative axes count from the end
  int64_t numel() const;

  float* data();
  const float* data() const;
  float item() const;  // the value of a one-element tensor
  std::vector<float> to_vector() const;

  Tensor clone() const;  // deep copy of the data (no gradient)
  // Same storage, new shape with the same element count (the gradient is not shared).
  Tensor reshape(const Shape& shape) const;
  void fill(float value);
  void copy_from(const Tensor& other);  // same numel required

  // --- autograd -------------------------------------------------------------------
  bool requires_grad() const;
  Tensor& set_requires_grad(bool value);
  bool has_grad() const;             // whether a gradient buffer exists
  // The gradient buffer, allocated as zeros on first use. A const handle still gives
  // write access: the handle's constness is not the tensor's (backward closures hold
  // const copies of the tensors they accumulate into).
  float* grad() const;
  // For a backward pass that can either overwrite the gradient or add into it: before the
  // buffer exists (the first contribution this step), allocates it uninitialized and sets
  // *accumulate = false -- the caller must then write every element; afterwards returns
  // the buffer with *accumulate = true. Saves the zero-fill of grad() (a pass over every
  // activation's gradient each training step).
  float* grad_to_write(bool* accumulate) const;
  // For a backward pass that can write its input's gradient over its output's, element
  // by element (BatchNorm): when this tensor has no gradient buffer yet and `from` has one
  // of the same size, moves that buffer here and returns true -- `from` is left without
  // one, its gradient consumed (nothing reads an output's gradient after the backward of
  // the layer that produced it). Writing over the gradient just read saves the memory
  // traffic of a fresh buffer (its read for ownership) and one buffer per layer.
  // Otherwise returns false and changes nothing.
  bool take_grad_of(const Tensor& from) const;
  Tensor grad_tensor() const;        // a copy of the gradient (zeros if none)
  void zero_grad();                  // sets an existing gradient to zero

  // The data's version (TensorImpl::version): unchanged means not written since.
  uint64_t version() const;

  // Identity of the underlying storage (for tests and caches).
  const TensorImpl* impl() const { return impl_.get(); }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// Throws fer::Error "op: expected shape A, got B" unless the shapes are equal.
void check_same_shape(const char* op, const Shape& expected, const Shape& got);
// Throws unless the tensor has `rank` dimensions: "op: expected a rank-4 NHWC tensor, got [..]".
void check_rank(const char* op, const Tensor& t, int rank, const char* layout = "");

}  // namespace fer
