// Evaluation of frozen features without training: the weighted kNN classifier of Wu et al.
// (2018) used by most SSL papers, and collapse diagnostics of an embedding.
#pragma once

#include "core/tensor.h"

namespace selfsup::ssl {

struct KnnOptions {
  int64_t k = 200;
  double temperature = 0.1;  // votes weigh exp(cosine / temperature)
  int64_t chunk = 256;       // test rows compared at once (bounds memory: chunk x N_train)
};

// Top-1 accuracy (in [0, 1]) of the weighted kNN vote: features are L2-normalised, each test
// sample takes the k most cosine-similar training samples and sums exp(s / T) per class.
// train_features [N, D], train_labels int64 [N], test_features [M, D], test_labels [M].
double knn_accuracy(const Tensor& train_features, const Tensor& train_labels,
                    const Tensor& test_features, const Tensor& test_labels, int64_t num_classes,
                    const KnnOptions& opts = {});

// Signs of representation collapse, measured on L2-normalised embeddings z [N, D]:
//  - mean_std: the mean over dims of the per-dimension std; about 1/sqrt(D) for embeddings
//    spread over the sphere, near 0 when all samples map to one point (SimSiam paper, Sec. 4);
//  - effective_rank: exp(entropy of the normalised eigenvalues of the covariance) (Roy &
//    Vetterli 2007): D for isotropic embeddings, 1 when they lie on a line.
struct CollapseStats {
  double mean_std = 0;
  double reference_std = 0;  // 1 / sqrt(D)
  double effective_rank = 0;
  bool collapsed = false;  // mean_std < 0.1 * reference_std, or effective_rank < 1.5
};
CollapseStats collapse_stats(const Tensor& embeddings);

}  // namespace selfsup::ssl
