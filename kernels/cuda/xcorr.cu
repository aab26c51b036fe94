// ============================================================================================
// Barlow Twins: cross-correlation matrix and loss
// ============================================================================================
//
// For the two views' embeddings za, zb [N, D] (row-major, N the batch):
//   mean_d = mean_n z[n, d]     r_d = 1 / sqrt(mean_n (z[n, d] - mean_d)^2 + eps)
//   zhat   = (z - mean) * r                                           [N, D]
//   C      = zahat^T zbhat / N                                        [D, D]
//   loss   = sum_i (1 - C_ii)^2 + lambda sum_{i != j} C_ij^2
// Backward, with G = dL/dC (G_ii = -2 (1 - C_ii), G_ij = 2 lambda C_ij):
//   gahat = zbhat G^T / N     gbhat = zahat G / N                     (two GEMMs)
//   dz    = r * (g - mean_n g - zhat * mean_n(g * zhat))              per column (BatchNorm's)
//
// The two numbers that bound the forward:
//   FLOPs      2 N D^2 (the GEMM) + O(N D + D^2)
//   min bytes  4 (2 N D + D^2): read both views, write C
// With N = 256, D = 2048: 2.1 GFLOP on 20 MB, ~100 FLOP/byte: compute bound, so the GEMM is
// what matters; the point of version 2 is not to spend extra passes over memory around it
// (writing and re-reading zhat, re-reading C for the loss).
//
// The GEMM is a transposed-A product (C = A^T B with both operands stored [N, D]), tiled like
// gemm.cu's version 4: 128 x 128 tiles of C, 8 rows of the batch per step, 8 x 8 results per
// thread. Both operand tiles are rows of z, so each load is a coalesced run along D.
#include <cuda_runtime.h>

#include <cstdint>

#include "core/error.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/runtime.h"
#include "kernels/cuda/xcorr.h"

