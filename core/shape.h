// Shape arithmetic: element counts, contiguous strides, dim normalisation and NumPy broadcasting.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace selfsup {

using Shape = std::vector<int64_t>;

int64_t shape_numel(const Shape& shape);

// Row-major strides for a shape: [2, 3, 4] -> [12, 4, 1].
Shape contiguous_strides(const Shape& shape);

// Maps a possibly negative dim into [0, ndim); throws naming op when out of range.
int64_t normalize_dim(int64_t dim, int64_t ndim, const char* op);

// NumPy broadcasting of two shapes; throws "op: shapes [..] and [..] cannot be broadcast".
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

// The strides that read a tensor of (shape, strides) as if it had the broadcast shape `target`
// (stride 0 along broadcast dims). `target` must be a broadcast of `shape`.
Shape broadcast_strides(const Shape& shape, const Shape& strides, const Shape& target);

// The shape left after reducing `dims` (empty dims = all dims); keepdim leaves 1s in place.
Shape reduced_shape(const Shape& shape, const std::vector<int64_t>& dims, bool keepdim,
                    const char* op);

// Normalised, sorted, de-duplicated reduction dims (empty input = every dim).
std::vector<int64_t> normalize_dims(const std::vector<int64_t>& dims, int64_t ndim, const char* op);

}  // namespace selfsup
