// ============================================================================================
// k-means assignment: the nearest centroid of every point
// ============================================================================================
//
// For points x [N, D] and centroids c [K, D] (row-major), as cpu::kmeans_assign:
//   assignments[i]  = argmin_k ||x_i - c_k||^2       (ties: the lowest k)
//   sq_distances[i] = that minimum
//
// The two numbers that bound it:
//   FLOPs      3 N K D (direct: subtract, multiply, add) or 2 N K D (through x.c)
//   min bytes  4 (N D + K D) read, 12 N written
// With K and D in the tens to hundreds that is tens of FLOPs per byte or more: compute-bound
// once the centroids are reused from cache, which is what the GEMM formulation organises.
//
// Version 1 (direct) is the readable one: a warp per point walks the centroids, its lanes
// splitting D. Every centroid is re-read by every warp (from L1/L2), and each distance ends in
// a 5-step shuffle reduction: K reductions per point, little reuse.
//
// Version 2 (GEMM) uses ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2: the N x K cross terms are one
// product x c^T through our tiled GEMM (kernels/cuda/gemm.h, register-blocked, operands staged in
// shared memory), done in blocks of rows so the [rows, K] buffer stays near 2^22 floats. A warp
// per row then scans its K products for the argmin. The norms are one warp per row as well.
// Cost: the product buffer, and the expansion's cancellation when a point nearly coincides with
// a centroid (~1e-7 ||x||^2, clamped at 0); near-ties may resolve differently from version 1.
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstdint>

#include "core/error.h"
#include "core/views.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/kmeans.h"
#include "kernels/cuda/runtime.h"

namespace selfsup::cuda {

namespace {

constexpr int kRowsPerBlock = 8;             // warps per block, one row (point) each
constexpr int64_t kBlockElements = 1 << 22;  // version 2: floats in the [rows, K] product

// (value, index) pairs: the smaller value wins, and between equal values the smaller index, so
// the result does not depend on which lane saw which centroid.
struct ArgMin {
  float value;
  int index;
};

__device__ __forceinline__ ArgMin better(ArgMin a, ArgMin b) {
  return (b.value < a.value || (b.value == a.value && b.index < a.index)) ? b : a;
}

__device__ __forceinline__ ArgMin warp_argmin(ArgMin v) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    ArgMin other{__shfl_xor_sync(kFullMask, v.value, offset),
                 __shfl_xor_sync(kFullMask, v.index, offset)};
    v = better(v, other);
  }
  return v;
}

// A point whose distances are all NaN gets centroid 0, as on the CPU.
__device__ __forceinline__ int64_t index_or_zero(const ArgMin& a) {
  return a.index == INT_MAX ? 0 : a.index;
}

// ============================================================================================
// Version 1: direct, one warp per point
// ============================================================================================

__global__ void __launch_bounds__(kRowsPerBlock* kWarpSize)
    assign_v1_direct(const float* x, const float* c, int n, int k, int d, int64_t* assign,
                     float* dist) {
  const int row = blockIdx.x * kRowsPerBlock + threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;
  if (row >= n) return;  // a whole warp leaves together, so the shuffles stay full
  const float* xr = x + static_cast<int64_t>(row) * d;
  ArgMin best{INFINITY, INT_MAX};
  for (int j = 0; j < k; ++j) {
    const float* cr = c + static_cast<int64_t>(j) * d;
    float s = 0.f;
    for (int t = lane; t < d; t += kWarpSize) {
      const float diff = xr[t] - cr[t];
      s += diff * diff;
    }
    s = warp_sum(s);  // every lane holds the distance: the comparison is uniform
    best = better(best, ArgMin{s, j});
  }
  if (lane == 0) {
    assign[row] = index_or_zero(best);
    dist[row] = best.value;
  }
}

// ============================================================================================
// Version 2: GEMM cross terms, then a warp per row
// ============================================================================================

// norms[i] = ||m_i||^2 for the rows of m [rows, d].
__global__ void __launch_bounds__(kRowsPerBlock* kWarpSize)
    row_sq_norms(const float* m, int rows, int d, float* norms) {
  const int row = blockIdx.x * kRowsPerBlock + threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;
  if (row >= rows) return;
  const float* r = m + static_cast<int64_t>(row) * d;
  float s = 0.f;
  for (int t = lane; t < d; t += kWarpSize)
    s += r[t] * r[t];
  s = warp_sum(s);
  if (lane == 0) norms[row] = s;
}

// For the rows of one block: dots [rows, k] = x c^T, x_norm [rows], c_norm [k].
__global__ void __launch_bounds__(kRowsPerBlock* kWarpSize)
    assign_v2_argmin(const float* dots, const float* x_norm, const float* c_norm, int rows, int k,
                     int64_t* assign, float* dist) {
  const int row = blockIdx.x * kRowsPerBlock + threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;
  if (row >= rows) return;
  const float* dot = dots + static_cast<int64_t>(row) * k;
  ArgMin best{INFINITY, INT_MAX};
  for (int j = lane; j < k; j += kWarpSize)  // ||x||^2 is common to the row: added at the end
    best = better(best, ArgMin{c_norm[j] - 2.f * dot[j], j});
  best = warp_argmin(best);
  if (lane == 0) {
    assign[row] = index_or_zero(best);
    dist[row] = fmaxf(0.f, x_norm[row] + best.value);
  }
}

