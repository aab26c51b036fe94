// Batch norm, layer norm and dropout on the CPU (float32/float64).
#pragma once

#include "core/random.h"
#include "core/tensor.h"

namespace selfsup::cpu {

// Batch norm over x [N, C] or [N, C, *]: statistics per channel C.
// Training: normalise with the batch mean and biased variance; update the running statistics
//   running = (1 - momentum) * running + momentum * batch  (unbiased variance for running_var),
//   if running_mean/running_var are defined. save_mean / save_invstd [C] are written for the
//   backward. Eval: normalise with the running statistics (save_* are still written with them).
// weight, bias [C] may be undefined (no affine).
void batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& running_mean,
                Tensor& running_var, bool training, double momentum, double eps, Tensor& out,
                Tensor& save_mean, Tensor& save_invstd);
// Gradients for training mode (batch statistics). grad_w / grad_b may be undefined to skip.
void batch_norm_backward(const Tensor& grad_out, const Tensor& x, const Tensor& weight,
                         const Tensor& save_mean, const Tensor& save_invstd, Tensor& grad_x,
                         Tensor& grad_w, Tensor& grad_b);
// Eval mode's backward is an affine map: grad_x = grad_out * weight * invstd.
void batch_norm_eval_backward(const Tensor& grad_out, const Tensor& weight,
                              const Tensor& save_invstd, Tensor& grad_x);

// Layer norm over the last `normalized_ndim` dims of x. weight, bias have those dims' shape or
// are undefined. mean, rstd have shape x.shape()[:-normalized_ndim] (written for backward).
void layer_norm(const Tensor& x, int64_t normalized_ndim, const Tensor& weight, const Tensor& bias,
                double eps, Tensor& out, Tensor& mean, Tensor& rstd);
void layer_norm_backward(const Tensor& grad_out, const Tensor& x, int64_t normalized_ndim,
                         const Tensor& weight, const Tensor& mean, const Tensor& rstd,
                         Tensor& grad_x, Tensor& grad_w, Tensor& grad_b);

// Inverted dropout: out = x * mask / (1 - p), mask[i] = (uniform_float(word 0) >= float(p)) from
// the Philox stream of gen (element i uses counter gen.offset() + i, as core/random.h describes)
// for every dtype, so float32, float64 and the GPU draw the same mask. mask is uint8 with x's
// shape.
void dropout(const Tensor& x, double p, Generator& gen, Tensor& out, Tensor& mask);
// grad_x = grad_out * mask / (1 - p)
void dropout_backward(const Tensor& grad_out, const Tensor& mask, double p, Tensor& grad_x);

}  // namespace selfsup::cpu
