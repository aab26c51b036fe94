// ============================================================================================
// Batched SGEMM, from a naive loop to tensor cores
// ============================================================================================
//
//   C[b] = alpha * op(A[b]) @ op(B[b]) + beta * C[b]       op(A) [M, K], op(B) [K, N], C [M, N]
//
// All matrices are row-major float32; op() is the identity or a transpose, giving the layouts
// NN, NT and TN of gemm.h. Every batch entry is an independent product (blockIdx.z).
//
// The two numbers that bound it, per batch entry:
//   FLOPs      2 * M * N * K                 (one multiply and one add per term)
//   min bytes  4 * (M*K + K*N + M*N)         (+ 4*M*N when beta != 0: C is read too)
// At 4096^3 that is 137 GFLOP against 201 MB, ~680 FLOP per byte: far above an H100's
// ~20 FLOP/byte balance point (~50 TFLOP/s fp32 over ~3 TB/s), so big products are compute
// bound and the versions below are about feeding the arithmetic units. A batch of 64^3
// products has ~11 FLOP/byte and is bound by memory and launch latency instead.
//
// The versions, each a separate kernel so one can be read against the next:
//   1 naive                one thread per C element, operands straight from global memory
//   2 smem 32x32           tiles of A and B staged in shared memory, reused 32 times
//   3 1-d register tile    each thread computes a column of 8 C values
//   4 2-d register tile    each thread computes 8x8 C values of a 128x128 block tile
//   5 float4 + A^T tile    16-byte global loads; both tiles k-major so smem reads are float4
//   6 warp tile + 2 bufs   warp-shaped thread layout; next tile loads while this one computes
//   7 TF32 mma.sync        the inner product on tensor cores, m16n8k8, fp32 accumulate
// and the references 0 (cuBLAS fp32) and 8 (cuBLAS TF32).
//
// Tails: every version works for every M, N, K. Loads outside the matrix read 0 (adding 0 to
// the dot product) and stores outside C are skipped, so no size needs padding or a fallback.
// Versions 5-7 use 16-byte loads only for 4-element groups that lie wholly inside a row of an
// operand that gemm_float4_ok() accepts, and scalar loads otherwise.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <mutex>

#include "core/error.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/runtime.h"