namespace selfsup::cuda {

namespace {

// ------------------------------------------------------------------------------------------
// Column statistics (shared by both versions and the backward)
// ------------------------------------------------------------------------------------------
// A block of 32 x 8 threads owns 32 columns; the 8 rows of threads split the batch and their
// partial sums meet in shared memory. Sums run in double, in two passes (mean, then squared
// deviations), so a large mean does not cancel the variance away, as on the CPU.

constexpr int kStatCols = 32, kStatRows = 8;

// Sums v over the 8 thread rows of the block for each column; every thread gets its column's.
__device__ double column_sum(double v, double (*scratch)[kStatCols + 1]) {
  scratch[threadIdx.y][threadIdx.x] = v;
  __syncthreads();
  double s = 0;
  for (int y = 0; y < kStatRows; ++y)
    s += scratch[y][threadIdx.x];
  __syncthreads();  // scratch is free again
  return s;
}

// mean, inv_std [D] of z [N, D]; also zhat [N, D] when it is not null (version 1).
__global__ void xcorr_column_stats(const float* z, int n, int d, float eps, float* mean,
                                   float* inv_std, float* zhat) {
  __shared__ double scratch[kStatRows][kStatCols + 1];
  const int col = blockIdx.x * kStatCols + threadIdx.x;
  const bool inside = col < d;
  double s = 0;
  if (inside)
    for (int r = threadIdx.y; r < n; r += kStatRows)
      s += z[static_cast<int64_t>(r) * d + col];
  const double mu = column_sum(s, scratch) / n;
  double q = 0;
  if (inside)
    for (int r = threadIdx.y; r < n; r += kStatRows) {
      const double dev = z[static_cast<int64_t>(r) * d + col] - mu;
      q += dev * dev;
    }
  const double rstd = 1.0 / sqrt(column_sum(q, scratch) / n + eps);
  if (!inside) return;
  if (threadIdx.y == 0) {
    mean[col] = static_cast<float>(mu);
    inv_std[col] = static_cast<float>(rstd);
  }
  if (zhat)
    for (int r = threadIdx.y; r < n; r += kStatRows) {
      const int64_t i = static_cast<int64_t>(r) * d + col;
      zhat[i] = static_cast<float>((z[i] - mu) * rstd);
    }
}

// ------------------------------------------------------------------------------------------
// The tiled C = A^T B / N core (shared by both versions)
// ------------------------------------------------------------------------------------------

constexpr int kTile = 128, kDepth = 8, kThreads = 256;

// Tile of one view for rows k0..k0+8 of the batch and columns c0..c0+128, into tile[k][c].
// With mean/inv_std given, each element is standardised on its way in (version 2); elements
// outside [0, N) x [0, D) are 0 either way, so they add nothing to the products.
__device__ __forceinline__ void load_view_tile(const float* z, int n, int d, int k0, int c0,
                                               const float* mean, const float* inv_std,
                                               float (*tile)[kTile]) {
  for (int e = threadIdx.x; e < kDepth * kTile; e += kThreads) {
    const int k = e / kTile, c = e % kTile;
    const int row = k0 + k, col = c0 + c;
    float v = 0.f;
    if (row < n && col < d) {
      v = z[static_cast<int64_t>(row) * d + col];
      if (mean) v = (v - mean[col]) * inv_std[col];
    }
    tile[k][c] = v;
  }
}

// acc[i][j] += sum_k A[k][i0 + i] * B[k][j0 + j] over the whole batch, for this thread's 8 x 8
// block (rows tr*8 of the C tile, columns tc*8). Standardises on the fly when mean_a is given.
__device__ __forceinline__ void tile_product(const float* za, const float* zb, int n, int d,
                                             const float* mean_a, const float* inv_std_a,
                                             const float* mean_b, const float* inv_std_b,
                                             float (&acc)[8][8]) {
  __shared__ float As[kDepth][kTile], Bs[kDepth][kTile];
  const int i0 = blockIdx.y * kTile, j0 = blockIdx.x * kTile;
  const int tr = threadIdx.x / 16, tc = threadIdx.x % 16;
  for (int k0 = 0; k0 < n; k0 += kDepth) {
    load_view_tile(za, n, d, k0, i0, mean_a, inv_std_a, As);
    load_view_tile(zb, n, d, k0, j0, mean_b, inv_std_b, Bs);
    __syncthreads();
    for (int k = 0; k < kDepth; ++k) {
      float ra[8], rb[8];
      for (int i = 0; i < 8; ++i)
        ra[i] = As[k][tr * 8 + i];
      for (int j = 0; j < 8; ++j)
        rb[j] = Bs[k][tc * 8 + j];
      for (int i = 0; i < 8; ++i)
        for (int j = 0; j < 8; ++j)
          acc[i][j] += ra[i] * rb[j];
    }
    __syncthreads();
  }
}

__device__ __forceinline__ float loss_term(int i, int j, float c, float lambda) {
  return i == j ? (1.f - c) * (1.f - c) : lambda * c * c;
}

// ============================================================================================
// Version 1: three kernels
// ============================================================================================
// xcorr_column_stats writes zahat and zbhat (a full extra write and read of both views), the
// GEMM below reads them, and xcorr_v1_loss reads all of C back to reduce it. Simple, and every
// step can be checked on its own. Cost: 2 N D floats of scratch.

__global__ void __launch_bounds__(kThreads)
    xcorr_v1_gemm(const float* zahat, const float* zbhat, int n, int d, float* c) {
  float acc[8][8] = {};
  tile_product(zahat, zbhat, n, d, nullptr, nullptr, nullptr, nullptr, acc);
  const int i0 = blockIdx.y * kTile + (threadIdx.x / 16) * 8;
  const int j0 = blockIdx.x * kTile + (threadIdx.x % 16) * 8;
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 8; ++j)
      if (i0 + i < d && j0 + j < d) c[static_cast<int64_t>(i0 + i) * d + j0 + j] = acc[i][j] / n;
}

// Each block sums its grid-stride share of the D^2 loss terms into partial[blockIdx.x].
__global__ void __launch_bounds__(kThreads)
    xcorr_v1_loss(const float* c, int d, float lambda, float* partial) {
  __shared__ float scratch[32];
  const int64_t total = static_cast<int64_t>(d) * d;
  float s = 0.f;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x)
    s += loss_term(static_cast<int>(e / d), static_cast<int>(e % d), c[e], lambda);
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

// ============================================================================================
// Version 2: standardise in the loads, reduce the loss in the epilogue
// ============================================================================================
// The statistics kernel writes only mean and inv_std (2 D floats). The GEMM standardises each
// element while staging the raw z tile in shared memory (a subtract and a multiply per loaded
// element, which then feeds 16 FMAs per thread), so zhat never exists in global memory. Each
// block reduces the loss terms of its own C tile while they are still in registers, leaving one
// partial per block. Saves a write and a read of 2 N D floats and a read of D^2. Cost: the
// registers and shared memory of version 1, plus 128 bytes for the reduction.

__global__ void __launch_bounds__(kThreads)
    xcorr_v2_fused(const float* za, const float* zb, int n, int d, const float* mean_a,
                   const float* inv_std_a, const float* mean_b, const float* inv_std_b,
                   float lambda, float* c, float* partial) {
  __shared__ float scratch[32];
  float acc[8][8] = {};
  tile_product(za, zb, n, d, mean_a, inv_std_a, mean_b, inv_std_b, acc);
  const int i0 = blockIdx.y * kTile + (threadIdx.x / 16) * 8;
  const int j0 = blockIdx.x * kTile + (threadIdx.x % 16) * 8;
  float s = 0.f;
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 8; ++j)
      if (i0 + i < d && j0 + j < d) {
        const float v = acc[i][j] / n;
        c[static_cast<int64_t>(i0 + i) * d + j0 + j] = v;
        s += loss_term(i0 + i, j0 + j, v, lambda);
      }
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) partial[blockIdx.y * gridDim.x + blockIdx.x] = s;
}

