// The linear probe: the standard measure of how linearly separable an encoder's frozen features
// are (SimCLR, MoCo, BYOL, ... all report it). A linear classifier y = x W^T + b is trained with
// softmax cross-entropy on the training features and scored on the test features.
//
// Recipe (cheap: the encoder never runs here, only a [N, D] x [D, C] product per batch):
//  - standardise every feature dimension with the TRAINING features' mean and std, and apply the
//    same affine map to the test features (test statistics must never leak into the probe);
//  - mini-batch AdamW with a small decoupled weight decay, the learning rate following a cosine
//    decay to 0 over all steps (no warm-up: a linear model on standardised inputs needs none);
//  - a fresh sample order every epoch; the last, smaller batch of an epoch is kept.
// Everything random (initial weights, sample order) comes from one Generator seeded with
// `seed`, so a seed fixes the result.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace selfsup::ssl {

// The per-dimension affine map x -> (x - mean) * inv_std fitted on training features.
// A dimension that is constant over the training set gets inv_std = 0: it carries no
// information a classifier could learn from the training set, and scaling its (possibly
// different) test values by 1 / ~0 would only inject noise.
struct Standardizer {
  Tensor mean;     // float32 [D]
  Tensor inv_std;  // float32 [D], 1 / population std (0 for constant dimensions)

  // Statistics of features [N, D] (any float dtype, any strides), accumulated in double.
  static Standardizer fit(const Tensor& features);
  // (features - mean) * inv_std as a new contiguous float32 [N, D] tensor.
  Tensor apply(const Tensor& features) const;
};

struct LinearProbeOptions {
  int64_t epochs = 100;
  int64_t batch_size = 256;
  double lr = 1e-2;  // AdamW's peak learning rate, decayed to 0 by the cosine schedule
  double weight_decay = 1e-3;
  uint64_t seed = 0;
};

struct LinearProbeResult {
  double train_top1 = 0;  // accuracy in [0, 1] on the training features
  double test_top1 = 0;   // accuracy in [0, 1] on the test features
  double final_loss = 0;  // mean cross-entropy over the last epoch's batches
  int64_t steps = 0;      // optimizer steps taken
};

// Trains a linear classifier on train_features [N, D] with int64 labels [N] in
// [0, num_classes) and reports its top-1 accuracy on test_features [M, D] / test_labels [M].
// Bad input (shapes, dtypes, labels out of range, non-finite features, bad options) throws a
// selfsup::Error naming the argument and its value.
LinearProbeResult linear_probe(const Tensor& train_features, const Tensor& train_labels,
                               const Tensor& test_features, const Tensor& test_labels,
                               int64_t num_classes, const LinearProbeOptions& options = {});

// The fraction of rows of logits [N, C] whose arg-max equals labels [N] (int64).
double top1_accuracy(const Tensor& logits, const Tensor& labels);

}  // namespace selfsup::ssl
