// Device helpers shared by the kernel chapters (gemm.cu, softmax_xent.cu, xcorr.cu, ema.cu),
// written once: ceil division, 16-byte vector loads, and warp / block reductions.
//
// Reductions use warp shuffles (__shfl_xor_sync): after the butterfly every lane holds the
// result, so no lane has to broadcast it. A block reduction reduces each warp, parks the 32
// partial results in shared memory, and lets the first warp reduce those.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace selfsup::cuda {

constexpr int kWarpSize = 32;
constexpr unsigned kFullMask = 0xffffffffu;

__host__ __device__ inline int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// True when a float pointer may be read 4 floats at a time (16-byte aligned).
__host__ __device__ inline bool aligned16(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

// 16-byte load/store of 4 consecutive floats; p must be 16-byte aligned (callers check with
// aligned16 on the base pointer and keep offsets multiples of 4).
__device__ inline float4 load_float4(const float* p) {
  return *reinterpret_cast<const float4*>(p);
}
__device__ inline void store_float4(float* p, float4 v) {
  *reinterpret_cast<float4*>(p) = v;
}

// ---------------------------------------------------------------------------------- warps

__device__ inline float warp_sum(float v) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2)
    v += __shfl_xor_sync(kFullMask, v, offset);
  return v;
}

__device__ inline float warp_max(float v) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2)
    v = fmaxf(v, __shfl_xor_sync(kFullMask, v, offset));
  return v;
}

// Online-softmax state of a run of values: its maximum m and sum of exp(x - m). Two states
// merge by rescaling the smaller maximum's sum; -INFINITY marks an empty run (sum 0).
struct MaxSum {
  float max;
  float sum;
};

__device__ inline MaxSum merge_max_sum(MaxSum a, MaxSum b) {
  const float m = fmaxf(a.max, b.max);
  if (m == -INFINITY) return {m, 0.f};  // both empty: avoid exp(-inf - -inf) = NaN
  return {m, a.sum * expf(a.max - m) + b.sum * expf(b.max - m)};
}

// Adds one value to a running state with one exp: the sum is rescaled only when the maximum
// grows. -INFINITY (a masked entry) adds nothing.
__device__ inline MaxSum push_max_sum(MaxSum s, float v) {
  if (v == -INFINITY) return s;
  if (v > s.max) return {v, s.sum * expf(s.max - v) + 1.f};  // expf(-inf) = 0 for the empty run
  return {s.max, s.sum + expf(v - s.max)};
}

__device__ inline MaxSum warp_max_sum(MaxSum v) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    MaxSum other{__shfl_xor_sync(kFullMask, v.max, offset),
                 __shfl_xor_sync(kFullMask, v.sum, offset)};
    v = merge_max_sum(v, other);
  }
  return v;
}

// ---------------------------------------------------------------------------------- blocks
// Every thread of the block must call these (they synchronise), with blockDim.x a multiple of
// 32 and at most 1024. `scratch` is __shared__ space for 32 values; the result is returned to
// every thread. The trailing __syncthreads lets the caller reuse scratch at once.

__device__ inline float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int warps = blockDim.x / kWarpSize;
  v = warp_sum(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : 0.f;
  v = warp_sum(v);  // every warp reduces the partials, so every thread has the total
  __syncthreads();
  return v;
}

__device__ inline float block_max(float v, float* scratch) {
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int warps = blockDim.x / kWarpSize;
  v = warp_max(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : -INFINITY;
  v = warp_max(v);
  __syncthreads();
  return v;
}

__device__ inline MaxSum block_max_sum(MaxSum v, float* scratch_max, float* scratch_sum) {
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int warps = blockDim.x / kWarpSize;
  v = warp_max_sum(v);
  if (lane == 0) {
    scratch_max[warp] = v.max;
    scratch_sum[warp] = v.sum;
  }
  __syncthreads();
  v = lane < warps ? MaxSum{scratch_max[lane], scratch_sum[lane]} : MaxSum{-INFINITY, 0.f};
  v = warp_max_sum(v);
  __syncthreads();
  return v;
}

}  // namespace selfsup::cuda
