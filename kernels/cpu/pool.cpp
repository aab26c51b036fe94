// 2-d pooling on the CPU, NCHW, float32/float64.
//
//   max:      out[n, c, y, x] = max over the window of in[n, c, y*sh - ph + i, x*sw - pw + j]
//             (padding is -infinity, so it never wins), indices = h*W + w of the winner
//   average:  out = (sum over the window, padding counted as 0) / (KH*KW)   (count_include_pad)
//   adaptive: output cell i covers input rows [floor(i*H/OH), ceil((i+1)*H/OH)), same for
//             columns, and averages them
//
// Every (n, c) plane is independent, so all kernels run one plane per OpenMP iteration; the
// backward passes scatter into their own plane only, so there are no write races. Each kernel
// reads its input once and writes its output once (window sums re-read the input KH*KW/(sh*sw)
// times, from cache): memory-bound.
#include "kernels/cpu/pool.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "core/views.h"
#include "kernels/cpu/conv_norm_util.h"
#include "kernels/pool_plan.h"

namespace selfsup::cpu {

namespace {

// Enough output elements times window size to be worth an OpenMP team.
constexpr int64_t kParallelWork = 1 << 15;

using pool_plan::PoolGeometry;

// Every tensor on the CPU (the argument checks themselves are in kernels/pool_plan.h).
void check_on_cpu(const Tensor& t, const Device&, const char* op, const char* name) {
  SELFSUP_CHECK(t.device().is_cpu(), op, ": ", name, " must be on the CPU, got ", t.device().str());
}

// The window of output index o along one dim, clipped to the input: [lo, hi).
struct Window {
  int64_t lo, hi;
};
Window window(int64_t o, int64_t kernel, int64_t stride, int64_t pad, int64_t in) {
  const int64_t start = o * stride - pad;
  return {std::max<int64_t>(start, 0), std::min(start + kernel, in)};
}

// PyTorch's adaptive rule: cell o of out covers [floor(o*in/out), ceil((o+1)*in/out)).
Window adaptive_window(int64_t o, int64_t in, int64_t out) {
  return {(o * in) / out, ((o + 1) * in + out - 1) / out};
}

template <typename Fn>
void dispatch_float(DType dtype, Fn&& fn) {
  dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point_v<T>) fn(T{});
  });
}

// ---------------------------------------------------------------------------------------------
// Max pooling
// ---------------------------------------------------------------------------------------------

template <typename T>
void max_pool_planes(const T* x, const PoolGeometry& g, const Pool2dParams& p, T* out,
                     int64_t* idx) {
  const int64_t work = g.planes * g.OH * g.OW * p.kernel_h * p.kernel_w;
#pragma omp parallel for schedule(static) if (work > kParallelWork)
  for (int64_t pl = 0; pl < g.planes; ++pl) {
    const T* plane = x + pl * g.H * g.W;  // [H, W]
    T* o = out + pl * g.OH * g.OW;        // [OH, OW]
    int64_t* ix = idx + pl * g.OH * g.OW;
    for (int64_t oy = 0; oy < g.OH; ++oy) {
      const Window ys = window(oy, p.kernel_h, p.stride_h, p.pad_h, g.H);
      for (int64_t ox = 0; ox < g.OW; ++ox) {
        const Window xs = window(ox, p.kernel_w, p.stride_w, p.pad_w, g.W);
        T best = -std::numeric_limits<T>::infinity();
        int64_t arg = ys.lo * g.W + xs.lo;
        for (int64_t y = ys.lo; y < ys.hi; ++y) {
          for (int64_t xx = xs.lo; xx < xs.hi; ++xx) {
            const T v = plane[y * g.W + xx];
            if (v > best || std::isnan(v)) {  // a NaN wins, as in PyTorch
              best = v;
              arg = y * g.W + xx;
            }
          }
        }
        o[oy * g.OW + ox] = best;
        ix[oy * g.OW + ox] = arg;
      }
    }
  }
}

template <typename T>
void max_pool_backward_planes(const T* go, const int64_t* idx, int64_t planes, int64_t in_size,
                              int64_t out_size, T* gx) {
#pragma omp parallel for schedule(static) if (planes * (in_size + out_size) > kParallelWork)
  for (int64_t pl = 0; pl < planes; ++pl) {
    T* g = gx + pl * in_size;
    std::fill(g, g + in_size, T(0));
    const T* src = go + pl * out_size;
    const int64_t* ix = idx + pl * out_size;
    for (int64_t i = 0; i < out_size; ++i)
      g[ix[i]] += src[i];
  }
}

