// 2-d convolution (cross-correlation) on the CPU by im2col + GEMM, NCHW, float32/float64.
//
//   out[n, o, y, x] = bias[o] + sum_{c, i, j} w[o, c, i, j] * in[n, c, y*sh + i - ph, x*sw + j -
//   pw]
//
// im2col unrolls one image into cols [C*KH*KW, OH*OW]: row (c, i, j) holds, for every output
// pixel (y, x), the input value that kernel tap (c, i, j) sees there (0 in the padding). The
// convolution of image n is then a single GEMM that Eigen runs near the machine's peak:
//   out_n [O, OH*OW] = w [O, C*KH*KW] @ cols [C*KH*KW, OH*OW]
// Backward, per image (col2im is the adjoint of im2col: it adds each entry back where it came
// from):
//   grad_w    += grad_out_n [O, OH*OW] @ cols^T [OH*OW, C*KH*KW]
//   grad_cols  = w^T [C*KH*KW, O] @ grad_out_n [O, OH*OW];  grad_x_n = col2im(grad_cols)
//   grad_b[o]  = sum over n, y, x of grad_out[n, o, y, x]
//
// Cost: 2*N*O*C*KH*KW*OH*OW FLOPs per GEMM; minimum bytes are x + w + out, but im2col writes
// and the GEMM reads a cols buffer KH*KW times the size of the image. For any kernel wider than
// 1x1 the GEMM dominates (compute-bound); a 1x1, stride-1, unpadded convolution needs no
// im2col at all (cols is the image itself), and this file skips it there.
//
// Parallelism: over the batch when there are at least as many images as threads (each thread
// owns one cols buffer, allocated once per call, and its own grad_w accumulator); otherwise the
// images go one by one and Eigen spreads each GEMM over the threads itself.
#include "kernels/cpu/conv.h"

#include <omp.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "core/views.h"
#include "kernels/conv_plan.h"
#include "kernels/cpu/conv_norm_util.h"
#include "kernels/cpu/eigen.h"

