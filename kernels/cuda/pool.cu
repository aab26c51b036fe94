// ============================================================================================
// 2-d pooling on the GPU: max, average, adaptive average, and their backward passes
// ============================================================================================
//
// The GPU twin of kernels/cpu/pool.cpp (the reference; same rules, same summation orders).
// NCHW, every (n, c) plane independent; x [N, C, H, W] -> out [N, C, OH, OW]:
//
//   max:      out[y, x] = max over the window of in[y*sh - ph + i, x*sw - pw + j]
//             (padding is -infinity, so it never wins; the first maximum in row-major order
//             wins ties; a NaN wins), indices = h*W + w of the winner
//   average:  out = (sum over the window, padding counted as 0) / (KH*KW)   (count_include_pad)
//   adaptive: output cell i covers input rows [floor(i*H/OH), ceil((i+1)*H/OH)), same for
//             columns, and averages them
//
// Bounds: KH*KW adds or compares per output against one read of x and one write of out (the
// window re-reads come from L1/L2): ~KH*KW / (2 * sizeof(T)) FLOP per byte, at most ~1 for a
// 3x3 float32 window, so every kernel here is bound by memory bandwidth.
//
// Forward: one thread per output element, in output order, so neighbouring threads write
// neighbouring addresses and read overlapping windows.
// Backward of the averages: a gather. One thread per *input* cell finds the few windows that
// cover it (a closed-form range of output rows and columns) and sums their shares in the CPU's
// order; no two threads write the same cell, so there are no atomics and the result is
// deterministic.
// Backward of max: the entry point gets no window geometry (only grad_out, indices, grad_x), so
// it cannot gather. It scatters instead, one warp per plane, 32 outputs at a time: lanes that
// picked the same input cell are grouped with __match_any_sync and the lowest lane of a group
// adds the group's values in lane order, so each cell receives its gradients in exactly the
// CPU's order (deterministic, and bit-equal to the CPU) without atomics.
// All index math is 64-bit. Inputs are made contiguous first (raw::contiguous runs the strided
// copy on the device); an output of other strides is written through a contiguous scratch.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "core/error.h"
#include "core/views.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/index.h"
#include "kernels/cuda/pool.h"
#include "kernels/cuda/runtime.h"
#include "kernels/cuda/strided.cuh"
#include "kernels/out_buffer.h"
#include "kernels/pool_plan.h"

namespace selfsup::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kWarpsPerBlock = kThreads / kWarpSize;
constexpr int64_t kMaxBlocks = 8192;  // grid-stride loops: enough blocks to fill the GPU

// The planes of a pool: planes = N*C, each [H, W] in, [OH, OW] out, contiguous.
using Planes = pool_plan::PoolGeometry;

// The window geometry as plain numbers for the device (Pool2dParams, by value).
struct Window {
  int64_t lo, hi;  // [lo, hi) along one dim, clipped to the input
};

__device__ __forceinline__ Window window(int64_t o, int64_t kernel, int64_t stride, int64_t pad,
                                         int64_t in) {
  const int64_t start = o * stride - pad;
  return {start > 0 ? start : 0, start + kernel < in ? start + kernel : in};
}

// PyTorch's adaptive rule: cell o of out covers [floor(o*in/out), ceil((o+1)*in/out)).
__device__ __forceinline__ Window adaptive_window(int64_t o, int64_t in, int64_t out) {
  return {(o * in) / out, ((o + 1) * in + out - 1) / out};
}

// ============================================================================================
// Max pooling
// ============================================================================================

// One thread per output: the CPU's loop over its window, row by row. `v > best` keeps the first
// of equal maxima; `v != v` (a NaN) always takes over, as in PyTorch.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    max_pool_forward(const T* x, Planes g, Pool2dParams p, T* out, int64_t* idx) {
  // x [planes, H, W]; out, idx [planes, OH, OW]; all contiguous
  const int64_t n = g.planes * g.OH * g.OW;
  for (int64_t i = first_index(); i < n; i += grid_step()) {
    const int64_t ox = i % g.OW, oy = (i / g.OW) % g.OH, pl = i / (g.OW * g.OH);
    const T* plane = x + pl * g.H * g.W;
    const Window ys = window(oy, p.kernel_h, p.stride_h, p.pad_h, g.H);
    const Window xs = window(ox, p.kernel_w, p.stride_w, p.pad_w, g.W);
    T best = -static_cast<T>(INFINITY);
    int64_t arg = ys.lo * g.W + xs.lo;
    for (int64_t y = ys.lo; y < ys.hi; ++y)
      for (int64_t xx = xs.lo; xx < xs.hi; ++xx) {
        const T v = plane[y * g.W + xx];
        if (v > best || v != v) {
          best = v;
          arg = y * g.W + xx;
        }
      }
    out[i] = best;
    idx[i] = arg;
  }
}