namespace selfsup::cuda {

namespace {

// Everything a kernel needs, passed by value (kernel parameters live in constant memory).
struct GemmArgs {
  int m, n, k;
  float alpha, beta;
  const float* a;  // batch 0 of A: [M, K] (lda >= K), or [K, M] (lda >= M) when trans_a
  int64_t lda, stride_a;
  bool trans_a;
  const float* b;  // batch 0 of B: [K, N] (ldb >= N), or [N, K] (ldb >= K) when trans_b
  int64_t ldb, stride_b;
  bool trans_b;
  float* c;  // batch 0 of C: [M, N], ldc >= N
  int64_t ldc, stride_c;
  bool a_float4, b_float4;  // gemm_float4_ok for A and B
};

// ------------------------------------------------------------------------------------------
// Element access shared by every version
// ------------------------------------------------------------------------------------------

// Element (m, k) of op(A) of this block's batch entry; 0 outside [0, M) x [0, K).
__device__ __forceinline__ float op_a(const GemmArgs& g, int m, int k) {
  if (m >= g.m || k >= g.k) return 0.f;
  const float* a = g.a + blockIdx.z * g.stride_a;
  return g.trans_a ? a[static_cast<int64_t>(k) * g.lda + m]
                   : a[static_cast<int64_t>(m) * g.lda + k];
}

// Element (k, n) of op(B); 0 outside [0, K) x [0, N).
__device__ __forceinline__ float op_b(const GemmArgs& g, int k, int n) {
  if (k >= g.k || n >= g.n) return 0.f;
  const float* b = g.b + blockIdx.z * g.stride_b;
  return g.trans_b ? b[static_cast<int64_t>(n) * g.ldb + k]
                   : b[static_cast<int64_t>(k) * g.ldb + n];
}

// C(m, n) = alpha * acc + beta * C(m, n), skipped outside C. C is not read when beta == 0.
__device__ __forceinline__ void store_c(const GemmArgs& g, int m, int n, float acc) {
  if (m >= g.m || n >= g.n) return;
  float* p = g.c + blockIdx.z * g.stride_c + static_cast<int64_t>(m) * g.ldc + n;
  *p = g.beta == 0.f ? g.alpha * acc : g.alpha * acc + g.beta * *p;
}

// ============================================================================================
// Version 1: naive
// ============================================================================================
// One thread per element of C, each reading a row of op(A) and a column of op(B) from global
// memory: 2K loads per 2K FLOPs. Consecutive threads (threadIdx.x) take consecutive n, so the
// reads of B and the writes of C coalesce; the caches do the rest. No shared memory.
// Block 32 x 8 threads covers 8 rows x 32 columns of C.

__global__ void gemm_v1_naive(GemmArgs g) {
  const int n = blockIdx.x * 32 + threadIdx.x;
  const int m = blockIdx.y * 8 + threadIdx.y;
  if (m >= g.m || n >= g.n) return;
  float acc = 0.f;
  for (int k = 0; k < g.k; ++k)
    acc += op_a(g, m, k) * op_b(g, k, n);
  store_c(g, m, n, acc);
}

// ============================================================================================
// Version 2: shared-memory tiling, 32 x 32
// ============================================================================================
// A block of 32 x 32 threads computes a 32 x 32 tile of C. Each step it stages a 32 x 32 tile
// of op(A) and of op(B) in shared memory (one element per thread), then every thread reads 32
// of each from there: global traffic drops 32-fold. In the inner loop As[ty][kk] is the same
// address for a whole warp (a broadcast) and Bs[kk][tx] 32 consecutive words (no conflicts).
// Cost: 8 KiB of shared memory; 1024 threads per block.

__global__ void gemm_v2_smem(GemmArgs g) {
  __shared__ float As[32][32];  // op(A)[m0 + ty, k0 + tx]
  __shared__ float Bs[32][32];  // op(B)[k0 + ty, n0 + tx]
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int m = blockIdx.y * 32 + ty, n = blockIdx.x * 32 + tx;
  float acc = 0.f;
  for (int k0 = 0; k0 < g.k; k0 += 32) {
    As[ty][tx] = op_a(g, m, k0 + tx);
    Bs[ty][tx] = op_b(g, k0 + ty, n);
    __syncthreads();
    for (int kk = 0; kk < 32; ++kk)
      acc += As[ty][kk] * Bs[kk][tx];
    __syncthreads();  // before the next step overwrites the tiles
  }
  store_c(g, m, n, acc);
}

// ============================================================================================
// Version 3: 1-d register blocking (64 x 64 tile, 8 results per thread)
// ============================================================================================
// Version 2 does one FMA per two shared-memory loads. Here each of 512 threads computes a
// column of 8 C values: per k it loads one B value into a register and reuses it for 8 FMAs
// (As reads are warp broadcasts). Shared-memory traffic per FMA falls from 2 loads to ~1.1.
// Cost: 8 accumulators per thread; 4 KiB of shared memory (64x8 of A + 8x64 of B).

__global__ void __launch_bounds__(512) gemm_v3_regs_1d(GemmArgs g) {
  __shared__ float As[64][8];  // op(A)[m0 + r, k0 + kk]
  __shared__ float Bs[8][64];  // op(B)[k0 + kk, n0 + c]
  const int tid = threadIdx.x;
  const int m0 = blockIdx.y * 64, n0 = blockIdx.x * 64;
  const int col = tid % 64, row_group = tid / 64;  // rows row_group*8 .. +8 of the tile
  float acc[8] = {};
  for (int k0 = 0; k0 < g.k; k0 += 8) {
    As[tid / 8][tid % 8] = op_a(g, m0 + tid / 8, k0 + tid % 8);
    Bs[tid / 64][tid % 64] = op_b(g, k0 + tid / 64, n0 + tid % 64);
    __syncthreads();
    for (int kk = 0; kk < 8; ++kk) {
      const float b = Bs[kk][col];
      for (int i = 0; i < 8; ++i)
        acc[i] += As[row_group * 8 + i][kk] * b;
    }
    __syncthreads();
  }
  for (int i = 0; i < 8; ++i)
    store_c(g, m0 + row_group * 8 + i, n0 + col, acc[i]);
}

// ============================================================================================
// Version 4: 2-d register blocking (128 x 128 tile, 8 x 8 results per thread)
// ============================================================================================
// Each of 256 threads computes an 8 x 8 block of C. Per k it loads 8 A values and 8 B values
// into registers and does 64 FMAs with them: 16 shared loads per 64 FMAs (v3: 9 per 8). The
// larger block tile also halves global loads per FMA again. Cost: 64 accumulators + 16 operand
// registers per thread (~100 registers); 8 KiB of shared memory.

__global__ void __launch_bounds__(256) gemm_v4_regs_2d(GemmArgs g) {
  __shared__ float As[128][8];  // op(A)[m0 + r, k0 + kk]
  __shared__ float Bs[8][128];  // op(B)[k0 + kk, n0 + c]
  const int tid = threadIdx.x;
  const int m0 = blockIdx.y * 128, n0 = blockIdx.x * 128;
  const int tr = tid / 16, tc = tid % 16;  // this thread's 8 x 8 block: rows tr*8, cols tc*8
  float acc[8][8] = {};
  for (int k0 = 0; k0 < g.k; k0 += 8) {
    for (int e = tid; e < 128 * 8; e += 256) {  // 4 elements of each tile per thread
      As[e / 8][e % 8] = op_a(g, m0 + e / 8, k0 + e % 8);
      Bs[e / 128][e % 128] = op_b(g, k0 + e / 128, n0 + e % 128);
    }
    __syncthreads();
    for (int kk = 0; kk < 8; ++kk) {
      float ra[8], rb[8];
      for (int i = 0; i < 8; ++i)
        ra[i] = As[tr * 8 + i][kk];
      for (int j = 0; j < 8; ++j)
        rb[j] = Bs[kk][tc * 8 + j];
      for (int i = 0; i < 8; ++i)
        for (int j = 0; j < 8; ++j)
          acc[i][j] += ra[i] * rb[j];
    }
    __syncthreads();
  }
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 8; ++j)
      store_c(g, m0 + tr * 8 + i, n0 + tc * 8 + j, acc[i][j]);
}

// ------------------------------------------------------------------------------------------
// Tile loading for versions 5-7: 128 x 8 tiles, 16-byte loads, k-major in shared memory
// ------------------------------------------------------------------------------------------
// Both operand tiles are kept k-major, tile[k][r] (r = m for A, r = n for B), so the compute
// loop reads 4 or 8 consecutive r of one k with float4 loads. Rows are padded to 136 floats:
// still 16-byte aligned, and it spreads version 7's fragment reads over all 32 banks.
//
// In global memory an operand tile is contiguous either along k (A in NN/NT, B in NT) or along
// r (A in TN, B in NN/TN). Each of the 256 threads loads 4 consecutive elements along the
// contiguous direction: one float4 when gemm_float4_ok and all 4 are inside the matrix, four
// bounds-checked scalars otherwise. A k-contiguous group is scattered into 4 rows of the
// k-major tile: that store is the "transposed tile".

constexpr int kTile = 128;         // block tile rows (m) and columns (n)
constexpr int kDepth = 8;          // k per tile
constexpr int kTileStride = 136;   // padded shared row
constexpr int kTileThreads = 256;  // threads per block for versions 5-7

struct TileSource {
  const float* base;  // this batch entry's matrix
  int64_t ld;
  int rows, depth;    // bounds: r < rows, k < depth
  bool k_contiguous;  // element (r, k) at base[r * ld + k]; else at base[k * ld + r]
  bool float4_ok;
};

__device__ __forceinline__ TileSource a_source(const GemmArgs& g) {
  return {g.a + blockIdx.z * g.stride_a, g.lda, g.m, g.k, !g.trans_a, g.a_float4};
}
__device__ __forceinline__ TileSource b_source(const GemmArgs& g) {
  return {g.b + blockIdx.z * g.stride_b, g.ldb, g.n, g.k, g.trans_b, g.b_float4};
}

// This thread's first element (r, k) within the tile; its 4 run along the contiguous direction.
__device__ __forceinline__ void tile_coords(bool k_contiguous, int& r, int& k) {
  const int t = threadIdx.x;
  if (k_contiguous) {
    r = t / 2;  // 128 rows x 2 groups of 4 k
    k = (t % 2) * 4;
  } else {
    k = t / 32;  // 8 k x 32 groups of 4 r
    r = (t % 32) * 4;
  }
}

__device__ __forceinline__ float tile_element(const TileSource& s, int r, int k) {
  if (r >= s.rows || k >= s.depth) return 0.f;
  return s.k_contiguous ? s.base[static_cast<int64_t>(r) * s.ld + k]
                        : s.base[static_cast<int64_t>(k) * s.ld + r];
}

// This thread's 4 elements of the tile whose corner is (r0, k0).
__device__ __forceinline__ float4 fetch_tile(const TileSource& s, int r0, int k0) {
  int r, k;
  tile_coords(s.k_contiguous, r, k);
  r += r0;
  k += k0;
  if (s.k_contiguous) {
    if (s.float4_ok && r < s.rows && k + 3 < s.depth)
      return load_float4(s.base + static_cast<int64_t>(r) * s.ld + k);
    return make_float4(tile_element(s, r, k), tile_element(s, r, k + 1), tile_element(s, r, k + 2),
                       tile_element(s, r, k + 3));
  }
  if (s.float4_ok && k < s.depth && r + 3 < s.rows)
    return load_float4(s.base + static_cast<int64_t>(k) * s.ld + r);
  return make_float4(tile_element(s, r, k), tile_element(s, r + 1, k), tile_element(s, r + 2, k),
                     tile_element(s, r + 3, k));
}

// Writes what fetch_tile returned into the k-major shared tile [kDepth][kTileStride].
__device__ __forceinline__ void stash_tile(float4 v, bool k_contiguous,
                                           float (*tile)[kTileStride]) {
  int r, k;
  tile_coords(k_contiguous, r, k);
  if (k_contiguous) {
    tile[k][r] = v.x;
    tile[k + 1][r] = v.y;
    tile[k + 2][r] = v.z;
    tile[k + 3][r] = v.w;
  } else {
    store_float4(&tile[k][r], v);  // r is a multiple of 4 and the row 16-byte aligned
  }
}

__device__ __forceinline__ void unpack(float4 v, float* out) {
  out[0] = v.x;
  out[1] = v.y;
  out[2] = v.z;
  out[3] = v.w;
}

// ============================================================================================
// Version 5: float4 loads, transposed A tile
// ============================================================================================
// The tiling of version 4, loaded with 16-byte global loads (4x fewer load instructions), and
// with A's tile stored k-major like B's: the 8 A values a thread needs for one k are now
// consecutive, so they come in as two float4 shared loads instead of 8 scalar ones with a
// stride. Cost: as version 4, plus 128 bytes of row padding.

__global__ void __launch_bounds__(kTileThreads) gemm_v5_float4(GemmArgs g) {
  __shared__ __align__(16) float As[kDepth][kTileStride];  // op(A)[m0 + r, k0 + k] at [k][r]
  __shared__ __align__(16) float Bs[kDepth][kTileStride];  // op(B)[k0 + k, n0 + r] at [k][r]
  const TileSource sa = a_source(g), sb = b_source(g);
  const int m0 = blockIdx.y * kTile, n0 = blockIdx.x * kTile;
  const int tr = threadIdx.x / 16, tc = threadIdx.x % 16;  // 8 x 8 block at rows tr*8, cols tc*8
  float acc[8][8] = {};
  for (int k0 = 0; k0 < g.k; k0 += kDepth) {
    stash_tile(fetch_tile(sa, m0, k0), sa.k_contiguous, As);
    stash_tile(fetch_tile(sb, n0, k0), sb.k_contiguous, Bs);
    __syncthreads();
    for (int kk = 0; kk < kDepth; ++kk) {
      float ra[8], rb[8];
      unpack(load_float4(&As[kk][tr * 8]), ra);
      unpack(load_float4(&As[kk][tr * 8 + 4]), ra + 4);
      unpack(load_float4(&Bs[kk][tc * 8]), rb);
      unpack(load_float4(&Bs[kk][tc * 8 + 4]), rb + 4);
      for (int i = 0; i < 8; ++i)
        for (int j = 0; j < 8; ++j)
          acc[i][j] += ra[i] * rb[j];
    }
    __syncthreads();
  }
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 8; ++j)
      store_c(g, m0 + tr * 8 + i, n0 + tc * 8 + j, acc[i][j]);
}

