// The Barlow Twins cross-correlation loss on the GPU (kernels/cuda/xcorr.cu), for C++ callers:
// plain C++, no CUDA types. Tensors live on the CUDA device, float32, contiguous.
//
// For the two views' embeddings za, zb [N, D]:
//   zhat = (z - mean_n z) / sqrt(var_n z + eps)        per column, biased variance
//   C    = zahat^T zbhat / N                            [D, D]   (as cpu::cross_correlation)
//   loss = sum_i (1 - C_ii)^2 + lambda sum_{i != j} C_ij^2
#pragma once

#include "core/tensor.h"

namespace selfsup::cuda {

// Versions of the forward (see xcorr.cu):
//   1 three kernels: column statistics (writing zhat), a tiled GEMM, the loss
//   2 standardisation fused into the GEMM's tile loads, the loss into its epilogue
inline constexpr int kXcorrVersions = 2;
inline constexpr int kXcorrDefault = 2;

// Writes c [D, D], loss (0-d), and the per-column statistics the backward needs: mean_a,
// inv_std_a, mean_b, inv_std_b [D] (inv_std = 1 / sqrt(var + eps), as cpu::cross_correlation's).
void barlow_xcorr_forward(const Tensor& za, const Tensor& zb, double eps, double lambda, Tensor& c,
                          Tensor& loss, Tensor& mean_a, Tensor& inv_std_a, Tensor& mean_b,
                          Tensor& inv_std_b, int version = kXcorrDefault);

// d loss / d za and d loss / d zb [N, D], from the forward's inputs, c and statistics. Through
// the loss: G = dL/dC with G_ii = -2 (1 - C_ii), G_ij = 2 lambda C_ij; then through C and the
// standardisation exactly as cpu::cross_correlation_backward.
void barlow_xcorr_backward(const Tensor& za, const Tensor& zb, const Tensor& c,
                           const Tensor& mean_a, const Tensor& inv_std_a, const Tensor& mean_b,
                           const Tensor& inv_std_b, double lambda, Tensor& grad_za,
                           Tensor& grad_zb);

}  // namespace selfsup::cuda
