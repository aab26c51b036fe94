// Element-wise CPU kernels with NumPy broadcasting. Destination-passing: the caller allocates
// `out` with the broadcast shape (any strides, e.g. an in-place alias of an input) and the
// kernel only writes it. Float kernels support float32 and float64; comparisons write 1/0 in
// out's dtype (uint8 masks by convention). No autograd here.
#pragma once

#include "core/tensor.h"

namespace selfsup::cpu {

enum class UnaryOp {
  Neg,
  Exp,
  Log,
  Sqrt,
  Abs,
  Relu,
  Gelu,
  Sigmoid,
  Tanh,
  Square,
  Reciprocal,
  Sign,
};
enum class BinaryOp {
  Add,
  Sub,
  Mul,
  Div,
  Pow,
  Maximum,
  Minimum,  // arithmetic: out dtype = input dtype
  Eq,
  Ne,
  Lt,
  Le,
  Gt,
  Ge,  // comparisons: out may be uint8 or float
};

const char* unary_op_name(UnaryOp op);
const char* binary_op_name(BinaryOp op);

// out = op(x). out.shape() == x.shape().
void unary(UnaryOp op, const Tensor& x, Tensor& out);
// out = op(a, b) with a and b broadcast to out.shape().
void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out);
// out = op(x, s) for a scalar s (Add, Sub, Mul, Div, Pow, Maximum, Minimum and comparisons).
void binary_scalar(BinaryOp op, const Tensor& x, double s, Tensor& out);
// out = alpha * a + beta * b (broadcast), one pass.
void axpby(double alpha, const Tensor& a, double beta, const Tensor& b, Tensor& out);
// out = min(max(x, lo), hi).
void clamp(const Tensor& x, double lo, double hi, Tensor& out);
// out = cond != 0 ? a : b, all three broadcast to out.shape(); cond may be uint8 or float.
void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out);
void fill(Tensor& out, double value);

// Backward helpers: grad_x = grad_y * f'(.) written in one pass.
void relu_backward(const Tensor& grad_y, const Tensor& x, Tensor& grad_x);
void gelu_backward(const Tensor& grad_y, const Tensor& x, Tensor& grad_x);     // exact erf GELU
void sigmoid_backward(const Tensor& grad_y, const Tensor& y, Tensor& grad_x);  // y = sigmoid(x)
void tanh_backward(const Tensor& grad_y, const Tensor& y, Tensor& grad_x);     // y = tanh(x)
// grad_x = grad_y where lo <= x <= hi, else 0.
void clamp_backward(const Tensor& grad_y, const Tensor& x, double lo, double hi, Tensor& grad_x);

}  // namespace selfsup::cpu
