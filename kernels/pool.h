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
// Backward functions ADD into dx (gradients accumulate). `_ref` versions are plain loops;
// the others order loops with channels innermost and run images in parallel (OpenMP).
#pragma once

#include "kernels/padding.h"

namespace fer::kernels {

void max_pool2d_forward_ref(const Conv2DGeometry& g, const float* x, float* y);
void max_pool2d_forward(const Conv2DGeometry& g, const float* x, float* y);
void max_pool2d_backward_ref(const Conv2DGeometry& g, const float* x, const float* dy,
                             float* dx);
void max_pool2d_backward(const Conv2DGeometry& g, const float* x, const float* dy, float* dx);

void avg_pool2d_forward_ref(const Conv2DGeometry& g, const float* x, float* y);
void avg_pool2d_forward(const Conv2DGeometry& g, const float* x, float* y);
void avg_pool2d_backward_ref(const Conv2DGeometry& g, const float* dy, float* dx);
void avg_pool2d_backward(const Conv2DGeometry& g, const float* dy, float* dx);

// x [n, h*w, c] -> y [n, c];  dx [n, h*w, c] += dy [n, c] / (h*w).
void global_avg_pool2d_forward_ref(int n, int hw, int c, const float* x, float* y);
void global_avg_pool2d_forward(int n, int hw, int c, const float* x, float* y);
void global_avg_pool2d_backward_ref(int n, int hw, int c, const float* dy, float* dx);
void global_avg_pool2d_backward(int n, int hw, int c, const float* dy, float* dx);

}  // namespace fer::kernels
