// The rule every kernel output follows on both backends: no memory location is written twice.
#pragma once

#include <cstdint>

#include "core/error.h"
#include "core/shape.h"
#include "core/tensor.h"

namespace selfsup::kernels {

// An expanded tensor (stride 0 along a dim of size > 1) would have several results written to
// one place, and which one stays would depend on the CPU's loop order or the GPU's thread
// schedule: refuse it, naming the op, the output and the dim.
inline void check_not_expanded(const char* op, const char* name, const Tensor& out) {
  for (int64_t d = 0; d < out.dim(); ++d)
    SELFSUP_CHECK(out.stride(d) != 0 || out.size(d) <= 1, op, ": ", name, " of shape ",
                  shape_str(out.shape()), " has stride 0 along dim ", d,
                  " (an expanded tensor cannot be written)");
}

}  // namespace selfsup::kernels
