// Indexing and joining on the CPU: index_select, index_add_, gather, scatter_add_, cat.
//
//   index_select  out[.., i, ..]        = x[.., index[i], ..]          (slices along dim)
//   index_add_    out[.., index[i], ..] += src[.., i, ..]              (its backward)
//   gather        out[p]                = x[p with p[dim] = index[p]]  (element-wise)
//   scatter_add_  out[p with p[dim] = index[p]] += src[p]              (its backward)
//   cat           out = [x0 | x1 | ...] along dim
//
// No arithmetic to speak of: these move memory, so the aim is long contiguous copies (whole
// slices with memcpy on contiguous tensors) and no allocation. Every index is checked against
// its dim's size before anything is written, so a bad index leaves the output untouched and the
// copy loops can run on several threads (an exception cannot leave an OpenMP region).
// Any dtype: the loops are templates instantiated per element type through dispatch_dtype.
#include "kernels/cpu/index.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "core/strided.h"
#include "core/views.h"
#include "kernels/index_plan.h"

namespace selfsup::cpu {

namespace {

constexpr int64_t kParallelElements = 1 << 15;

// ------------------------------------------------------------------------------------------
// Checks
// ------------------------------------------------------------------------------------------

// Every tensor on the CPU (the argument checks themselves are in kernels/index_plan.h).
void check_cpu(const char* op, const char* name, const Tensor& t, const Device&) {
  SELFSUP_CHECK(t.device().is_cpu(), op, ": ", name, " is on ", t.device().str());
}

// Every element of index (any shape, any strides) must lie in [0, size).
void check_index_range(const char* op, const Tensor& index, int64_t dim, int64_t size) {
  const int64_t* p = index.data_ptr<int64_t>();
  std::array<const Shape*, 1> strides{&index.strides()};
  for_each_run(index.shape(), strides, {0},
               [&](const std::array<int64_t, 1>& off, int64_t n, const std::array<int64_t, 1>& s) {
                 for (int64_t i = 0; i < n; ++i)
                   index_plan::check_index_value(op, p[off[0] + i * s[0]], dim, size);
               });
}

Shape without_dim(Shape s, int64_t dim) {
  s.erase(s.begin() + dim);
  return s;
}

// The strides of t with the one along dim zeroed: walking index's shape with these reaches
// x[p with p[dim] = 0], and adding index[p] * t.stride(dim) picks the indexed element.
Shape strides_without(const Tensor& t, int64_t dim) {
  Shape s = t.strides();
  s[dim] = 0;
  return s;
}

// Sizes before and after dim: a contiguous tensor is an [outer, size(dim), inner] block.
int64_t outer_size(const Shape& s, int64_t dim) {
  return shape_numel(Shape(s.begin(), s.begin() + dim));
}
int64_t inner_size(const Shape& s, int64_t dim) {
  return shape_numel(Shape(s.begin() + dim + 1, s.end()));
}

// Applies op(dst_element, src_element) over one slice (the tensor with dim removed) of dst and
// of src, starting at the given element offsets. Any strides.
template <typename T, typename ElemOp>
void slice_apply(T* dst, const Shape& dst_strides, int64_t dst_base, const T* src,
                 const Shape& src_strides, int64_t src_base, const Shape& slice_shape, ElemOp op) {
  std::array<const Shape*, 2> strides{&dst_strides, &src_strides};
  for_each_run(slice_shape, strides, {dst_base, src_base},
               [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& s) {
                 for (int64_t i = 0; i < n; ++i)
                   op(dst[off[0] + i * s[0]], src[off[1] + i * s[1]]);
               });
}

// ------------------------------------------------------------------------------------------
// index_select / index_add_
// ------------------------------------------------------------------------------------------

template <typename T>
void index_select_typed(const Tensor& x, int64_t dim, const int64_t* idx, int64_t n, Tensor& out) {
  const T* xp = x.data_ptr<T>();
  T* dst = out.data_ptr<T>();
  if (x.is_contiguous() && out.is_contiguous()) {
    // x [outer, size, inner] -> out [outer, n, inner]: one contiguous copy of `inner` per pair.
    const int64_t outer = outer_size(x.shape(), dim), inner = inner_size(x.shape(), dim);
    const int64_t size = x.size(dim);
#pragma omp parallel for collapse(2) schedule(static) if (outer * n * inner > kParallelElements)
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < n; ++i)
        std::copy_n(xp + (o * size + idx[i]) * inner, inner, dst + (o * n + i) * inner);
    return;
  }
  const Shape slice = without_dim(x.shape(), dim);
  const Shape xs = without_dim(x.strides(), dim), os = without_dim(out.strides(), dim);
  for (int64_t i = 0; i < n; ++i)
    slice_apply(dst, os, i * out.stride(dim), xp, xs, idx[i] * x.stride(dim), slice,
                [](T& d, const T& s) { d = s; });
}

template <typename T>
void index_add_typed(Tensor& out, int64_t dim, const int64_t* idx, int64_t n, const Tensor& src) {
  T* dst = out.data_ptr<T>();
  const T* sp = src.data_ptr<T>();
  if (out.is_contiguous() && src.is_contiguous()) {
    // A repeated index adds into the same slice, so threads split the outer dim only.
    const int64_t outer = outer_size(out.shape(), dim), inner = inner_size(out.shape(), dim);
    const int64_t size = out.size(dim);
#pragma omp parallel for schedule(static) if (outer > 1 && outer * n * inner > kParallelElements)
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < n; ++i) {
        T* d = dst + (o * size + idx[i]) * inner;
        const T* s = sp + (o * n + i) * inner;
        for (int64_t k = 0; k < inner; ++k)
          d[k] = static_cast<T>(d[k] + s[k]);
      }
    return;
  }
  const Shape slice = without_dim(out.shape(), dim);
  const Shape os = without_dim(out.strides(), dim), ss = without_dim(src.strides(), dim);
  for (int64_t i = 0; i < n; ++i)
    slice_apply(dst, os, idx[i] * out.stride(dim), sp, ss, i * src.stride(dim), slice,
                [](T& d, const T& s) { d = static_cast<T>(d + s); });
}

