// ============================================================================================
// Indexing and joining on the GPU: index_select, index_add_, gather, scatter_add_, cat
// ============================================================================================
//
// The GPU twin of kernels/cpu/index.cpp (the reference; same contracts and errors):
//
//   index_select  out[.., i, ..]        = x[.., index[i], ..]          (slices along dim)
//   index_add_    out[.., index[i], ..] += src[.., i, ..]              (its backward)
//   gather        out[p]                = x[p with p[dim] = index[p]]  (element-wise)
//   scatter_add_  out[p with p[dim] = index[p]] += src[p]              (its backward)
//   cat           out = [x0 | x1 | ...] along dim
//
// No arithmetic to speak of: each element is read once and written once (plus an 8-byte index
// read per element, or per slice for index_select), so everything here is bound by memory
// bandwidth, and by the scatter of the indexed side.
//
// One kernel shape for the four indexed ops: one thread per element of the walked tensor (out
// for index_select, src for index_add_, index for gather and scatter_add_), a grid-stride loop,
// and a flat row-major index turned into one element offset per operand with a div/mod per dim
// (Walk, kernels/cuda/strided.cuh; simplified on the host: size-1 dims dropped, dims every operand
// steps over as one fused). The indexed tensor is walked with its stride along `dim` set to 0, and
// the chosen index times that stride is added on top. index_select and index_add_ need the
// coordinate along `dim` to pick index[i]: it comes out of the same walk as one more operand whose
// stride is 1 along `dim` and 0 elsewhere.
//
// The adds use atomicAdd, since a repeated index sends several threads to one element: float
// sums then land in an unspecified order (not deterministic; int64 sums are exact).
// Indices are checked on the device before anything is written (first_out_of_range: one pass,
// one 8-byte copy back), so a bad index leaves every output untouched, as on the CPU.
// cat is one strided copy (kernels/cuda/copy.h) per input into its narrow view of out.
// All index math is 64-bit.
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <type_traits>

#include "core/error.h"
#include "core/shape.h"
#include "core/views.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/copy.h"
#include "kernels/cuda/index.h"
#include "kernels/cuda/runtime.h"
#include "kernels/cuda/strided.cuh"
#include "kernels/index_plan.h"

namespace selfsup::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 4096;  // grid-stride loops: enough blocks to fill the GPU

// atomicAdd for the three accumulating dtypes; int64 goes through the unsigned 64-bit overload
// (two's complement: the same bits).
__device__ __forceinline__ void atomic_add(float* p, float v) {
  atomicAdd(p, v);
}
__device__ __forceinline__ void atomic_add(double* p, double v) {
  atomicAdd(p, v);
}
__device__ __forceinline__ void atomic_add(int64_t* p, int64_t v) {
  atomicAdd(reinterpret_cast<unsigned long long*>(p), static_cast<unsigned long long>(v));
}

// ============================================================================================
// Kernels
// ============================================================================================

// The position of the first bad index: every bad element bids its position with atomicMin, so
// the smallest wins whatever the order (*first starts as all ones, "none").
__global__ void __launch_bounds__(kThreads)
    find_out_of_range(const int64_t* idx,  // [n] contiguous
                      int64_t n, int64_t size, unsigned long long* first) {
  for (int64_t i = first_index(); i < n; i += grid_step()) {
    const int64_t v = idx[i];
    if (v < 0 || v >= size) atomicMin(first, static_cast<unsigned long long>(i));
  }
}

// Walk over out's shape: operands out, x (stride along dim zeroed), coordinate along dim.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    index_select_kernel(T* out,              // x's shape with n along dim, any strides
                        const T* x,          // any strides
                        const int64_t* idx,  // [n] contiguous, in [0, x.size(dim))
                        int64_t x_step,      // x.stride(dim)
                        Walk<3> w, int64_t total) {
  for (int64_t i = first_index(); i < total; i += grid_step()) {
    int64_t off[3];
    offsets_of(i, w, off);
    out[off[0]] = x[off[1] + idx[off[2]] * x_step];
  }
}

// Walk over src's shape: operands src, out (stride along dim zeroed), coordinate along dim.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    index_add_kernel(T* out,              // any strides
                     const T* src,        // out's shape with n along dim, any strides
                     const int64_t* idx,  // [n] contiguous, in [0, out.size(dim))
                     int64_t out_step,    // out.stride(dim)
                     Walk<3> w, int64_t total) {
  for (int64_t i = first_index(); i < total; i += grid_step()) {
    int64_t off[3];
    offsets_of(i, w, off);
    atomic_add(&out[off[1] + idx[off[2]] * out_step], src[off[0]]);
  }
}