// ============================================================================================
// Version 6: warp tiling, double-buffered shared memory
// ============================================================================================
// Two changes. (1) Each warp owns a 64 x 32 region of the block tile (8 warps as 2 x 4), and a
// lane's 8 x 8 results are four 4 x 4 pieces 32 rows / 16 columns apart, so for one k a warp
// reads 8 + 4 distinct float4s that sit side by side: conflict-free broadcasts, where
// version 5's lanes read float4s 32 bytes apart. (2) Two shared buffers: the next tile's
// global loads are issued into registers before this tile's FMAs and stored to the other
// buffer after them, so their latency hides behind arithmetic and one __syncthreads per step
// suffices. Cost: 17 KiB of shared memory, 8 more registers for the loads in flight.

__global__ void __launch_bounds__(kTileThreads) gemm_v6_warp_tiles(GemmArgs g) {
  __shared__ __align__(16) float As[2][kDepth][kTileStride];
  __shared__ __align__(16) float Bs[2][kDepth][kTileStride];
  const TileSource sa = a_source(g), sb = b_source(g);
  const int m0 = blockIdx.y * kTile, n0 = blockIdx.x * kTile;
  const int warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  const int wm = (warp / 4) * 64, wn = (warp % 4) * 32;  // this warp's region in the tile
  const int lm = (lane / 4) * 4, ln = (lane % 4) * 4;    // this lane's 4 x 4 corner within it
  float acc[8][8] = {};  // rows wm + (i/4)*32 + lm + i%4, cols wn + (j/4)*16 + ln + j%4
  const int steps = static_cast<int>(ceil_div(g.k, kDepth));
  if (steps > 0) {
    stash_tile(fetch_tile(sa, m0, 0), sa.k_contiguous, As[0]);
    stash_tile(fetch_tile(sb, n0, 0), sb.k_contiguous, Bs[0]);
    __syncthreads();
  }
  for (int s = 0; s < steps; ++s) {
    const int cur = s % 2;
    const bool more = s + 1 < steps;
    float4 next_a, next_b;
    if (more) {  // in flight while the FMAs below run
      next_a = fetch_tile(sa, m0, (s + 1) * kDepth);
      next_b = fetch_tile(sb, n0, (s + 1) * kDepth);
    }
    for (int kk = 0; kk < kDepth; ++kk) {
      float ra[8], rb[8];
      unpack(load_float4(&As[cur][kk][wm + lm]), ra);
      unpack(load_float4(&As[cur][kk][wm + 32 + lm]), ra + 4);
      unpack(load_float4(&Bs[cur][kk][wn + ln]), rb);
      unpack(load_float4(&Bs[cur][kk][wn + 16 + ln]), rb + 4);
      for (int i = 0; i < 8; ++i)
        for (int j = 0; j < 8; ++j)
          acc[i][j] += ra[i] * rb[j];
    }
    if (more) {  // the other buffer was last read in step s-1, before the previous barrier
      stash_tile(next_a, sa.k_contiguous, As[1 - cur]);
      stash_tile(next_b, sb.k_contiguous, Bs[1 - cur]);
    }
    __syncthreads();
  }
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 8; ++j)
      store_c(g, m0 + wm + (i / 4) * 32 + lm + i % 4, n0 + wn + (j / 4) * 16 + ln + j % 4,
              acc[i][j]);
}

