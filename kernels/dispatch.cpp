// The CPU/CUDA switch (see dispatch.h): check one device, call that backend.
#include "kernels/dispatch.h"

#include "kernels/cuda/elementwise.h"

namespace selfsup::dispatch {

namespace detail {

Device common_device(const char* op, std::initializer_list<const Tensor*> ts) {
  const Tensor* first = nullptr;
  for (const Tensor* t : ts) {
    if (!t->defined()) continue;
    if (!first) {
      first = t;
      continue;
    }
    SELFSUP_CHECK(t->device() == first->device(), op, ": tensors on ", first->device().str(),
                  " and ", t->device().str());
  }
  return first ? first->device() : kCPU;
}

}  // namespace detail

using detail::common_device;

// ============================================================================================
// Element-wise
// ============================================================================================

void unary(UnaryOp op, const Tensor& x, Tensor& out) {
  if (common_device(cpu::unary_op_name(op), {&x, &out}).is_cuda()) return cuda::unary(op, x, out);
  cpu::unary(op, x, out);
}

void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  if (common_device(cpu::binary_op_name(op), {&a, &b, &out}).is_cuda())
    return cuda::binary(op, a, b, out);
  cpu::binary(op, a, b, out);
}

void binary_scalar(BinaryOp op, const Tensor& x, double s, Tensor& out) {
  if (common_device(cpu::binary_op_name(op), {&x, &out}).is_cuda())
    return cuda::binary_scalar(op, x, s, out);
  cpu::binary_scalar(op, x, s, out);
}

void axpby(double alpha, const Tensor& a, double beta, const Tensor& b, Tensor& out) {
  if (common_device("axpby", {&a, &b, &out}).is_cuda()) return cuda::axpby(alpha, a, beta, b, out);
  cpu::axpby(alpha, a, beta, b, out);
}

void clamp(const Tensor& x, double lo, double hi, Tensor& out) {
  if (common_device("clamp", {&x, &out}).is_cuda()) return cuda::clamp(x, lo, hi, out);
  cpu::clamp(x, lo, hi, out);
}

void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) {
  if (common_device("where", {&cond, &a, &b, &out}).is_cuda()) return cuda::where(cond, a, b, out);
  cpu::where(cond, a, b, out);
}

void fill(Tensor& out, double value) {
  if (common_device("fill", {&out}).is_cuda()) return cuda::fill(out, value);
  cpu::fill(out, value);
}

void relu_backward(const Tensor& grad_y, const Tensor& x, Tensor& grad_x) {
  if (common_device("relu_backward", {&grad_y, &x, &grad_x}).is_cuda())
    return cuda::relu_backward(grad_y, x, grad_x);
  cpu::relu_backward(grad_y, x, grad_x);
}

void gelu_backward(const Tensor& grad_y, const Tensor& x, Tensor& grad_x) {
  if (common_device("gelu_backward", {&grad_y, &x, &grad_x}).is_cuda())
    return cuda::gelu_backward(grad_y, x, grad_x);
  cpu::gelu_backward(grad_y, x, grad_x);
}

void sigmoid_backward(const Tensor& grad_y, const Tensor& y, Tensor& grad_x) {
  if (common_device("sigmoid_backward", {&grad_y, &y, &grad_x}).is_cuda())
    return cuda::sigmoid_backward(grad_y, y, grad_x);
  cpu::sigmoid_backward(grad_y, y, grad_x);
}

void tanh_backward(const Tensor& grad_y, const Tensor& y, Tensor& grad_x) {
  if (common_device("tanh_backward", {&grad_y, &y, &grad_x}).is_cuda())
    return cuda::tanh_backward(grad_y, y, grad_x);
  cpu::tanh_backward(grad_y, y, grad_x);
}

void clamp_backward(const Tensor& grad_y, const Tensor& x, double lo, double hi, Tensor& grad_x) {
  if (common_device("clamp_backward", {&grad_y, &x, &grad_x}).is_cuda())
    return cuda::clamp_backward(grad_y, x, lo, hi, grad_x);
  cpu::clamp_backward(grad_y, x, lo, hi, grad_x);
}

}  // namespace selfsup::dispatch