// Walk over index's shape: operands index, out, x (stride along dim zeroed).
template <typename T>
__global__ void __launch_bounds__(kThreads)
    gather_kernel(T* out,                // index's shape, any strides
                  const T* x,            // any strides
                  const int64_t* index,  // any strides, in [0, x.size(dim))
                  int64_t x_step,        // x.stride(dim)
                  Walk<3> w, int64_t total) {
  for (int64_t i = first_index(); i < total; i += grid_step()) {
    int64_t off[3];
    offsets_of(i, w, off);
    out[off[1]] = x[off[2] + index[off[0]] * x_step];
  }
}

// Walk over index's shape: operands index, src, out (stride along dim zeroed).
template <typename T>
__global__ void __launch_bounds__(kThreads)
    scatter_add_kernel(T* out,                // any strides
                       const T* src,          // index's shape, any strides
                       const int64_t* index,  // any strides, in [0, out.size(dim))
                       int64_t out_step,      // out.stride(dim)
                       Walk<3> w, int64_t total) {
  for (int64_t i = first_index(); i < total; i += grid_step()) {
    int64_t off[3];
    offsets_of(i, w, off);
    atomic_add(&out[off[2] + index[off[0]] * out_step], src[off[1]]);
  }
}

// ============================================================================================
// Host side: the walk, checks (the CPU's, with a CUDA device), launches
// ============================================================================================

unsigned grid_for(int64_t n) {
  return grid_stride_blocks(n, kThreads, kMaxBlocks);
}

// t's strides with the one along dim set to 0.
Shape strides_without(const Tensor& t, int64_t dim) {
  Shape s = t.strides();
  s[dim] = 0;
  return s;
}

// Strides that make a walked operand's offset the coordinate along dim.
Shape coordinate_strides(int64_t ndim, int64_t dim) {
  Shape s(ndim, 0);
  s[dim] = 1;
  return s;
}

// Every tensor on the first tensor's CUDA device (the argument checks themselves are in
// kernels/index_plan.h).
void check_on_cuda(const char* op, const char* name, const Tensor& t, const Device& device) {
  SELFSUP_CHECK(t.device().is_cuda() && t.device() == device, op, " (cuda): ", name, " is on ",
                t.device().str(), ", expected a CUDA device (", device.str(), ")");
}

// The CPU's message for the first bad index, if any.
void check_index_range(const char* op, const Tensor& index, int64_t dim, int64_t size) {
  if (const auto bad = detail::first_out_of_range(index, size))
    index_plan::check_index_value(op, *bad, dim, size);
}

// Calls fn with a value of the element type of an accumulating op (float32, float64, int64).
template <typename Fn>
void dispatch_accumulate(const char* op, DType dtype, Fn&& fn) {
  switch (dtype) {
    case kFloat32:
      return fn(float{});
    case kFloat64:
      return fn(double{});
    case kInt64:
      return fn(int64_t{});
    default:
      break;
  }
  SELFSUP_CHECK(false, op, " (cuda): ", dtype_name(dtype),
                " is not supported (atomicAdd takes float32, float64 or int64)");
}

}  // namespace

// ============================================================================================
// The index check
// ============================================================================================

std::optional<int64_t> detail::first_out_of_range(const Tensor& index, int64_t size) {
  const int64_t n = index.numel();
  if (n == 0) return std::nullopt;
  const Tensor ic = raw::contiguous(index);  // row-major order = the CPU's walk order
  const int64_t* pi = ic.data_ptr<int64_t>();
  const Tensor first = empty({1}, TensorOptions(kInt64).device(index.device()));
  auto* pf = reinterpret_cast<unsigned long long*>(first.data_ptr<int64_t>());
  check(cudaMemsetAsync(pf, 0xFF, sizeof(*pf), 0), "index check (cudaMemsetAsync)");
  find_out_of_range<<<grid_for(n), kThreads>>>(pi, n, size, pf);
  check_launch("index check");
  unsigned long long pos = 0;
  check(cudaMemcpy(&pos, pf, sizeof(pos), cudaMemcpyDeviceToHost), "index check (cudaMemcpy)");
  if (pos == ~0ull) return std::nullopt;
  int64_t value = 0;
  check(cudaMemcpy(&value, pi + pos, sizeof(value), cudaMemcpyDeviceToHost),
        "index check (cudaMemcpy)");
  return value;
}

