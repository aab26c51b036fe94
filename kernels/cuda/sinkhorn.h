// Sinkhorn-Knopp equal-partition codes on the GPU (kernels/cuda/sinkhorn.cu), for C++ callers:
// plain C++, no CUDA types. The contract is cpu::sinkhorn's (kernels/cpu/sinkhorn.h):
//
//   Q = exp((scores - max scores) / epsilon), then `iterations` rounds of: every column scaled
//   to sum 1/K, every row to 1/B; finally Q *= B, so every row sums to 1 (SwAV's codes).
//
// scores and out are contiguous float32 [B, K] on the CUDA device; out is written, never read.
// A column or row whose entries all underflow stays 0. A non-finite score is an Error; the
// check costs one small device->host copy (a synchronisation) at the end.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace selfsup::cuda {

void sinkhorn(const Tensor& scores, double epsilon, int64_t iterations, Tensor& out);

}  // namespace selfsup::cuda