// ============================================================================================
// Version 7: TF32 tensor cores (mma.sync.m16n8k8)
// ============================================================================================
// The loads and double buffering of version 6; the FMAs go to the tensor cores. One
// mma.sync.m16n8k8 multiplies a 16 x 8 tile of A by an 8 x 8 tile of B into a 16 x 8 fp32
// accumulator held across the warp's 32 lanes, 1024 FMAs per instruction. A warp's 64 x 32
// region is 4 x 4 such accumulators (64 floats per lane). Inputs are rounded to TF32 (10-bit
// mantissa, cvt.rna) as they enter the fragments, so results differ from fp32 by ~1e-3
// relative. Fragment ownership (PTX ISA, lane = 4 * group + t):
//   A 16x8: a0 (group, t)  a1 (group+8, t)  a2 (group, t+4)  a3 (group+8, t+4)      (row, k)
//   B 8x8:  b0 (t, group)  b1 (t+4, group)                                          (k, col)
//   C 16x8: c0 (group, 2t) c1 (group, 2t+1) c2 (group+8, 2t) c3 (group+8, 2t+1)    (row, col)
// With the 136-float row stride, the 32 lanes' fragment reads hit 32 different banks.

__device__ __forceinline__ uint32_t to_tf32(float x) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
  return r;
}

