// The CPU/CUDA switch for batch norm, layer norm and dropout (see dispatch.h): check one device
// over every tensor argument, outputs included, then call that backend.
#include "kernels/cpu/norm.h"
#include "kernels/cuda/norm.h"
#include "kernels/dispatch.h"

namespace selfsup::dispatch {

using detail::common_device;

void batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& running_mean,
                Tensor& running_var, bool training, double momentum, double eps, Tensor& out,
                Tensor& save_mean, Tensor& save_invstd) {
  const Device d = common_device("batch_norm", {&x, &weight, &bias, &running_mean, &running_var,
                                                &out, &save_mean, &save_invstd});
  if (d.is_cuda())
    return cuda::batch_norm(x, weight, bias, running_mean, running_var, training, momentum, eps,
                            out, save_mean, save_invstd);
  cpu::batch_norm(x, weight, bias, running_mean, running_var, training, momentum, eps, out,
                  save_mean, save_invstd);
}

void batch_norm_backward(const Tensor& grad_out, const Tensor& x, const Tensor& weight,
                         const Tensor& save_mean, const Tensor& save_invstd, Tensor& grad_x,
                         Tensor& grad_w, Tensor& grad_b) {
  const Device d = common_device("batch_norm_backward", {&grad_out, &x, &weight, &save_mean,
                                                         &save_invstd, &grad_x, &grad_w, &grad_b});
  if (d.is_cuda())
    return cuda::batch_norm_backward(grad_out, x, weight, save_mean, save_invstd, grad_x, grad_w,
                                     grad_b);
  cpu::batch_norm_backward(grad_out, x, weight, save_mean, save_invstd, grad_x, grad_w, grad_b);
}

void batch_norm_eval_backward(const Tensor& grad_out, const Tensor& weight,
                              const Tensor& save_invstd, Tensor& grad_x) {
  const Device d =
      common_device("batch_norm_eval_backward", {&grad_out, &weight, &save_invstd, &grad_x});
  if (d.is_cuda()) return cuda::batch_norm_eval_backward(grad_out, weight, save_invstd, grad_x);
  cpu::batch_norm_eval_backward(grad_out, weight, save_invstd, grad_x);
}

void layer_norm(const Tensor& x, int64_t normalized_ndim, const Tensor& weight, const Tensor& bias,
                double eps, Tensor& out, Tensor& mean, Tensor& rstd) {
  const Device d = common_device("layer_norm", {&x, &weight, &bias, &out, &mean, &rstd});
  if (d.is_cuda()) return cuda::layer_norm(x, normalized_ndim, weight, bias, eps, out, mean, rstd);
  cpu::layer_norm(x, normalized_ndim, weight, bias, eps, out, mean, rstd);
}

void layer_norm_backward(const Tensor& grad_out, const Tensor& x, int64_t normalized_ndim,
                         const Tensor& weight, const Tensor& mean, const Tensor& rstd,
                         Tensor& grad_x, Tensor& grad_w, Tensor& grad_b) {
  const Device d = common_device("layer_norm_backward",
                                 {&grad_out, &x, &weight, &mean, &rstd, &grad_x, &grad_w, &grad_b});
  if (d.is_cuda())
    return cuda::layer_norm_backward(grad_out, x, normalized_ndim, weight, mean, rstd, grad_x,
                                     grad_w, grad_b);
  cpu::layer_norm_backward(grad_out, x, normalized_ndim, weight, mean, rstd, grad_x, grad_w,
                           grad_b);
}

void dropout(const Tensor& x, double p, Generator& gen, Tensor& out, Tensor& mask) {
  if (common_device("dropout", {&x, &out, &mask}).is_cuda())
    return cuda::dropout(x, p, gen, out, mask);
  cpu::dropout(x, p, gen, out, mask);
}

void dropout_backward(const Tensor& grad_out, const Tensor& mask, double p, Tensor& grad_x) {
  if (common_device("dropout_backward", {&grad_out, &mask, &grad_x}).is_cuda())
    return cuda::dropout_backward(grad_out, mask, p, grad_x);
  cpu::dropout_backward(grad_out, mask, p, grad_x);
}

}  // namespace selfsup::dispatch