namespace selfsup::cpu {

namespace {

template <typename T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using MatMap = Eigen::Map<RowMatrix<T>>;
template <typename T>
using ConstMatMap = Eigen::Map<const RowMatrix<T>>;
template <typename T>
using ConstVecMap = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, 1>>;

// The argument checks the CUDA kernels share are in kernels/conv_plan.h.
using conv_plan::checked_out_size;

// The outputs o in [0, out) whose input position o*stride - pad + tap lies in [0, in), as the
// half-open range [lo, hi). Computing it once per kernel tap keeps bounds checks out of the
// copy loops.
struct Range {
  int64_t lo, hi;
};
Range valid_outputs(int64_t tap, int64_t in, int64_t out, int64_t stride, int64_t pad) {
  const int64_t first = pad - tap;          // o*stride >= pad - tap
  const int64_t last = in - 1 + pad - tap;  // o*stride <= in - 1 + pad - tap
  if (last < 0) return {0, 0};
  const int64_t lo = first > 0 ? (first + stride - 1) / stride : 0;
  const int64_t hi = std::min(out, last / stride + 1);
  return {std::min(lo, hi), hi};
}

// Everything the kernels need to know about one convolution, checked.
struct ConvGeometry {
  int64_t N, C, H, W, O, KH, KW, OH, OW;
  int64_t image() const { return C * H * W; }    // elements of one input image
  int64_t taps() const { return C * KH * KW; }   // rows of cols, columns of w
  int64_t spatial() const { return OH * OW; }    // columns of cols
  bool is_direct(const Conv2dParams& p) const {  // cols would be the image itself
    return KH == 1 && KW == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h == 0 && p.pad_w == 0;
  }
};

ConvGeometry conv_geometry(const Tensor& x, const Tensor& w, const Conv2dParams& p,
                           const char* op) {
  detail::check_float_cpu(x, op, "input");
  detail::check_float_cpu(w, op, "weight");
  conv_plan::check_ranks(x, w, op);
  SELFSUP_CHECK(x.dtype() == w.dtype(), op, ": input is ", dtype_name(x.dtype()), " but weight is ",
                dtype_name(w.dtype()));
  conv_plan::check_channels(x, w, op);
  ConvGeometry g{x.size(0), x.size(1), x.size(2), x.size(3), w.size(0), w.size(2), w.size(3), 0, 0};
  g.OH = checked_out_size(g.H, g.KH, p.stride_h, p.pad_h, op);
  g.OW = checked_out_size(g.W, g.KW, p.stride_w, p.pad_w, op);
  return g;
}

// Batch-parallel when every thread gets at least one image and the work is worth a team;
// otherwise 1 (images in sequence, Eigen threads each GEMM).
int batch_threads(const ConvGeometry& g) {
  const int max_threads = omp_get_max_threads();
  const double flops = 2.0 * g.N * g.O * g.taps() * g.spatial();
  if (max_threads <= 1 || g.N < max_threads || flops < 2e6) return 1;
  return max_threads;
}

template <typename T>
void conv2d_forward(const ConvGeometry& g, const Tensor& x, const Tensor& w, const Tensor& bias,
                    const Conv2dParams& p, Tensor& out) {
  const Tensor xc = raw::contiguous(x);                                 // [N, C, H, W]
  const Tensor wc = raw::contiguous(w);                                 // [O, C*KH*KW]
  const Tensor bc = bias.defined() ? raw::contiguous(bias) : Tensor();  // [O]
  detail::OutBuffer ob(out);                                            // [N, O, OH*OW]
  const T* xp = xc.data_ptr<T>();
  T* op = ob.data<T>();
  const ConstMatMap<T> wm(wc.data_ptr<T>(), g.O, g.taps());
  const bool direct = g.is_direct(p);
  const int threads = batch_threads(g);
  const int64_t cols_size = g.taps() * g.spatial();
  // One cols buffer per thread for the whole call (uninitialised: im2col writes every entry).
  Eigen::Matrix<T, Eigen::Dynamic, 1> cols_all(direct ? 0 : threads * cols_size);

#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    T* cols = cols_all.data() + (direct ? 0 : omp_get_thread_num() * cols_size);
#pragma omp for schedule(static)
    for (int64_t n = 0; n < g.N; ++n) {
      const T* img = xp + n * g.image();  // [C, H, W]
      if (!direct) im2col(img, g.C, g.H, g.W, g.KH, g.KW, p, cols);
      MatMap<T> out_n(op + n * g.O * g.spatial(), g.O, g.spatial());  // [O, OH*OW]
      out_n.noalias() = wm * ConstMatMap<T>(direct ? img : cols, g.taps(), g.spatial());
      if (bc.defined()) out_n.colwise() += ConstVecMap<T>(bc.data_ptr<T>(), g.O);
    }
  }
  ob.commit();
}

// grad_b[o] = sum over n and the output pixels of grad_out.
template <typename T>
void conv2d_bias_grad(const ConvGeometry& g, const T* go, Tensor& grad_b) {
  detail::OutBuffer ob(grad_b);
  Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, 1>> gb(ob.data<T>(), g.O);
  gb.setZero();
  for (int64_t n = 0; n < g.N; ++n)
    gb += ConstMatMap<T>(go + n * g.O * g.spatial(), g.O, g.spatial()).rowwise().sum();
  ob.commit();
}

template <typename T>
void conv2d_backward_impl(const ConvGeometry& g, const Tensor& grad_out, const Tensor& x,
                          const Tensor& w, const Conv2dParams& p, Tensor& grad_x, Tensor& grad_w,
                          Tensor& grad_b) {
  const Tensor goc = raw::contiguous(grad_out);  // [N, O, OH*OW]
  const T* go = goc.data_ptr<T>();
  if (grad_b.defined()) conv2d_bias_grad<T>(g, go, grad_b);
  const bool need_x = grad_x.defined(), need_w = grad_w.defined();
  if (!need_x && !need_w) return;

  const Tensor xc = need_w ? raw::contiguous(x) : Tensor();  // [N, C, H, W]
  const Tensor wc = raw::contiguous(w);                      // [O, C*KH*KW]
  const ConstMatMap<T> wm(wc.data_ptr<T>(), g.O, g.taps());
  const bool direct = g.is_direct(p);
  const int threads = batch_threads(g);
  const int64_t cols_size = g.taps() * g.spatial();
  const int64_t gw_size = g.O * g.taps();
  // Thread t's cols buffer (im2col of x for grad_w, then grad_cols for grad_x); zeroed grad_w
  // accumulators for threads 1.. (thread 0 accumulates straight into the output). All are
  // zeroed here, not by their thread, so a team smaller than asked for still sums correctly.
  Eigen::Matrix<T, Eigen::Dynamic, 1> cols_all(direct ? 0 : threads * cols_size);
  Eigen::Matrix<T, Eigen::Dynamic, 1> gw_partial =
      Eigen::Matrix<T, Eigen::Dynamic, 1>::Zero(need_w ? (threads - 1) * gw_size : 0);
  detail::OutBuffer gx_buf(grad_x);  // [N, C, H, W]
  detail::OutBuffer gw_buf(grad_w);  // [O, C*KH*KW]
  if (need_w) MatMap<T>(gw_buf.data<T>(), g.O, g.taps()).setZero();

#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    const int t = omp_get_thread_num();
    T* cols = cols_all.data() + (direct ? 0 : t * cols_size);
    T* gw_data = !need_w  ? nullptr
                 : t == 0 ? gw_buf.data<T>()
                          : gw_partial.data() + (t - 1) * gw_size;
    MatMap<T> gw(gw_data, g.O, g.taps());
#pragma omp for schedule(static)
    for (int64_t n = 0; n < g.N; ++n) {
      const ConstMatMap<T> go_n(go + n * g.O * g.spatial(), g.O, g.spatial());  // [O, OH*OW]
      if (need_w) {
        const T* img = xc.data_ptr<T>() + n * g.image();
        if (!direct) im2col(img, g.C, g.H, g.W, g.KH, g.KW, p, cols);
        gw.noalias() +=
            go_n * ConstMatMap<T>(direct ? img : cols, g.taps(), g.spatial()).transpose();
      }
      if (need_x) {
        T* gx_n = gx_buf.data<T>() + n * g.image();  // [C, H, W]
        MatMap<T> target(direct ? gx_n : cols, g.taps(), g.spatial());
        target.noalias() = wm.transpose() * go_n;
        if (!direct) {
          std::fill(gx_n, gx_n + g.image(), T(0));
          col2im(cols, g.C, g.H, g.W, g.KH, g.KW, p, gx_n);
        }
      }
    }
  }
  if (need_w) {
    MatMap<T> gw(gw_buf.data<T>(), g.O, g.taps());
    for (int t = 1; t < threads; ++t)
      gw += MatMap<T>(gw_partial.data() + (t - 1) * gw_size, g.O, g.taps());
    gw_buf.commit();
  }
  if (need_x) gx_buf.commit();
}

}  // namespace

