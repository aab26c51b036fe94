// The pieces of MAE (ssl/methods/mae.cpp) that its tests check on their own: the per-image
// random masking of the patch grid, the per-patch target normalisation and the loss on the
// masked patches.
#pragma once

#include "core/random.h"
#include "core/tensor.h"

namespace selfsup::ssl {

struct PatchMasking {
  Tensor keep;     // int64 [N, K]: each image's visible patches (grid indices), in random order
  Tensor restore;  // int64 [N, L]: where grid patch l sits in the order [keep..., masked...]
  Tensor mask;     // float32 [N, L]: 1 for a masked patch, 0 for a visible one (grid order)
  int64_t num_visible = 0;  // K
};

// MAE's masking of n images of num_patches patches each: K = floor(L (1 - mask_ratio)) patches
// stay visible, the rest are masked, each image by its own uniformly random permutation
// (the argsort of L uniform draws from gen, as in the paper). At least one patch must stay
// visible and one be masked.
PatchMasking random_masking(int64_t n, int64_t num_patches, double mask_ratio, Generator& gen);

// MAE's norm_pix_loss target: each patch [..., P] minus its mean, divided by
// sqrt(unbiased variance + 1e-6), over the P pixels of the patch.
Tensor normalize_patches(const Tensor& patches);

// The mean, over the masked patches only, of each patch's mean squared error:
//   sum_{n,l} mask[n,l] mean_p (pred - target)^2 / sum_{n,l} mask[n,l]
// pred and target [N, L, P] (target gets no gradient), mask [N, L] of 0 / 1.
Tensor mae_loss(const Tensor& pred, const Tensor& target, const Tensor& mask);

}  // namespace selfsup::ssl
