// Reductions over any set of dims. `dims` empty means every dim. The caller allocates `out`
// with reduced_shape(x.shape(), dims, keepdim) (core/shape.h). Accumulation is in double for
// float32 inputs' sums and means, so long reductions stay accurate.
#pragma once

#include <vector>

#include "core/tensor.h"

namespace selfsup::cpu {

void sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, Tensor& out);
void mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, Tensor& out);
// Variance with Bessel-style correction: sum((x - mean)^2) / (n - correction).
void var(const Tensor& x, const std::vector<int64_t>& dims, int64_t correction, bool keepdim,
         Tensor& out);
// Max / min along one dim: values (x's dtype) and int64 indices of the first extreme element.
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

}  // namespace selfsup::cpu
