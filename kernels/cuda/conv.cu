// ============================================================================================
// 2-d convolution, from a direct loop to register-blocked implicit GEMM
// ============================================================================================
//
//   out[n, o, y, x] = bias[o] + sum_{c, i, j} w[o, c, i, j] * x[n, c, y*sh-ph+i, x*sw-pw+j]
//
//   x [N, C, H, W]   w [O, C, KH, KW]   bias [O]   out [N, O, OH, OW]      NCHW, contiguous
//   OH = (H + 2*ph - KH) / sh + 1,  OW likewise; reads that fall in the padding see 0.
//
// Implicit GEMM. The CPU path (kernels/cpu/conv.cpp) writes im2col's cols matrix to memory and
// multiplies. On the GPU the same product runs with cols never materialised: the GEMM's tile
// loader computes, for each (row, depth) element it stages in shared memory, which input value
// im2col would have put there. Each pass is a GEMM C [M, Ng] = A [M, K] @ B [K, Ng]:
//
//   forward         M = N*OH*OW (n, y, x)   Ng = O            K = C*KH*KW (c, i, j)
//                   A = x gathered at (y*sh - ph + i, x*sw - pw + j)    B[k, o] = w[o, k]
//   backward data   M = N*H*W (n, h, w)     Ng = C            K = O*KH*KW (o, i, j)
//                   A = grad_out gathered at ((h + ph - i) / sh, (w + pw - j) / sw) where the
//                   division is exact ("gather" form: each input pixel collects from the outputs
//                   that read it, so no atomics), B[(o, i, j), c] = w[o, c, i, j]
//   backward weight computed as grad_w^T:  M = C*KH*KW (c, i, j)   Ng = O   K = N*OH*OW
//                   A = x gathered as in forward, B[(n, y, x), o] = grad_out[n, o, y, x]
//   grad_b[o]       = sum over n, y, x of grad_out[n, o, y, x]  (a reduction, not a GEMM)
//
// The two numbers that bound it (forward; each backward GEMM has the same count):
//   FLOPs      2 * N*OH*OW * O * C*KH*KW
//   min bytes  4 * (x + w + out)  elements (float32)
// The ResNet layer x [256, 64, 16, 16], w [64, 64, 3, 3], stride 1, pad 1: 4.8 GFLOP against
// 34 MB, ~140 FLOP per byte, far above an H100/H200's ~15-20 FLOP/byte balance point: compute
// bound like a big GEMM, so the versions below are about reusing each loaded value many times. The
// first layer (C = 1 or 3, K = 9 or 27) has little depth to reuse and is closer to memory bound.
//
// The versions, each a separate kernel so one can be read against the next:
//   1 direct          one thread per output element, every operand from global memory
//   2 smem 32x32      implicit GEMM with 32 x 32 shared-memory tiles (gemm.cu's version 2)
//   3 regs 64x64      4 x 4 outputs per thread in registers (gemm.cu's versions 3-4), split-K
//                     for grad_w, whose K = N*OH*OW is long and whose M x Ng is small
// and the reference 0 (cuDNN), compiled only with SELFSUP_WITH_CUDNN. Versions 2 and 3 are one
// kernel each, written once over a "problem" (forward, backward data, backward weight) that says
// how to fetch A(m, k), B(k, n) and where C(m, n) goes: the tiling is the GEMM's, the gathers are
// the convolution's. float64 runs the direct kernels.
//
// Tails: every version works for every shape. Tile loads outside [0, M) x [0, K) or
// [0, K) x [0, Ng) read 0, stores outside C are skipped.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <limits>

#include "core/error.h"
#include "kernels/conv_plan.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/conv.h"
#include "kernels/cuda/runtime.h"

#if SELFSUP_WITH_CUDNN
#include <cudnn.h>

#include <mutex>
#include <string>
#endif

