// The on-device strided copy (kernels/cuda/copy.cu), for C++ callers: plain C++, no CUDA types.
// core reaches it through raw::set_strided_copy (registered by cuda::register_backend), so
// raw::copy_, clone, contiguous and to_dtype work on CUDA tensors of any layout.
#pragma once

#include "core/tensor.h"

namespace selfsup::cuda {

// raw::copy_'s contract on one CUDA device: src is broadcast to dst's shape and converted to
// dst's dtype (any of the four, C++ static_cast rules); any strides on either side. dst must not
// overlap src (as on the CPU) and must not have stride 0 along a dim longer than 1 (an expanded
// tensor cannot be written: its elements alias). Does not bump dst's version (copy_ does).
void strided_copy(Tensor& dst, const Tensor& src);

}  // namespace selfsup::cuda
