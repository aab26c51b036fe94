// The CPU/CUDA switch for the fused Barlow Twins loss (see dispatch.h). The CPU composes its two
// kernels (the cross-correlation matrix, then the loss on it); the GPU has one fused kernel for
// the forward and one for the backward (kernels/cuda/xcorr.cu).
#include "kernels/cpu/xcorr.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/xcorr.h"
#include "kernels/dispatch.h"

namespace selfsup::dispatch {

using detail::common_device;

namespace {

Tensor empty_like_on(const Shape& shape, const Tensor& like) {
  return empty(shape, TensorOptions(like.dtype()).device(like.device()));
}

}  // namespace

void barlow_twins_loss(const Tensor& za, const Tensor& zb, double eps, double lambda, Tensor& loss,
                       BarlowSaved& saved) {
  const bool on_gpu = common_device("barlow_twins_loss", {&za, &zb, &loss}).is_cuda();
  SELFSUP_CHECK(za.dim() == 2 && za.shape() == zb.shape(),
                "barlow_twins_loss: za and zb must both be [N, D], got ", shape_str(za.shape()),
                " and ", shape_str(zb.shape()));
  const int64_t n = za.size(0), d = za.size(1);
  saved = BarlowSaved{};
  saved.c = empty_like_on({d, d}, za);
  saved.inv_std_a = empty_like_on({d}, za);
  saved.inv_std_b = empty_like_on({d}, za);
  if (on_gpu) {
    saved.mean_a = empty_like_on({d}, za);
    saved.mean_b = empty_like_on({d}, za);
    return cuda::barlow_xcorr_forward(za, zb, eps, lambda, saved.c, loss, saved.mean_a,
                                      saved.inv_std_a, saved.mean_b, saved.inv_std_b);
  }
  saved.za_hat = empty_like_on({n, d}, za);
  saved.zb_hat = empty_like_on({n, d}, za);
  cpu::cross_correlation(za, zb, eps, saved.c, saved.za_hat, saved.zb_hat, saved.inv_std_a,
                         saved.inv_std_b);
  cpu::barlow_twins_loss(saved.c, lambda, loss);
}

void barlow_twins_loss_backward(const Tensor& grad_loss, const Tensor& za, const Tensor& zb,
                                const BarlowSaved& saved, double lambda, Tensor& grad_za,
                                Tensor& grad_zb) {
  const char* op = "barlow_twins_loss_backward";
  SELFSUP_CHECK(grad_loss.numel() == 1, op, ": grad_loss must hold one value, got shape ",
                shape_str(grad_loss.shape()));
  if (common_device(op, {&grad_loss, &za, &zb, &saved.c, &grad_za, &grad_zb}).is_cuda()) {
    cuda::barlow_xcorr_backward(za, zb, saved.c, saved.mean_a, saved.inv_std_a, saved.mean_b,
                                saved.inv_std_b, lambda, grad_za, grad_zb);
    // The kernel's gradients are of the loss itself; scale them by the incoming gradient on
    // the device (no read back to the host).
    cuda::binary(BinaryOp::Mul, grad_za, grad_loss, grad_za);
    cuda::binary(BinaryOp::Mul, grad_zb, grad_loss, grad_zb);
    return;
  }
  Tensor grad_c = empty_like_on(saved.c.shape(), saved.c);
  cpu::barlow_twins_loss_grad(saved.c, lambda, grad_loss.item<double>(), grad_c);
  cpu::cross_correlation_backward(grad_c, saved.za_hat, saved.zb_hat, saved.inv_std_a,
                                  saved.inv_std_b, grad_za, grad_zb);
}

}  // namespace selfsup::dispatch
