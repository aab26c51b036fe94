// 2-d pooling on the GPU (kernels/cuda/pool.cu), for C++ callers: plain C++, no CUDA types.
// The same entry points, contracts and numerics as kernels/cpu/pool.h (the reference): NCHW,
// float32/float64, every tensor on one CUDA device, outputs of any strides allocated by the
// caller. Max pooling treats padding as -infinity, takes the first maximum of a window in
// row-major order and lets a NaN win; average pooling divides by the full window
// (count_include_pad); adaptive pooling uses PyTorch's start/end rule. Every result, backward
// passes included, is deterministic (no atomics).
#pragma once

#include "core/tensor.h"
#include "kernels/cpu/pool.h"

namespace selfsup::cuda {

using cpu::Pool2dParams;

// out [N, C, OH, OW]; indices int64 [N, C, OH, OW] hold the flat h*W+w position of each max.
void max_pool2d(const Tensor& x, const Pool2dParams& p, Tensor& out, Tensor& indices);
// An index outside the grad_x plane is an Error (checked on the device before anything is
// written).
void max_pool2d_backward(const Tensor& grad_out, const Tensor& indices, Tensor& grad_x);
void avg_pool2d(const Tensor& x, const Pool2dParams& p, Tensor& out);
void avg_pool2d_backward(const Tensor& grad_out, const Pool2dParams& p, Tensor& grad_x);
// Adaptive average pooling to out [N, C, OH, OW] (PyTorch's start/end index rule).
void adaptive_avg_pool2d(const Tensor& x, Tensor& out);
void adaptive_avg_pool2d_backward(const Tensor& grad_out, Tensor& grad_x);

}  // namespace selfsup::cuda
