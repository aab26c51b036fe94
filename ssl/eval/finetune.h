// Fine-tuning with few labels: the semi-supervised protocol of SimCLR (Chen et al. 2020, Sec. 4)
// and BYOL. A class-balanced fraction of the training labels (1% or 10%) is kept; the encoder
// and a fresh linear head are trained end to end on those images with softmax cross-entropy,
// then scored on the test set. Run on a freshly initialised encoder of the same architecture,
// the same function gives the "from scratch" baseline that pre-training has to beat.
//
// Recipe:
//  - the labelled set is data::labelled_subset(train, label_fraction, seed): round(fraction * n_c)
//    images of every class c (at least one);
//  - light augmentation, chosen by `augment`:
//      "crop-flip"  a random resized crop of 50-100% of the area (aspect 3/4-4/3) back to the
//                   full size, then a horizontal flip with p = 0.5 (SimCLR fine-tunes with
//                   crop + flip only). No make_recipes preset is this mild ("mae" crops down to
//                   20%, "jigsaw" adds grayscale), so the recipe is composed here.
//      "none"       the images as they are;
//  - the encoder in train mode (BatchNorm uses batch statistics and updates its running ones),
//    mini-batches from data::Loader (shuffled; the last incomplete batch of an epoch is dropped
//    so that BatchNorm never sees a batch of one; a different one every epoch), AdamW on the
//    encoder and the head with one learning rate, cosine decay to 0 without warm-up;
//  - BatchNorm's running statistics are then recomputed over the (unaugmented) labelled images
//    ("precise BN"): with few labels there are few steps, and the exponential averages lag far
//    behind weights that moved a lot in them (a from-scratch encoder fine-tuned for 45 steps
//    scored 15% in eval mode while its training batches were at ~50%);
//  - the test set is scored with the encoder in eval mode (running statistics), no graph.
// The images are fed in [0, 1], as the SSL trainer and extract_features feed them. A seed fixes
// the subset, the head's initial weights, the batch order and the augmentations.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "nn/module.h"
#include "ssl/data/dataset.h"

namespace selfsup::ssl {

struct FinetuneOptions {
  double label_fraction = 0.1;  // in (0, 1]
  int64_t epochs = 30;
  int64_t batch_size = 64;
  double lr = 1e-3;  // AdamW's peak learning rate, encoder and head alike
  double weight_decay = 1e-4;
  std::string augment = "crop-flip";  // crop-flip | none
  int num_workers = 2;                // data loader threads (0: on the calling thread)
  uint64_t seed = 0;
  int64_t eval_batch_size = 256;
  bool recalibrate_batch_norm = true;  // recompute BatchNorm statistics before scoring
  // Called after every epoch with (epoch, epochs, mean training loss), e.g. to log progress.
  std::function<void(int64_t, int64_t, double)> on_epoch;
};

struct FinetuneResult {
  int64_t labelled_examples = 0;  // the size of the labelled subset trained on
  int64_t test_examples = 0;
  double train_top1 = 0;  // accuracy in [0, 1] on the (unaugmented) labelled subset, eval mode
  double test_top1 = 0;   // accuracy in [0, 1] on the test set, eval mode
  double final_loss = 0;  // mean cross-entropy of the last epoch
};

// Fine-tunes `encoder` (forward: [B, C, H, W] -> [B, feature_dim]) in place, together with a new
// linear head feature_dim -> train.num_classes, on the labelled fraction of `train`, and scores
// the result on `test`. Bad input (empty sets, channel or class-count mismatches, options out of
// range, an unknown augment) throws a selfsup::Error naming the value.
FinetuneResult finetune(nn::Module& encoder, int64_t feature_dim, const data::Dataset& train,
                        const data::Dataset& test, const FinetuneOptions& options = {});

// Replaces the running mean and variance of every BatchNorm in `model` by their averages over
// the batches of `dataset` (images in [0, 1], no augmentation, floor(n / batch_size) batches of
// near-equal size), the model in train mode without a graph; each layer's momentum and the
// model's mode are restored afterwards. With one batch the result is the exact mean and
// unbiased variance of the layer's input.
void recalibrate_batch_norm(nn::Module& model, const data::Dataset& dataset,
                            int64_t batch_size = 256);

// The baseline: a freshly initialised nn::make_encoder(model, train.channels(), width), its
// weights drawn from a Generator seeded with options.seed, fine-tuned with the same options.
FinetuneResult finetune_from_scratch(const std::string& model, double width,
                                     const data::Dataset& train, const data::Dataset& test,
                                     const FinetuneOptions& options = {});

}  // namespace selfsup::ssl