// One warp per plane (grid-stride over planes). The warp zeroes its grad_x plane, then walks
// the plane's outputs 32 at a time: each lane stages its gradient in shared memory, lanes with
// the same target cell find each other with __match_any_sync, and the group's lowest lane adds
// the staged values in lane (= output) order. __syncwarp between steps orders the warp's
// global writes, so the next chunk reads what this one wrote. Shared memory: one T per thread.
// Indices are in range (checked before the launch).
template <typename T>
__global__ void __launch_bounds__(kThreads)
    max_pool_backward_scatter(const T* go, const int64_t* idx, int64_t planes, int64_t in_size,
                              int64_t out_size, T* gx) {
  // go, idx [planes, out_size] (idx in [0, in_size)); gx [planes, in_size]; all contiguous
  __shared__ T staged[kThreads];
  const int lane = threadIdx.x % kWarpSize;
  T* warp_staged = staged + (threadIdx.x - lane);  // this warp's 32 slots
  const int64_t warps = static_cast<int64_t>(gridDim.x) * kWarpsPerBlock;
  for (int64_t pl = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarpSize;
       pl < planes; pl += warps) {  // uniform across the warp
    T* g = gx + pl * in_size;
    for (int64_t j = lane; j < in_size; j += kWarpSize)
      g[j] = T(0);
    __syncwarp();
    const T* src = go + pl * out_size;
    const int64_t* ix = idx + pl * out_size;
    for (int64_t base = 0; base < out_size; base += kWarpSize) {
      const int64_t i = base + lane;
      const bool valid = i < out_size;
      // Idle lanes get distinct negative keys, so they never join a group.
      const int64_t target = valid ? ix[i] : -1 - lane;
      warp_staged[lane] = valid ? src[i] : T(0);
      const unsigned group = __match_any_sync(kFullMask, static_cast<unsigned long long>(target));
      __syncwarp();
      if (valid && lane == __ffs(group) - 1) {
        T acc = g[target];
        for (unsigned m = group; m != 0; m &= m - 1)
          acc += warp_staged[__ffs(m) - 1];
        g[target] = acc;
      }
      __syncwarp();
    }
  }
}

// ============================================================================================
// Average pooling
// ============================================================================================
// With padding at most half the kernel every window ends inside the padded input, so the
// count_include_pad divisor is always the full KH*KW (as on the CPU).

template <typename T>
__global__ void __launch_bounds__(kThreads)
    avg_pool_forward(const T* x, Planes g, Pool2dParams p, T* out) {
  // x [planes, H, W]; out [planes, OH, OW]; both contiguous
  const T inv_area = T(1) / static_cast<T>(p.kernel_h * p.kernel_w);
  const int64_t n = g.planes * g.OH * g.OW;
  for (int64_t i = first_index(); i < n; i += grid_step()) {
    const int64_t ox = i % g.OW, oy = (i / g.OW) % g.OH, pl = i / (g.OW * g.OH);
    const T* plane = x + pl * g.H * g.W;
    const Window ys = window(oy, p.kernel_h, p.stride_h, p.pad_h, g.H);
    const Window xs = window(ox, p.kernel_w, p.stride_w, p.pad_w, g.W);
    T sum = 0;
    for (int64_t y = ys.lo; y < ys.hi; ++y)
      for (int64_t xx = xs.lo; xx < xs.hi; ++xx)
        sum += plane[y * g.W + xx];
    out[i] = sum * inv_area;
  }
}

// The outputs along one dim whose windows cover input cell h: o*stride - pad <= h and
// h <= o*stride - pad + kernel - 1, i.e. o in [ceil((h + pad - kernel + 1) / stride),
// floor((h + pad) / stride)], clipped to [0, out). Clipping a window to the input does not
// change which input cells it holds.
__device__ __forceinline__ Window covering_outputs(int64_t h, int64_t kernel, int64_t stride,
                                                   int64_t pad, int64_t out) {
  const int64_t a = h + pad - kernel + 1;
  const int64_t lo = a > 0 ? (a + stride - 1) / stride : 0;
  const int64_t last = (h + pad) / stride;
  return {lo, (last < out - 1 ? last : out - 1) + 1};
}

