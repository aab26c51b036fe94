// k-means on the CPU (float32/float64): k-means++ seeding, Lloyd iterations with GEMM-based
// distances, empty clusters re-seeded. DeepCluster's clustering of the training set's features.
//
//   Generator gen(7);
//   KMeansResult r = kmeans(features, 100, 20, gen);   // features [N, D]
//   r.assignments   // int64 [N]: the pseudo-labels
//   r.centroids     // [100, D]
#pragma once

#include <cstdint>

#include "core/random.h"
#include "core/tensor.h"

namespace selfsup::cpu {

// Nearest centroid of every point of x [N, D] among centroids [K, D] (same dtype, any strides):
//   assignments[i]  = argmin_k ||x_i - c_k||^2       int64 [N]; ties go to the lowest k
//   sq_distances[i] = min_k   ||x_i - c_k||^2       [N], x's dtype, clamped at >= 0
// through ||x||^2 - 2 x.c + ||c||^2 with the x.c products from a GEMM (cpu::matmul) over blocks
// of rows. Both outputs contiguous and allocated by the caller; they are written, never read.
void kmeans_assign(const Tensor& x, const Tensor& centroids, Tensor& assignments,
                   Tensor& sq_distances);

// k-means++ seeding (Arthur & Vassilvitskii 2007): the first centroid is a uniformly drawn row
// of x [N, D], each next one a row drawn with probability proportional to its squared distance
// to the nearest centroid so far. Returns a contiguous [k, D] copy of the chosen rows. The draws
// come from `gen` (one uniform per centroid), so the same generator state gives the same seeds.
// Needs 1 <= k <= N. If every point already coincides with a chosen centroid (fewer than k
// distinct points) the remaining centroids are drawn uniformly.
Tensor kmeans_plus_plus(const Tensor& x, int64_t k, Generator& gen);

struct KMeansResult {
  Tensor centroids;        // [K, D], x's dtype: the mean of each cluster's points
  Tensor assignments;      // int64 [N], in [0, K)
  Tensor counts;           // int64 [K], every entry >= 1
  double inertia = 0;      // sum_i ||x_i - centroids[assignments_i]||^2
  int64_t iterations = 0;  // Lloyd iterations run
  int64_t reseeded = 0;    // empty clusters re-seeded, over all iterations
};

// Lloyd's iterations from the initial centroids [K, D]: assign every point to its nearest
// centroid, re-seed the empty clusters, move every centroid to the mean of its points; stop when
// an assignment repeats the previous one or after max_iterations. The returned centroids are the
// means of the returned assignments.
//
// Empty clusters: after each assignment, every empty cluster (in index order) takes the point
// farthest from its own centroid among the clusters holding two or more points, and that point
// becomes its centroid. The worst-fitted point starts a new cluster, so no cluster is ever empty
// and no centroid is left behind at a stale position (K <= N is required).
KMeansResult kmeans_lloyd(const Tensor& x, const Tensor& initial_centroids, int64_t max_iterations);

// k-means++ seeding, then Lloyd. x must be finite (an Error names the first bad row otherwise).
KMeansResult kmeans(const Tensor& x, int64_t k, int64_t max_iterations, Generator& gen);

}  // namespace selfsup::cpu