namespace selfsup::cuda {

namespace {

// The geometry of one convolution, checked on the host (every size fits an int; products of
// sizes are formed in int64_t on the device).
struct ConvShape {
  int N, C, H, W;  // input
  int O, KH, KW;   // weight
  int OH, OW;      // output
  int sh, sw, ph, pw;
  __host__ __device__ int64_t taps() const { return int64_t{C} * KH * KW; }  // C*KH*KW
  __host__ __device__ int64_t out_pixels() const { return int64_t{OH} * OW; }
};

// x[n, c, iy, ix], or 0 where (iy, ix) lies in the padding.
template <typename T>
__device__ __forceinline__ T load_x(const T* x, const ConvShape& s, int64_t n, int64_t c, int iy,
                                    int ix) {  // x [N, C, H, W]
  if (iy < 0 || iy >= s.H || ix < 0 || ix >= s.W) return T(0);
  return x[((n * s.C + c) * s.H + iy) * s.W + ix];
}

// Enough 256-thread blocks of a grid-stride loop to fill an H100/H200 (132 SMs) several times.
constexpr int kThreads = 256;
unsigned grid_for(int64_t n) {
  return static_cast<unsigned>(std::clamp<int64_t>(ceil_div(n, kThreads), 1, 132 * 16));
}

// ============================================================================================
// Version 1: direct convolution
// ============================================================================================
// The formula as a loop: one thread per element of the result, summing its taps straight from
// global memory (the caches catch the reuse between neighbouring threads). Consecutive threads
// take consecutive x, so the writes coalesce and the reads of x are nearly so. No shared memory,
// no limit on shapes, any T: the readable baseline, and the float64 path.

template <typename T>
__global__ void conv_fwd_v1_direct(ConvShape s, const T* x,  // x [N, C, H, W]
                                   const T* w,               // w [O, C, KH, KW]
                                   const T* bias,            // bias [O] or null
                                   T* out) {                 // out [N, O, OH, OW]
  const int64_t total = int64_t{s.N} * s.O * s.out_pixels();
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < total;
       e += int64_t{gridDim.x} * blockDim.x) {
    const int ox = static_cast<int>(e % s.OW);
    const int oy = static_cast<int>(e / s.OW % s.OH);
    const int64_t o = e / s.out_pixels() % s.O, n = e / (s.out_pixels() * s.O);
    T acc = bias ? bias[o] : T(0);
    for (int c = 0; c < s.C; ++c)
      for (int i = 0; i < s.KH; ++i)
        for (int j = 0; j < s.KW; ++j)
          acc += w[((o * s.C + c) * s.KH + i) * s.KW + j] *
                 load_x(x, s, n, c, oy * s.sh - s.ph + i, ox * s.sw - s.pw + j);
    out[e] = acc;
  }
}

// Backward data, "gather" form: one thread per input element (n, c, h, w) collects every output
// that read it. Output (y, x) read input row h through tap i when y*sh - ph + i == h, so for
// each tap the candidate y is (h + ph - i) / sh, valid when that division is exact and in range.
// Each thread owns its element: no atomics, deterministic.
template <typename T>
__global__ void conv_bwd_data_v1_direct(ConvShape s, const T* grad_out,  // [N, O, OH, OW]
                                        const T* w,                      // [O, C, KH, KW]
                                        T* grad_x) {                     // [N, C, H, W]
  const int64_t total = int64_t{s.N} * s.C * s.H * s.W;
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < total;
       e += int64_t{gridDim.x} * blockDim.x) {
    const int ix = static_cast<int>(e % s.W), iy = static_cast<int>(e / s.W % s.H);
    const int64_t c = e / (int64_t{s.H} * s.W) % s.C, n = e / (int64_t{s.H} * s.W * s.C);
    T acc = T(0);
    for (int64_t o = 0; o < s.O; ++o)
      for (int i = 0; i < s.KH; ++i) {
        const int ty = iy + s.ph - i;  // = y * sh for the output row y that used tap i here
        if (ty < 0 || ty % s.sh != 0 || ty / s.sh >= s.OH) continue;
        for (int j = 0; j < s.KW; ++j) {
          const int tx = ix + s.pw - j;
          if (tx < 0 || tx % s.sw != 0 || tx / s.sw >= s.OW) continue;
          acc += grad_out[((n * s.O + o) * s.OH + ty / s.sh) * s.OW + tx / s.sw] *
                 w[((o * s.C + c) * s.KH + i) * s.KW + j];
        }
      }
    grad_x[e] = acc;
  }
}

// Backward weight: one thread per weight element (o, c, i, j), summing over the whole batch and
// every output pixel (K = N*OH*OW terms in one thread: slow for big batches, but plain).
template <typename T>
__global__ void conv_bwd_weight_v1_direct(ConvShape s, const T* grad_out,  // [N, O, OH, OW]
                                          const T* x,                      // [N, C, H, W]
                                          T* grad_w) {                     // [O, C, KH, KW]
  const int64_t total = int64_t{s.O} * s.taps();
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < total;
       e += int64_t{gridDim.x} * blockDim.x) {
    const int j = static_cast<int>(e % s.KW), i = static_cast<int>(e / s.KW % s.KH);
    const int64_t c = e / (int64_t{s.KH} * s.KW) % s.C, o = e / s.taps();
    T acc = T(0);
    for (int64_t n = 0; n < s.N; ++n)
      for (int oy = 0; oy < s.OH; ++oy)
        for (int ox = 0; ox < s.OW; ++ox)
          acc += grad_out[((n * s.O + o) * s.OH + oy) * s.OW + ox] *
                 load_x(x, s, n, c, oy * s.sh - s.ph + i, ox * s.sw - s.pw + j);
    grad_w[e] = acc;
  }
}

// ============================================================================================
// grad_b: one block per output channel
// ============================================================================================
// grad_b[o] sums N*OH*OW values that sit in N runs of OH*OW consecutive floats. A block strides
// through them (coalesced), then reduces its threads' partial sums with warp shuffles. One
// block per channel writes its result once: no atomics, deterministic.
// common.cuh's block_sum is float-only; this is its twin for any T (it belongs there).

template <typename T>
__device__ T block_sum_any(T v, T* scratch) {  // scratch: 32 T of shared memory
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2)
    v += __shfl_xor_sync(kFullMask, v, offset);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < static_cast<int>(blockDim.x / kWarpSize) ? scratch[lane] : T(0);
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2)
    v += __shfl_xor_sync(kFullMask, v, offset);
  return v;
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    conv_bias_grad(ConvShape s, const T* grad_out,  // [N, O, OH*OW]
                   T* grad_b) {                     // [O]
  __shared__ T scratch[kWarpSize];
  const int64_t o = blockIdx.x, pixels = s.out_pixels();
  T acc = T(0);
  for (int64_t e = threadIdx.x; e < s.N * pixels; e += blockDim.x)
    acc += grad_out[(e / pixels * s.O + o) * pixels + e % pixels];
  acc = block_sum_any(acc, scratch);
  if (threadIdx.x == 0) grad_b[o] = acc;
}

// ============================================================================================
// The three GEMM views of a convolution (float32)
// ============================================================================================
// Each problem says what the tiled kernels multiply: its sizes, how to fetch A(m, k) and
// B(k, n) for indices inside [0, M) x [0, K) and [0, K) x [0, Ng) (the kernels handle the
// tails), and where C(m, n) goes. The index decompositions are the im2col / col2im arithmetic.
//
// Integer division is the hidden cost of a gather: a 64-bit divide is a ~70-instruction
// subroutine on the GPU, and a naive loader divides four times per element, against one FMA per
// element per output it feeds. So the GEMM indices are 32-bit (the launcher sends problems with
// a dimension near 2^31 to the direct kernels), and the part of A's index that depends only on
// the row m (the output pixel, for the forward pass) is decomposed once per thread into a Row
// (p.row(m)) and reused for every k; only k's (c, i, j) is split per load. Tensor offsets stay
// 64-bit.

