// The host-side argument checks and geometry of 2-d pooling (max, average, adaptive average,
// NCHW), shared by kernels/cpu/pool.cpp and kernels/cuda/pool.cu so both backends take the same
// arguments to mean the same thing and refuse bad ones with the same words. The backends differ
// only in where the tensors must live: each passes its DeviceCheck, which the checks below call
// where they reach a tensor's device. Plain C++ on shapes and parameters: no loops over data (the
// max-pool backward's indices are range-checked on the data, by each backend).
#pragma once

#include <cstdint>

#include "core/error.h"
#include "core/shape.h"
#include "core/tensor.h"
#include "kernels/cpu/pool.h"  // Pool2dParams

namespace selfsup::pool_plan {

using cpu::Pool2dParams;

// A backend's device rule: throws unless t (named `name`) is where its kernels can read it
// together with the op's main input, which is on input_device.
using DeviceCheck = void (*)(const Tensor& t, const Device& input_device, const char* op,
                             const char* name);

// The planes of a pool: planes = N*C independent [H, W] -> [OH, OW] maps.
struct PoolGeometry {
  int64_t planes, H, W, OH, OW;
};

// ---- one tensor ----

// A defined float32/float64 4-d tensor; input is the op's main input (it may be t itself).
inline void check_nchw(const Tensor& t, const Tensor& input, DeviceCheck on_device, const char* op,
                       const char* name) {
  SELFSUP_CHECK(t.defined(), op, ": ", name, " is undefined");
  on_device(t, input.device(), op, name);
  SELFSUP_CHECK(is_floating(t.dtype()), op, ": ", name, " must be float32 or float64, got ",
                dtype_name(t.dtype()));
  SELFSUP_CHECK(t.dim() == 4, op, ": ", name, " must be 4-d [N, C, H, W], got ",
                shape_str(t.shape()));
}

// A defined tensor of `dtype` with the main input.
inline void check_dtype(const Tensor& t, DType dtype, const Tensor& input, DeviceCheck on_device,
                        const char* op, const char* name) {
  SELFSUP_CHECK(t.defined(), op, ": ", name, " is undefined");
  on_device(t, input.device(), op, name);
  SELFSUP_CHECK(t.dtype() == dtype, op, ": ", name, " is ", dtype_name(t.dtype()), ", expected ",
                dtype_name(dtype));
}

inline void check_shape(const Tensor& t, const Shape& expected, const char* op, const char* name) {
  SELFSUP_CHECK(t.shape() == expected, op, ": ", name, " has shape ", shape_str(t.shape()),
                ", expected ", shape_str(expected));
}

// ---- window geometry ----

inline void check_pool_params(const Pool2dParams& p, const char* op) {
  SELFSUP_CHECK(p.kernel_h > 0 && p.kernel_w > 0, op, ": kernel size must be positive, got ",
                p.kernel_h, "x", p.kernel_w);
  SELFSUP_CHECK(p.stride_h > 0 && p.stride_w > 0, op, ": stride must be positive, got ", p.stride_h,
                "x", p.stride_w);
  // As in PyTorch: with at most half a kernel of padding every window holds an input cell.
  SELFSUP_CHECK(
      p.pad_h >= 0 && p.pad_w >= 0 && p.pad_h <= p.kernel_h / 2 && p.pad_w <= p.kernel_w / 2, op,
      ": padding ", p.pad_h, "x", p.pad_w, " must be non-negative and at most half the kernel ",
      p.kernel_h, "x", p.kernel_w);
}

inline int64_t pool_out_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad,
                             const char* op) {
  SELFSUP_CHECK(in + 2 * pad >= kernel, op, ": kernel size ", kernel,
                " is larger than the padded input size ", in + 2 * pad);
  return (in + 2 * pad - kernel) / stride + 1;
}

// A windowed pool whose input is `in` = [N, C, H, W] and output [N, C, OH, OW].
inline PoolGeometry window_geometry(const Shape& in, const Pool2dParams& p, const char* op) {
  check_pool_params(p, op);
  SELFSUP_CHECK(in[2] > 0 && in[3] > 0, op, ": input ", shape_str(in), " has an empty plane");
  return {in[0] * in[1], in[2], in[3], pool_out_size(in[2], p.kernel_h, p.stride_h, p.pad_h, op),
          pool_out_size(in[3], p.kernel_w, p.stride_w, p.pad_w, op)};
}

inline Shape pooled_shape(const Shape& in, const PoolGeometry& g) {
  return {in[0], in[1], g.OH, g.OW};
}

// One max-pool index v (a flat h*W + w) must name a cell of an H x W plane.
inline void check_plane_index(const char* op, int64_t v, int64_t H, int64_t W) {
  SELFSUP_CHECK(v >= 0 && v < H * W, op, ": index ", v, " out of range for a ", H, "x", W,
                " plane");
}

