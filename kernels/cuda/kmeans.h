// k-means assignment on the GPU (kernels/cuda/kmeans.cu), for C++ callers: plain C++, no CUDA
// types. The contract is cpu::kmeans_assign's (kernels/cpu/kmeans.h):
//
//   assignments[i]  = argmin_k ||x_i - c_k||^2        int64 [N]; ties go to the lowest k
//   sq_distances[i] = min_k   ||x_i - c_k||^2        float32 [N], clamped at >= 0
//
// x [N, D] and centroids [K, D] are contiguous float32 on the CUDA device; the outputs are
// contiguous, on the device, written and never read. The seeding and the centroid update stay
// on the CPU: the assignment is the O(N K D) step.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace selfsup::cuda {

// The versions (see kmeans.cu):
//   1 direct: one warp per point, the distance to each centroid summed over D by the lanes
//   2 GEMM: x c^T through cuda::gemm in row blocks, then one warp per row for the argmin
inline constexpr int kKMeansAssignVersions = 2;
inline constexpr int kKMeansAssignDefault = 2;

void kmeans_assign(const Tensor& x, const Tensor& centroids, Tensor& assignments,
                   Tensor& sq_distances, int version = kKMeansAssignDefault);

}  // namespace selfsup::cuda
