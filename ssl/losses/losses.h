// The SSL objectives, written on the differentiable ops of autograd/ops.h. Each takes the
// embeddings of the views of one batch and returns a 0-d loss.
#pragma once

#include "autograd/ops.h"

namespace selfsup::ssl {

// SimCLR's NT-Xent (Chen et al. 2020): z1, z2 [N, D] are the two views' projections. The 2N
// L2-normalised embeddings are compared by cosine similarity / temperature; each row's positive
// is its other view (i <-> i + N), its own similarity is masked out, and the loss is the mean
// softmax cross-entropy over the 2N rows (the fused kernel).
Tensor nt_xent_loss(const Tensor& z1, const Tensor& z2, double temperature);

// MoCo's InfoNCE (He et al. 2020): query q [N, D], positive keys k [N, D] and a queue of
// negatives [K, D] (all L2-normalised here); logits [N, 1 + K] with the positive in column 0.
// The keys and the queue get no gradient.
Tensor info_nce_loss(const Tensor& q, const Tensor& k, const Tensor& queue, double temperature);

// BYOL (Grill et al. 2020): 2 - 2 cos(p, z) averaged over the batch; z is the target
// projection and gets no gradient.
Tensor byol_loss(const Tensor& p, const Tensor& z);

// SimSiam (Chen & He 2021): -cos(p, stopgrad(z)) averaged over the batch.
Tensor simsiam_loss(const Tensor& p, const Tensor& z);

// Barlow Twins (Zbontar et al. 2021): with C the cross-correlation of the batch-standardised
// views, sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2.
Tensor barlow_twins_loss(const Tensor& z1, const Tensor& z2, double lambda);

// VICReg (Bardes et al. 2022): sim_weight * MSE(z1, z2) + var_weight * (variance hinge of z1
// and z2, each mean_d relu(1 - sqrt(var_d + 1e-4))) + cov_weight * (sum of the squared
// off-diagonal covariances of z1 and z2, each divided by D).
struct VicregTerms {
  Tensor loss, invariance, variance, covariance;
};
VicregTerms vicreg_loss(const Tensor& z1, const Tensor& z2, double sim_weight = 25.0,
                        double var_weight = 25.0, double cov_weight = 1.0);

// The triplet margin loss: mean relu(||a - p||_2 - ||a - n||_2 + margin).
Tensor triplet_loss(const Tensor& anchor, const Tensor& positive, const Tensor& negative,
                    double margin);

// SwAV's codes (Caron et al. 2020): the Sinkhorn-Knopp equal-partition assignment of prototype
// scores [B, K] (kernels/cpu/sinkhorn.h, or the CUDA kernel for a tensor on the GPU), computed
// without gradient: a constant [B, K] target whose rows sum to 1.
Tensor swav_codes(const Tensor& scores, double epsilon = 0.05, int64_t iterations = 3);

// SwAV's swapped prediction: scores[v] [B, K] are the prototype scores z_v . c_k of every view
// v, codes[s] the codes of view s for the first S views (the global ones). Each code predicts
// every other view:
//   loss = 1/S sum_s 1/(V - 1) sum_{t != s} mean_b -<codes[s]_b, log softmax(scores[t]_b / T)>
// with T the temperature (SwAV's 0.1).
Tensor swav_loss(const std::vector<Tensor>& scores, const std::vector<Tensor>& codes,
                 double temperature);

}  // namespace selfsup::ssl