// ------------------------------------------------------------------------------------------
// gather / scatter_add_: one index per element, walked with index's shape
// ------------------------------------------------------------------------------------------

template <typename T>
void gather_typed(const Tensor& x, int64_t dim, const Tensor& index, Tensor& out) {
  const int64_t* ip = index.data_ptr<int64_t>();
  const T* xp = x.data_ptr<T>();
  T* dst = out.data_ptr<T>();
  const int64_t x_step = x.stride(dim);
  const Shape x_base = strides_without(x, dim);
  std::array<const Shape*, 3> strides{&index.strides(), &out.strides(), &x_base};
  for_each_run(index.shape(), strides, {0, 0, 0},
               [&](const std::array<int64_t, 3>& off, int64_t n, const std::array<int64_t, 3>& s) {
                 for (int64_t i = 0; i < n; ++i)
                   dst[off[1] + i * s[1]] = xp[off[2] + i * s[2] + ip[off[0] + i * s[0]] * x_step];
               });
}

template <typename T>
void scatter_add_typed(Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) {
  const int64_t* ip = index.data_ptr<int64_t>();
  const T* sp = src.data_ptr<T>();
  T* dst = out.data_ptr<T>();
  const int64_t out_step = out.stride(dim);
  const Shape out_base = strides_without(out, dim);
  std::array<const Shape*, 3> strides{&index.strides(), &src.strides(), &out_base};
  for_each_run(index.shape(), strides, {0, 0, 0},
               [&](const std::array<int64_t, 3>& off, int64_t n, const std::array<int64_t, 3>& s) {
                 for (int64_t i = 0; i < n; ++i) {
                   T& d = dst[off[2] + i * s[2] + ip[off[0] + i * s[0]] * out_step];
                   d = static_cast<T>(d + sp[off[1] + i * s[1]]);
                 }
               });
}

}  // namespace

