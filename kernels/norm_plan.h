// The host-side argument checks and geometry of batch norm, layer norm and dropout, shared by
// kernels/cpu/norm.cpp and kernels/cuda/norm.cu so both backends take the same arguments to mean
// the same thing and refuse bad ones with the same words. The one thing the backends differ in is
// where the tensors must live: each passes its Devices, the two device checks the checks below
// call at the point where they reach a tensor's device (the CPU wants every tensor on the CPU; the
// CUDA kernels want the input on a CUDA device and every other tensor on the input's). Plain C++
// on shapes and dtypes: no loops over data.
#pragma once

#include <cstdint>

#include "core/error.h"
#include "core/shape.h"
#include "core/tensor.h"

namespace selfsup::norm_plan {

// A backend's device checks; each throws with a message naming op and the tensor.
struct Devices {
  // The op's main input (x, or grad_out where there is no x).
  void (*input)(const Tensor& t, const char* op, const char* name);
  // Any other tensor, which must sit with the main input (on input_device).
  void (*other)(const Tensor& t, const Device& input_device, const char* op, const char* name);
};

// ---- one tensor ----

// The main input: defined, on the backend's device, float32 or float64.
inline void check_float(const Tensor& t, const Devices& dev, const char* op, const char* name) {
  SELFSUP_CHECK(t.defined(), op, ": ", name, " is undefined");
  dev.input(t, op, name);
  SELFSUP_CHECK(is_floating(t.dtype()), op, ": ", name, " must be float32 or float64, got ",
                dtype_name(t.dtype()));
}

// Another tensor: defined, with the main input x, of exactly `dtype`.
inline void check_dtype(const Tensor& t, DType dtype, const Tensor& x, const Devices& dev,
                        const char* op, const char* name) {
  SELFSUP_CHECK(t.defined(), op, ": ", name, " is undefined");
  dev.other(t, x.device(), op, name);
  SELFSUP_CHECK(t.dtype() == dtype, op, ": ", name, " is ", dtype_name(t.dtype()), ", expected ",
                dtype_name(dtype));
}

inline void check_shape(const Tensor& t, const Shape& expected, const char* op, const char* name) {
  SELFSUP_CHECK(t.shape() == expected, op, ": ", name, " has shape ", shape_str(t.shape()),
                ", expected ", shape_str(expected));
}

// A tensor of x's dtype and shape (an output or a gradient of x's size).
inline void check_like(const Tensor& t, const Tensor& x, const Devices& dev, const char* op,
                       const char* name) {
  check_dtype(t, x.dtype(), x, dev, op, name);
  check_shape(t, x.shape(), op, name);
}

// An optional parameter (weight, bias, statistics): undefined, or x's dtype with `shape`.
inline void check_param(const Tensor& t, const Tensor& x, const Shape& shape, const Devices& dev,
                        const char* op, const char* name) {
  if (!t.defined()) return;
  check_dtype(t, x.dtype(), x, dev, op, name);
  SELFSUP_CHECK(t.shape() == shape, op, ": ", name, " ", shape_str(t.shape()),
                " does not match input ", shape_str(x.shape()), " (expects ", shape_str(shape),
                ")");
}

inline void check_eps(double eps, const char* op) {
  SELFSUP_CHECK(eps >= 0, op, ": eps must be non-negative, got ", eps);
}

inline void check_probability(double p, const char* op) {
  SELFSUP_CHECK(p >= 0.0 && p <= 1.0, op, ": probability p must be in [0, 1], got ", p);
}

// Dropout's 1 / (1 - p); 0 when p == 1, where every element is dropped and the output is zeros.
inline double keep_scale(double p) {
  return p < 1.0 ? 1.0 / (1.0 - p) : 0.0;
}

// ---- geometry ----

// Batch norm: x [N, C, *] seen as N blocks of C rows of S contiguous values.
struct ChannelGeometry {
  int64_t N, C, S;
  int64_t count() const { return N * S; }  // values per channel
  int64_t numel() const { return N * C * S; }
};

inline ChannelGeometry channel_geometry(const Tensor& x, const Devices& dev, const char* op,
                                        const char* name) {
  check_float(x, dev, op, name);
  SELFSUP_CHECK(x.dim() >= 2, op, ": ", name, " must be [N, C] or [N, C, *], got ",
                shape_str(x.shape()));
  const int64_t N = x.size(0), C = x.size(1);
  return {N, C, C == 0 || N == 0 ? 0 : x.numel() / (N * C)};
}

// Layer norm: x [M, D], M rows (the leading dims) each normalised over its D values (the last
// normalized_ndim dims).
struct RowGeometry {
  int64_t M, D;
  Shape row_shape, stat_shape;  // shapes of the normalised dims and of mean / rstd
};

inline RowGeometry row_geometry(const Tensor& x, int64_t normalized_ndim, const Devices& dev,
                                const char* op) {
  check_float(x, dev, op, "input");
  SELFSUP_CHECK(normalized_ndim >= 1 && normalized_ndim <= x.dim(), op, ": normalized_ndim ",
                normalized_ndim, " out of range for input ", shape_str(x.shape()), " (1..", x.dim(),
                ")");
  const auto split = x.shape().begin() + (x.dim() - normalized_ndim);
  RowGeometry g{0, 0, Shape(split, x.shape().end()), Shape(x.shape().begin(), split)};
  g.D = shape_numel(g.row_shape);
  g.M = shape_numel(g.stat_shape);
  SELFSUP_CHECK(g.D > 0, op, ": input ", shape_str(x.shape()), " has empty normalized dims ",
                shape_str(g.row_shape));
  return g;
}

// ---- every argument of one entry point (see kernels/cpu/norm.h for the contracts) ----

inline ChannelGeometry check_batch_norm(const char* op, const Tensor& x, const Tensor& weight,
                                        const Tensor& bias, const Tensor& running_mean,
                                        const Tensor& running_var, bool training, double eps,
                                        const Tensor& out, const Tensor& save_mean,
                                        const Tensor& save_invstd, const Devices& dev) {
  const ChannelGeometry g = channel_geometry(x, dev, op, "input");
  const Shape cshape{g.C};
  check_param(weight, x, cshape, dev, op, "weight");
  check_param(bias, x, cshape, dev, op, "bias");
  check_param(running_mean, x, cshape, dev, op, "running_mean");
  check_param(running_var, x, cshape, dev, op, "running_var");
  SELFSUP_CHECK(running_mean.defined() == running_var.defined(), op,
                ": running_mean and running_var must both be given or both be undefined");
  SELFSUP_CHECK(training || running_mean.defined(), op,
                ": eval mode needs running_mean and running_var");
  SELFSUP_CHECK(!training || g.count() > 1, op,
                ": training needs more than 1 value per channel, got input ", shape_str(x.shape()));
  check_eps(eps, op);
  check_like(out, x, dev, op, "out");
  check_param(save_mean, x, cshape, dev, op, "save_mean");
  check_param(save_invstd, x, cshape, dev, op, "save_invstd");
  return g;
}

inline ChannelGeometry check_batch_norm_backward(const char* op, const Tensor& grad_out,
                                                 const Tensor& x, const Tensor& weight,
                                                 const Tensor& save_mean, const Tensor& save_invstd,
                                                 const Tensor& grad_x, const Tensor& grad_w,
                                                 const Tensor& grad_b, const Devices& dev) {
  const ChannelGeometry g = channel_geometry(x, dev, op, "input");
  const Shape cshape{g.C};
  check_like(grad_out, x, dev, op, "grad_out");
  check_param(weight, x, cshape, dev, op, "weight");
  SELFSUP_CHECK(save_mean.defined() && save_invstd.defined(), op,
                ": save_mean and save_invstd are required");
  check_param(save_mean, x, cshape, dev, op, "save_mean");
  check_param(save_invstd, x, cshape, dev, op, "save_invstd");
  if (grad_x.defined()) check_like(grad_x, x, dev, op, "grad_x");
  check_param(grad_w, x, cshape, dev, op, "grad_w");
  check_param(grad_b, x, cshape, dev, op, "grad_b");
  return g;
}

// grad_out plays the input's part (there is no x).
inline ChannelGeometry check_batch_norm_eval_backward(const char* op, const Tensor& grad_out,
                                                      const Tensor& weight,
                                                      const Tensor& save_invstd,
                                                      const Tensor& grad_x, const Devices& dev) {
  const ChannelGeometry g = channel_geometry(grad_out, dev, op, "grad_out");
  const Shape cshape{g.C};
  check_param(weight, grad_out, cshape, dev, op, "weight");
  SELFSUP_CHECK(save_invstd.defined(), op, ": save_invstd is required");
  check_param(save_invstd, grad_out, cshape, dev, op, "save_invstd");
  check_like(grad_x, grad_out, dev, op, "grad_x");
  return g;
}

inline RowGeometry check_layer_norm(const char* op, const Tensor& x, int64_t normalized_ndim,
                                    const Tensor& weight, const Tensor& bias, double eps,
                                    const Tensor& out, const Tensor& mean, const Tensor& rstd,
                                    const Devices& dev) {
  RowGeometry g = row_geometry(x, normalized_ndim, dev, op);
  check_param(weight, x, g.row_shape, dev, op, "weight");
  check_param(bias, x, g.row_shape, dev, op, "bias");
  check_eps(eps, op);
  check_like(out, x, dev, op, "out");
  check_param(mean, x, g.stat_shape, dev, op, "mean");
  check_param(rstd, x, g.stat_shape, dev, op, "rstd");
  return g;
}

inline RowGeometry check_layer_norm_backward(const char* op, const Tensor& grad_out,
                                             const Tensor& x, int64_t normalized_ndim,
                                             const Tensor& weight, const Tensor& mean,
                                             const Tensor& rstd, const Tensor& grad_x,
                                             const Tensor& grad_w, const Tensor& grad_b,
                                             const Devices& dev) {
  RowGeometry g = row_geometry(x, normalized_ndim, dev, op);
  check_like(grad_out, x, dev, op, "grad_out");
  check_param(weight, x, g.row_shape, dev, op, "weight");
  SELFSUP_CHECK(mean.defined() && rstd.defined(), op, ": mean and rstd are required");
  check_param(mean, x, g.stat_shape, dev, op, "mean");
  check_param(rstd, x, g.stat_shape, dev, op, "rstd");
  if (grad_x.defined()) check_like(grad_x, x, dev, op, "grad_x");
  check_param(grad_w, x, g.row_shape, dev, op, "grad_w");
  check_param(grad_b, x, g.row_shape, dev, op, "grad_b");
  return g;
}

inline void check_dropout(const char* op, const Tensor& x, double p, const Tensor& out,
                          const Tensor& mask, const Devices& dev) {
  check_float(x, dev, op, "input");
  check_probability(p, op);
  check_like(out, x, dev, op, "out");
  check_dtype(mask, kUInt8, x, dev, op, "mask");
  check_shape(mask, x.shape(), op, "mask");
}

inline void check_dropout_backward(const char* op, const Tensor& grad_out, const Tensor& mask,
                                   double p, const Tensor& grad_x, const Devices& dev) {
  check_float(grad_out, dev, op, "grad_out");
  check_probability(p, op);
  check_dtype(mask, kUInt8, grad_out, dev, op, "mask");
  check_shape(mask, grad_out.shape(), op, "mask");
  check_like(grad_x, grad_out, dev, op, "grad_x");
}

}  // namespace selfsup::norm_plan
