// Strided iteration: walk the elements of one or more tensors of the same (broadcast) shape in
// row-major order, tracking each tensor's element offset. The innermost dim is a plain loop so
// the compiler sees a simple stride; the outer dims advance like an odometer.
#pragma once

#include <array>
#include <cstdint>

#include "core/shape.h"

namespace selfsup {

// Calls body(offsets, n, inner_strides) for each run along the innermost dim: `offsets[k]` is the
// element offset of operand k at the run's start, `inner_strides[k]` its step within the run.
// `strides[k]` are operand k's strides for `shape` (use broadcast_strides for broadcasting).
template <size_t K, typename Body>
void for_each_run(const Shape& shape, const std::array<const Shape*, K>& strides,
                  const std::array<int64_t, K>& base, Body&& body) {
  const int64_t nd = static_cast<int64_t>(shape.size());
  if (shape_numel(shape) == 0) return;
  std::array<int64_t, K> inner{};
  for (size_t k = 0; k < K; ++k)
    inner[k] = nd ? (*strides[k])[nd - 1] : 0;
  const int64_t run = nd ? shape[nd - 1] : 1;
  const int64_t outer = nd ? shape_numel(shape) / std::max<int64_t>(run, 1) : 1;
  Shape idx(nd > 1 ? nd - 1 : 0, 0);
  std::array<int64_t, K> off = base;
  for (int64_t o = 0; o < outer; ++o) {
    body(off, run, inner);
    // Odometer increment over dims nd-2 .. 0.
    for (int64_t d = nd - 2; d >= 0; --d) {
      if (++idx[d] < shape[d]) {
        for (size_t k = 0; k < K; ++k)
          off[k] += (*strides[k])[d];
        break;
      }
      for (size_t k = 0; k < K; ++k)
        off[k] -= (*strides[k])[d] * (shape[d] - 1);
      idx[d] = 0;
    }
  }
}

// The element offset of flat row-major index `i` in a tensor of (shape, strides).
inline int64_t strided_offset(int64_t i, const Shape& shape, const Shape& strides) {
  int64_t off = 0;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    off += (i % shape[d]) * strides[d];
    i /= shape[d];
  }
  return off;
}

}  // namespace selfsup
