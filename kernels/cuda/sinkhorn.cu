// ============================================================================================
// Sinkhorn-Knopp equal-partition codes (SwAV)
// ============================================================================================
//
// For scores s [B, K] (row-major; B samples, K prototypes), as cpu::sinkhorn:
//   Q_ij = exp((s_ij - max s) / eps)
//   repeat `iterations` times:
//     Q_ij <- Q_ij / (K sum_i Q_ij)       columns: every prototype holds 1/K of the mass
//     Q_ij <- Q_ij / (B sum_j Q_ij)       rows: every sample holds 1/B
//   Q <- B Q                               (folded into the last row step: divide by the row sum)
//
// The two numbers that bound it:
//   FLOPs      ~B K (an exp, a subtract, a multiply) + 4 B K per iteration (2 sums, 2 scalings)
//   min bytes  4 B K read + 4 B K written, plus 16 B K per iteration (each pass reads and writes Q)
// Well under one FLOP per byte: bandwidth- and, at SwAV's sizes (B and K in the hundreds, Q a
// few hundred KiB that stays in L2), launch-bound. So the aim is few launches and no host round
// trips between them: 2 + 2 * iterations kernels, all on the default stream, and one small copy
// back at the end for the finiteness check.
//
// The kernels, in launch order:
//   partial_max        grid-stride maximum, one partial per block, and a flag for a non-finite
//   score exp_shifted        each block first reduces the partials (at most kMaxBlocks floats, from
//   L2)
//                      to the global maximum, then writes Q = exp((s - max) / eps)
//   normalize_columns  a block owns 32 columns; its 8 warps sum interleaved rows (each warp reads
//                      32 consecutive floats of a row: one coalesced 128-byte load), the 8
//                      partials meet in shared memory, then the same threads scale the column
//   normalize_rows     one warp per row: a shuffle reduction for the sum, then the scaling
// The column pass keeps one block per 32 columns busy (K / 32 blocks): right for K in the
// hundreds or thousands. Splitting the rows over blocks as well (partial sums, one more launch)
// would pay only for B in the tens of thousands, which SwAV's batches plus queue never reach.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "core/error.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/runtime.h"
#include "kernels/cuda/sinkhorn.h"

namespace selfsup::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kMaxBlocks = 256;       // partial maxima: one per block of partial_max
constexpr int kColumnsPerBlock = 32;  // normalize_columns: one warp's width of columns ...
constexpr int kRowGroups = 8;         // ... and 8 warps over interleaved rows
constexpr int kRowsPerBlock = 8;      // normalize_rows: one warp per row

// ============================================================================================
// The maximum and the exponential
// ============================================================================================

__global__ void __launch_bounds__(kThreads)
    partial_max(const float* scores, int64_t n, float* partial, int64_t* non_finite) {
  __shared__ float scratch[32];
  float m = -INFINITY;
  bool finite = true;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float v = scores[i];
    finite = finite && isfinite(v);
    m = fmaxf(m, v);
  }
  if (!finite) *non_finite = 1;  // every writer writes the same value
  m = block_max(m, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = m;
}

__global__ void __launch_bounds__(kThreads)
    exp_shifted(const float* scores, float* q, int64_t n, const float* partial, int partials,
                float inv_eps) {
  __shared__ float scratch[32];
  float m = -INFINITY;
  for (int i = threadIdx.x; i < partials; i += blockDim.x)
    m = fmaxf(m, partial[i]);
  m = block_max(m, scratch);
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    q[i] = expf((scores[i] - m) * inv_eps);
}

// ============================================================================================
// The two normalisations
// ============================================================================================

// Every column of q [rows, cols] scaled to sum to `target`; an all-zero column stays 0.
__global__ void __launch_bounds__(kColumnsPerBlock* kRowGroups)
    normalize_columns(float* q, int rows, int cols, float target) {
  __shared__ float partial[kRowGroups][kColumnsPerBlock + 1];  // +1: no bank conflicts
  const int lane = threadIdx.x % kWarpSize, group = threadIdx.x / kWarpSize;
  const int col = blockIdx.x * kColumnsPerBlock + lane;
  float s = 0.f;
  if (col < cols)
    for (int i = group; i < rows; i += kRowGroups)
      s += q[static_cast<int64_t>(i) * cols + col];
  partial[group][lane] = s;
  __syncthreads();
  float total = 0.f;
  for (int g = 0; g < kRowGroups; ++g)
    total += partial[g][lane];
  const float scale = total > 0.f ? target / total : 0.f;
  if (col < cols)
    for (int i = group; i < rows; i += kRowGroups)
      q[static_cast<int64_t>(i) * cols + col] *= scale;
}