struct GemmSize {
  int M;     // rows of C
  int Ng;    // columns of C
  int K;     // depth
  int kper;  // depth handled by one blockIdx.z (split-K); K when unsplit
};

// Forward: rows m = (n, y, x) of the output, depth k = (c, i, j), columns o.
struct FwdProblem {
  ConvShape s;
  GemmSize g;
  const float* x;     // [N, C, H, W]
  const float* w;     // [O, C*KH*KW]
  const float* bias;  // [O] or null
  float* out;         // [N, O, OH, OW]

  struct Row {
    int64_t n;     // image
    int iy0, ix0;  // input position of tap (0, 0): y*sh - ph, x*sw - pw
  };
  __device__ Row row(int m) const {
    const int ox = m % s.OW, oy = m / s.OW % s.OH;
    return {m / (s.OH * s.OW), oy * s.sh - s.ph, ox * s.sw - s.pw};
  }
  __device__ float a(const Row& r, int k) const {
    const int j = k % s.KW, i = k / s.KW % s.KH, c = k / (s.KH * s.KW);
    return load_x(x, s, r.n, c, r.iy0 + i, r.ix0 + j);
  }
  __device__ float b(int k, int o) const { return w[o * s.taps() + k]; }
  __device__ void store(int m, int o, float v) const {
    const int pixels = s.OH * s.OW, pixel = m % pixels, n = m / pixels;
    out[(int64_t{n} * s.O + o) * pixels + pixel] = bias ? v + bias[o] : v;
  }
};

// Backward data: rows m = (n, h, w) of the input, depth k = (o, i, j), columns c.
struct BwdDataProblem {
  ConvShape s;
  GemmSize g;
  const float* grad_out;  // [N, O, OH, OW]
  const float* w;         // [O, C, KH, KW]
  float* grad_x;          // [N, C, H, W]

  struct Row {
    int64_t n;     // image
    int ty0, tx0;  // h + ph, w + pw: y*sh + i and x*sw + j for every (tap, output) that read it
  };
  __device__ Row row(int m) const {
    const int ix = m % s.W, iy = m / s.W % s.H;
    return {m / (s.H * s.W), iy + s.ph, ix + s.pw};
  }
  // grad_out at the output pixel that read input (h, w) through tap (i, j); 0 if none did.
  __device__ float a(const Row& r, int k) const {
    const int j = k % s.KW, i = k / s.KW % s.KH, o = k / (s.KH * s.KW);
    const int ty = r.ty0 - i, tx = r.tx0 - j;  // y*sh and x*sw, when exact
    if (ty < 0 || tx < 0 || ty % s.sh != 0 || tx % s.sw != 0) return 0.f;
    const int oy = ty / s.sh, ox = tx / s.sw;
    if (oy >= s.OH || ox >= s.OW) return 0.f;
    return grad_out[((r.n * s.O + o) * s.OH + oy) * s.OW + ox];
  }
  __device__ float b(int k, int c) const {
    const int taps = s.KH * s.KW;  // k = o*KH*KW + (i*KW + j)
    return w[(int64_t{k / taps} * s.C + c) * taps + k % taps];
  }
  __device__ void store(int m, int c, float v) const {
    const int plane = s.H * s.W;
    grad_x[(int64_t{m / plane} * s.C + c) * plane + m % plane] = v;
  }
};

// Backward weight, as grad_w^T: rows m = (c, i, j), depth k = (n, y, x), columns o. Split-K:
// blockIdx.z sums its own slice of the depth into partial[z], and a second kernel adds the
// slices (no atomics, so the result does not depend on the order blocks run in).
struct BwdWeightProblem {
  ConvShape s;
  GemmSize g;
  const float* grad_out;  // [N, O, OH, OW]
  const float* x;         // [N, C, H, W]
  float* partial;         // [splits, O, C*KH*KW] (grad_w itself when unsplit)

  struct Row {
    int c, i, j;  // the tap
  };
  __device__ Row row(int m) const { return {m / (s.KH * s.KW), m / s.KW % s.KH, m % s.KW}; }
  __device__ float a(const Row& r, int k) const {
    const int ox = k % s.OW, oy = k / s.OW % s.OH, n = k / (s.OH * s.OW);
    return load_x(x, s, n, r.c, oy * s.sh - s.ph + r.i, ox * s.sw - s.pw + r.j);
  }
  __device__ float b(int k, int o) const {
    const int pixels = s.OH * s.OW;
    return grad_out[(int64_t{k / pixels} * s.O + o) * pixels + k % pixels];
  }
  __device__ void store(int m, int o, float v) const {
    partial[(blockIdx.z * int64_t{s.O} + o) * s.taps() + m] = v;
  }
};

// The slice of the depth this block sums: [k_begin, k_end).
template <class P>
__device__ __forceinline__ void depth_slice(const P& p, int& k_begin, int& k_end) {
  const int64_t begin = int64_t{blockIdx.z} * p.g.kper;
  k_begin = static_cast<int>(begin);
  k_end = static_cast<int>(min(int64_t{p.g.K}, begin + p.g.kper));
}

// ============================================================================================
// Version 2: implicit GEMM, 32 x 32 shared-memory tiles
// ============================================================================================
// gemm.cu's version 2 with a gathering loader. A block of 32 x 32 threads owns a 32 x 32 tile of
// C; per step each thread stages one A(m, k) (threadIdx.x along m: for the forward pass,
// neighbouring output pixels, so the reads of x coalesce) and one B(k, n) (threadIdx.x along k:
// a weight row is contiguous in k), then reads 32 of each from shared memory: global traffic
// drops 32-fold against version 1, and the im2col matrix exists only as these tiles.
// In the inner loop As[kk][tx] is 32 consecutive words and Bs[ty][kk] one word per warp (a
// broadcast). Cost: 8 KiB of shared memory, 1024 threads per block.

