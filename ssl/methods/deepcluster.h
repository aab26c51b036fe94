// DeepCluster's last clustering (ssl/methods/deepcluster.cpp), for tests and diagnostics.
#pragma once

#include "ssl/methods/method.h"

namespace selfsup::ssl {

struct Clustering {
  int64_t epoch = -1;      // the epoch it was made for (-1: none yet)
  Tensor pseudo_labels;    // int64 [N]: the cluster of every training image
  Tensor centroids;        // float32 [K, D]: the k-means centroids of the normalised projections
  double inertia = 0;      // the k-means cost, summed over the N images
  int64_t iterations = 0;  // Lloyd iterations run
  int64_t reseeded = 0;    // empty clusters re-seeded on the way
};

// The last clustering of a method made by make_deepcluster; an Error for any other method.
const Clustering& deepcluster_clustering(const Method& method);

}  // namespace selfsup::ssl
