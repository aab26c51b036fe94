// Element-wise CUDA kernels (kernels/cuda/elementwise.cu), for C++ callers: plain C++, no CUDA
// types. The same entry points, contracts and numerics as kernels/cpu/elementwise.h (the
// reference): NumPy broadcasting, destination-passing (`out` allocated by the caller with the
// broadcast shape and any non-overlapping strides, possibly an in-place alias of an input), any
// input strides. Every tensor must be on the CUDA device. Float kernels take float32 and float64;
// comparisons take inputs of any one dtype and write 1/0 in out's dtype (uint8, float32 or
// float64); where's cond is uint8, float32 or float64; fill writes every dtype.
//
// The ops are named by the CPU enums (cpu::UnaryOp, cpu::BinaryOp) so one dispatch point
// (kernels/dispatch.h) can hand the same arguments to either backend.
#pragma once

#include "core/tensor.h"
#include "kernels/cpu/elementwise.h"

namespace selfsup::cuda {

using cpu::BinaryOp;
using cpu::UnaryOp;

// Most dims an operand may have after size-1 dims are dropped and dims that every operand walks
// as one are fused (see elementwise.cu); more is an Error naming the op.
inline constexpr int kMaxElementwiseDims = 16;

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

}  // namespace selfsup::cuda
