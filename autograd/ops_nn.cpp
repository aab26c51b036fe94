// Convolution, pooling, normalisation and dropout, with their gradients.
#include "autograd/op_utils.h"
#include "autograd/ops.h"
#include "kernels/cpu/conv.h"
#include "kernels/cpu/norm.h"
#include "kernels/cpu/pool.h"
#include "kernels/dispatch.h"

namespace selfsup {

using detail::needs_grad;

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, int64_t stride, int64_t padding) {
  detail::check_same_device("conv2d", {x, w, b});
  detail::check_same_dtype("conv2d", x, w);
  SELFSUP_CHECK(x.dim() == 4 && w.dim() == 4, "conv2d: input ", shape_str(x.shape()),
                " and weight ", shape_str(w.shape()), " must both be 4-d (NCHW, OCKK)");
  cpu::Conv2dParams p{stride, stride, padding, padding};
  int64_t oh = cpu::conv_out_size(x.size(2), w.size(2), stride, padding);
  int64_t ow = cpu::conv_out_size(x.size(3), w.size(3), stride, padding);
  Tensor out = detail::empty_as({x.size(0), w.size(0), oh, ow}, x);
  dispatch::conv2d(x, w, b, p, out);
  Tensor sx = x.detach(), sw = w.detach();
  bool gx = needs_grad(x), gw = needs_grad(w), gb = needs_grad(b);
  return record(out, "conv2d", {x, w, b},
                [=](const Tensor& g) {
                  Tensor grad_x = gx ? detail::empty_as(sx.shape(), g) : Tensor();
                  Tensor grad_w = gw ? detail::empty_as(sw.shape(), g) : Tensor();
                  Tensor grad_b = gb ? detail::empty_as({sw.size(0)}, g) : Tensor();
                  dispatch::conv2d_backward(g, sx, sw, p, grad_x, grad_w, grad_b);
                  return std::vector<Tensor>{grad_x, grad_w, grad_b};
                },
                {x, w});
}

namespace {

cpu::Pool2dParams pool_params(const char* op, int64_t kernel, int64_t stride, int64_t padding) {
  SELFSUP_CHECK(kernel > 0 && padding >= 0 && 2 * padding <= kernel, op, ": kernel ", kernel,
                " and padding ", padding, " are invalid (padding must be at most kernel / 2)");
  if (stride <= 0) stride = kernel;
  return {kernel, kernel, stride, stride, padding, padding};
}

Shape pool_out_shape(const Tensor& x, const cpu::Pool2dParams& p, const char* op) {
  SELFSUP_CHECK(x.dim() == 4, op, ": input must be 4-d (NCHW), got ", shape_str(x.shape()));
  int64_t oh = (x.size(2) + 2 * p.pad_h - p.kernel_h) / p.stride_h + 1;
  int64_t ow = (x.size(3) + 2 * p.pad_w - p.kernel_w) / p.stride_w + 1;
  SELFSUP_CHECK(oh > 0 && ow > 0, op, ": input ", shape_str(x.shape()), " is smaller than the ",
                p.kernel_h, "x", p.kernel_w, " window");
  return {x.size(0), x.size(1), oh, ow};
}

}  // namespace

Tensor max_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding) {
  cpu::Pool2dParams p = pool_params("max_pool2d", kernel, stride, padding);
  Shape shape = pool_out_shape(x, p, "max_pool2d");
  Tensor out = detail::empty_as(shape, x), indices = detail::empty_as(shape, x, kInt64);
  dispatch::max_pool2d(x, p, out, indices);
  return record(out, "max_pool2d", {x}, [=, xs = x.shape()](const Tensor& g) {
    Tensor gx = detail::zeros_as(xs, g);
    dispatch::max_pool2d_backward(g, indices, gx);
    return std::vector<Tensor>{gx};
  });
}

Tensor avg_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding) {
  cpu::Pool2dParams p = pool_params("avg_pool2d", kernel, stride, padding);
  Tensor out = detail::empty_as(pool_out_shape(x, p, "avg_pool2d"), x);
  dispatch::avg_pool2d(x, p, out);
  return record(out, "avg_pool2d", {x}, [=, xs = x.shape()](const Tensor& g) {
    Tensor gx = detail::zeros_as(xs, g);
    dispatch::avg_pool2d_backward(g, p, gx);
    return std::vector<Tensor>{gx};
  });
}

Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w) {
  SELFSUP_CHECK(x.dim() == 4 && out_h > 0 && out_w > 0, "adaptive_avg_pool2d: input ",
                shape_str(x.shape()), " to ", out_h, "x", out_w, " (needs NCHW and sizes > 0)");
  Tensor out = detail::empty_as({x.size(0), x.size(1), out_h, out_w}, x);
  dispatch::adaptive_avg_pool2d(x, out);
  return record(out, "adaptive_avg_pool2d", {x}, [xs = x.shape()](const Tensor& g) {
    Tensor gx = detail::zeros_as(xs, g);
    dispatch::adaptive_avg_pool2d_backward(g, gx);
    return std::vector<Tensor>{gx};
  });
}

