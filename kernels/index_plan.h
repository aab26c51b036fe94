// The host-side argument checks of index_select, index_add_, gather, scatter_add_ and cat, shared
// by kernels/cpu/index.cpp and kernels/cuda/index.cu so both backends take the same arguments to
// mean the same thing and refuse bad ones with the same words. The backends differ only in where
// the tensors must live: each passes its DeviceCheck, which the checks below call where they reach
// a tensor's device. Plain C++ on shapes and dtypes: the index values are range-checked on the
// data by each backend (before anything is written), with check_index_value's words.
#pragma once

#include <cstdint>
#include <vector>

#include "core/error.h"
#include "core/shape.h"
#include "core/tensor.h"
#include "kernels/writable.h"

namespace selfsup::index_plan {

// A backend's device rule: throws unless t (named `name`) is where its kernels can read it
// together with the op's first tensor, which is on first_device.
using DeviceCheck = void (*)(const char* op, const char* name, const Tensor& t,
                             const Device& first_device);

// shape with shape[dim] replaced by n.
inline Shape with_size(Shape shape, int64_t dim, int64_t n) {
  shape[dim] = n;
  return shape;
}

// ---- one tensor ----

// t defined and on the device; first is the op's first tensor (it may be t itself).
inline void check_on(const char* op, const char* name, const Tensor& t, const Tensor& first,
                     DeviceCheck on_device) {
  SELFSUP_CHECK(t.defined(), op, ": ", name, " is undefined");
  on_device(op, name, t, first.device());
}

inline void check_index_dtype(const char* op, const Tensor& index, const Tensor& first,
                              DeviceCheck on_device) {
  check_on(op, "index", index, first, on_device);
  SELFSUP_CHECK(index.dtype() == kInt64, op, ": index must be int64, got ",
                dtype_name(index.dtype()));
}

inline void check_same_dtype(const char* op, const Tensor& a, const char* a_name, const Tensor& b,
                             const char* b_name) {
  SELFSUP_CHECK(a.dtype() == b.dtype(), op, ": ", a_name, " is ", dtype_name(a.dtype()), " but ",
                b_name, " is ", dtype_name(b.dtype()));
}

// One index value v must lie in [0, size) along dim.
inline void check_index_value(const char* op, int64_t v, int64_t dim, int64_t size) {
  SELFSUP_CHECK(v >= 0 && v < size, op, ": index ", v, " is out of range for dim ", dim,
                " with size ", size);
}

// The three operands every indexing op takes: data (the tensor indexed along dim, at least 1-d),
// other (the output or the source, on data's device) and an int64 index.
inline void check_operands(const char* op, const Tensor& data, const char* data_name,
                           const Tensor& other, const char* other_name, const Tensor& index,
                           DeviceCheck on_device) {
  check_on(op, data_name, data, data, on_device);
  check_on(op, other_name, other, data, on_device);
  check_index_dtype(op, index, data, on_device);
  SELFSUP_CHECK(data.dim() >= 1, op, ": ", data_name, " must have at least one dim");
}

// gather and scatter_add_ share their shape rules: index has the data tensor's rank and is no
// larger than it along every dim but `dim`.
inline void check_gather_shapes(const char* op, const Tensor& data, const char* data_name,
                                int64_t dim, const Tensor& index) {
  SELFSUP_CHECK(index.dim() == data.dim(), op, ": index ", shape_str(index.shape()), " and ",
                data_name, " ", shape_str(data.shape()), " differ in rank");
  for (int64_t d = 0; d < data.dim(); ++d)
    SELFSUP_CHECK(d == dim || index.size(d) <= data.size(d), op, ": index ",
                  shape_str(index.shape()), " is larger than ", data_name, " ",
                  shape_str(data.shape()), " along dim ", d);
}

// ---- every argument of one entry point but the index values; each returns dim in [0, ndim) ----

// out [.., n, ..] = x [.., size, ..] at index [n].
inline int64_t check_index_select(const char* op, const Tensor& x, int64_t dim, const Tensor& index,
                                  const Tensor& out, DeviceCheck on_device) {
  check_operands(op, x, "x", out, "out", index, on_device);
  SELFSUP_CHECK(index.dim() <= 1, op, ": index must be 1-d, got ", shape_str(index.shape()));
  dim = normalize_dim(dim, x.dim(), op);
  const Shape expected = with_size(x.shape(), dim, index.numel());
  SELFSUP_CHECK(out.shape() == expected, op, ": out has shape ", shape_str(out.shape()),
                ", expected ", shape_str(expected));
  check_same_dtype(op, out, "out", x, "x");
  kernels::check_not_expanded(op, "out", out);
  return dim;
}

// out [.., size, ..] += src [.., n, ..] at index [n].
inline int64_t check_index_add(const char* op, const Tensor& out, int64_t dim, const Tensor& index,
                               const Tensor& src, DeviceCheck on_device) {
  check_operands(op, out, "out", src, "src", index, on_device);
  SELFSUP_CHECK(index.dim() <= 1, op, ": index must be 1-d, got ", shape_str(index.shape()));
  dim = normalize_dim(dim, out.dim(), op);
  const int64_t n = index.numel();
  const Shape expected = with_size(out.shape(), dim, n);
  SELFSUP_CHECK(src.shape() == expected, op, ": src has shape ", shape_str(src.shape()),
                ", expected ", shape_str(expected), " for out ", shape_str(out.shape()), " and ", n,
                " indices");
  check_same_dtype(op, src, "src", out, "out");
  kernels::check_not_expanded(op, "out", out);
  return dim;
}

// gather and scatter_add_: data indexed element-wise along dim; other (gather's out,
// scatter_add_'s src) has index's shape and data's dtype.
inline int64_t check_elementwise_indexing(const char* op, const Tensor& data, const char* data_name,
                                          int64_t dim, const Tensor& index, const Tensor& other,
                                          const char* other_name, DeviceCheck on_device) {
  check_operands(op, data, data_name, other, other_name, index, on_device);
  dim = normalize_dim(dim, data.dim(), op);
  check_gather_shapes(op, data, data_name, dim, index);
  SELFSUP_CHECK(other.shape() == index.shape(), op, ": ", other_name, " has shape ",
                shape_str(other.shape()), ", expected the index shape ", shape_str(index.shape()));
  check_same_dtype(op, other, other_name, data, data_name);
  return dim;
}

// out = x gathered along dim at index; out has index's shape.
inline int64_t check_gather(const char* op, const Tensor& x, int64_t dim, const Tensor& index,
                            const Tensor& out, DeviceCheck on_device) {
  dim = check_elementwise_indexing(op, x, "x", dim, index, out, "out", on_device);
  kernels::check_not_expanded(op, "out", out);
  return dim;
}

// out += src scattered along dim at index; src has index's shape.
inline int64_t check_scatter_add(const char* op, const Tensor& out, int64_t dim,
                                 const Tensor& index, const Tensor& src, DeviceCheck on_device) {
  dim = check_elementwise_indexing(op, out, "out", dim, index, src, "src", on_device);
  kernels::check_not_expanded(op, "out", out);
  return dim;
}

// out = [xs[0] | xs[1] | ...] along dim: every input matches out outside dim, and their sizes
// along dim add up to out's.
inline int64_t check_cat(const std::vector<Tensor>& xs, int64_t dim, const Tensor& out,
                         DeviceCheck on_device) {
  const char* op = "cat";
  check_on(op, "out", out, out, on_device);
  SELFSUP_CHECK(!xs.empty(), "cat: no tensors to join");
  SELFSUP_CHECK(out.dim() >= 1, "cat: out must have at least one dim");
  dim = normalize_dim(dim, out.dim(), op);
  int64_t joined = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const Tensor& x = xs[i];
    check_on(op, "an input", x, out, on_device);
    SELFSUP_CHECK(x.dtype() == out.dtype(), op, ": tensor ", i, " is ", dtype_name(x.dtype()),
                  " but out is ", dtype_name(out.dtype()));
    SELFSUP_CHECK(x.dim() == out.dim() && x.shape() == with_size(out.shape(), dim, x.size(dim)), op,
                  ": tensor ", i, " has shape ", shape_str(x.shape()),
                  ", which does not match out ", shape_str(out.shape()), " outside dim ", dim);
    joined += x.size(dim);
  }
  SELFSUP_CHECK(joined == out.size(dim), op, ": the inputs add up to ", joined, " along dim ", dim,
                " but out ", shape_str(out.shape()), " has ", out.size(dim));
  kernels::check_not_expanded(op, "out", out);
  return dim;
}

}  // namespace selfsup::index_plan