int64_t conv_out_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad) {
  return checked_out_size(in, kernel, stride, pad, "conv_out_size");
}

// ---------------------------------------------------------------------------------------------
// im2col / col2im
// ---------------------------------------------------------------------------------------------
// Row (c, i, j) of cols, at output pixel (y, x), reads input (c, y*sh - ph + i, x*sw - pw + j).
// For a fixed tap the valid y and x form ranges, so each output row is: zeros on the left, a
// copy (a plain memcpy-like run when the stride is 1, a strided gather otherwise), zeros on the
// right; rows whose input row falls in the padding are all zeros.

template <typename T>
void im2col(const T* img, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
            const Conv2dParams& p, T* cols) {
  const int64_t OH = checked_out_size(H, KH, p.stride_h, p.pad_h, "im2col");
  const int64_t OW = checked_out_size(W, KW, p.stride_w, p.pad_w, "im2col");
  const int64_t sw = p.stride_w;
  for (int64_t c = 0; c < C; ++c) {
    const T* plane = img + c * H * W;  // [H, W]
    for (int64_t i = 0; i < KH; ++i) {
      const Range ys = valid_outputs(i, H, OH, p.stride_h, p.pad_h);
      for (int64_t j = 0; j < KW; ++j) {
        const Range xs = valid_outputs(j, W, OW, sw, p.pad_w);
        const int64_t x_shift = j - p.pad_w;                // input column = x * sw + x_shift
        T* row = cols + ((c * KH + i) * KW + j) * OH * OW;  // [OH, OW]
        std::fill(row, row + ys.lo * OW, T(0));
        for (int64_t y = ys.lo; y < ys.hi; ++y) {
          const T* src = plane + (y * p.stride_h - p.pad_h + i) * W;  // one input row
          T* dst = row + y * OW;
          std::fill(dst, dst + xs.lo, T(0));
          if (sw == 1) {
            std::copy(src + xs.lo + x_shift, src + xs.hi + x_shift, dst + xs.lo);
          } else {
            for (int64_t x = xs.lo; x < xs.hi; ++x)
              dst[x] = src[x * sw + x_shift];
          }
          std::fill(dst + xs.hi, dst + OW, T(0));
        }
        std::fill(row + ys.hi * OW, row + OH * OW, T(0));
      }
    }
  }
}