namespace {

// Eval-mode batch norm is an affine map of x; composing it from differentiable ops gives the
// gradients of x, weight and bias without a kernel of its own.
Tensor batch_norm_eval(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                       const Tensor& weight, const Tensor& bias, double eps) {
  Shape bshape(x.dim(), 1);
  bshape[1] = x.size(1);
  Tensor scale = reshape(pow(add(running_var, eps), -0.5), bshape);
  Tensor y = mul(sub(x, reshape(running_mean, bshape)), scale);
  if (weight.defined()) y = mul(y, reshape(weight, bshape));
  if (bias.defined()) y = add(y, reshape(bias, bshape));
  return y;
}

}  // namespace

Tensor batch_norm(const Tensor& x, Tensor running_mean, Tensor running_var, const Tensor& weight,
                  const Tensor& bias, bool training, double momentum, double eps) {
  SELFSUP_CHECK(x.dim() >= 2, "batch_norm: input must be [N, C, *], got ", shape_str(x.shape()));
  if (!training) {
    SELFSUP_CHECK(running_mean.defined() && running_var.defined(),
                  "batch_norm: eval mode needs running statistics");
    return batch_norm_eval(x, running_mean.detach(), running_var.detach(), weight, bias, eps);
  }
  int64_t c = x.size(1);
  Tensor out = detail::empty_as(x.shape(), x);
  Tensor save_mean = detail::empty_as({c}, x), save_invstd = detail::empty_as({c}, x);
  {
    NoGradGuard no_grad;  // the running statistics are buffers, updated in place
    dispatch::batch_norm(x, weight, bias, running_mean, running_var, true, momentum, eps, out,
                         save_mean, save_invstd);
  }
  Tensor sx = x.detach(), sw = weight.defined() ? weight.detach() : Tensor();
  bool gw = needs_grad(weight), gb = needs_grad(bias);
  return record(out, "batch_norm", {x, weight, bias},
                [=](const Tensor& g) {
                  Tensor grad_x = detail::empty_as(sx.shape(), g);
                  Tensor grad_w = gw ? detail::empty_as({c}, g) : Tensor();
                  Tensor grad_b = gb ? detail::empty_as({c}, g) : Tensor();
                  dispatch::batch_norm_backward(g, sx, sw, save_mean, save_invstd, grad_x, grad_w,
                                                grad_b);
                  return std::vector<Tensor>{grad_x, grad_w, grad_b};
                },
                {x, weight});
}

Tensor layer_norm(const Tensor& x, int64_t normalized_ndim, const Tensor& weight,
                  const Tensor& bias, double eps) {
  SELFSUP_CHECK(normalized_ndim >= 1 && normalized_ndim <= x.dim(), "layer_norm: cannot normalise ",
                "the last ", normalized_ndim, " dims of ", shape_str(x.shape()));
  Shape stat_shape(x.shape().begin(), x.shape().end() - normalized_ndim);
  Tensor out = detail::empty_as(x.shape(), x);
  Tensor mean_t = detail::empty_as(stat_shape, x), rstd = detail::empty_as(stat_shape, x);
  dispatch::layer_norm(x, normalized_ndim, weight, bias, eps, out, mean_t, rstd);
  Tensor sx = x.detach(), sw = weight.defined() ? weight.detach() : Tensor();
  bool gw = needs_grad(weight), gb = needs_grad(bias);
  return record(out, "layer_norm", {x, weight, bias},
                [=](const Tensor& g) {
                  Tensor grad_x = detail::empty_as(sx.shape(), g);
                  Tensor grad_w = gw ? detail::empty_as(sw.shape(), g) : Tensor();
                  Tensor grad_b = gb ? detail::empty_as(sw.shape(), g) : Tensor();
                  dispatch::layer_norm_backward(g, sx, normalized_ndim, sw, mean_t, rstd, grad_x,
                                                grad_w, grad_b);
                  return std::vector<Tensor>{grad_x, grad_w, grad_b};
                },
                {x, weight});
}

Tensor dropout(const Tensor& x, double p, bool training, Generator* gen) {
  SELFSUP_CHECK(p >= 0.0 && p <= 1.0, "dropout: probability ", p, " is outside [0, 1]");
  if (!training || p == 0.0) return x;
  Tensor out = detail::empty_as(x.shape(), x), mask = detail::empty_as(x.shape(), x, kUInt8);
  dispatch::dropout(x, p, gen ? *gen : default_generator(), out, mask);
  return record(out, "dropout", {x}, [=](const Tensor& g) {
    Tensor gx = detail::empty_as(g.shape(), g);
    dispatch::dropout_backward(g, mask, p, gx);
    return std::vector<Tensor>{gx};
  });
}

void ema_update_(const std::vector<Tensor>& targets, const std::vector<Tensor>& sources,
                 double momentum) {
  NoGradGuard no_grad;
  dispatch::ema_update(targets, sources, momentum);
}

}  // namespace selfsup
