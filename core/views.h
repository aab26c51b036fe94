// Raw tensor views and copies: no autograd graph. autograd/ wraps each of these in a recorded
// op; kernels and core use them directly. Every view shares storage with its input.
#pragma once

#include "core/tensor.h"

namespace selfsup::raw {

// A new tensor over the same storage with the given geometry (checked against storage size).
Tensor as_strided(const Tensor& t, const Shape& shape, const Shape& strides, int64_t offset);

// -1 in `shape` is inferred. view() needs a layout it can express without copying.
Tensor view(const Tensor& t, Shape shape);
// view() when possible, else a contiguous copy.
Tensor reshape(const Tensor& t, Shape shape);
Tensor permute(const Tensor& t, const Shape& dims);
Tensor transpose(const Tensor& t, int64_t d0, int64_t d1);
Tensor narrow(const Tensor& t, int64_t dim, int64_t start, int64_t length);
Tensor slice(const Tensor& t, int64_t dim, int64_t start, int64_t end, int64_t step);
Tensor select(const Tensor& t, int64_t dim, int64_t index);
Tensor expand(const Tensor& t, const Shape& shape);
Tensor squeeze(const Tensor& t);
Tensor squeeze(const Tensor& t, int64_t dim);
Tensor unsqueeze(const Tensor& t, int64_t dim);

// The same tensor if already contiguous, else a contiguous copy.
Tensor contiguous(const Tensor& t);
// Always a fresh contiguous copy (on the same device, same dtype).
Tensor clone(const Tensor& t);
// Element-wise copy of src into dst: src is broadcast to dst's shape and converted to dst's
// dtype; any strides on either side. Bumps dst's version.
void copy_(Tensor& dst, const Tensor& src);
// A fresh contiguous tensor of another dtype (or device).
Tensor to_dtype(const Tensor& t, DType dtype);
Tensor to_device(const Tensor& t, Device device);

// Host<->device byte copies. core does CPU->CPU; the CUDA backend registers the rest.
using DeviceCopyFn = void (*)(void* dst, Device dst_device, const void* src, Device src_device,
                              size_t nbytes);
void set_device_copy(DeviceCopyFn fn);
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes);

// Element-wise copy within one non-CPU device (copy_'s contract: src broadcast to dst's shape,
// converted to dst's dtype, any strides). core cannot include kernels, so the CUDA backend
// registers it; copy_, clone, contiguous and to_dtype of CUDA tensors go through it.
using StridedCopyFn = void (*)(Tensor& dst, const Tensor& src);
void set_strided_copy(StridedCopyFn fn);

// Fills a tensor on a non-CPU device with one value, on that device (no host buffer, no copy):
// what full / zeros / ones use there once the backend has registered it.
using DeviceFillFn = void (*)(Tensor& t, double value);
void set_device_fill(DeviceFillFn fn);
DeviceFillFn device_fill();

}  // namespace selfsup::raw