// ============================================================================================
// Launcher
// ============================================================================================

void check_on_device(const char* name, const Tensor& t, DType dtype, const Shape& expected) {
  SELFSUP_CHECK(t.defined() && t.device().is_cuda() && t.dtype() == dtype &&
                    t.shape() == expected && t.is_contiguous(),
                "kmeans_assign: ", name, " must be a contiguous ", dtype_name(dtype), " ",
                shape_str(expected), " tensor on the CUDA device, got ",
                t.defined() ? std::string(dtype_name(t.dtype())) + " " + shape_str(t.shape()) +
                                  " on " + t.device().str()
                            : std::string("undefined"));
}

unsigned warp_blocks(int64_t rows) {
  return static_cast<unsigned>(ceil_div(rows, kRowsPerBlock));
}

void run_v2(const Tensor& x, const Tensor& c, int64_t* assign, float* dist) {
  const int64_t n = x.size(0), d = x.size(1), k = c.size(0);
  Tensor x_norm = empty({n}, Device::cuda()), c_norm = empty({k}, Device::cuda());
  row_sq_norms<<<warp_blocks(n), kRowsPerBlock * kWarpSize>>>(
      x.data_ptr<float>(), static_cast<int>(n), static_cast<int>(d), x_norm.data_ptr<float>());
  check_launch("kmeans_assign");
  row_sq_norms<<<warp_blocks(k), kRowsPerBlock * kWarpSize>>>(
      c.data_ptr<float>(), static_cast<int>(k), static_cast<int>(d), c_norm.data_ptr<float>());
  check_launch("kmeans_assign");
  const int64_t block = std::clamp<int64_t>(kBlockElements / k, 1, n);
  Tensor dots = empty({block, k}, Device::cuda());
  for (int64_t start = 0; start < n; start += block) {
    const int64_t rows = std::min(block, n - start);
    Tensor db = raw::narrow(dots, 0, 0, rows);
    gemm(GemmLayout::NT, raw::narrow(x, 0, start, rows), c, db);  // [rows, K] = x c^T
    assign_v2_argmin<<<warp_blocks(rows), kRowsPerBlock * kWarpSize>>>(
        db.data_ptr<float>(), x_norm.data_ptr<float>() + start, c_norm.data_ptr<float>(),
        static_cast<int>(rows), static_cast<int>(k), assign + start, dist + start);
    check_launch("kmeans_assign");
  }
}

}  // namespace

void kmeans_assign(const Tensor& x, const Tensor& centroids, Tensor& assignments,
                   Tensor& sq_distances, int version) {
  SELFSUP_CHECK(version >= 1 && version <= kKMeansAssignVersions, "kmeans_assign: unknown version ",
                version, " (1..", kKMeansAssignVersions, ")");
  SELFSUP_CHECK(x.defined() && x.dim() == 2 && x.size(0) > 0 && x.size(1) > 0,
                "kmeans_assign: x must be a non-empty [N, D], got ",
                x.defined() ? shape_str(x.shape()) : std::string("undefined"));
  const int64_t n = x.size(0), d = x.size(1);
  SELFSUP_CHECK(centroids.defined() && centroids.dim() == 2 && centroids.size(0) > 0 &&
                    centroids.size(1) == d,
                "kmeans_assign: centroids must be [K, ", d, "] with K >= 1 for x ",
                shape_str(x.shape()), ", got ",
                centroids.defined() ? shape_str(centroids.shape()) : std::string("undefined"));
  const int64_t k = centroids.size(0);
  SELFSUP_CHECK(n <= INT32_MAX && k <= INT32_MAX && d <= INT32_MAX, "kmeans_assign: x ",
                shape_str(x.shape()), " and centroids ", shape_str(centroids.shape()),
                " are too large for 32-bit indices");
  check_on_device("x", x, kFloat32, x.shape());
  check_on_device("centroids", centroids, kFloat32, centroids.shape());
  check_on_device("assignments", assignments, kInt64, {n});
  check_on_device("sq_distances", sq_distances, kFloat32, {n});

  int64_t* assign = assignments.data_ptr<int64_t>();
  float* dist = sq_distances.data_ptr<float>();
  if (version == 1) {
    assign_v1_direct<<<warp_blocks(n), kRowsPerBlock * kWarpSize>>>(
        x.data_ptr<float>(), centroids.data_ptr<float>(), static_cast<int>(n), static_cast<int>(k),
        static_cast<int>(d), assign, dist);
    check_launch("kmeans_assign");
  } else {
    run_v2(x, centroids, assign, dist);
  }
  assignments.bump_version();
  sq_distances.bump_version();
}

}  // namespace selfsup::cuda