// ============================================================================================
// Entry points
// ============================================================================================

void index_select(const Tensor& x, int64_t dim, const Tensor& index, Tensor& out) {
  const char* op = "index_select";
  dim = index_plan::check_index_select(op, x, dim, index, out, check_on_cuda);
  check_index_range(op, index, dim, x.size(dim));
  const int64_t total = out.numel();
  if (total == 0) return;
  const Tensor idx = raw::contiguous(index);  // [n]
  const Walk<3> w = simplify_walk<3>(
      op, out.shape(), {out.strides(), strides_without(x, dim), coordinate_strides(x.dim(), dim)});
  dispatch_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    index_select_kernel<T><<<grid_for(total), kThreads>>>(
        out.data_ptr<T>(), x.data_ptr<T>(), idx.data_ptr<int64_t>(), x.stride(dim), w, total);
  });
  check_launch(op);
}

void index_add_(Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) {
  const char* op = "index_add_";
  dim = index_plan::check_index_add(op, out, dim, index, src, check_on_cuda);
  dispatch_accumulate(op, out.dtype(), [](auto) {});
  check_index_range(op, index, dim, out.size(dim));
  const int64_t total = src.numel();
  if (total > 0) {
    const Tensor idx = raw::contiguous(index);  // [n]
    const Walk<3> w = simplify_walk<3>(
        op, src.shape(),
        {src.strides(), strides_without(out, dim), coordinate_strides(out.dim(), dim)});
    dispatch_accumulate(op, out.dtype(), [&](auto tag) {
      using T = decltype(tag);
      index_add_kernel<T><<<grid_for(total), kThreads>>>(
          out.data_ptr<T>(), src.data_ptr<T>(), idx.data_ptr<int64_t>(), out.stride(dim), w, total);
    });
    check_launch(op);
  }
  out.bump_version();
}

void gather(const Tensor& x, int64_t dim, const Tensor& index, Tensor& out) {
  const char* op = "gather";
  dim = index_plan::check_gather(op, x, dim, index, out, check_on_cuda);
  check_index_range(op, index, dim, x.size(dim));
  const int64_t total = index.numel();
  if (total == 0) return;
  const Walk<3> w = simplify_walk<3>(op, index.shape(),
                                     {index.strides(), out.strides(), strides_without(x, dim)});
  dispatch_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    gather_kernel<T><<<grid_for(total), kThreads>>>(
        out.data_ptr<T>(), x.data_ptr<T>(), index.data_ptr<int64_t>(), x.stride(dim), w, total);
  });
  check_launch(op);
}

void scatter_add_(Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) {
  const char* op = "scatter_add_";
  dim = index_plan::check_scatter_add(op, out, dim, index, src, check_on_cuda);
  dispatch_accumulate(op, out.dtype(), [](auto) {});
  check_index_range(op, index, dim, out.size(dim));
  const int64_t total = index.numel();
  if (total > 0) {
    const Walk<3> w = simplify_walk<3>(op, index.shape(),
                                       {index.strides(), src.strides(), strides_without(out, dim)});
    dispatch_accumulate(op, out.dtype(), [&](auto tag) {
      using T = decltype(tag);
      scatter_add_kernel<T><<<grid_for(total), kThreads>>>(out.data_ptr<T>(), src.data_ptr<T>(),
                                                           index.data_ptr<int64_t>(),
                                                           out.stride(dim), w, total);
    });
    check_launch(op);
  }
  out.bump_version();
}

// ============================================================================================
// cat
// ============================================================================================

void cat(const std::vector<Tensor>& xs, int64_t dim, Tensor& out) {
  dim = index_plan::check_cat(xs, dim, out, check_on_cuda);
  int64_t offset = 0;
  for (const Tensor& x : xs) {  // each input into its narrow view of out: one strided copy
    if (x.numel() > 0) {
      Tensor part = raw::narrow(out, dim, offset, x.size(dim));
      strided_copy(part, x);
    }
    offset += x.size(dim);
  }
  out.bump_version();
}

}  // namespace selfsup::cuda
