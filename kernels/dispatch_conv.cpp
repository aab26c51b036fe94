// The CPU/CUDA switch for 2-d convolution (see dispatch.h): check one device, call that backend.
#include "core/views.h"
#include "kernels/cuda/conv.h"
#include "kernels/dispatch.h"

namespace selfsup::dispatch {

using detail::common_device;

// ============================================================================================
// 2-d convolution
// ============================================================================================

void conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& p,
            Tensor& out) {
  // The GPU kernels read contiguous operands: views (an expanded gradient, a narrowed input)
  // are copied on the device first; contiguous tensors pass through untouched.
  if (common_device("conv2d", {&x, &w, &bias, &out}).is_cuda())
    return cuda::conv2d(raw::contiguous(x), raw::contiguous(w), bias, p, out);
  cpu::conv2d(x, w, bias, p, out);
}

void conv2d_backward(const Tensor& grad_out, const Tensor& x, const Tensor& w,
                     const Conv2dParams& p, Tensor& grad_x, Tensor& grad_w, Tensor& grad_b) {
  if (common_device("conv2d_backward", {&grad_out, &x, &w, &grad_x, &grad_w, &grad_b}).is_cuda())
    return cuda::conv2d_backward(raw::contiguous(grad_out), raw::contiguous(x), raw::contiguous(w),
                                 p, grad_x, grad_w, grad_b);
  cpu::conv2d_backward(grad_out, x, w, p, grad_x, grad_w, grad_b);
}

}  // namespace selfsup::dispatch
