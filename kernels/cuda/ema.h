// Multi-tensor parameter updates on the GPU (kernels/cuda/ema.cu), for C++ callers: plain C++, no
// CUDA types. Every tensor is float32, contiguous and on the CUDA device; the lists are matched
// pairwise (an Error names the index and both shapes otherwise). All updates are in place and
// cover the whole list in one or two launches, however many tensors it holds.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace selfsup::cuda {

// EMA versions: 1 one launch per tensor, scalar; 2 one launch for the list, float4.
inline constexpr int kEmaVersions = 2;
inline constexpr int kEmaDefault = 2;

// target = momentum * target + (1 - momentum) * source, for each pair (cpu::ema_update's rule).
void ema_update(const std::vector<Tensor>& targets, const std::vector<Tensor>& sources,
                double momentum, int version = kEmaDefault);

// The optimizer steps of nn/optim.h, one launch for every parameter of a group.

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

// LARS (nn/optim.h's rule). Per tensor not excluded: q = eta ||p|| / (||g|| + wd ||p||) (1 when
// a norm is 0), d = q (g + wd p); an excluded tensor has d = g. Then buf = momentum buf + d;
// p -= lr buf. `excluded` is empty (none) or one flag per tensor.
struct LarsStep {
  double lr = 0.1, momentum = 0.9, weight_decay = 1e-6, eta = 1e-3;
};
void lars_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
               const std::vector<Tensor>& momentum_buffers, const std::vector<bool>& excluded,
               const LarsStep& step);

}  // namespace selfsup::cuda
