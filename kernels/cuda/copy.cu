// ============================================================================================
// Strided copy on the device: dst[p] = D(src[p broadcast]) for every position p of dst
// ============================================================================================
//
// What raw::copy_ does on the CPU (core/views.cpp), for two tensors on one CUDA device: src is
// broadcast to dst's shape S and converted to dst's dtype with C++'s static_cast rules (float
// to int truncates toward zero; values out of an integer type's range, and NaN, are undefined in
// C++ and may differ from the CPU: the GPU's conversions saturate). It is what clone,
// contiguous, to_dtype and every "make this input contiguous" of the CUDA kernels run on.
//
//   dst: shape S, any non-overlapping strides        src: broadcasts to S, any strides
//
// No FLOPs: numel(S) loads and stores, (sizeof(D) + sizeof(S)) * numel bytes at least, so it is
// bound by memory bandwidth; the aim is coalesced stores and no wasted index math.
//
// Three paths, picked by the launcher:
//  1. same dtype, both contiguous with one shape: cudaMemcpyAsync (the driver's copy engine).
//  2. both contiguous with one shape, dtypes differ: dst[i] = D(src[i]), a grid-stride loop.
//  3. anything else: each thread turns its flat row-major index into one element offset per
//     operand with a div/mod per dim (Walk, kernels/cuda/strided.cuh). The walk is simplified on
//     the host first: size-1 dims dropped and neighbouring dims that both operands step over as one
//     fused, so a transposed matrix is a 2-dim walk and a narrowed row block a 1- or 2-dim one.
// All launches go to the default stream, so the copy is ordered with every other kernel.
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <type_traits>

#include "core/error.h"
#include "core/shape.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/copy.h"
#include "kernels/cuda/runtime.h"
#include "kernels/cuda/strided.cuh"
#include "kernels/writable.h"

namespace selfsup::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 4096;  // grid-stride loops: enough blocks to fill the GPU

// ============================================================================================
// Kernels
// ============================================================================================

// Path 2: one dtype to another, element i to element i; neighbouring threads, neighbouring
// addresses on both sides.
template <typename D, typename S>
__global__ void __launch_bounds__(kThreads)
    convert_contiguous(D* dst, const S* src, int64_t n) {  // dst, src: [n]
  for (int64_t i = first_index(); i < n; i += grid_step())
    dst[i] = static_cast<D>(src[i]);
}

// Path 3: any strides. The walk's innermost dim is dst's fastest-moving one, so when dst is
// contiguous the stores stay coalesced and only the loads scatter (a transpose reads columns).
template <typename D, typename S>
__global__ void __launch_bounds__(kThreads)
    convert_strided(D* dst, const S* src, Walk<2> w, int64_t n) {  // w: [0] dst, [1] src
  for (int64_t i = first_index(); i < n; i += grid_step()) {
    int64_t off[2];
    offsets_of(i, w, off);
    dst[off[0]] = static_cast<D>(src[off[1]]);
  }
}

// ============================================================================================
// Host side
// ============================================================================================

unsigned grid_for(int64_t n) {
  return grid_stride_blocks(n, kThreads, kMaxBlocks);
}

void check_copy(const Tensor& dst, const Tensor& src) {
  SELFSUP_CHECK(dst.device().is_cuda() && src.device() == dst.device(), "copy_ (cuda): tensors on ",
                src.device().str(), " and ", dst.device().str(),
                " (both must be on one CUDA device)");
  SELFSUP_CHECK(broadcast_shapes(dst.shape(), src.shape(), "copy_") == dst.shape(),
                "copy_: source of shape ", shape_str(src.shape()),
                " cannot be broadcast to destination shape ", shape_str(dst.shape()));
  kernels::check_not_expanded("copy_ (cuda)", "destination", dst);
}

template <typename D, typename S>
void launch_copy(Tensor& dst, const Tensor& src) {
  const int64_t n = dst.numel();
  D* pd = dst.data_ptr<D>();        // dst.shape(), any strides
  const S* ps = src.data_ptr<S>();  // broadcasts to dst.shape()
  const bool flat = dst.is_contiguous() && src.is_contiguous() && src.shape() == dst.shape();
  if (flat && std::is_same_v<D, S>) {
    check(cudaMemcpyAsync(pd, ps, n * sizeof(D), cudaMemcpyDeviceToDevice, 0), "copy_ (cuda)");
    return;
  }
  if (flat) {
    convert_contiguous<<<grid_for(n), kThreads>>>(pd, ps, n);
  } else {
    const Walk<2> w = simplify_walk<2>(
        "copy_", dst.shape(),
        {dst.strides(), broadcast_strides(src.shape(), src.strides(), dst.shape())});
    convert_strided<<<grid_for(n), kThreads>>>(pd, ps, w, n);
  }
  check_launch("copy_ (cuda)");
}

}  // namespace

// ============================================================================================
// Entry point
// ============================================================================================

void strided_copy(Tensor& dst, const Tensor& src) {
  check_copy(dst, src);
  if (dst.numel() == 0) return;
  dispatch_dtype(dst.dtype(), [&](auto dtag) {
    dispatch_dtype(src.dtype(),
                   [&](auto stag) { launch_copy<decltype(dtag), decltype(stag)>(dst, src); });
  });
}

}  // namespace selfsup::cuda
