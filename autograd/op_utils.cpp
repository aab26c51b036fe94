#include "autograd/op_utils.h"

#include "kernels/dispatch.h"

namespace selfsup::detail {

void check_same_device(const char* op, std::initializer_list<Tensor> ts) {
  const Tensor* first = nullptr;
  for (const Tensor& t : ts) {
    if (!t.defined()) continue;
    if (!first) {
      first = &t;
      continue;
    }
    SELFSUP_CHECK(t.device() == first->device(), op, ": tensors on different devices (",
                  first->device().str(), " and ", t.device().str(), ")");
  }
}

void check_same_dtype(const char* op, const Tensor& a, const Tensor& b) {
  SELFSUP_CHECK(a.dtype() == b.dtype(), op, ": dtypes differ (", dtype_name(a.dtype()), " ",
                shape_str(a.shape()), " and ", dtype_name(b.dtype()), " ", shape_str(b.shape()),
                ")");
}

void check_floating(const char* op, const Tensor& t) {
  SELFSUP_CHECK(is_floating(t.dtype()), op, ": needs a float32 or float64 tensor, got ",
                dtype_name(t.dtype()), " ", shape_str(t.shape()));
}

Tensor empty_as(const Shape& shape, const Tensor& like) {
  return empty(shape, TensorOptions(like.dtype()).device(like.device()));
}

Tensor empty_as(const Shape& shape, const Tensor& like, DType dtype) {
  return empty(shape, TensorOptions(dtype).device(like.device()));
}

Tensor zeros_as(const Shape& shape, const Tensor& like) {
  return zeros(shape, TensorOptions(like.dtype()).device(like.device()));
}

Tensor reduce_to(const Tensor& grad, const Shape& shape) {
  if (grad.shape() == shape) return grad;
  Tensor out = empty_as(shape, grad);
  dispatch::sum_to(grad, shape, out);
  return out;
}

}  // namespace selfsup::detail
