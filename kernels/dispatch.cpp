// The CPU/CUDA switch (see dispatch.h): check one device, call that backend.
#include "kernels/dispatch.h"

#include "core/views.h"
#include "kernels/cpu/ema.h"
#include "kernels/cpu/linalg.h"
#include "kernels/cpu/reduce.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/ema.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/reduce.h"

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

// ============================================================================================
// Reductions
// ============================================================================================

void sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, Tensor& out) {
  if (common_device("sum", {&x, &out}).is_cuda()) return cuda::sum(x, dims, keepdim, out);
  cpu::sum(x, dims, keepdim, out);
}

void mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, Tensor& out) {
  if (common_device("mean", {&x, &out}).is_cuda()) return cuda::mean(x, dims, keepdim, out);
  cpu::mean(x, dims, keepdim, out);
}

void var(const Tensor& x, const std::vector<int64_t>& dims, int64_t correction, bool keepdim,
         Tensor& out) {
  if (common_device("var", {&x, &out}).is_cuda())
    return cuda::var(x, dims, correction, keepdim, out);
  cpu::var(x, dims, correction, keepdim, out);
}

void max(const Tensor& x, int64_t dim, bool keepdim, Tensor& values, Tensor& indices) {
  if (common_device("max", {&x, &values, &indices}).is_cuda())
    return cuda::max(x, dim, keepdim, values, indices);
  cpu::max(x, dim, keepdim, values, indices);
}

void min(const Tensor& x, int64_t dim, bool keepdim, Tensor& values, Tensor& indices) {
  if (common_device("min", {&x, &values, &indices}).is_cuda())
    return cuda::min(x, dim, keepdim, values, indices);
  cpu::min(x, dim, keepdim, values, indices);
}

void argmax(const Tensor& x, int64_t dim, bool keepdim, Tensor& out) {
  if (common_device("argmax", {&x, &out}).is_cuda()) return cuda::argmax(x, dim, keepdim, out);
  cpu::argmax(x, dim, keepdim, out);
}

void max_all(const Tensor& x, Tensor& out) {
  if (common_device("max_all", {&x, &out}).is_cuda()) return cuda::max_all(x, out);
  cpu::max_all(x, out);
}

void min_all(const Tensor& x, Tensor& out) {
  if (common_device("min_all", {&x, &out}).is_cuda()) return cuda::min_all(x, out);
  cpu::min_all(x, out);
}

void sum_backward(const Tensor& grad_y, const Shape& x_shape, const std::vector<int64_t>& dims,
                  Tensor& grad_x) {
  if (common_device("sum_backward", {&grad_y, &grad_x}).is_cuda())
    return cuda::sum_backward(grad_y, x_shape, dims, grad_x);
  cpu::sum_backward(grad_y, x_shape, dims, grad_x);
}

void sum_to(const Tensor& x, const Shape& shape, Tensor& out) {
  if (common_device("sum_to", {&x, &out}).is_cuda()) return cuda::sum_to(x, shape, out);
  cpu::sum_to(x, shape, out);
}

// ============================================================================================
// Matrix products
// ============================================================================================

namespace {

// How cuda::gemm reads one operand: as stored (its rows contiguous), or transposed (a view whose
// columns are contiguous, handed over as the untransposed view). Anything else is copied.
struct GemmOperand {
  Tensor view;  // what cuda::gemm is given
  bool transposed = false;
};

GemmOperand gemm_operand(const Tensor& t) {
  const int64_t d = t.dim(), r = t.size(d - 2), c = t.size(d - 1);
  if (cuda::gemm_reads_in_place(r, c, t.stride(d - 2), t.stride(d - 1))) return {t, false};
  if (cuda::gemm_reads_in_place(c, r, t.stride(d - 1), t.stride(d - 2)))
    return {raw::transpose(t, d - 2, d - 1), true};
  return {raw::contiguous(t), false};
}

void gemm_on_cuda(const char* op, const Tensor& a, const Tensor& b, Tensor& out) {
  SELFSUP_CHECK(a.dtype() == kFloat32, op, ": the GPU kernels take float32, got ",
                dtype_name(a.dtype()), " ", shape_str(a.shape()), " on ", a.device().str());
  GemmOperand ga = gemm_operand(a), gb = gemm_operand(b);
  // gemm has NN, NT and TN; for A^T B^T compute the product from a contiguous copy of A.
  if (ga.transposed && gb.transposed) ga = {raw::contiguous(a), false};
  const cuda::GemmLayout layout = ga.transposed   ? cuda::GemmLayout::TN
                                  : gb.transposed ? cuda::GemmLayout::NT
                                                  : cuda::GemmLayout::NN;
  cuda::gemm(layout, ga.view, gb.view, out);
}

}  // namespace