__device__ __forceinline__ void mma_tf32(float (&c)[4], const uint32_t (&a)[4],
                                         const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

__global__ void __launch_bounds__(kTileThreads) gemm_v7_tf32_mma(GemmArgs g) {
  __shared__ __align__(16) float As[2][kDepth][kTileStride];
  __shared__ __align__(16) float Bs[2][kDepth][kTileStride];
  const TileSource sa = a_source(g), sb = b_source(g);
  const int m0 = blockIdx.y * kTile, n0 = blockIdx.x * kTile;
  const int warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  const int wm = (warp / 4) * 64, wn = (warp % 4) * 32;
  const int group = lane / 4, t = lane % 4;
  float acc[4][4][4] = {};  // [16-row tile][8-col tile][fragment register]
  const int steps = static_cast<int>(ceil_div(g.k, kDepth));
  if (steps > 0) {
    stash_tile(fetch_tile(sa, m0, 0), sa.k_contiguous, As[0]);
    stash_tile(fetch_tile(sb, n0, 0), sb.k_contiguous, Bs[0]);
    __syncthreads();
  }
  for (int s = 0; s < steps; ++s) {
    const int cur = s % 2;
    const bool more = s + 1 < steps;
    float4 next_a, next_b;
    if (more) {
      next_a = fetch_tile(sa, m0, (s + 1) * kDepth);
      next_b = fetch_tile(sb, n0, (s + 1) * kDepth);
    }
    uint32_t fa[4][4], fb[4][2];
    for (int mt = 0; mt < 4; ++mt) {
      const int r = wm + mt * 16 + group;
      fa[mt][0] = to_tf32(As[cur][t][r]);
      fa[mt][1] = to_tf32(As[cur][t][r + 8]);
      fa[mt][2] = to_tf32(As[cur][t + 4][r]);
      fa[mt][3] = to_tf32(As[cur][t + 4][r + 8]);
    }
    for (int nt = 0; nt < 4; ++nt) {
      const int col = wn + nt * 8 + group;
      fb[nt][0] = to_tf32(Bs[cur][t][col]);
      fb[nt][1] = to_tf32(Bs[cur][t + 4][col]);
    }
    for (int mt = 0; mt < 4; ++mt)
      for (int nt = 0; nt < 4; ++nt)
        mma_tf32(acc[mt][nt], fa[mt], fb[nt]);
    if (more) {
      stash_tile(next_a, sa.k_contiguous, As[1 - cur]);
      stash_tile(next_b, sb.k_contiguous, Bs[1 - cur]);
    }
    __syncthreads();
  }
  for (int mt = 0; mt < 4; ++mt)
    for (int nt = 0; nt < 4; ++nt)
      for (int r = 0; r < 4; ++r)
        store_c(g, m0 + wm + mt * 16 + group + (r / 2) * 8, n0 + wn + nt * 8 + 2 * t + r % 2,
                acc[mt][nt][r]);
}

// ============================================================================================
// Launcher
// ============================================================================================

// The shape of one operand as the kernels read it.
struct MatrixDesc {
  int64_t batch, rows, cols;  // the stored matrix (not op() of it)
  int64_t ld, batch_stride;
};

MatrixDesc describe(const char* name, const Tensor& t) {
  SELFSUP_CHECK(t.defined(), "gemm: ", name, " is undefined");
  SELFSUP_CHECK(t.device().is_cuda(), "gemm: ", name, " ", shape_str(t.shape()), " is on ",
                t.device().str(), ", expected the CUDA device");
  SELFSUP_CHECK(t.dtype() == kFloat32, "gemm: ", name, " is ", dtype_name(t.dtype()),
                ", expected float32");
  SELFSUP_CHECK(t.dim() == 2 || t.dim() == 3, "gemm: ", name, " must be [M, N] or [B, M, N], got ",
                shape_str(t.shape()));
  MatrixDesc d;
  d.batch = t.dim() == 3 ? t.size(0) : 1;
  d.rows = t.size(-2);
  d.cols = t.size(-1);
  SELFSUP_CHECK(gemm_reads_in_place(d.rows, d.cols, t.stride(-2), t.stride(-1)), "gemm: ", name,
                " ", shape_str(t.shape()),
                " needs contiguous rows that do not overlap, got strides ", shape_str(t.strides()));
  // One row, or rows of no columns: any ld >= 1 reads the same.
  d.ld = d.rows > 1 && d.cols > 0 ? t.stride(-2) : std::max<int64_t>(d.cols, 1);
  d.batch_stride = d.batch > 1 ? t.stride(0) : 0;
  const int64_t limit = INT32_MAX;
  SELFSUP_CHECK(d.rows <= limit && d.cols <= limit && d.ld <= limit, "gemm: ", name, " ",
                shape_str(t.shape()), " is too large for 32-bit indices");
  return d;
}

const char* layout_name(GemmLayout layout) {
  return layout == GemmLayout::NN ? "NN" : layout == GemmLayout::NT ? "NT" : "TN";
}

cublasHandle_t cublas_handle() {
  static cublasHandle_t handle = nullptr;
  static std::once_flag once;
  std::call_once(once, [] {
    const cublasStatus_t s = cublasCreate(&handle);
    SELFSUP_CHECK(s == CUBLAS_STATUS_SUCCESS,
                  "gemm: cublasCreate failed: ", cublasGetStatusString(s));
  });
  return handle;
}

void check_cublas(cublasStatus_t s, const char* what) {
  SELFSUP_CHECK(s == CUBLAS_STATUS_SUCCESS, "gemm: ", what, " failed: ", cublasGetStatusString(s));
}

// cuBLAS is column-major. A row-major X [r, c] is the column-major X^T, so the row-major
// C = op(A) op(B) is computed as the column-major C^T = op(B)^T op(A)^T: swap the operands and
// keep each one's transpose flag.
void run_cublas(const GemmArgs& g, int64_t batch, bool tf32) {
  cublasHandle_t h = cublas_handle();
  const cublasOperation_t op_a = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int ib = static_cast<int>(batch);
  if (!tf32) {
    check_cublas(cublasSgemmStridedBatched(h, op_b, op_a, g.n, g.m, g.k, &g.alpha, g.b,
                                           static_cast<int>(g.ldb), g.stride_b, g.a,
                                           static_cast<int>(g.lda), g.stride_a, &g.beta, g.c,
                                           static_cast<int>(g.ldc), g.stride_c, ib),
                 "cublasSgemmStridedBatched");
    return;
  }
  check_cublas(cublasGemmStridedBatchedEx(h, op_b, op_a, g.n, g.m, g.k, &g.alpha, g.b, CUDA_R_32F,
                                          static_cast<int>(g.ldb), g.stride_b, g.a, CUDA_R_32F,
                                          static_cast<int>(g.lda), g.stride_a, &g.beta, g.c,
                                          CUDA_R_32F, static_cast<int>(g.ldc), g.stride_c, ib,
                                          CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT),
               "cublasGemmStridedBatchedEx (TF32)");
}

// The C tile one block computes and its thread shape, per hand-written version.
struct LaunchShape {
  int tile_m, tile_n;
  dim3 block;
};

LaunchShape launch_shape(int version) {
  switch (version) {
    case 1:
      return {8, 32, dim3(32, 8)};
    case 2:
      return {32, 32, dim3(32, 32)};
    case 3:
      return {64, 64, dim3(512)};
    default:
      return {kTile, kTile, dim3(kTileThreads)};
  }
}

void launch_kernel(int version, const GemmArgs& g, int batch) {
  const LaunchShape s = launch_shape(version);
  const dim3 grid(static_cast<unsigned>(ceil_div(g.n, s.tile_n)),
                  static_cast<unsigned>(ceil_div(g.m, s.tile_m)), static_cast<unsigned>(batch));
  SELFSUP_CHECK(grid.y <= 65535, "gemm: M = ", g.m, " needs ", grid.y,
                " row blocks, more than the grid allows (65535)");
  SELFSUP_CHECK(grid.z <= 65535, "gemm: a batch of ", batch,
                " is more than the grid's third dimension allows (65535)");
  switch (version) {
    case 1:
      gemm_v1_naive<<<grid, s.block>>>(g);
      break;
    case 2:
      gemm_v2_smem<<<grid, s.block>>>(g);
      break;
    case 3:
      gemm_v3_regs_1d<<<grid, s.block>>>(g);
      break;
    case 4:
      gemm_v4_regs_2d<<<grid, s.block>>>(g);
      break;
    case 5:
      gemm_v5_float4<<<grid, s.block>>>(g);
      break;
    case 6:
      gemm_v6_warp_tiles<<<grid, s.block>>>(g);
      break;
    case 7:
      gemm_v7_tf32_mma<<<grid, s.block>>>(g);
      break;
  }
  check_launch(gemm_version_name(version));
}

}  // namespace