// ---- every argument of one entry point (see kernels/cpu/pool.h for the contracts) ----

inline PoolGeometry check_max_pool2d(const char* op, const Tensor& x, const Pool2dParams& p,
                                     const Tensor& out, const Tensor& indices,
                                     DeviceCheck on_device) {
  check_nchw(x, x, on_device, op, "input");
  const PoolGeometry g = window_geometry(x.shape(), p, op);
  check_dtype(out, x.dtype(), x, on_device, op, "out");
  check_shape(out, pooled_shape(x.shape(), g), op, "out");
  check_dtype(indices, kInt64, x, on_device, op, "indices");
  check_shape(indices, pooled_shape(x.shape(), g), op, "indices");
  return g;
}

// The indices' values are checked by the backend, on the data (with check_plane_index).
inline void check_max_pool2d_backward(const char* op, const Tensor& grad_out, const Tensor& indices,
                                      const Tensor& grad_x, DeviceCheck on_device) {
  check_nchw(grad_out, grad_out, on_device, op, "grad_out");
  check_nchw(grad_x, grad_out, on_device, op, "grad_x");
  check_dtype(grad_x, grad_out.dtype(), grad_out, on_device, op, "grad_x");
  check_dtype(indices, kInt64, grad_out, on_device, op, "indices");
  check_shape(indices, grad_out.shape(), op, "indices");
  SELFSUP_CHECK(grad_x.size(0) == grad_out.size(0) && grad_x.size(1) == grad_out.size(1), op,
                ": grad_x ", shape_str(grad_x.shape()), " and grad_out ",
                shape_str(grad_out.shape()), " differ in N or C");
}

inline PoolGeometry check_avg_pool2d(const char* op, const Tensor& x, const Pool2dParams& p,
                                     const Tensor& out, DeviceCheck on_device) {
  check_nchw(x, x, on_device, op, "input");
  const PoolGeometry g = window_geometry(x.shape(), p, op);
  check_dtype(out, x.dtype(), x, on_device, op, "out");
  check_shape(out, pooled_shape(x.shape(), g), op, "out");
  return g;
}

inline PoolGeometry check_avg_pool2d_backward(const char* op, const Tensor& grad_out,
                                              const Pool2dParams& p, const Tensor& grad_x,
                                              DeviceCheck on_device) {
  check_nchw(grad_out, grad_out, on_device, op, "grad_out");
  check_nchw(grad_x, grad_out, on_device, op, "grad_x");
  check_dtype(grad_x, grad_out.dtype(), grad_out, on_device, op, "grad_x");
  const PoolGeometry g = window_geometry(grad_x.shape(), p, op);
  check_shape(grad_out, pooled_shape(grad_x.shape(), g), op, "grad_out");
  return g;
}

inline PoolGeometry check_adaptive_avg_pool2d(const char* op, const Tensor& x, const Tensor& out,
                                              DeviceCheck on_device) {
  check_nchw(x, x, on_device, op, "input");
  check_nchw(out, x, on_device, op, "out");
  check_dtype(out, x.dtype(), x, on_device, op, "out");
  SELFSUP_CHECK(
      out.size(0) == x.size(0) && out.size(1) == x.size(1) && out.size(2) > 0 && out.size(3) > 0,
      op, ": out ", shape_str(out.shape()), " does not fit input ", shape_str(x.shape()),
      " (needs the same N, C and a positive output size)");
  SELFSUP_CHECK(x.size(2) > 0 && x.size(3) > 0, op, ": input ", shape_str(x.shape()),
                " has an empty plane");
  return {x.size(0) * x.size(1), x.size(2), x.size(3), out.size(2), out.size(3)};
}

inline PoolGeometry check_adaptive_avg_pool2d_backward(const char* op, const Tensor& grad_out,
                                                       const Tensor& grad_x,
                                                       DeviceCheck on_device) {
  check_nchw(grad_out, grad_out, on_device, op, "grad_out");
  check_nchw(grad_x, grad_out, on_device, op, "grad_x");
  check_dtype(grad_x, grad_out.dtype(), grad_out, on_device, op, "grad_x");
  SELFSUP_CHECK(grad_out.size(0) == grad_x.size(0) && grad_out.size(1) == grad_x.size(1) &&
                    grad_out.size(2) > 0 && grad_out.size(3) > 0,
                op, ": grad_out ", shape_str(grad_out.shape()), " does not fit grad_x ",
                shape_str(grad_x.shape()));
  SELFSUP_CHECK(grad_x.size(2) > 0 && grad_x.size(3) > 0, op, ": grad_x ",
                shape_str(grad_x.shape()), " has an empty plane");
  return {grad_x.size(0) * grad_x.size(1), grad_x.size(2), grad_x.size(3), grad_out.size(2),
          grad_out.size(3)};
}

}  // namespace selfsup::pool_plan
