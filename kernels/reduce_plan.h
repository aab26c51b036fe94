// The host-side shape planning of the reductions, shared by kernels/cpu/reduce.cpp and
// kernels/cuda/reduce.cu so both backends take the same arguments to mean the same thing and
// refuse bad ones with the same words. Plain C++ on shapes and strides: no loops over data.
#pragma once

#include <cstdint>
#include <vector>

#include "core/error.h"
#include "core/shape.h"
#include "core/tensor.h"

namespace selfsup::reduce_plan {

// reduced[d]: whether dim d of an ndim-d tensor is reduced over (dims empty = all dims).
inline std::vector<bool> reduced_mask(int64_t ndim, const std::vector<int64_t>& dims,
                                      const char* op) {
  std::vector<bool> reduced(ndim, false);
  for (int64_t d : normalize_dims(dims, ndim, op))
    if (d < ndim) reduced[d] = true;  // a 0-d tensor accepts dim 0, which names no real dim
  return reduced;
}

// How many input elements fall into each output element.
inline int64_t reduced_count(const Shape& shape, const std::vector<bool>& reduced) {
  int64_t n = 1;
  for (size_t d = 0; d < shape.size(); ++d)
    if (reduced[d]) n *= shape[d];
  return n;
}

// out's shape and dtype are the result's (x is the input, named in the message).
inline void check_result(const char* op, const Tensor& out, const Shape& shape, DType dtype,
                         const Tensor& x) {
  SELFSUP_CHECK(out.shape() == shape, op, ": out has shape ", shape_str(out.shape()),
                " but the result for input ", shape_str(x.shape()), " has shape ",
                shape_str(shape));
  SELFSUP_CHECK(out.dtype() == dtype, op, ": out is ", dtype_name(out.dtype()),
                " but the result is ", dtype_name(dtype));
}

// sum_backward: grad_y's strides along the dims of x (shape x_shape), 0 along the reduced dims.
// Reading grad_y with these strides is the broadcast back over the reduced dims. grad_y may
// have the keepdim=true or keepdim=false shape of the sum.
inline Shape sum_backward_grad_strides(const Tensor& grad_y, const Shape& x_shape,
                                       const std::vector<int64_t>& dims, const char* op) {
  const int64_t nd = static_cast<int64_t>(x_shape.size());
  const std::vector<bool> reduced = reduced_mask(nd, dims, op);
  const Shape kept_shape = reduced_shape(x_shape, dims, true, op);
  const Shape dropped_shape = reduced_shape(x_shape, dims, false, op);
  Shape strides(nd, 0);
  if (grad_y.shape() == kept_shape) {
    for (int64_t d = 0; d < nd; ++d)
      if (!reduced[d]) strides[d] = grad_y.stride(d);
    return strides;
  }
  SELFSUP_CHECK(grad_y.shape() == dropped_shape, op, ": grad of shape ", shape_str(grad_y.shape()),
                " fits neither ", shape_str(dropped_shape), " nor ", shape_str(kept_shape),
                " (the sum of ", shape_str(x_shape), " over dims ", shape_str(dims), ")");
  for (int64_t d = 0, j = 0; d < nd; ++d)
    if (!reduced[d]) strides[d] = grad_y.stride(j++);
  return strides;
}

// sum_to: the dims of x summed to reach `shape` (the leading dims broadcasting added and the
// dims it stretched from 1); an Error unless x's shape is a broadcast of `shape`.
inline std::vector<bool> sum_to_reduced_dims(const Shape& x_shape, const Shape& shape,
                                             const char* op) {
  const int64_t nd = static_cast<int64_t>(x_shape.size());
  const int64_t lead = nd - static_cast<int64_t>(shape.size());
  bool broadcasts = lead >= 0;
  for (int64_t j = 0; broadcasts && j < static_cast<int64_t>(shape.size()); ++j)
    broadcasts = shape[j] == x_shape[lead + j] || shape[j] == 1;
  SELFSUP_CHECK(broadcasts, op, ": cannot sum a tensor of shape ", shape_str(x_shape), " down to ",
                shape_str(shape), " (it is not a broadcast of that shape)");
  std::vector<bool> reduced(nd, false);
  for (int64_t d = 0; d < nd; ++d)
    reduced[d] = d < lead || (shape[d - lead] == 1 && x_shape[d] != 1);
  return reduced;
}

}  // namespace selfsup::reduce_plan
