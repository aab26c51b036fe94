// Indexing and joining on the CPU: index_select, gather, scatter_add, cat. Indices are int64;
// an out-of-range index is an Error naming the op, the value and the size. Any dtype.
#pragma once

#include <vector>

#include "core/tensor.h"

namespace selfsup::cpu {

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

}  // namespace selfsup::cpu