// Sums the per-block partials in a fixed order (deterministic) into the 0-d loss.
__global__ void __launch_bounds__(kThreads)
    xcorr_sum_partials(const float* partial, int count, float* loss) {
  __shared__ float scratch[32];
  float s = 0.f;
  for (int i = threadIdx.x; i < count; i += blockDim.x)
    s += partial[i];
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) *loss = s;
}

// ============================================================================================
// Backward (one version: elementwise kernels around two calls of the GEMM of gemm.cu)
// ============================================================================================

// G = dL/dC [D, D] from C.
__global__ void xcorr_loss_grad(const float* c, int d, float lambda, float* g) {
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= static_cast<int64_t>(d) * d) return;
  const bool diagonal = e / d == e % d;
  g[e] = diagonal ? -2.f * (1.f - c[e]) : 2.f * lambda * c[e];
}

// zhat [N, D] from z and its statistics.
__global__ void xcorr_standardise(const float* z, int n, int d, const float* mean,
                                  const float* inv_std, float* zhat) {
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= static_cast<int64_t>(n) * d) return;
  const int col = static_cast<int>(e % d);
  zhat[e] = (z[e] - mean[col]) * inv_std[col];
}

// In place on g [N, D] = dL/dzhat: g <- r * (g - mean_n g - zhat * mean_n(g * zhat)).
__global__ void xcorr_standardise_backward(float* g, const float* zhat, const float* inv_std, int n,
                                           int d) {
  __shared__ double scratch[kStatRows][kStatCols + 1];
  const int col = blockIdx.x * kStatCols + threadIdx.x;
  const bool inside = col < d;
  double sg = 0, sgz = 0;
  if (inside)
    for (int r = threadIdx.y; r < n; r += kStatRows) {
      const int64_t i = static_cast<int64_t>(r) * d + col;
      sg += g[i];
      sgz += static_cast<double>(g[i]) * zhat[i];
    }
  const double mean_g = column_sum(sg, scratch) / n;
  const double mean_gz = column_sum(sgz, scratch) / n;
  if (!inside) return;
  for (int r = threadIdx.y; r < n; r += kStatRows) {
    const int64_t i = static_cast<int64_t>(r) * d + col;
    g[i] = static_cast<float>(inv_std[col] * (g[i] - mean_g - zhat[i] * mean_gz));
  }
}

// ============================================================================================
// Launchers
// ============================================================================================

