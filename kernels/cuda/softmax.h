// Softmax, log-softmax and softmax cross-entropy on the GPU (kernels/cuda/softmax.cu), for C++
// callers: plain C++, no CUDA types. The twin of kernels/cpu/softmax.h: the same entry points,
// signatures, contract and numerics (row sums in double), with every tensor on the CUDA device.
// Inputs and outputs may have any strides (non-contiguous ones go through a contiguous copy).
// cross_entropy's out-of-range target is an Error naming the row and value, as on the CPU.
#pragma once

#include "core/tensor.h"

namespace selfsup::cuda {

void softmax(const Tensor& x, int64_t dim, Tensor& out);
void log_softmax(const Tensor& x, int64_t dim, Tensor& out);
// grad_x = y * (grad_y - sum(grad_y * y, dim))          where y = softmax(x)
void softmax_backward(const Tensor& grad_y, const Tensor& y, int64_t dim, Tensor& grad_x);
// grad_x = grad_y - exp(y) * sum(grad_y, dim)           where y = log_softmax(x)
void log_softmax_backward(const Tensor& grad_y, const Tensor& y, int64_t dim, Tensor& grad_x);

// Mean softmax cross-entropy over the N rows of logits [N, C] with class-index targets [N]
// (int64, in [0, C)); loss is a one-element tensor of logits' dtype; grad_logits [N, C] or
// undefined to skip. float32 contiguous inputs with a 0-d loss run the signature kernel
// cuda::softmax_cross_entropy (kernels/cuda/softmax_xent.h).
void cross_entropy(const Tensor& logits, const Tensor& targets, Tensor& loss, Tensor& grad_logits);
// The same with soft targets [N, C] (rows of probabilities).
void cross_entropy_soft(const Tensor& logits, const Tensor& targets, Tensor& loss,
                        Tensor& grad_logits);

}  // namespace selfsup::cuda
