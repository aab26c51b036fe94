// The Barlow Twins cross-correlation matrix on the CPU.
//
// Both views' embeddings za, zb [N, D] are standardised per dimension over the batch
//   zhat = (z - mean_n z) / sqrt(var_n z + eps)          (biased variance, as BatchNorm)
// and correlated:  C = zahat^T zbhat / N                  [D, D]
#pragma once

#include "core/tensor.h"

namespace selfsup::cpu {

// Writes c [D, D]; also the standardised views za_hat, zb_hat [N, D] and the per-dimension
// inverse standard deviations inv_std_a, inv_std_b [D] that the backward needs.
void cross_correlation(const Tensor& za, const Tensor& zb, double eps, Tensor& c, Tensor& za_hat,
                       Tensor& zb_hat, Tensor& inv_std_a, Tensor& inv_std_b);
// Given grad_c [D, D], the gradients of za and zb [N, D] through the standardisation.
void cross_correlation_backward(const Tensor& grad_c, const Tensor& za_hat, const Tensor& zb_hat,
                                const Tensor& inv_std_a, const Tensor& inv_std_b, Tensor& grad_za,
                                Tensor& grad_zb);

// The Barlow Twins loss of a cross-correlation matrix c [D, D] (any strides), summed in double
// into loss (0-d, c's dtype):  sum_i (1 - c_ii)^2 + lambda sum_{i != j} c_ij^2.
void barlow_twins_loss(const Tensor& c, double lambda, Tensor& loss);
// scale times that loss's gradient into grad_c [D, D]: -2 (1 - c_ii) on the diagonal,
// 2 lambda c_ij off it.
void barlow_twins_loss_grad(const Tensor& c, double lambda, double scale, Tensor& grad_c);

}  // namespace selfsup::cpu