// One thread per input cell: the sum of grad_out * 1/(KH*KW) over the windows that cover it,
// in (oy, ox) order like the CPU's scatter.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    avg_pool_backward_gather(const T* go, Planes g, Pool2dParams p, T* gx) {
  // go [planes, OH, OW]; gx [planes, H, W]; both contiguous
  const T inv_area = T(1) / static_cast<T>(p.kernel_h * p.kernel_w);
  const int64_t n = g.planes * g.H * g.W;
  for (int64_t i = first_index(); i < n; i += grid_step()) {
    const int64_t w = i % g.W, h = (i / g.W) % g.H, pl = i / (g.W * g.H);
    const T* src = go + pl * g.OH * g.OW;
    const Window oys = covering_outputs(h, p.kernel_h, p.stride_h, p.pad_h, g.OH);
    const Window oxs = covering_outputs(w, p.kernel_w, p.stride_w, p.pad_w, g.OW);
    T acc = 0;
    for (int64_t oy = oys.lo; oy < oys.hi; ++oy)
      for (int64_t ox = oxs.lo; ox < oxs.hi; ++ox)
        acc += src[oy * g.OW + ox] * inv_area;
    gx[i] = acc;
  }
}

// ============================================================================================
// Adaptive average pooling
// ============================================================================================

template <typename T>
__global__ void __launch_bounds__(kThreads) adaptive_avg_forward(const T* x, Planes g, T* out) {
  // x [planes, H, W]; out [planes, OH, OW]; both contiguous
  const int64_t n = g.planes * g.OH * g.OW;
  for (int64_t i = first_index(); i < n; i += grid_step()) {
    const int64_t ox = i % g.OW, oy = (i / g.OW) % g.OH, pl = i / (g.OW * g.OH);
    const T* plane = x + pl * g.H * g.W;
    const Window ys = adaptive_window(oy, g.H, g.OH);
    const Window xs = adaptive_window(ox, g.W, g.OW);
    T sum = 0;
    for (int64_t y = ys.lo; y < ys.hi; ++y)
      for (int64_t xx = xs.lo; xx < xs.hi; ++xx)
        sum += plane[y * g.W + xx];
    out[i] = sum / static_cast<T>((ys.hi - ys.lo) * (xs.hi - xs.lo));
  }
}

// The adaptive cells along one dim that hold input cell h: floor(o*in/out) <= h and
// ceil((o+1)*in/out) > h, i.e. o in [floor(h*out/in), ceil((h+1)*out/in) - 1].
__device__ __forceinline__ Window adaptive_covering(int64_t h, int64_t in, int64_t out) {
  return {(h * out) / in, ((h + 1) * out + in - 1) / in};
}

// One thread per input cell: the sum of grad_out / (cell area) over the cells that hold it,
// in (oy, ox) order like the CPU's scatter.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    adaptive_avg_backward_gather(const T* go, Planes g, T* gx) {
  // go [planes, OH, OW]; gx [planes, H, W]; both contiguous
  const int64_t n = g.planes * g.H * g.W;
  for (int64_t i = first_index(); i < n; i += grid_step()) {
    const int64_t w = i % g.W, h = (i / g.W) % g.H, pl = i / (g.W * g.H);
    const T* src = go + pl * g.OH * g.OW;
    const Window oys = adaptive_covering(h, g.H, g.OH);
    const Window oxs = adaptive_covering(w, g.W, g.OW);
    T acc = 0;
    for (int64_t oy = oys.lo; oy < oys.hi; ++oy) {
      const Window ys = adaptive_window(oy, g.H, g.OH);
      for (int64_t ox = oxs.lo; ox < oxs.hi; ++ox) {
        const Window xs = adaptive_window(ox, g.W, g.OW);
        acc += src[oy * g.OW + ox] / static_cast<T>((ys.hi - ys.lo) * (xs.hi - xs.lo));
      }
    }
    gx[i] = acc;
  }
}

// ============================================================================================
// Host side: checks (the CPU's, with a CUDA device), geometry, launches
// ============================================================================================

unsigned grid_for(int64_t n) {
  return grid_stride_blocks(n, kThreads, kMaxBlocks);
}

// Every tensor on the input's CUDA device (the argument checks themselves are in
// kernels/pool_plan.h).
void check_on_cuda(const Tensor& t, const Device& device, const char* op, const char* name) {
  SELFSUP_CHECK(t.device().is_cuda() && t.device() == device, op, " (cuda): ", name, " is on ",
                t.device().str(), ", expected ", device.str());
}

using kernels::OutBuffer;  // kernels write contiguous planes

// Calls fn(float{}) or fn(double{}) (callers have checked the dtype is one of them).
template <typename Fn>
void dispatch_float(DType dtype, Fn&& fn) {
  if (dtype == kFloat32) return fn(float{});
  fn(double{});
}

}  // namespace

// ============================================================================================
// Entry points
// ============================================================================================