// The adjoint: the same walk, adding each cols entry into the input cell it was read from.
template <typename T>
void col2im(const T* cols, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
            const Conv2dParams& p, T* img) {
  const int64_t OH = checked_out_size(H, KH, p.stride_h, p.pad_h, "col2im");
  const int64_t OW = checked_out_size(W, KW, p.stride_w, p.pad_w, "col2im");
  const int64_t sw = p.stride_w;
  for (int64_t c = 0; c < C; ++c) {
    T* plane = img + c * H * W;  // [H, W]
    for (int64_t i = 0; i < KH; ++i) {
      const Range ys = valid_outputs(i, H, OH, p.stride_h, p.pad_h);
      for (int64_t j = 0; j < KW; ++j) {
        const Range xs = valid_outputs(j, W, OW, sw, p.pad_w);
        const int64_t x_shift = j - p.pad_w;
        const T* row = cols + ((c * KH + i) * KW + j) * OH * OW;  // [OH, OW]
        for (int64_t y = ys.lo; y < ys.hi; ++y) {
          T* dst = plane + (y * p.stride_h - p.pad_h + i) * W + x_shift;  // dst[x*sw]
          const T* src = row + y * OW;
          for (int64_t x = xs.lo; x < xs.hi; ++x)
            dst[x * sw] += src[x];
        }
      }
    }
  }
}

template void im2col<float>(const float*, int64_t, int64_t, int64_t, int64_t, int64_t,
                            const Conv2dParams&, float*);
template void im2col<double>(const double*, int64_t, int64_t, int64_t, int64_t, int64_t,
                             const Conv2dParams&, double*);
template void col2im<float>(const float*, int64_t, int64_t, int64_t, int64_t, int64_t,
                            const Conv2dParams&, float*);
template void col2im<double>(const double*, int64_t, int64_t, int64_t, int64_t, int64_t,
                             const Conv2dParams&, double*);

// ---------------------------------------------------------------------------------------------
// Entry points: check, then dispatch on the dtype.
// ---------------------------------------------------------------------------------------------

void conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& p,
            Tensor& out) {
  const ConvGeometry g = conv_geometry(x, w, p, "conv2d");
  conv_plan::check_forward_outputs("conv2d", x, w, bias, out, {g.N, g.O, g.OH, g.OW},
                                   detail::check_dtype_cpu);
  dispatch_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point_v<T>) conv2d_forward<T>(g, x, w, bias, p, out);
  });
}

void conv2d_backward(const Tensor& grad_out, const Tensor& x, const Tensor& w,
                     const Conv2dParams& p, Tensor& grad_x, Tensor& grad_w, Tensor& grad_b) {
  const char* op = "conv2d_backward";
  const ConvGeometry g = conv_geometry(x, w, p, op);
  conv_plan::check_backward_grads(op, x, w, grad_out, {g.N, g.O, g.OH, g.OW}, grad_x, grad_w,
                                  grad_b, detail::check_dtype_cpu);
  dispatch_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point_v<T>)
      conv2d_backward_impl<T>(g, grad_out, x, w, p, grad_x, grad_w, grad_b);
  });
}

}  // namespace selfsup::cpu