// ---------------------------------------------------------------------------------------------
// Average pooling
// ---------------------------------------------------------------------------------------------
// With padding at most half the kernel and floor rounding, every window ends inside the padded
// input, so PyTorch's count_include_pad divisor is always the full KH*KW.

template <typename T>
void avg_pool_planes(const T* x, const PoolGeometry& g, const Pool2dParams& p, T* out) {
  const T inv_area = T(1) / static_cast<T>(p.kernel_h * p.kernel_w);
  const int64_t work = g.planes * g.OH * g.OW * p.kernel_h * p.kernel_w;
#pragma omp parallel for schedule(static) if (work > kParallelWork)
  for (int64_t pl = 0; pl < g.planes; ++pl) {
    const T* plane = x + pl * g.H * g.W;
    T* o = out + pl * g.OH * g.OW;
    for (int64_t oy = 0; oy < g.OH; ++oy) {
      const Window ys = window(oy, p.kernel_h, p.stride_h, p.pad_h, g.H);
      for (int64_t ox = 0; ox < g.OW; ++ox) {
        const Window xs = window(ox, p.kernel_w, p.stride_w, p.pad_w, g.W);
        T sum = 0;
        for (int64_t y = ys.lo; y < ys.hi; ++y)
          for (int64_t xx = xs.lo; xx < xs.hi; ++xx)
            sum += plane[y * g.W + xx];
        o[oy * g.OW + ox] = sum * inv_area;
      }
    }
  }
}

