// Fused softmax cross-entropy on the GPU (kernels/cuda/softmax_xent.cu), for C++ callers: plain
// C++, no CUDA types. Tensors live on the CUDA device; the contract is cpu::cross_entropy's.
//
//   loss        = mean_i [ logsumexp(z_i) - z_i[target_i] ]              (a 0-d tensor)
//   grad_logits = d loss / d logits = s * (softmax(z_i) - onehot(target_i)) / rows
// where z = s * logits. Two target layouts:
//   class indices  logits [N, C], targets [N] int64 in [0, C), s = 1
//   NT-Xent        sim [2N, 2N] (similarities of 2N embeddings, the two views of N images),
//                  s = 1 / temperature, column i of row i left out (an embedding is not its own
//                  negative), target of row i = (i + N) mod 2N (the other view of its image).
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace selfsup::cuda {

// The versions (see softmax_xent.cu):
//   1 separate kernels (row statistics, softmax, loss, gradient)
//   2 fused, one block per row, block reductions
//   3 fused, one warp per row, float4 loads (for short rows)
inline constexpr int kSoftmaxXentAuto = 0;  // 3 for rows of up to 1024 columns, else 2
inline constexpr int kSoftmaxXentVersions = 3;

// What kSoftmaxXentAuto runs for rows of `cols` columns. Pure, host-side.
inline int softmax_xent_auto_version(int64_t cols) {
  return cols <= 1024 ? 3 : 2;
}

// Class-index targets. logits [N, C] float32 contiguous; targets [N] int64; loss a 0-d float32
// tensor; grad_logits [N, C] float32 contiguous, or undefined to skip it. With check_targets,
// a target outside [0, C) is an Error naming the row and value; the check costs one small
// device->host copy (a synchronisation), so hot loops that trust their targets may turn it off
// (a bad target then gives a NaN loss).
void softmax_cross_entropy(const Tensor& logits, const Tensor& targets, Tensor& loss,
                           Tensor& grad_logits, int version = kSoftmaxXentAuto,
                           bool check_targets = true);

// NT-Xent (SimCLR's loss) from the [2N, 2N] similarity matrix; grad_sim as above (its diagonal
// is 0), or undefined to skip it.
void nt_xent(const Tensor& sim, double temperature, Tensor& loss, Tensor& grad_sim,
             int version = kSoftmaxXentAuto);

}  // namespace selfsup::cuda
