// The host-side argument checks of 2-d convolution (NCHW, forward and backward), shared by
// kernels/cpu/conv.cpp and kernels/cuda/conv.cu so both backends take the same arguments to mean
// the same thing and refuse bad ones with the same words. The backends differ in what they ask
// of each operand: the CPU a CPU tensor of the right dtype, the CUDA kernels a contiguous one on
// the CUDA device. Each passes its OperandCheck, which the checks below call for every output and
// gradient; each checks input and weight itself (the CUDA side also fits every size into an int)
// and then calls check_ranks, check_channels and checked_out_size. Plain C++ on shapes: no loops
// over data.
#pragma once

#include <cstdint>

#include "core/error.h"
#include "core/shape.h"
#include "core/tensor.h"

namespace selfsup::conv_plan {

// A backend's check of one operand t (named `name`): defined, where its kernels read it, of
// exactly `dtype`.
using OperandCheck = void (*)(const Tensor& t, DType dtype, const char* op, const char* name);

inline void check_shape(const Tensor& t, const Shape& expected, const char* op, const char* name) {
  SELFSUP_CHECK(t.shape() == expected, op, ": ", name, " has shape ", shape_str(t.shape()),
                ", expected ", shape_str(expected));
}

// ---- input x [N, C, H, W] and weight w [O, C, KH, KW] ----

inline void check_ranks(const Tensor& x, const Tensor& w, const char* op) {
  SELFSUP_CHECK(x.dim() == 4, op, ": input must be 4-d [N, C, H, W], got ", shape_str(x.shape()));
  SELFSUP_CHECK(w.dim() == 4, op, ": weight must be 4-d [O, C, KH, KW], got ",
                shape_str(w.shape()));
}

inline void check_channels(const Tensor& x, const Tensor& w, const char* op) {
  SELFSUP_CHECK(x.size(1) == w.size(1), op, ": input ", shape_str(x.shape()), " has ", x.size(1),
                " channels, weight ", shape_str(w.shape()), " expects ", w.size(1));
}

// The output size along one dim: (in + 2 pad - kernel) / stride + 1, with every term checked.
inline int64_t checked_out_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad,
                                const char* op) {
  SELFSUP_CHECK(stride > 0, op, ": stride must be positive, got ", stride);
  SELFSUP_CHECK(pad >= 0, op, ": padding must be non-negative, got ", pad);
  SELFSUP_CHECK(kernel > 0, op, ": kernel size must be positive, got ", kernel);
  SELFSUP_CHECK(in + 2 * pad >= kernel, op, ": kernel size ", kernel,
                " is larger than the padded input size ", in + 2 * pad, " (input ", in,
                ", padding ", pad, ")");
  return (in + 2 * pad - kernel) / stride + 1;
}

// ---- the outputs and gradients, given the checked x, w and out_shape [N, O, OH, OW] ----

// Forward: bias (optional) [O] and out [N, O, OH, OW], both of x's dtype.
inline void check_forward_outputs(const char* op, const Tensor& x, const Tensor& w,
                                  const Tensor& bias, const Tensor& out, const Shape& out_shape,
                                  OperandCheck check_operand) {
  if (bias.defined()) {
    check_operand(bias, x.dtype(), op, "bias");
    SELFSUP_CHECK(bias.shape() == Shape{out_shape[1]}, op, ": bias ", shape_str(bias.shape()),
                  " does not match weight ", shape_str(w.shape()), " (expects [", out_shape[1],
                  "])");
  }
  check_operand(out, x.dtype(), op, "out");
  check_shape(out, out_shape, op, "out");
}

// Backward: grad_out [N, O, OH, OW]; grad_x, grad_w, grad_b (each optional) shaped like x, w and
// [O]; all of x's dtype.
inline void check_backward_grads(const char* op, const Tensor& x, const Tensor& w,
                                 const Tensor& grad_out, const Shape& out_shape,
                                 const Tensor& grad_x, const Tensor& grad_w, const Tensor& grad_b,
                                 OperandCheck check_operand) {
  const DType dt = x.dtype();
  check_operand(grad_out, dt, op, "grad_out");
  check_shape(grad_out, out_shape, op, "grad_out");
  if (grad_x.defined()) {
    check_operand(grad_x, dt, op, "grad_x");
    check_shape(grad_x, x.shape(), op, "grad_x");
  }
  if (grad_w.defined()) {
    check_operand(grad_w, dt, op, "grad_w");
    check_shape(grad_w, w.shape(), op, "grad_w");
  }
  if (grad_b.defined()) {
    check_operand(grad_b, dt, op, "grad_b");
    check_shape(grad_b, {out_shape[1]}, op, "grad_b");
  }
}

}  // namespace selfsup::conv_plan