template <class P>
__global__ void __launch_bounds__(1024) conv_v2_smem(P p) {
  __shared__ float As[32][32];  // As[kk][mm] = A(m0 + mm, k0 + kk)
  __shared__ float Bs[32][32];  // Bs[nn][kk] = B(k0 + kk, n0 + nn)
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int m = blockIdx.x * 32 + tx;
  const int n = blockIdx.y * 32 + ty;  // also the column this thread loads B for
  const auto row = p.row(m);           // this thread's A row, decomposed once
  int k_begin, k_end;
  depth_slice(p, k_begin, k_end);
  float acc = 0.f;
  for (int k0 = k_begin; k0 < k_end; k0 += 32) {
    As[ty][tx] = m < p.g.M && k0 + ty < k_end ? p.a(row, k0 + ty) : 0.f;
    Bs[ty][tx] = k0 + tx < k_end && n < p.g.Ng ? p.b(k0 + tx, n) : 0.f;
    __syncthreads();
    for (int kk = 0; kk < 32; ++kk)
      acc += As[kk][tx] * Bs[ty][kk];
    __syncthreads();  // before the next step overwrites the tiles
  }
  if (m < p.g.M && n < p.g.Ng) p.store(m, n, acc);
}

// ============================================================================================
// Version 3: implicit GEMM, 64 x 64 tiles, 4 x 4 register block per thread
// ============================================================================================
// Version 2 does one FMA per two shared-memory loads. Here 256 threads own a 64 x 64 tile and
// each computes 4 x 4 results: per k it loads 4 A and 4 B values into registers and does 16 FMAs
// with them (8 loads per 16 FMAs), and each tile step stages 16 k at once. A thread's rows are
// tm, tm + 16, tm + 32, tm + 48 (not 4 adjacent ones) so that for each of its 4 stores the 16
// threads of a half-warp write 16 consecutive m: coalesced, as version 2.
// Loading: thread t always stages A row t % 64 (at depths t / 64 + 4r) and B depth t % 16 (at
// columns t / 16 + 16r), so its Row is decomposed once for the whole loop.
// Bs has a padding column: its loads run along k (a weight row), which without the pad would
// put 16 threads in one bank. Cost: 16 accumulators + 8 operands per thread; 8.2 KiB shared.
// For grad_w the grid's third dimension splits the depth (see BwdWeightProblem).

constexpr int kTileM = 64, kTileN = 64, kTileK = 16, kTileThreads = 256;

template <class P>
__global__ void __launch_bounds__(kTileThreads, 2) conv_v3_regs(P p) {
  __shared__ float As[kTileK][kTileM];      // As[kk][mm] = A(m0 + mm, k0 + kk)
  __shared__ float Bs[kTileK][kTileN + 1];  // Bs[kk][nn] = B(k0 + kk, n0 + nn)
  const int tid = threadIdx.x;
  const int m0 = blockIdx.x * kTileM, n0 = blockIdx.y * kTileN;
  const int tm = tid % 16, tn = tid / 16;              // results: rows tm + 16*r, columns tn + 16*c
  const int a_mm = tid % kTileM, a_kk = tid / kTileM;  // loads: A(m0 + a_mm, k0 + a_kk + 4r)
  const int b_kk = tid % kTileK, b_nn = tid / kTileK;  // loads: B(k0 + b_kk, n0 + b_nn + 16r)
  const bool a_row_ok = m0 + a_mm < p.g.M;
  const auto row = p.row(m0 + a_mm);
  int k_begin, k_end;
  depth_slice(p, k_begin, k_end);
  float acc[4][4] = {};
  for (int k0 = k_begin; k0 < k_end; k0 += kTileK) {
    for (int r = 0; r < kTileK * kTileM / kTileThreads; ++r) {  // 4 A values per thread
      const int kk = a_kk + r * (kTileThreads / kTileM);
      As[kk][a_mm] = a_row_ok && k0 + kk < k_end ? p.a(row, k0 + kk) : 0.f;
    }
    for (int r = 0; r < kTileK * kTileN / kTileThreads; ++r) {  // 4 B values per thread
      const int nn = b_nn + r * (kTileThreads / kTileK);
      Bs[b_kk][nn] = k0 + b_kk < k_end && n0 + nn < p.g.Ng ? p.b(k0 + b_kk, n0 + nn) : 0.f;
    }
    __syncthreads();
    for (int kk = 0; kk < kTileK; ++kk) {
      float ra[4], rb[4];
      for (int r = 0; r < 4; ++r)
        ra[r] = As[kk][tm + 16 * r];
      for (int c = 0; c < 4; ++c)
        rb[c] = Bs[kk][tn + 16 * c];
      for (int r = 0; r < 4; ++r)
        for (int c = 0; c < 4; ++c)
          acc[r][c] += ra[r] * rb[c];
    }
    __syncthreads();
  }
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) {
      const int m = m0 + tm + 16 * r, n = n0 + tn + 16 * c;
      if (m < p.g.M && n < p.g.Ng) p.store(m, n, acc[r][c]);
    }
}

// grad_w[e] = sum over the splits of partial[split, e]: the second half of split-K.
__global__ void sum_splits(const float* partial,  // [splits, count]
                           int splits, int64_t count,
                           float* out) {  // [count]
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < count;
       e += int64_t{gridDim.x} * blockDim.x) {
    float acc = 0.f;
    for (int z = 0; z < splits; ++z)
      acc += partial[z * count + e];
    out[e] = acc;
  }
}

