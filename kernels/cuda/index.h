// Indexing and joining on the GPU (kernels/cuda/index.cu), for C++ callers: plain C++, no CUDA
// types. The same entry points and contracts as kernels/cpu/index.h (the reference): int64
// indices of any strides, data tensors of any strides, every tensor on one CUDA device. An index
// out of range is the CPU's Error ("<op>: index <v> is out of range for dim <d> with size <n>",
// naming the first bad one in row-major order), found on the device before anything is written.
//
// Dtypes: index_select, gather and cat copy any dtype. index_add_ and scatter_add_ take
// float32, float64 and int64: repeated indices accumulate with atomicAdd, so the order of a
// float sum is not deterministic (results may differ from the CPU, and from run to run, by
// rounding); int64 sums are exact.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "core/tensor.h"

namespace selfsup::cuda {

// out = x.index_select(dim, index): out.shape() = x.shape() with shape[dim] = index.numel().
void index_select(const Tensor& x, int64_t dim, const Tensor& index, Tensor& out);
// out[..., index[i], ...] += src[..., i, ...] along dim (the backward of index_select).
void index_add_(Tensor& out, int64_t dim, const Tensor& index, const Tensor& src);
// out[i][j] = x[i][index[i][j]] (for dim 1; any dim): out.shape() == index.shape().
void gather(const Tensor& x, int64_t dim, const Tensor& index, Tensor& out);
// out[i][index[i][j]] += src[i][j] (for dim 1; any dim), in place; index.shape() == src.shape().
void scatter_add_(Tensor& out, int64_t dim, const Tensor& index, const Tensor& src);
// Concatenation along dim; out is allocated by the caller with the joined shape.
void cat(const std::vector<Tensor>& xs, int64_t dim, Tensor& out);

namespace detail {
// The first element, in row-major order, of `index` (int64 on a CUDA device, any shape and
// strides) outside [0, size), or nullopt when all are in range. One pass on the device and one
// 8-byte copy back (a synchronisation); a second one only when there is a bad index.
std::optional<int64_t> first_out_of_range(const Tensor& index, int64_t size);
}  // namespace detail

}  // namespace selfsup::cuda
