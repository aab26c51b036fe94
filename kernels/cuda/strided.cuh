// The strided walk shared by the kernels that visit every element of a shape through K
// operands' strides (kernels/cuda/elementwise.cu, copy.cu, index.cu), and the grid-stride loop
// helpers. Written once here.
//
// A Walk travels to the kernel by value (8 + 8 * 16 * (K + 1) bytes, at most 648 for 4
// operands, well under the 4 KiB kernel-argument limit). Dims are stored innermost first, so
// offsets_of peels the flat index from the fastest dim with compile-time array indices
// (registers / the parameter bank, no local memory). simplify_walk prepares it on the host:
// size-1 dims dropped, and a dim fused into the one inside it when every operand steps over the
// inner dim exactly (stride_outer == stride_inner * size_inner), keeping row-major order; a
// transposed matrix becomes a 2-dim walk, a contiguous tensor a 1-dim one.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cstdint>

#include "core/error.h"
#include "core/shape.h"
#include "kernels/cuda/common.cuh"

namespace selfsup::cuda {

constexpr int kMaxWalkDims = 16;  // dims of a walk after simplification

template <int K>
struct Walk {
  int ndim;                         // 0 (a single element) .. kMaxWalkDims
  int64_t size[kMaxWalkDims];       // size[0] is the innermost dim
  int64_t stride[K][kMaxWalkDims];  // operand k's step along each dim, in elements (0 = broadcast)
};

// off[k] = element offset of operand k at flat row-major index i of the walked shape.
template <int K>
__device__ __forceinline__ void offsets_of(int64_t i, const Walk<K>& w, int64_t (&off)[K]) {
#pragma unroll
  for (int k = 0; k < K; ++k)
    off[k] = 0;
#pragma unroll
  for (int d = 0; d < kMaxWalkDims; ++d) {
    if (d == w.ndim) break;
    const int64_t q = i / w.size[d];
    const int64_t r = i - q * w.size[d];
#pragma unroll
    for (int k = 0; k < K; ++k)
      off[k] += r * w.stride[k][d];
    i = q;
  }
}

// ---- grid-stride loops: for (i = first_index(); i < n; i += grid_step()) ----

__device__ __forceinline__ int64_t first_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_step() {
  return static_cast<int64_t>(gridDim.x) * blockDim.x;
}

// Blocks for a grid-stride loop over n elements: one per `threads` elements, capped at
// max_blocks (enough to fill the GPU; each thread then takes several elements).
inline unsigned grid_stride_blocks(int64_t n, int threads, int64_t max_blocks = 4096) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min(ceil_div(n, threads), max_blocks)));
}

// The walk over `shape` for K operands with these (broadcast) strides, each one stride per dim
// of `shape`. An Error names `op` when more than kMaxWalkDims dims survive the merging.
template <int K>
Walk<K> simplify_walk(const char* op, const Shape& shape, const std::array<Shape, K>& strides) {
  Walk<K> w{};
  w.ndim = 0;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    if (shape[d] == 1) continue;
    if (w.ndim > 0) {
      const int in = w.ndim - 1;
      bool fuses = true;
      for (int k = 0; k < K; ++k)
        fuses = fuses && strides[k][d] == w.stride[k][in] * w.size[in];
      if (fuses) {
        w.size[in] *= shape[d];
        continue;
      }
    }
    SELFSUP_CHECK(w.ndim < kMaxWalkDims, op, " (cuda): shape ", shape_str(shape),
                  " needs more than ", kMaxWalkDims, " dims after merging");
    w.size[w.ndim] = shape[d];
    for (int k = 0; k < K; ++k)
      w.stride[k][w.ndim] = strides[k][d];
    ++w.ndim;
  }
  return w;
}

}  // namespace selfsup::cuda