// ============================================================================================
// Launchers
// ============================================================================================

// One tiled GEMM launch of version 2 or 3 over problem p, with splits slices of the depth
// (p.g.kper must be set to a multiple of both tile depths, 32 and 16, or to K).
template <class P>
void launch_tiled(const P& p, int version, int splits, const char* what) {
  const int tile_m = version == 2 ? 32 : kTileM, tile_n = version == 2 ? 32 : kTileN;
  const int64_t gx = ceil_div(p.g.M, tile_m), gy = ceil_div(p.g.Ng, tile_n);
  SELFSUP_CHECK(gx <= std::numeric_limits<int32_t>::max() && gy <= 65535 && splits <= 65535, what,
                ": GEMM of ", p.g.M, " x ", p.g.Ng, " needs a grid larger than CUDA allows");
  const dim3 grid(static_cast<unsigned>(gx), static_cast<unsigned>(gy),
                  static_cast<unsigned>(splits));
  if (version == 2)
    conv_v2_smem<<<grid, dim3(32, 32)>>>(p);
  else
    conv_v3_regs<<<grid, kTileThreads>>>(p);
  check_launch(what);
}

// The split of a long depth K over blockIdx.z: enough blocks to fill the GPU (~2 per SM on a
// 132-SM H100/H200) when M x Ng alone gives few tiles, but never slices under 512 deep (each
// slice writes a whole partial C). kper is a multiple of 32 so both versions' steps divide it.
void choose_split(GemmSize& g, int version, int& splits) {
  const int tile = version == 2 ? 32 : 64;
  const int64_t tiles = ceil_div(g.M, tile) * ceil_div(g.Ng, tile);
  const int64_t want = std::clamp<int64_t>(ceil_div(264, tiles), 1, 256);
  const int64_t most = std::max<int64_t>(1, g.K / 512);
  const int64_t s = std::min(want, most);
  g.kper = static_cast<int>(std::max<int64_t>(32, ceil_div(ceil_div(g.K, s), 32) * 32));
  splits = static_cast<int>(std::max<int64_t>(1, ceil_div(g.K, g.kper)));
}

// The GEMM sizes as ints (unsplit), or false when one comes within a tile of 2^31, beyond the
// 32-bit index math of versions 2-3: the callers then run the direct kernel (64-bit indices).
bool gemm_size(int64_t M, int64_t Ng, int64_t K, GemmSize& g) {
  constexpr int64_t kMax = std::numeric_limits<int>::max() - 1024;
  if (M > kMax || Ng > kMax || K > kMax) return false;
  g = {static_cast<int>(M), static_cast<int>(Ng), static_cast<int>(K), static_cast<int>(K)};
  return true;
}

template <typename T>
const T* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data_ptr<T>() : nullptr;
}

template <typename T>
void forward_direct(const ConvShape& s, const Tensor& x, const Tensor& w, const Tensor& bias,
                    Tensor& out) {
  conv_fwd_v1_direct<T><<<grid_for(out.numel()), kThreads>>>(
      s, x.data_ptr<T>(), w.data_ptr<T>(), ptr_or_null<T>(bias), out.data_ptr<T>());
  check_launch("conv2d (direct)");
}

void forward_tiled(const ConvShape& s, const Tensor& x, const Tensor& w, const Tensor& bias,
                   Tensor& out, int version) {
  GemmSize g{};
  if (!gemm_size(int64_t{s.N} * s.out_pixels(), s.O, s.taps(), g))
    return forward_direct<float>(s, x, w, bias, out);
  const FwdProblem p{s,
                     g,
                     x.data_ptr<float>(),
                     w.data_ptr<float>(),
                     ptr_or_null<float>(bias),
                     out.data_ptr<float>()};
  launch_tiled(p, version, 1, "conv2d (implicit GEMM)");
}

template <typename T>
void backward_data_direct(const ConvShape& s, const Tensor& grad_out, const Tensor& w,
                          Tensor& grad_x) {
  conv_bwd_data_v1_direct<T><<<grid_for(grad_x.numel()), kThreads>>>(
      s, grad_out.data_ptr<T>(), w.data_ptr<T>(), grad_x.data_ptr<T>());
  check_launch("conv2d_backward (grad_x, direct)");
}

void backward_data_tiled(const ConvShape& s, const Tensor& grad_out, const Tensor& w,
                         Tensor& grad_x, int version) {
  GemmSize g{};
  if (!gemm_size(int64_t{s.N} * s.H * s.W, s.C, int64_t{s.O} * s.KH * s.KW, g))
    return backward_data_direct<float>(s, grad_out, w, grad_x);
  const BwdDataProblem p{s, g, grad_out.data_ptr<float>(), w.data_ptr<float>(),
                         grad_x.data_ptr<float>()};
  launch_tiled(p, version, 1, "conv2d_backward (grad_x, implicit GEMM)");
}

template <typename T>
void backward_weight_direct(const ConvShape& s, const Tensor& grad_out, const Tensor& x,
                            Tensor& grad_w) {
  conv_bwd_weight_v1_direct<T><<<grid_for(grad_w.numel()), kThreads>>>(
      s, grad_out.data_ptr<T>(), x.data_ptr<T>(), grad_w.data_ptr<T>());
  check_launch("conv2d_backward (grad_w, direct)");
}

