// The CPU/CUDA switch for pooling (see dispatch.h): check one device, call that backend.
#include "kernels/cpu/pool.h"
#include "kernels/cuda/pool.h"
#include "kernels/dispatch.h"

namespace selfsup::dispatch {

using detail::common_device;

// ============================================================================================
// Pooling
// ============================================================================================

void max_pool2d(const Tensor& x, const Pool2dParams& p, Tensor& out, Tensor& indices) {
  if (common_device("max_pool2d", {&x, &out, &indices}).is_cuda())
    return cuda::max_pool2d(x, p, out, indices);
  cpu::max_pool2d(x, p, out, indices);
}

void max_pool2d_backward(const Tensor& grad_out, const Tensor& indices, Tensor& grad_x) {
  if (common_device("max_pool2d_backward", {&grad_out, &indices, &grad_x}).is_cuda())
    return cuda::max_pool2d_backward(grad_out, indices, grad_x);
  cpu::max_pool2d_backward(grad_out, indices, grad_x);
}

void avg_pool2d(const Tensor& x, const Pool2dParams& p, Tensor& out) {
  if (common_device("avg_pool2d", {&x, &out}).is_cuda()) return cuda::avg_pool2d(x, p, out);
  cpu::avg_pool2d(x, p, out);
}

void avg_pool2d_backward(const Tensor& grad_out, const Pool2dParams& p, Tensor& grad_x) {
  if (common_device("avg_pool2d_backward", {&grad_out, &grad_x}).is_cuda())
    return cuda::avg_pool2d_backward(grad_out, p, grad_x);
  cpu::avg_pool2d_backward(grad_out, p, grad_x);
}

void adaptive_avg_pool2d(const Tensor& x, Tensor& out) {
  if (common_device("adaptive_avg_pool2d", {&x, &out}).is_cuda())
    return cuda::adaptive_avg_pool2d(x, out);
  cpu::adaptive_avg_pool2d(x, out);
}

void adaptive_avg_pool2d_backward(const Tensor& grad_out, Tensor& grad_x) {
  if (common_device("adaptive_avg_pool2d_backward", {&grad_out, &grad_x}).is_cuda())
    return cuda::adaptive_avg_pool2d_backward(grad_out, grad_x);
  cpu::adaptive_avg_pool2d_backward(grad_out, grad_x);
}

}  // namespace selfsup::dispatch