// Every row of q [rows, cols] scaled to sum to `target`; an all-zero row stays 0.
__global__ void __launch_bounds__(kRowsPerBlock* kWarpSize)
    normalize_rows(float* q, int rows, int cols, float target) {
  const int row = blockIdx.x * kRowsPerBlock + threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;
  if (row >= rows) return;  // a whole warp leaves together, so the shuffles stay full
  float* r = q + static_cast<int64_t>(row) * cols;
  float s = 0.f;
  for (int c = lane; c < cols; c += kWarpSize)
    s += r[c];
  s = warp_sum(s);
  const float scale = s > 0.f ? target / s : 0.f;
  for (int c = lane; c < cols; c += kWarpSize)
    r[c] *= scale;
}

// ============================================================================================
// Launcher
// ============================================================================================

void check_matrix(const char* name, const Tensor& t, const Shape& expected) {
  SELFSUP_CHECK(t.defined() && t.device().is_cuda() && t.dtype() == kFloat32 &&
                    t.shape() == expected && t.is_contiguous(),
                "sinkhorn: ", name, " must be a contiguous float32 ", shape_str(expected),
                " tensor on the CUDA device, got ",
                t.defined() ? std::string(dtype_name(t.dtype())) + " " + shape_str(t.shape()) +
                                  " on " + t.device().str()
                            : std::string("undefined"));
}

}  // namespace

void sinkhorn(const Tensor& scores, double epsilon, int64_t iterations, Tensor& out) {
  SELFSUP_CHECK(scores.defined() && scores.dim() == 2 && scores.size(0) > 0 && scores.size(1) > 0,
                "sinkhorn: scores must be a non-empty [B, K], got ",
                scores.defined() ? shape_str(scores.shape()) : std::string("undefined"));
  const int64_t rows = scores.size(0), cols = scores.size(1);
  SELFSUP_CHECK(rows <= INT32_MAX && cols <= INT32_MAX, "sinkhorn: scores ",
                shape_str(scores.shape()), " are too large for 32-bit indices");
  check_matrix("scores", scores, scores.shape());
  check_matrix("out", out, scores.shape());
  SELFSUP_CHECK(epsilon > 0 && std::isfinite(epsilon), "sinkhorn: epsilon must be > 0, got ",
                epsilon);
  SELFSUP_CHECK(iterations >= 1, "sinkhorn: iterations must be >= 1, got ", iterations);

  const int64_t n = rows * cols;
  const int blocks = static_cast<int>(std::min<int64_t>(ceil_div(n, kThreads), kMaxBlocks));
  Tensor partial = empty({blocks}, Device::cuda());  // the caching allocator makes this cheap
  Tensor flag = empty({1}, TensorOptions(kInt64).device(Device::cuda()));
  check(cudaMemset(flag.raw_data_ptr(), 0, sizeof(int64_t)), "sinkhorn: clearing the flag");
  const float* s = scores.data_ptr<float>();
  float* q = out.data_ptr<float>();

  partial_max<<<blocks, kThreads>>>(s, n, partial.data_ptr<float>(), flag.data_ptr<int64_t>());
  check_launch("sinkhorn");
  exp_shifted<<<blocks, kThreads>>>(s, q, n, partial.data_ptr<float>(), blocks,
                                    static_cast<float>(1.0 / epsilon));
  check_launch("sinkhorn");
  const unsigned column_blocks = static_cast<unsigned>(ceil_div(cols, kColumnsPerBlock));
  const unsigned row_blocks = static_cast<unsigned>(ceil_div(rows, kRowsPerBlock));
  for (int64_t it = 0; it < iterations; ++it) {
    normalize_columns<<<column_blocks, kColumnsPerBlock * kRowGroups>>>(
        q, static_cast<int>(rows), static_cast<int>(cols), static_cast<float>(1.0 / cols));
    check_launch("sinkhorn");
    const bool last = it + 1 == iterations;  // last: to 1/B and times B in one step
    normalize_rows<<<row_blocks, kRowsPerBlock * kWarpSize>>>(
        q, static_cast<int>(rows), static_cast<int>(cols),
        last ? 1.f : static_cast<float>(1.0 / rows));
    check_launch("sinkhorn");
  }
  int64_t non_finite = 0;
  check(cudaMemcpy(&non_finite, flag.raw_data_ptr(), sizeof non_finite, cudaMemcpyDeviceToHost),
        "sinkhorn: reading the finiteness check");
  SELFSUP_CHECK(non_finite == 0, "sinkhorn: scores ", shape_str(scores.shape()),
                " contain a non-finite value");
  out.bump_version();
}

}  // namespace selfsup::cuda