void backward_weight_tiled(const ConvShape& s, const Tensor& grad_out, const Tensor& x,
                           Tensor& grad_w, int version) {
  const char* what = "conv2d_backward (grad_w, implicit GEMM)";
  GemmSize g{};
  if (!gemm_size(s.taps(), s.O, int64_t{s.N} * s.out_pixels(), g))
    return backward_weight_direct<float>(s, grad_out, x, grad_w);
  int splits = 1;
  choose_split(g, version, splits);
  // Unsplit, the kernel writes grad_w directly; split, into a scratch [splits, O, C*KH*KW].
  Tensor partial =
      splits == 1 ? grad_w
                  : empty({splits, s.O, s.taps()}, TensorOptions(kFloat32).device(grad_w.device()));
  const BwdWeightProblem p{s, g, grad_out.data_ptr<float>(), x.data_ptr<float>(),
                           partial.data_ptr<float>()};
  launch_tiled(p, version, splits, what);
  if (splits == 1) return;
  sum_splits<<<grid_for(grad_w.numel()), kThreads>>>(partial.data_ptr<float>(), splits,
                                                     grad_w.numel(), grad_w.data_ptr<float>());
  check_launch(what);
}

template <typename T>
void bias_grad(const ConvShape& s, const Tensor& grad_out, Tensor& grad_b) {
  conv_bias_grad<T>
      <<<static_cast<unsigned>(s.O), kThreads>>>(s, grad_out.data_ptr<T>(), grad_b.data_ptr<T>());
  check_launch("conv2d_backward (grad_b)");
}

// ============================================================================================
// Version 0: cuDNN (only with SELFSUP_WITH_CUDNN)
// ============================================================================================
// The reference. Descriptors are made per call (cheap host work); the algorithm is cuDNN's own
// heuristic pick (the *_v7 queries, first one that works), the workspace a scratch tensor. FMA
// math keeps float32 exact, so the reference is the fp32 product our kernels compute.
#if SELFSUP_WITH_CUDNN

void check_cudnn(cudnnStatus_t st, const char* what) {
  SELFSUP_CHECK(st == CUDNN_STATUS_SUCCESS, "conv2d (cuDNN): ", what,
                " failed: ", cudnnGetErrorString(st));
}

cudnnHandle_t cudnn_handle() {
  static cudnnHandle_t handle = nullptr;
  static std::once_flag once;
  std::call_once(once, [] { check_cudnn(cudnnCreate(&handle), "cudnnCreate"); });
  return handle;
}

// The descriptors of one convolution, destroyed with it.
struct CudnnConv {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr, b = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  cudnnDataType_t type;
  double one_d = 1.0, zero_d = 0.0;  // alpha and beta: double for double data, float otherwise
  float one_f = 1.f, zero_f = 0.f;

  CudnnConv(const ConvShape& s, DType dtype)
      : type(dtype == kFloat64 ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT) {
    check_cudnn(cudnnCreateTensorDescriptor(&x), "cudnnCreateTensorDescriptor");
    check_cudnn(cudnnCreateTensorDescriptor(&y), "cudnnCreateTensorDescriptor");
    check_cudnn(cudnnCreateTensorDescriptor(&b), "cudnnCreateTensorDescriptor");
    check_cudnn(cudnnCreateFilterDescriptor(&w), "cudnnCreateFilterDescriptor");
    check_cudnn(cudnnCreateConvolutionDescriptor(&conv), "cudnnCreateConvolutionDescriptor");
    check_cudnn(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, type, s.N, s.C, s.H, s.W),
                "cudnnSetTensor4dDescriptor (x)");
    check_cudnn(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NCHW, type, s.N, s.O, s.OH, s.OW),
                "cudnnSetTensor4dDescriptor (out)");
    check_cudnn(cudnnSetTensor4dDescriptor(b, CUDNN_TENSOR_NCHW, type, 1, s.O, 1, 1),
                "cudnnSetTensor4dDescriptor (bias)");
    check_cudnn(cudnnSetFilter4dDescriptor(w, type, CUDNN_TENSOR_NCHW, s.O, s.C, s.KH, s.KW),
                "cudnnSetFilter4dDescriptor");
    check_cudnn(cudnnSetConvolution2dDescriptor(conv, s.ph, s.pw, s.sh, s.sw, 1, 1,
                                                CUDNN_CROSS_CORRELATION, type),
                "cudnnSetConvolution2dDescriptor");
    check_cudnn(cudnnSetConvolutionMathType(conv, CUDNN_FMA_MATH), "cudnnSetConvolutionMathType");
  }
  ~CudnnConv() {
    cudnnDestroyConvolutionDescriptor(conv);
    cudnnDestroyFilterDescriptor(w);
    cudnnDestroyTensorDescriptor(b);
    cudnnDestroyTensorDescriptor(y);
    cudnnDestroyTensorDescriptor(x);
  }
  CudnnConv(const CudnnConv&) = delete;
  CudnnConv& operator=(const CudnnConv&) = delete;
  const void* one() const {
    return type == CUDNN_DATA_DOUBLE ? static_cast<const void*>(&one_d)
                                     : static_cast<const void*>(&one_f);
  }
  const void* zero() const {
    return type == CUDNN_DATA_DOUBLE ? static_cast<const void*>(&zero_d)
                                     : static_cast<const void*>(&zero_f);
  }
};

// The first algorithm of cuDNN's ranked list that reports success.
template <typename Perf>
auto first_working(const Perf* perf, int count, const char* what) {
  for (int i = 0; i < count; ++i)
    if (perf[i].status == CUDNN_STATUS_SUCCESS) return perf[i].algo;
  throw Error(std::string("conv2d (cuDNN): no working algorithm for ") + what);
}

Tensor cudnn_workspace(size_t bytes, const Device& device) {
  return empty({static_cast<int64_t>(std::max<size_t>(bytes, 1))},
               TensorOptions(kUInt8).device(device));
}

