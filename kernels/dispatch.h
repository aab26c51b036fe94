// The single CPU/CUDA switch of the kernel layer: one function per kernel entry point, with the
// signature of the CPU kernel it stands for. Each checks that every tensor argument (inputs and
// outputs) is on one device, then calls cpu:: or cuda::. Code above the kernels (autograd, nn)
// calls dispatch::, never a backend directly, so an op runs wherever its tensors live.
//
// A mismatch is an Error naming the op and both devices: "add: tensors on cpu and cuda:0".
// In a CPU-only build the cuda:: functions are stubs (kernels/cuda/no_cuda.cpp); no CUDA tensor
// can exist there, so only CPU calls ever arrive.
//
// Adding a family (reductions, softmax, norms, ...) means one more section below with the CPU
// header's signatures, and a body in dispatch.cpp that follows the same three lines:
//   const Device d = detail::common_device(name, {&x, &out});
//   if (d.is_cuda()) return cuda::op(...);
//   cpu::op(...);
#pragma once

#include <initializer_list>

#include "core/tensor.h"
#include "kernels/cpu/elementwise.h"

namespace selfsup::dispatch {

namespace detail {
// The device of the defined tensors in `ts`; throws "<op>: tensors on <d1> and <d2>" when two
// differ. Undefined tensors are skipped (optional arguments).
Device common_device(const char* op, std::initializer_list<const Tensor*> ts);
}  // namespace detail

// ============================================================================================
// Element-wise (kernels/cpu/elementwise.h, kernels/cuda/elementwise.h)
// ============================================================================================

using cpu::BinaryOp;
using cpu::UnaryOp;

void unary(UnaryOp op, const Tensor& x, Tensor& out);
void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out);
void binary_scalar(BinaryOp op, const Tensor& x, double s, Tensor& out);
void axpby(double alpha, const Tensor& a, double beta, const Tensor& b, Tensor& out);
void clamp(const Tensor& x, double lo, double hi, Tensor& out);
void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out);
void fill(Tensor& out, double value);

void relu_backward(const Tensor& grad_y, const Tensor& x, Tensor& grad_x);
void gelu_backward(const Tensor& grad_y, const Tensor& x, Tensor& grad_x);
void sigmoid_backward(const Tensor& grad_y, const Tensor& y, Tensor& grad_x);
void tanh_backward(const Tensor& grad_y, const Tensor& y, Tensor& grad_x);
void clamp_backward(const Tensor& grad_y, const Tensor& x, double lo, double hi, Tensor& grad_x);

}  // namespace selfsup::dispatch