// ============================================================================================
// Entry points
// ============================================================================================

void index_select(const Tensor& x, int64_t dim, const Tensor& index, Tensor& out) {
  const char* op = "index_select";
  dim = index_plan::check_index_select(op, x, dim, index, out, check_cpu);
  const int64_t n = index.numel();
  check_index_range(op, index, dim, x.size(dim));
  const Tensor idx = raw::contiguous(index);
  dispatch_dtype(x.dtype(), [&](auto tag) {
    index_select_typed<decltype(tag)>(x, dim, idx.data_ptr<int64_t>(), n, out);
  });
}

void index_add_(Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) {
  const char* op = "index_add_";
  dim = index_plan::check_index_add(op, out, dim, index, src, check_cpu);
  const int64_t n = index.numel();
  check_index_range(op, index, dim, out.size(dim));
  const Tensor idx = raw::contiguous(index);
  dispatch_dtype(out.dtype(), [&](auto tag) {
    index_add_typed<decltype(tag)>(out, dim, idx.data_ptr<int64_t>(), n, src);
  });
  out.bump_version();
}

void gather(const Tensor& x, int64_t dim, const Tensor& index, Tensor& out) {
  const char* op = "gather";
  dim = index_plan::check_gather(op, x, dim, index, out, check_cpu);
  check_index_range(op, index, dim, x.size(dim));
  dispatch_dtype(x.dtype(), [&](auto tag) { gather_typed<decltype(tag)>(x, dim, index, out); });
}

void scatter_add_(Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) {
  const char* op = "scatter_add_";
  dim = index_plan::check_scatter_add(op, out, dim, index, src, check_cpu);
  check_index_range(op, index, dim, out.size(dim));
  dispatch_dtype(out.dtype(),
                 [&](auto tag) { scatter_add_typed<decltype(tag)>(out, dim, index, src); });
  out.bump_version();
}

// ============================================================================================
// cat
// ============================================================================================

namespace {

// All contiguous: out is [outer, total, inner] and input j fills the columns
// [offset_j, offset_j + size_j) of each outer row, one memcpy per (row, input).
void cat_contiguous(const std::vector<Tensor>& xs, int64_t dim, Tensor& out) {
  const int64_t outer = outer_size(out.shape(), dim), inner = inner_size(out.shape(), dim);
  const int64_t es = static_cast<int64_t>(out.element_size());
  const int64_t row_bytes = out.size(dim) * inner * es;
  char* dst = static_cast<char*>(out.raw_data_ptr());
#pragma omp parallel for schedule(static) if (out.numel() > kParallelElements && outer > 1)
  for (int64_t o = 0; o < outer; ++o) {
    int64_t offset = 0;
    for (const Tensor& x : xs) {
      const int64_t chunk = x.size(dim) * inner * es;
      const char* src = static_cast<const char*>(x.raw_data_ptr()) + o * chunk;
      if (chunk > 0) std::memcpy(dst + o * row_bytes + offset, src, chunk);
      offset += chunk;
    }
  }
}

}  // namespace

void cat(const std::vector<Tensor>& xs, int64_t dim, Tensor& out) {
  dim = index_plan::check_cat(xs, dim, out, check_cpu);
  const bool contiguous =
      out.is_contiguous() &&
      std::all_of(xs.begin(), xs.end(), [](const Tensor& x) { return x.is_contiguous(); });
  if (contiguous) {
    cat_contiguous(xs, dim, out);
    return;
  }
  int64_t offset = 0;
  for (const Tensor& x : xs) {  // any layout: copy each input into its narrow view of out
    Tensor part = raw::narrow(out, dim, offset, x.size(dim));
    raw::copy_(part, x);
    offset += x.size(dim);
  }
}

}  // namespace selfsup::cpu