void check_f32(const char* op, const char* name, const Tensor& t, const Shape& shape) {
  SELFSUP_CHECK(t.defined(), op, ": ", name, " is undefined");
  SELFSUP_CHECK(t.device().is_cuda(), op, ": ", name, " ", shape_str(t.shape()), " is on ",
                t.device().str(), ", expected the CUDA device");
  SELFSUP_CHECK(t.dtype() == kFloat32, op, ": ", name, " is ", dtype_name(t.dtype()),
                ", expected float32");
  SELFSUP_CHECK(t.shape() == shape, op, ": ", name, " has shape ", shape_str(t.shape()),
                ", expected ", shape_str(shape));
  SELFSUP_CHECK(t.is_contiguous(), op, ": ", name, " ", shape_str(t.shape()),
                " must be contiguous");
}

// N and D from za and zb, checked.
void batch_and_dim(const char* op, const Tensor& za, const Tensor& zb, int& n, int& d) {
  SELFSUP_CHECK(za.defined() && zb.defined() && za.dim() == 2 && za.shape() == zb.shape(), op,
                ": za and zb must both be [N, D], got ",
                za.defined() ? shape_str(za.shape()) : "undefined", " and ",
                zb.defined() ? shape_str(zb.shape()) : "undefined");
  SELFSUP_CHECK(za.size(0) > 0 && za.size(1) > 0, op, ": empty embeddings ", shape_str(za.shape()));
  SELFSUP_CHECK(za.size(0) <= INT32_MAX && za.size(1) <= 65535 * kTile, op, ": embeddings ",
                shape_str(za.shape()), " are too large");
  n = static_cast<int>(za.size(0));
  d = static_cast<int>(za.size(1));
  check_f32(op, "za", za, {n, d});
  check_f32(op, "zb", zb, {n, d});
}

void launch_stats(const Tensor& z, int n, int d, float eps, Tensor& mean, Tensor& inv_std,
                  float* zhat) {
  const dim3 block(kStatCols, kStatRows), grid(static_cast<unsigned>(ceil_div(d, kStatCols)));
  xcorr_column_stats<<<grid, block>>>(z.data_ptr<float>(), n, d, eps, mean.data_ptr<float>(),
                                      inv_std.data_ptr<float>(), zhat);
  check_launch("barlow_xcorr_forward: column statistics");
}

}  // namespace

void barlow_xcorr_forward(const Tensor& za, const Tensor& zb, double eps, double lambda, Tensor& c,
                          Tensor& loss, Tensor& mean_a, Tensor& inv_std_a, Tensor& mean_b,
                          Tensor& inv_std_b, int version) {
  const char* op = "barlow_xcorr_forward";
  SELFSUP_CHECK(version >= 1 && version <= kXcorrVersions, op, ": unknown version ", version,
                " (1..", kXcorrVersions, ")");
  SELFSUP_CHECK(eps >= 0, op, ": eps must be >= 0, got ", eps);
  int n = 0, d = 0;
  batch_and_dim(op, za, zb, n, d);
  check_f32(op, "c", c, {d, d});
  check_f32(op, "loss", loss, {});
  for (Tensor* t : {&mean_a, &inv_std_a, &mean_b, &inv_std_b})
    check_f32(op, "a statistics vector", *t, {d});

  const float feps = static_cast<float>(eps), flambda = static_cast<float>(lambda);
  const dim3 tiles(static_cast<unsigned>(ceil_div(d, kTile)),
                   static_cast<unsigned>(ceil_div(d, kTile)));
  if (version == 1) {
    Tensor zahat = empty({n, d}, Device::cuda()), zbhat = empty({n, d}, Device::cuda());
    launch_stats(za, n, d, feps, mean_a, inv_std_a, zahat.data_ptr<float>());
    launch_stats(zb, n, d, feps, mean_b, inv_std_b, zbhat.data_ptr<float>());
    xcorr_v1_gemm<<<tiles, kThreads>>>(zahat.data_ptr<float>(), zbhat.data_ptr<float>(), n, d,
                                       c.data_ptr<float>());
    check_launch("barlow_xcorr_forward: v1 gemm");
    constexpr int kLossBlocks = 256;
    Tensor partial = empty({kLossBlocks}, Device::cuda());
    xcorr_v1_loss<<<kLossBlocks, kThreads>>>(c.data_ptr<float>(), d, flambda,
                                             partial.data_ptr<float>());
    check_launch("barlow_xcorr_forward: v1 loss");
    xcorr_sum_partials<<<1, kThreads>>>(partial.data_ptr<float>(), kLossBlocks,
                                        loss.data_ptr<float>());
    check_launch("barlow_xcorr_forward: loss sum");
    return;
  }
  launch_stats(za, n, d, feps, mean_a, inv_std_a, nullptr);
  launch_stats(zb, n, d, feps, mean_b, inv_std_b, nullptr);
  const int blocks = static_cast<int>(tiles.x * tiles.y);
  Tensor partial = empty({blocks}, Device::cuda());
  xcorr_v2_fused<<<tiles, kThreads>>>(za.data_ptr<float>(), zb.data_ptr<float>(), n, d,
                                      mean_a.data_ptr<float>(), inv_std_a.data_ptr<float>(),
                                      mean_b.data_ptr<float>(), inv_std_b.data_ptr<float>(),
                                      flambda, c.data_ptr<float>(), partial.data_ptr<float>());
  check_launch("barlow_xcorr_forward: v2 fused gemm");
  xcorr_sum_partials<<<1, kThreads>>>(partial.data_ptr<float>(), blocks, loss.data_ptr<float>());
  check_launch("barlow_xcorr_forward: loss sum");
}

