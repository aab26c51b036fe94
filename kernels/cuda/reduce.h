// Reductions on the GPU (kernels/cuda/reduce.cu), for C++ callers: plain C++, no CUDA types.
// The twin of kernels/cpu/reduce.h: the same entry points, signatures and contract, with every
// tensor on the CUDA device. `dims` empty means every dim; the caller allocates `out` with
// reduced_shape(x.shape(), dims, keepdim) (core/shape.h). Inputs may have any strides (views,
// broadcasts); outputs any strides that write each element once. Sums, means and variances of
// float32 inputs accumulate in double, as on the CPU.
#pragma once

#include <vector>

#include "core/tensor.h"

namespace selfsup::cuda {

void sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, Tensor& out);
void mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, Tensor& out);
// Variance with Bessel-style correction: sum((x - mean)^2) / (n - correction).
void var(const Tensor& x, const std::vector<int64_t>& dims, int64_t correction, bool keepdim,
         Tensor& out);
// Max / min along one dim: values (x's dtype) and int64 indices of the first extreme element
// (a NaN counts as the extreme: the first NaN wins).
void max(const Tensor& x, int64_t dim, bool keepdim, Tensor& values, Tensor& indices);
void min(const Tensor& x, int64_t dim, bool keepdim, Tensor& values, Tensor& indices);
// int64 index of the maximum along dim.
void argmax(const Tensor& x, int64_t dim, bool keepdim, Tensor& out);
// Max / min of all elements into a 0-d tensor.
void max_all(const Tensor& x, Tensor& out);
void min_all(const Tensor& x, Tensor& out);

// grad_x = grad_y broadcast back over the reduced dims of a tensor of shape `x_shape`
// (the backward of sum; mean divides by the count). grad_y has the keepdim=false shape unless
// keepdim was set; both are accepted.
void sum_backward(const Tensor& grad_y, const Shape& x_shape, const std::vector<int64_t>& dims,
                  Tensor& grad_x);

// Sums `x` down to `shape` (the inverse of broadcasting): used by every broadcasting backward.
void sum_to(const Tensor& x, const Shape& shape, Tensor& out);

}  // namespace selfsup::cuda