void forward_cudnn(const ConvShape& s, const Tensor& x, const Tensor& w, const Tensor& bias,
                   Tensor& out) {
  const CudnnConv d(s, x.dtype());
  cudnnHandle_t h = cudnn_handle();
  cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  int count = 0;
  check_cudnn(cudnnGetConvolutionForwardAlgorithm_v7(
                  h, d.x, d.w, d.conv, d.y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &count, perf),
              "cudnnGetConvolutionForwardAlgorithm_v7");
  const cudnnConvolutionFwdAlgo_t algo = first_working(perf, count, "the forward pass");
  size_t bytes = 0;
  check_cudnn(cudnnGetConvolutionForwardWorkspaceSize(h, d.x, d.w, d.conv, d.y, algo, &bytes),
              "cudnnGetConvolutionForwardWorkspaceSize");
  Tensor ws = cudnn_workspace(bytes, x.device());
  check_cudnn(
      cudnnConvolutionForward(h, d.one(), d.x, x.raw_data_ptr(), d.w, w.raw_data_ptr(), d.conv,
                              algo, ws.raw_data_ptr(), bytes, d.zero(), d.y, out.raw_data_ptr()),
      "cudnnConvolutionForward");
  if (bias.defined())
    check_cudnn(
        cudnnAddTensor(h, d.one(), d.b, bias.raw_data_ptr(), d.one(), d.y, out.raw_data_ptr()),
        "cudnnAddTensor (bias)");
}

void backward_data_cudnn(const ConvShape& s, const Tensor& grad_out, const Tensor& w,
                         Tensor& grad_x) {
  const CudnnConv d(s, grad_out.dtype());
  cudnnHandle_t h = cudnn_handle();
  cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
  int count = 0;
  check_cudnn(cudnnGetConvolutionBackwardDataAlgorithm_v7(
                  h, d.w, d.y, d.conv, d.x, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &count, perf),
              "cudnnGetConvolutionBackwardDataAlgorithm_v7");
  const cudnnConvolutionBwdDataAlgo_t algo = first_working(perf, count, "grad_x");
  size_t bytes = 0;
  check_cudnn(cudnnGetConvolutionBackwardDataWorkspaceSize(h, d.w, d.y, d.conv, d.x, algo, &bytes),
              "cudnnGetConvolutionBackwardDataWorkspaceSize");
  Tensor ws = cudnn_workspace(bytes, grad_out.device());
  check_cudnn(cudnnConvolutionBackwardData(h, d.one(), d.w, w.raw_data_ptr(), d.y,
                                           grad_out.raw_data_ptr(), d.conv, algo, ws.raw_data_ptr(),
                                           bytes, d.zero(), d.x, grad_x.raw_data_ptr()),
              "cudnnConvolutionBackwardData");
}

void backward_weight_cudnn(const ConvShape& s, const Tensor& grad_out, const Tensor& x,
                           Tensor& grad_w) {
  const CudnnConv d(s, grad_out.dtype());
  cudnnHandle_t h = cudnn_handle();
  cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
  int count = 0;
  check_cudnn(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
                  h, d.x, d.y, d.conv, d.w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &count, perf),
              "cudnnGetConvolutionBackwardFilterAlgorithm_v7");
  const cudnnConvolutionBwdFilterAlgo_t algo = first_working(perf, count, "grad_w");
  size_t bytes = 0;
  check_cudnn(
      cudnnGetConvolutionBackwardFilterWorkspaceSize(h, d.x, d.y, d.conv, d.w, algo, &bytes),
      "cudnnGetConvolutionBackwardFilterWorkspaceSize");
  Tensor ws = cudnn_workspace(bytes, x.device());
  check_cudnn(cudnnConvolutionBackwardFilter(
                  h, d.one(), d.x, x.raw_data_ptr(), d.y, grad_out.raw_data_ptr(), d.conv, algo,
                  ws.raw_data_ptr(), bytes, d.zero(), d.w, grad_w.raw_data_ptr()),
              "cudnnConvolutionBackwardFilter");
}

void bias_grad_cudnn(const ConvShape& s, const Tensor& grad_out, Tensor& grad_b) {
  const CudnnConv d(s, grad_out.dtype());
  check_cudnn(cudnnConvolutionBackwardBias(cudnn_handle(), d.one(), d.y, grad_out.raw_data_ptr(),
                                           d.zero(), d.b, grad_b.raw_data_ptr()),
              "cudnnConvolutionBackwardBias");
}

#endif  // SELFSUP_WITH_CUDNN

// ============================================================================================
// Argument checks
// ============================================================================================

void check_operand(const Tensor& t, DType dtype, const char* op, const char* name) {
  SELFSUP_CHECK(t.defined(), op, ": ", name, " is undefined");
  SELFSUP_CHECK(t.device().is_cuda(), op, ": ", name, " must be on the CUDA device, got ",
                t.device().str());
  SELFSUP_CHECK(t.dtype() == dtype, op, ": ", name, " is ", dtype_name(t.dtype()), ", expected ",
                dtype_name(dtype));
  SELFSUP_CHECK(t.is_contiguous(), op, ": ", name, " ", shape_str(t.shape()),
                " must be contiguous");
}

int as_int(int64_t v, const char* op, const char* what) {
  SELFSUP_CHECK(v >= 0 && v <= std::numeric_limits<int>::max(), op, ": ", what, " ", v,
                " is out of range");
  return static_cast<int>(v);
}

