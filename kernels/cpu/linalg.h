// Matrix products on the CPU. Inputs may have any strides (a transposed view is read without
// a copy where Eigen can map it); `out` is contiguous and allocated by the caller.
// float32 and float64.
#pragma once

#include "core/tensor.h"

namespace selfsup::cpu {

// out[M, N] = a[M, K] @ b[K, N]              (Eigen GEMM, OpenMP-parallel)
void matmul(const Tensor& a, const Tensor& b, Tensor& out);
// out[B, M, N] = a[B, M, K] @ b[B, K, N]     (batch dim parallel when B is large)
void bmm(const Tensor& a, const Tensor& b, Tensor& out);
// The readable references: a plain triple loop, the same contracts as above.
void matmul_reference(const Tensor& a, const Tensor& b, Tensor& out);
void bmm_reference(const Tensor& a, const Tensor& b, Tensor& out);

}  // namespace selfsup::cpu