void barlow_xcorr_backward(const Tensor& za, const Tensor& zb, const Tensor& c,
                           const Tensor& mean_a, const Tensor& inv_std_a, const Tensor& mean_b,
                           const Tensor& inv_std_b, double lambda, Tensor& grad_za,
                           Tensor& grad_zb) {
  const char* op = "barlow_xcorr_backward";
  int n = 0, d = 0;
  batch_and_dim(op, za, zb, n, d);
  check_f32(op, "c", c, {d, d});
  for (const Tensor* t : {&mean_a, &inv_std_a, &mean_b, &inv_std_b})
    check_f32(op, "a statistics vector", *t, {d});
  check_f32(op, "grad_za", grad_za, {n, d});
  check_f32(op, "grad_zb", grad_zb, {n, d});

  const int64_t dd = static_cast<int64_t>(d) * d, nd = static_cast<int64_t>(n) * d;
  Tensor g = empty({d, d}, Device::cuda());
  xcorr_loss_grad<<<static_cast<unsigned>(ceil_div(dd, 256)), 256>>>(
      c.data_ptr<float>(), d, static_cast<float>(lambda), g.data_ptr<float>());
  check_launch("barlow_xcorr_backward: loss gradient");
  Tensor zahat = empty({n, d}, Device::cuda()), zbhat = empty({n, d}, Device::cuda());
  const unsigned nd_blocks = static_cast<unsigned>(ceil_div(nd, 256));
  xcorr_standardise<<<nd_blocks, 256>>>(za.data_ptr<float>(), n, d, mean_a.data_ptr<float>(),
                                        inv_std_a.data_ptr<float>(), zahat.data_ptr<float>());
  check_launch("barlow_xcorr_backward: standardise a");
  xcorr_standardise<<<nd_blocks, 256>>>(zb.data_ptr<float>(), n, d, mean_b.data_ptr<float>(),
                                        inv_std_b.data_ptr<float>(), zbhat.data_ptr<float>());
  check_launch("barlow_xcorr_backward: standardise b");
  const float inv_n = 1.f / static_cast<float>(n);
  gemm(GemmLayout::NT, zbhat, g, grad_za, inv_n);  // dL/dzahat = zbhat G^T / N
  gemm(GemmLayout::NN, zahat, g, grad_zb, inv_n);  // dL/dzbhat = zahat G / N
  const dim3 block(kStatCols, kStatRows), grid(static_cast<unsigned>(ceil_div(d, kStatCols)));
  xcorr_standardise_backward<<<grid, block>>>(grad_za.data_ptr<float>(), zahat.data_ptr<float>(),
                                              inv_std_a.data_ptr<float>(), n, d);
  check_launch("barlow_xcorr_backward: standardisation a");
  xcorr_standardise_backward<<<grid, block>>>(grad_zb.data_ptr<float>(), zbhat.data_ptr<float>(),
                                              inv_std_b.data_ptr<float>(), n, d);
  check_launch("barlow_xcorr_backward: standardisation b");
}

}  // namespace selfsup::cuda
