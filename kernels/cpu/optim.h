// Optimizer steps on the CPU: the update rules of nn/optim.h over a list of parameters, in place.
// The twin of the multi-tensor GPU steps in kernels/cuda/ema.h (same argument structs and
// rules); nn/optim.cpp reaches either through kernels/dispatch.h. Every tensor of a list is
// contiguous, of one floating dtype (float32/float64) and the shape of the matching parameter.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace selfsup::cpu {

// SGD (PyTorch's rule):  d = g + weight_decay * p;  with momentum, buf = d on the first step,
// else momentum * buf + (1 - dampening) * d, and d = nesterov ? d + momentum * buf : buf;
// p -= lr * d. momentum_buffers may be empty when momentum is 0.
struct SgdStep {
  double lr = 0.1, momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false;
  bool first_step = false;  // the buffers are uninitialised and take d itself
};
void sgd_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
              const std::vector<Tensor>& momentum_buffers, const SgdStep& step);

// AdamW (PyTorch's rule), `step` = the step count after incrementing (1 on the first step):
//   p *= 1 - lr * wd;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
//   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
struct AdamWStep {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 1e-2;
  int64_t step = 1;
};
void adamw_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                const std::vector<Tensor>& exp_avg, const std::vector<Tensor>& exp_avg_sq,
                const AdamWStep& step);

// LARS. Per tensor not excluded: q = eta ||p|| / (||g|| + wd ||p||) (1 when a norm is 0),
// d = q (g + wd p); an excluded tensor has d = g. Then buf = momentum buf + d; p -= lr buf.
// `excluded` is empty (none) or one flag per tensor.
struct LarsStep {
  double lr = 0.1, momentum = 0.9, weight_decay = 1e-6, eta = 1e-3;
};
void lars_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
               const std::vector<Tensor>& momentum_buffers, const std::vector<bool>& excluded,
               const LarsStep& step);

// Sum of squares of every element (any strides), accumulated in double: the squared L2 norm.
double sum_of_squares(const Tensor& x);

}  // namespace selfsup::cpu
