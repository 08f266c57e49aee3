// Pooling over NHWC batches: max, average and global average, with Keras's semantics.
//
// Geometry g (kernels/padding.h) with kh, kw = pool size. Channels pass through:
//   x [N, H, W, C]  ->  y [N, OH, OW, C]
//
// Max pooling: y = the largest input in the window. 'same' padding pads with -inf (as
// TensorFlow does), i.e. padded cells never win. Backward sends dy to the input that won;
// on a tie, the first one in scan order (row by row), as TensorFlow does. The backward
// functions recompute the winner from x rather than storing indices: it costs one more
// pass over x but keeps no extra tensor alive between forward and backward.
//
// Average pooling: y = the mean of the window's cells INSIDE the image. Keras excludes
// the padded cells from the count, so a corner window of a 'same' pool averages fewer
// cells (PyTorch's count_include_pad=True would not). Backward: each counted cell
// receives dy / count.
//
// Global average pooling: [N, H, W, C] -> [N, C], the mean over all H*W pixels.
//
// Backward functions ADD into dx (gradients accumulate).
//
// Each op has a `_ref` version (plain loops, read it first) and an optimized one. The
// optimized entry points (the names without a suffix, which the layers call) are Google
// Highway SIMD kernels (kernels/pool_hwy.cpp, compiled for every x86 SIMD level and
// dispatched at run time) that vectorize over channels and give the `_ref` results bit
// for bit (same order of operations per channel). The earlier OpenMP loops remain as
// `_loops` (channels innermost, images in parallel), the baseline of
// bench/bench_pool_softmax.cpp; their averages multiply by 1/count, so they may differ
// from `_ref` in the last bit.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/padding.h"

namespace fer::kernels {

void max_pool2d_forward_ref(const Conv2DGeometry& g, const float* x, float* y);
void max_pool2d_forward(const Conv2DGeometry& g, const float* x, float* y);
void max_pool2d_forward_loops(const Conv2DGeometry& g, const float* x, float* y);
void max_pool2d_backward_ref(const Conv2DGeometry& g, const float* x, const float* dy,
                             float* dx);
void max_pool2d_backward(const Conv2DGeometry& g, const float* x, const float* dy, float* dx);
void max_pool2d_backward_loops(const Conv2DGeometry& g, const float* x, const float* dy,
                               float* dx);

void avg_pool2d_forward_ref(const Conv2DGeometry& g, const float* x, float* y);
void avg_pool2d_forward(const Conv2DGeometry& g, const float* x, float* y);
void avg_pool2d_forward_loops(const Conv2DGeometry& g, const float* x, float* y);
void avg_pool2d_backward_ref(const Conv2DGeometry& g, const float* dy, float* dx);
void avg_pool2d_backward(const Conv2DGeometry& g, const float* dy, float* dx);
void avg_pool2d_backward_loops(const Conv2DGeometry& g, const float* dy, float* dx);

// x [n, h*w, c] -> y [n, c];  dx [n, h*w, c] += dy [n, c] / (h*w).
void global_avg_pool2d_forward_ref(int n, int hw, int c, const float* x, float* y);
void global_avg_pool2d_forward(int n, int hw, int c, const float* x, float* y);
void global_avg_pool2d_forward_loops(int n, int hw, int c, const float* x, float* y);
void global_avg_pool2d_backward_ref(int n, int hw, int c, const float* dy, float* dx);
void global_avg_pool2d_backward(int n, int hw, int c, const float* dy, float* dx);
void global_avg_pool2d_backward_loops(int n, int hw, int c, const float* dy, float* dx);

// For tests and benchmarks, as batchnorm_hwy_* in kernels/batchnorm.h: the Highway
// targets compiled and supported by this CPU (best first), forcing one (0 undoes), the
// target the next call runs, and a target's name.
std::vector<int64_t> pool_hwy_targets();
void pool_hwy_force_target(int64_t target);
int64_t pool_hwy_dispatched_target();
const char* pool_hwy_target_name(int64_t target);

}  // namespace fer::kernels
