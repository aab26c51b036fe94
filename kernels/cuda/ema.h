// Multi-tensor parameter updates on the GPU (kernels/cuda/ema.cu), for C++ callers: plain C++, no
// CUDA types. Every tensor is float32, contiguous and on the CUDA device; the lists are matched
// pairwise (an Error names the index and both shapes otherwise). All updates are in place and
// cover the whole list in one or two launches, however many tensors it holds.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "kernels/cpu/optim.h"

namespace selfsup::cuda {

// EMA versions: 1 one launch per tensor, scalar; 2 one launch for the list, float4.
inline constexpr int kEmaVersions = 2;
inline constexpr int kEmaDefault = 2;

// target = momentum * target + (1 - momentum) * source, for each pair (cpu::ema_update's rule).
void ema_update(const std::vector<Tensor>& targets, const std::vector<Tensor>& sources,
                double momentum, int version = kEmaDefault);

// The optimizer steps of nn/optim.h, one launch for every parameter of a group.

// The argument structs and update rules are kernels/cpu/optim.h's (shared with the CPU steps).
using cpu::AdamWStep;
using cpu::LarsStep;
using cpu::SgdStep;

void sgd_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
              const std::vector<Tensor>& momentum_buffers, const SgdStep& step);

void adamw_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                const std::vector<Tensor>& exp_avg, const std::vector<Tensor>& exp_avg_sq,
                const AdamWStep& step);

void lars_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
               const std::vector<Tensor>& momentum_buffers, const std::vector<bool>& excluded,
               const LarsStep& step);

}  // namespace selfsup::cuda