template <typename T>
void avg_pool_backward_planes(const T* go, const PoolGeometry& g, const Pool2dParams& p, T* gx) {
  const T inv_area = T(1) / static_cast<T>(p.kernel_h * p.kernel_w);
  const int64_t work = g.planes * g.OH * g.OW * p.kernel_h * p.kernel_w;
#pragma omp parallel for schedule(static) if (work > kParallelWork)
  for (int64_t pl = 0; pl < g.planes; ++pl) {
    T* plane = gx + pl * g.H * g.W;
    std::fill(plane, plane + g.H * g.W, T(0));
    const T* src = go + pl * g.OH * g.OW;
    for (int64_t oy = 0; oy < g.OH; ++oy) {
      const Window ys = window(oy, p.kernel_h, p.stride_h, p.pad_h, g.H);
      for (int64_t ox = 0; ox < g.OW; ++ox) {
        const Window xs = window(ox, p.kernel_w, p.stride_w, p.pad_w, g.W);
        const T share = src[oy * g.OW + ox] * inv_area;
        for (int64_t y = ys.lo; y < ys.hi; ++y)
          for (int64_t xx = xs.lo; xx < xs.hi; ++xx)
            plane[y * g.W + xx] += share;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Adaptive average pooling
// ---------------------------------------------------------------------------------------------

template <typename T>
void adaptive_avg_planes(const T* x, const PoolGeometry& g, T* out) {
#pragma omp parallel for schedule(static) if (g.planes * g.H * g.W > kParallelWork)
  for (int64_t pl = 0; pl < g.planes; ++pl) {
    const T* plane = x + pl * g.H * g.W;
    T* o = out + pl * g.OH * g.OW;
    for (int64_t oy = 0; oy < g.OH; ++oy) {
      const Window ys = adaptive_window(oy, g.H, g.OH);
      for (int64_t ox = 0; ox < g.OW; ++ox) {
        const Window xs = adaptive_window(ox, g.W, g.OW);
        T sum = 0;
        for (int64_t y = ys.lo; y < ys.hi; ++y)
          for (int64_t xx = xs.lo; xx < xs.hi; ++xx)
            sum += plane[y * g.W + xx];
        o[oy * g.OW + ox] = sum / static_cast<T>((ys.hi - ys.lo) * (xs.hi - xs.lo));
      }
    }
  }
}

template <typename T>
void adaptive_avg_backward_planes(const T* go, const PoolGeometry& g, T* gx) {
#pragma omp parallel for schedule(static) if (g.planes * g.H * g.W > kParallelWork)
  for (int64_t pl = 0; pl < g.planes; ++pl) {
    T* plane = gx + pl * g.H * g.W;
    std::fill(plane, plane + g.H * g.W, T(0));
    const T* src = go + pl * g.OH * g.OW;
    for (int64_t oy = 0; oy < g.OH; ++oy) {
      const Window ys = adaptive_window(oy, g.H, g.OH);
      for (int64_t ox = 0; ox < g.OW; ++ox) {
        const Window xs = adaptive_window(ox, g.W, g.OW);
        const T share = src[oy * g.OW + ox] / static_cast<T>((ys.hi - ys.lo) * (xs.hi - xs.lo));
        for (int64_t y = ys.lo; y < ys.hi; ++y)
          for (int64_t xx = xs.lo; xx < xs.hi; ++xx)
            plane[y * g.W + xx] += share;
      }
    }
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Entry points: check shapes and dtypes, make inputs contiguous once, dispatch.
// ---------------------------------------------------------------------------------------------

void max_pool2d(const Tensor& x, const Pool2dParams& p, Tensor& out, Tensor& indices) {
  const PoolGeometry g =
      pool_plan::check_max_pool2d("max_pool2d", x, p, out, indices, check_on_cpu);
  const Tensor xc = raw::contiguous(x);
  detail::OutBuffer ob(out), ib(indices);
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    max_pool_planes<T>(xc.data_ptr<T>(), g, p, ob.data<T>(), ib.data<int64_t>());
  });
  ob.commit();
  ib.commit();
}

void max_pool2d_backward(const Tensor& grad_out, const Tensor& indices, Tensor& grad_x) {
  const char* op = "max_pool2d_backward";
  pool_plan::check_max_pool2d_backward(op, grad_out, indices, grad_x, check_on_cpu);
  const int64_t in_size = grad_x.size(2) * grad_x.size(3);
  const int64_t out_size = grad_out.size(2) * grad_out.size(3);
  const Tensor ic = raw::contiguous(indices);
  const int64_t* ix = ic.data_ptr<int64_t>();
  // Validate before the parallel scatter (an exception cannot leave an OpenMP region).
  for (int64_t i = 0; i < ic.numel(); ++i)
    pool_plan::check_plane_index(op, ix[i], grad_x.size(2), grad_x.size(3));
  const Tensor gc = raw::contiguous(grad_out);
  detail::OutBuffer ob(grad_x);
  dispatch_float(grad_x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    max_pool_backward_planes<T>(gc.data_ptr<T>(), ix, grad_x.size(0) * grad_x.size(1), in_size,
                                out_size, ob.data<T>());
  });
  ob.commit();
}

void avg_pool2d(const Tensor& x, const Pool2dParams& p, Tensor& out) {
  const PoolGeometry g = pool_plan::check_avg_pool2d("avg_pool2d", x, p, out, check_on_cpu);
  const Tensor xc = raw::contiguous(x);
  detail::OutBuffer ob(out);
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    avg_pool_planes<T>(xc.data_ptr<T>(), g, p, ob.data<T>());
  });
  ob.commit();
}

void avg_pool2d_backward(const Tensor& grad_out, const Pool2dParams& p, Tensor& grad_x) {
  const PoolGeometry g = pool_plan::check_avg_pool2d_backward("avg_pool2d_backward", grad_out, p,
                                                              grad_x, check_on_cpu);
  const Tensor gc = raw::contiguous(grad_out);
  detail::OutBuffer ob(grad_x);
  dispatch_float(grad_x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    avg_pool_backward_planes<T>(gc.data_ptr<T>(), g, p, ob.data<T>());
  });
  ob.commit();
}

void adaptive_avg_pool2d(const Tensor& x, Tensor& out) {
  const PoolGeometry g =
      pool_plan::check_adaptive_avg_pool2d("adaptive_avg_pool2d", x, out, check_on_cpu);
  const Tensor xc = raw::contiguous(x);
  detail::OutBuffer ob(out);
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    adaptive_avg_planes<T>(xc.data_ptr<T>(), g, ob.data<T>());
  });
  ob.commit();
}

void adaptive_avg_pool2d_backward(const Tensor& grad_out, Tensor& grad_x) {
  const PoolGeometry g = pool_plan::check_adaptive_avg_pool2d_backward(
      "adaptive_avg_pool2d_backward", grad_out, grad_x, check_on_cpu);
  const Tensor gc = raw::contiguous(grad_out);
  detail::OutBuffer ob(grad_x);
  dispatch_float(grad_x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    adaptive_avg_backward_planes<T>(gc.data_ptr<T>(), g, ob.data<T>());
  });
  ob.commit();
}

}  // namespace selfsup::cpu
