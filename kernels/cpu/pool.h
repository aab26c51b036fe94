// Pooling on the CPU, NCHW, float32/float64. Padding of max pooling counts as -infinity; average
// pooling counts padded cells in the divisor (PyTorch's count_include_pad=True).
#pragma once

#include "core/tensor.h"

namespace selfsup::cpu {

struct Pool2dParams {
  int64_t kernel_h = 2, kernel_w = 2;
  int64_t stride_h = 2, stride_w = 2;
  int64_t pad_h = 0, pad_w = 0;
};

// out [N, C, OH, OW]; indices int64 [N, C, OH, OW] hold the flat h*W+w position of each max.
void max_pool2d(const Tensor& x, const Pool2dParams& p, Tensor& out, Tensor& indices);
void max_pool2d_backward(const Tensor& grad_out, const Tensor& indices, Tensor& grad_x);
void avg_pool2d(const Tensor& x, const Pool2dParams& p, Tensor& out);
void avg_pool2d_backward(const Tensor& grad_out, const Pool2dParams& p, Tensor& grad_x);
// Adaptive average pooling to out [N, C, OH, OW] (PyTorch's start/end index rule).
void adaptive_avg_pool2d(const Tensor& x, Tensor& out);
void adaptive_avg_pool2d_backward(const Tensor& grad_out, Tensor& grad_x);

}  // namespace selfsup::cpu