void max_pool2d(const Tensor& x, const Pool2dParams& p, Tensor& out, Tensor& indices) {
  const char* op = "max_pool2d";
  const Planes g = pool_plan::check_max_pool2d(op, x, p, out, indices, check_on_cuda);
  const int64_t n = g.planes * g.OH * g.OW;
  if (n == 0) return;
  const Tensor xc = raw::contiguous(x);  // [N, C, H, W]
  OutBuffer ob(out), ib(indices);
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    max_pool_forward<T>
        <<<grid_for(n), kThreads>>>(xc.data_ptr<T>(), g, p, ob.data<T>(), ib.data<int64_t>());
  });
  check_launch(op);
  ob.commit();
  ib.commit();
}

void max_pool2d_backward(const Tensor& grad_out, const Tensor& indices, Tensor& grad_x) {
  const char* op = "max_pool2d_backward";
  pool_plan::check_max_pool2d_backward(op, grad_out, indices, grad_x, check_on_cuda);
  const int64_t planes = grad_x.size(0) * grad_x.size(1);
  const int64_t in_size = grad_x.size(2) * grad_x.size(3);
  const int64_t out_size = grad_out.size(2) * grad_out.size(3);
  const Tensor ic = raw::contiguous(indices);  // [N, C, OH, OW]
  if (const auto bad = detail::first_out_of_range(ic, in_size))
    pool_plan::check_plane_index(op, *bad, grad_x.size(2), grad_x.size(3));
  if (planes * in_size == 0) return;
  const Tensor gc = raw::contiguous(grad_out);  // [N, C, OH, OW]
  OutBuffer ob(grad_x);
  const unsigned blocks =
      static_cast<unsigned>(std::min(ceil_div(planes, kWarpsPerBlock), kMaxBlocks));
  dispatch_float(grad_x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    max_pool_backward_scatter<T><<<blocks, kThreads>>>(gc.data_ptr<T>(), ic.data_ptr<int64_t>(),
                                                       planes, in_size, out_size, ob.data<T>());
  });
  check_launch(op);
  ob.commit();
}

void avg_pool2d(const Tensor& x, const Pool2dParams& p, Tensor& out) {
  const char* op = "avg_pool2d";
  const Planes g = pool_plan::check_avg_pool2d(op, x, p, out, check_on_cuda);
  const int64_t n = g.planes * g.OH * g.OW;
  if (n == 0) return;
  const Tensor xc = raw::contiguous(x);  // [N, C, H, W]
  OutBuffer ob(out);
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    avg_pool_forward<T><<<grid_for(n), kThreads>>>(xc.data_ptr<T>(), g, p, ob.data<T>());
  });
  check_launch(op);
  ob.commit();
}

void avg_pool2d_backward(const Tensor& grad_out, const Pool2dParams& p, Tensor& grad_x) {
  const char* op = "avg_pool2d_backward";
  const Planes g = pool_plan::check_avg_pool2d_backward(op, grad_out, p, grad_x, check_on_cuda);
  const int64_t n = g.planes * g.H * g.W;
  if (n == 0) return;
  const Tensor gc = raw::contiguous(grad_out);  // [N, C, OH, OW]
  OutBuffer ob(grad_x);
  dispatch_float(grad_x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    avg_pool_backward_gather<T><<<grid_for(n), kThreads>>>(gc.data_ptr<T>(), g, p, ob.data<T>());
  });
  check_launch(op);
  ob.commit();
}

void adaptive_avg_pool2d(const Tensor& x, Tensor& out) {
  const char* op = "adaptive_avg_pool2d";
  const Planes g = pool_plan::check_adaptive_avg_pool2d(op, x, out, check_on_cuda);
  const int64_t n = g.planes * g.OH * g.OW;
  if (n == 0) return;
  const Tensor xc = raw::contiguous(x);  // [N, C, H, W]
  OutBuffer ob(out);
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    adaptive_avg_forward<T><<<grid_for(n), kThreads>>>(xc.data_ptr<T>(), g, ob.data<T>());
  });
  check_launch(op);
  ob.commit();
}

void adaptive_avg_pool2d_backward(const Tensor& grad_out, Tensor& grad_x) {
  const char* op = "adaptive_avg_pool2d_backward";
  const Planes g =
      pool_plan::check_adaptive_avg_pool2d_backward(op, grad_out, grad_x, check_on_cuda);
  const int64_t n = g.planes * g.H * g.W;
  if (n == 0) return;
  const Tensor gc = raw::contiguous(grad_out);  // [N, C, OH, OW]
  OutBuffer ob(grad_x);
  dispatch_float(grad_x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    adaptive_avg_backward_gather<T><<<grid_for(n), kThreads>>>(gc.data_ptr<T>(), g, ob.data<T>());
  });
  check_launch(op);
  ob.commit();
}

}  // namespace selfsup::cuda
