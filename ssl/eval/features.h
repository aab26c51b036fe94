// Frozen features of a dataset: the encoder in eval mode, no graph, batch by batch.
#pragma once

#include "nn/module.h"
#include "ssl/data/dataset.h"

namespace selfsup::ssl {

// Encoder features [N, D] (float32) of the first `limit` images of `dataset` (all when
// limit <= 0), the images scaled to [0, 1] as the loaders deliver them. The encoder is put in
// eval mode and restored to its previous mode afterwards.
Tensor extract_features(nn::Module& encoder, const data::Dataset& dataset, int64_t limit = 0,
                        int64_t batch_size = 256);

// The first `limit` labels (all when limit <= 0).
Tensor first_labels(const data::Dataset& dataset, int64_t limit = 0);

// Images [first, first + count) as float32 [count, C, H, W] in [0, 1].
Tensor images_as_float(const data::Dataset& dataset, int64_t first, int64_t count);

}  // namespace selfsup::ssl
