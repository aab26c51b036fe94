// Batch norm, layer norm and dropout on the GPU (kernels/cuda/norm.cu), for C++ callers: plain
// C++, no CUDA types. The twin of kernels/cpu/norm.h: the same entry points, signatures, contract
// and numerics (statistics accumulated in double), with every tensor on the CUDA device. Inputs
// and outputs may have any strides (non-contiguous ones go through a contiguous copy).
// dropout draws the CPU's mask bit for bit: element i keeps when
// uniform_float(philox4x32(gen.seed(), gen.offset() + i).v[0]) >= float(p) (core/random.h), and
// the generator advances by numel, as on the CPU.
#pragma once

#include "core/random.h"
#include "core/tensor.h"

namespace selfsup::cuda {

// Batch norm over x [N, C] or [N, C, *], statistics per channel C (see cpu::batch_norm).
void batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& running_mean,
                Tensor& running_var, bool training, double momentum, double eps, Tensor& out,
                Tensor& save_mean, Tensor& save_invstd);
void batch_norm_backward(const Tensor& grad_out, const Tensor& x, const Tensor& weight,
                         const Tensor& save_mean, const Tensor& save_invstd, Tensor& grad_x,
                         Tensor& grad_w, Tensor& grad_b);
void batch_norm_eval_backward(const Tensor& grad_out, const Tensor& weight,
                              const Tensor& save_invstd, Tensor& grad_x);

// Layer norm over the last normalized_ndim dims of x (see cpu::layer_norm).
void layer_norm(const Tensor& x, int64_t normalized_ndim, const Tensor& weight, const Tensor& bias,
                double eps, Tensor& out, Tensor& mean, Tensor& rstd);
void layer_norm_backward(const Tensor& grad_out, const Tensor& x, int64_t normalized_ndim,
                         const Tensor& weight, const Tensor& mean, const Tensor& rstd,
                         Tensor& grad_x, Tensor& grad_w, Tensor& grad_b);

// Inverted dropout with a uint8 mask (see cpu::dropout).
void dropout(const Tensor& x, double p, Generator& gen, Tensor& out, Tensor& mask);
void dropout_backward(const Tensor& grad_out, const Tensor& mask, double p, Tensor& grad_x);

}  // namespace selfsup::cuda