// x and w checked against each other (CUDA, one float dtype, contiguous, 4-d, same channels).
ConvShape conv_shape(const Tensor& x, const Tensor& w, const Conv2dParams& p, const char* op) {
  SELFSUP_CHECK(x.defined() && w.defined(), op, ": input and weight must be defined");
  SELFSUP_CHECK(x.dtype() == kFloat32 || x.dtype() == kFloat64, op,
                ": input must be float32 or float64, got ", dtype_name(x.dtype()));
  check_operand(x, x.dtype(), op, "input");
  check_operand(w, x.dtype(), op, "weight");
  conv_plan::check_ranks(x, w, op);
  conv_plan::check_channels(x, w, op);
  ConvShape s{};
  s.N = as_int(x.size(0), op, "batch");
  s.C = as_int(x.size(1), op, "channels");
  s.H = as_int(x.size(2), op, "height");
  s.W = as_int(x.size(3), op, "width");
  s.O = as_int(w.size(0), op, "output channels");
  s.KH = as_int(w.size(2), op, "kernel height");
  s.KW = as_int(w.size(3), op, "kernel width");
  s.OH =
      as_int(conv_plan::checked_out_size(s.H, s.KH, p.stride_h, p.pad_h, op), op, "output height");
  s.OW =
      as_int(conv_plan::checked_out_size(s.W, s.KW, p.stride_w, p.pad_w, op), op, "output width");
  s.sh = as_int(p.stride_h, op, "stride");
  s.sw = as_int(p.stride_w, op, "stride");
  s.ph = as_int(p.pad_h, op, "padding");
  s.pw = as_int(p.pad_w, op, "padding");
  return s;
}

void check_version(int version, const char* op) {
  SELFSUP_CHECK(version >= 0 && version < kConvVersionCount, op, ": unknown version ", version,
                " (0..", kConvVersionCount - 1, ")");
  SELFSUP_CHECK(version != kConvCudnn || conv_cudnn_available(), op,
                ": version 0 (cuDNN) is not in this build (configure with SELFSUP_CUDNN=ON where "
                "cuDNN is installed)");
}

// The version that actually runs: float64 and empty problems take the direct kernels (which
// accept anything, and write the zeros an empty sum gives).
int effective_version(int version, DType dtype, bool empty_problem) {
  if (version == kConvCudnn) return empty_problem ? 1 : kConvCudnn;
  return dtype == kFloat64 ? 1 : version;
}

}  // namespace

// ============================================================================================
// Entry points
// ============================================================================================

const char* conv_version_name(int version) {
  static const char* const names[kConvVersionCount] = {"cudnn", "direct", "igemm_smem_32",
                                                       "igemm_regs_64"};
  return version >= 0 && version < kConvVersionCount ? names[version] : "?";
}

bool conv_cudnn_available() {
#if SELFSUP_WITH_CUDNN
  return true;
#else
  return false;
#endif
}

void conv2d_forward_version(const Tensor& x, const Tensor& w, const Tensor& bias,
                            const Conv2dParams& p, Tensor& out, int version) {
  const char* op = "conv2d";
  check_version(version, op);
  const ConvShape s = conv_shape(x, w, p, op);
  conv_plan::check_forward_outputs(op, x, w, bias, out, {s.N, s.O, s.OH, s.OW}, check_operand);
  if (out.numel() == 0) return;
  const int v = effective_version(version, x.dtype(), x.numel() == 0 || w.numel() == 0);
  if (v == kConvCudnn) {
#if SELFSUP_WITH_CUDNN
    forward_cudnn(s, x, w, bias, out);
#endif
  } else if (v == 1) {
    if (x.dtype() == kFloat64)
      forward_direct<double>(s, x, w, bias, out);
    else
      forward_direct<float>(s, x, w, bias, out);
  } else {
    forward_tiled(s, x, w, bias, out, v);
  }
  out.bump_version();
}

void conv2d_backward_version(const Tensor& grad_out, const Tensor& x, const Tensor& w,
                             const Conv2dParams& p, Tensor& grad_x, Tensor& grad_w, Tensor& grad_b,
                             int version) {
  const char* op = "conv2d_backward";
  check_version(version, op);
  const ConvShape s = conv_shape(x, w, p, op);
  const DType dt = x.dtype();
  conv_plan::check_backward_grads(op, x, w, grad_out, {s.N, s.O, s.OH, s.OW}, grad_x, grad_w,
                                  grad_b, check_operand);
  const int v =
      effective_version(version, dt, grad_out.numel() == 0 || x.numel() == 0 || w.numel() == 0);
  const bool f64 = dt == kFloat64;

  if (grad_b.defined() && grad_b.numel() > 0) {
#if SELFSUP_WITH_CUDNN
    if (v == kConvCudnn) bias_grad_cudnn(s, grad_out, grad_b);
#endif
    if (v != kConvCudnn)
      f64 ? bias_grad<double>(s, grad_out, grad_b) : bias_grad<float>(s, grad_out, grad_b);
    grad_b.bump_version();
  }
  if (grad_x.defined() && grad_x.numel() > 0) {
#if SELFSUP_WITH_CUDNN
    if (v == kConvCudnn) backward_data_cudnn(s, grad_out, w, grad_x);
#endif
    if (v == 1)
      f64 ? backward_data_direct<double>(s, grad_out, w, grad_x)
          : backward_data_direct<float>(s, grad_out, w, grad_x);
    if (v >= 2) backward_data_tiled(s, grad_out, w, grad_x, v);
    grad_x.bump_version();
  }
  if (grad_w.defined() && grad_w.numel() > 0) {
#if SELFSUP_WITH_CUDNN
    if (v == kConvCudnn) backward_weight_cudnn(s, grad_out, x, grad_w);
#endif
    if (v == 1)
      f64 ? backward_weight_direct<double>(s, grad_out, x, grad_w)
          : backward_weight_direct<float>(s, grad_out, x, grad_w);
    if (v >= 2) backward_weight_tiled(s, grad_out, x, grad_w, v);
    grad_w.bump_version();
  }
}

void conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& p,
            Tensor& out) {
  conv2d_forward_version(x, w, bias, p, out, kConvDefault);
}

void conv2d_backward(const Tensor& grad_out, const Tensor& x, const Tensor& w,
                     const Conv2dParams& p, Tensor& grad_x, Tensor& grad_w, Tensor& grad_b) {
  conv2d_backward_version(grad_out, x, w, p, grad_x, grad_w, grad_b, kConvDefault);
}

}  // namespace selfsup::cuda
