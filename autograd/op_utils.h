// Small helpers shared by the autograd op files (not part of the public API).
#pragma once

#include <initializer_list>

#include "autograd/graph.h"
#include "core/views.h"

namespace selfsup::detail {

// Every tensor argument of an op must live on one device and (for float math) share one dtype.
void check_same_device(const char* op, std::initializer_list<Tensor> ts);
void check_same_dtype(const char* op, const Tensor& a, const Tensor& b);
void check_floating(const char* op, const Tensor& t);

// A new contiguous tensor with `like`'s dtype and device.
Tensor empty_as(const Shape& shape, const Tensor& like);
// The same on like's device with another dtype (int64 indices of a reduction, say).
Tensor empty_as(const Shape& shape, const Tensor& like, DType dtype);
Tensor zeros_as(const Shape& shape, const Tensor& like);

// Sums a broadcast gradient back to `shape` (identity when the shapes already match).
Tensor reduce_to(const Tensor& grad, const Shape& shape);

inline bool needs_grad(const Tensor& t) {
  return t.defined() && t.requires_grad();
}

// cross_correlation (the Barlow Twins matrix) built from differentiable ops: what devices
// without the fused CPU kernel run. The same formula; tested against the fused kernel.
Tensor cross_correlation_composed(const Tensor& za, const Tensor& zb, double eps);

}  // namespace selfsup::detail
