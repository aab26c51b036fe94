// Softmax, log-softmax and fused softmax cross-entropy on the CPU (float32/float64).
#pragma once

#include "core/tensor.h"

namespace selfsup::cpu {

// y = softmax(x) along dim (max-subtracted, stable). out has x's shape.
void softmax(const Tensor& x, int64_t dim, Tensor& out);
void log_softmax(const Tensor& x, int64_t dim, Tensor& out);
// grad_x = y * (grad_y - sum(grad_y * y, dim))          where y = softmax(x)
void softmax_backward(const Tensor& grad_y, const Tensor& y, int64_t dim, Tensor& grad_x);
// grad_x = grad_y - exp(y) * sum(grad_y, dim)           where y = log_softmax(x)
void log_softmax_backward(const Tensor& grad_y, const Tensor& y, int64_t dim, Tensor& grad_x);

// Fused softmax cross-entropy, mean over the N rows, in one pass per row:
//   loss = mean_i [ logsumexp(logits_i) - logits_i[target_i] ]
//   grad_logits = (softmax(logits) - onehot(target)) / N     (the gradient of the mean loss)
// logits [N, C] float; targets [N] int64 in [0, C) (an out-of-range target is an Error naming
// the row and value); loss is a 0-d tensor of logits' dtype. grad_logits may be undefined to
// skip it.
void cross_entropy(const Tensor& logits, const Tensor& targets, Tensor& loss, Tensor& grad_logits);
// The same with soft targets [N, C] (rows of probabilities):
//   loss = mean_i [ -sum_c target_ic * log_softmax(logits)_ic ]
//   grad_logits = (softmax(logits) * sum_c target_ic - target) / N
void cross_entropy_soft(const Tensor& logits, const Tensor& targets, Tensor& loss,
                        Tensor& grad_logits);

}  // namespace selfsup::cpu
