// Batched single-precision GEMM on the GPU (kernels/cuda/gemm.cu), for C++ callers: plain C++,
// no CUDA types. Tensors live on the CUDA device.
//
//   C[b] = alpha * op(A[b]) @ op(B[b]) + beta * C[b]          for b in [0, B)
//
// Row-major layouts (the backward passes of a matmul need all three):
//   NN:  a [B, M, K]  b [B, K, N]      C = A B
//   NT:  a [B, M, K]  b [B, N, K]      C = A B^T     (grad_x = grad_y W^T)
//   TN:  a [B, K, M]  b [B, K, N]      C = A^T B     (grad_W = x^T grad_y)
// c is [B, M, N] and contiguous. 2-d tensors are a batch of one. a and b may be views whose last
// dimension is contiguous (stride 1) and whose rows are any distance apart (a narrowed view),
// and whose batch stride may be 0 (one matrix shared by every batch entry, an expanded view).
// When beta == 0, C is not read (NaN in C does not leak into the result).
#pragma once

#include <cstdint>
#include <string>

#include "core/tensor.h"

namespace selfsup::cuda {

enum class GemmLayout { NN, NT, TN };

// The versions (see gemm.cu for what each changes):
//   0 cuBLAS fp32 (cublasSgemmStridedBatched): the reference
//   1 naive  2 shared-memory tiles  3 1-d register blocking  4 2-d register blocking
//   5 float4 loads + transposed A tile  6 warp tiles + double buffering
//   7 TF32 tensor cores (mma.sync m16n8k8): inputs rounded to 10-bit mantissas, ~1e-3 relative
//   8 cuBLAS TF32 (cublasGemmStridedBatchedEx, CUBLAS_COMPUTE_32F_FAST_TF32): 7's reference
// Every version accepts every size: tails are bounds-checked inside the kernels, and versions
// 5-7 take 16-byte loads only where a tile's row is in bounds and the operand is 16-byte aligned
// (gemm_float4_ok), falling back to scalar loads per element otherwise.
inline constexpr int kGemmCublas = 0;
inline constexpr int kGemmCublasTf32 = 8;
inline constexpr int kGemmVersionCount = 9;  // 0..8
// The default: the fastest fp32-exact hand-written version. TF32 (7) is opt-in, as PyTorch's
// allow_tf32, because it changes results at the 1e-3 level.
inline constexpr int kGemmDefault = 6;

// "cublas", "naive", ..., for benchmark names and messages; "?" for an unknown version.
const char* gemm_version_name(int version);

// May versions 5-7 read this operand 4 floats at a time? Its base address must be 16-byte
// aligned and its row and batch strides (in floats) multiples of 4, so that every aligned
// 4-element group of a row is 16-byte aligned too. Pure, host-side: tested without a GPU.
inline bool gemm_float4_ok(uintptr_t address, int64_t row_stride, int64_t batch_stride) {
  return address % 16 == 0 && row_stride % 4 == 0 && batch_stride % 4 == 0;
}

// Can gemm read a matrix view of rows x cols with these strides in place? Its rows must be
// contiguous and must not overlap: an expanded view (row stride 0) has every row at one address
// and would be read as if its rows were packed one after another. One row, or rows of no
// columns, read the same with any row stride. gemm refuses any other operand; dispatch copies
// it (or its transpose) first. Pure, host-side: tested without a GPU.
inline bool gemm_reads_in_place(int64_t rows, int64_t cols, int64_t row_stride,
                                int64_t col_stride) {
  const bool contiguous_rows = col_stride == 1 || cols <= 1;
  return contiguous_rows && (rows <= 1 || cols == 0 || row_stride >= cols);
}

// The batched product above. Throws selfsup::Error (before touching the GPU) for a version out
// of range, tensors not on the CUDA device or not float32, mismatched shapes, a batch stride of
// c that is not M*N, or inner strides the kernels cannot read.
void gemm(GemmLayout layout, const Tensor& a, const Tensor& b, Tensor& c, float alpha = 1.f,
          float beta = 0.f, int version = kGemmDefault);

}  // namespace selfsup::cuda