void matmul(const Tensor& a, const Tensor& b, Tensor& out) {
  if (common_device("matmul", {&a, &b, &out}).is_cuda()) return gemm_on_cuda("matmul", a, b, out);
  cpu::matmul(a, b, out);
}

void bmm(const Tensor& a, const Tensor& b, Tensor& out) {
  if (common_device("bmm", {&a, &b, &out}).is_cuda()) return gemm_on_cuda("bmm", a, b, out);
  cpu::bmm(a, b, out);
}

// ============================================================================================
// Optimizer steps and EMA
// ============================================================================================

namespace {

// The one device of every tensor in the lists (an empty list is the CPU's).
Device device_of_lists(const char* op, std::initializer_list<const std::vector<Tensor>*> lists) {
  const Tensor* first = nullptr;
  for (const std::vector<Tensor>* list : lists)
    for (const Tensor& t : *list) {
      if (!first) first = &t;
      common_device(op, {first, &t});
    }
  return first ? first->device() : kCPU;
}

}  // namespace

void sgd_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
              const std::vector<Tensor>& momentum_buffers, const SgdStep& step) {
  if (device_of_lists("sgd_step", {&params, &grads, &momentum_buffers}).is_cuda())
    return cuda::sgd_step(params, grads, momentum_buffers, step);
  cpu::sgd_step(params, grads, momentum_buffers, step);
}

void adamw_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                const std::vector<Tensor>& exp_avg, const std::vector<Tensor>& exp_avg_sq,
                const AdamWStep& step) {
  if (device_of_lists("adamw_step", {&params, &grads, &exp_avg, &exp_avg_sq}).is_cuda())
    return cuda::adamw_step(params, grads, exp_avg, exp_avg_sq, step);
  cpu::adamw_step(params, grads, exp_avg, exp_avg_sq, step);
}

void lars_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
               const std::vector<Tensor>& momentum_buffers, const std::vector<bool>& excluded,
               const LarsStep& step) {
  if (device_of_lists("lars_step", {&params, &grads, &momentum_buffers}).is_cuda())
    return cuda::lars_step(params, grads, momentum_buffers, excluded, step);
  cpu::lars_step(params, grads, momentum_buffers, excluded, step);
}

void ema_update(const std::vector<Tensor>& targets, const std::vector<Tensor>& sources,
                double momentum) {
  if (device_of_lists("ema_update", {&targets, &sources}).is_cuda())
    return cuda::ema_update(targets, sources, momentum);
  cpu::ema_update(targets, sources, momentum);
}

double sum_of_squares(const Tensor& x) {
  if (!x.device().is_cuda()) return cpu::sum_of_squares(x);
  // On the GPU: square element-wise, sum (in double inside the kernel), read the 0-d result.
  Tensor squares = empty(x.shape(), TensorOptions(x.dtype()).device(x.device()));
  cuda::unary(cpu::UnaryOp::Square, x, squares);
  Tensor total = empty({}, TensorOptions(x.dtype()).device(x.device()));
  cuda::sum(squares, {}, false, total);
  return raw::to_device(total, kCPU).item<double>();
}

}  // namespace selfsup::dispatch