const char* gemm_version_name(int version) {
  static const char* const names[kGemmVersionCount] = {
      "cublas",         "naive",           "smem_32",       "regs_1d",    "regs_2d",
      "float4_a_trans", "warp_tiles_2buf", "tf32_mma_sync", "cublas_tf32"};
  return version >= 0 && version < kGemmVersionCount ? names[version] : "?";
}

void gemm(GemmLayout layout, const Tensor& a, const Tensor& b, Tensor& c, float alpha, float beta,
          int version) {
  SELFSUP_CHECK(version >= 0 && version < kGemmVersionCount, "gemm: unknown version ", version,
                " (0..", kGemmVersionCount - 1, ")");
  const bool trans_a = layout == GemmLayout::TN, trans_b = layout == GemmLayout::NT;
  const MatrixDesc da = describe("a", a), db = describe("b", b), dc = describe("c", c);
  const int64_t m = trans_a ? da.cols : da.rows, k = trans_a ? da.rows : da.cols;
  const int64_t n = trans_b ? db.rows : db.cols, kb = trans_b ? db.cols : db.rows;
  SELFSUP_CHECK(k == kb && dc.rows == m && dc.cols == n, "gemm (", layout_name(layout),
                "): shapes ", shape_str(a.shape()), " x ", shape_str(b.shape()), " -> ",
                shape_str(c.shape()), " do not match");
  const int64_t batch = dc.batch;
  SELFSUP_CHECK((da.batch == batch || da.batch == 1) && (db.batch == batch || db.batch == 1),
                "gemm (", layout_name(layout), "): batch sizes of ", shape_str(a.shape()), ", ",
                shape_str(b.shape()), " and ", shape_str(c.shape()), " differ");
  SELFSUP_CHECK(c.is_contiguous(), "gemm: c ", shape_str(c.shape()), " must be contiguous");
  SELFSUP_CHECK(!c.shares_storage_with(a) && !c.shares_storage_with(b),
                "gemm: c must not share memory with a or b");
  if (batch == 0 || m == 0 || n == 0) return;

  GemmArgs g{};
  g.m = static_cast<int>(m);
  g.n = static_cast<int>(n);
  g.k = static_cast<int>(k);
  g.alpha = alpha;
  g.beta = beta;
  g.a = a.data_ptr<float>();
  g.lda = da.ld;
  g.stride_a = da.batch == 1 ? 0 : da.batch_stride;
  g.trans_a = trans_a;
  g.b = b.data_ptr<float>();
  g.ldb = db.ld;
  g.stride_b = db.batch == 1 ? 0 : db.batch_stride;
  g.trans_b = trans_b;
  g.c = c.data_ptr<float>();
  g.ldc = n;
  g.stride_c = m * n;
  g.a_float4 = gemm_float4_ok(reinterpret_cast<uintptr_t>(g.a), g.lda, g.stride_a);
  g.b_float4 = gemm_float4_ok(reinterpret_cast<uintptr_t>(g.b), g.ldb, g.stride_b);

  if (version == kGemmCublas || version == kGemmCublasTf32) {
    SELFSUP_CHECK(batch <= INT32_MAX, "gemm: batch ", batch, " is too large for cuBLAS");
    // cuBLAS has been known to return without scaling C when k == 0 (PyTorch special-cases
    // it too); then C = beta C comes from our simplest kernel instead.
    if (k > 0) return run_cublas(g, batch, version == kGemmCublasTf32);
    version = 1;  // the naive kernel
  }
  // gridDim.z is at most 65535: larger batches go in chunks, each a launch from its own base.
  constexpr int64_t kMaxGridZ = 65535;
  for (int64_t b0 = 0; b0 < batch; b0 += kMaxGridZ) {
    GemmArgs chunk = g;
    chunk.a += b0 * g.stride_a;
    chunk.b += b0 * g.stride_b;
    chunk.c += b0 * g.stride_c;
    launch_kernel(version, chunk, static_cast<int>(std::min(kMaxGridZ, batch - b0)));
  }
}

}  // namespace selfsup::cuda
