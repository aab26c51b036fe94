// The CPU/CUDA switch for softmax and cross-entropy (see dispatch.h): check one device over every
// tensor argument, outputs included, then call that backend.
#include "kernels/cpu/softmax.h"
#include "kernels/cuda/softmax.h"
#include "kernels/dispatch.h"

namespace selfsup::dispatch {

using detail::common_device;

void softmax(const Tensor& x, int64_t dim, Tensor& out) {
  if (common_device("softmax", {&x, &out}).is_cuda()) return cuda::softmax(x, dim, out);
  cpu::softmax(x, dim, out);
}

void log_softmax(const Tensor& x, int64_t dim, Tensor& out) {
  if (common_device("log_softmax", {&x, &out}).is_cuda()) return cuda::log_softmax(x, dim, out);
  cpu::log_softmax(x, dim, out);
}

void softmax_backward(const Tensor& grad_y, const Tensor& y, int64_t dim, Tensor& grad_x) {
  if (common_device("softmax_backward", {&grad_y, &y, &grad_x}).is_cuda())
    return cuda::softmax_backward(grad_y, y, dim, grad_x);
  cpu::softmax_backward(grad_y, y, dim, grad_x);
}

void log_softmax_backward(const Tensor& grad_y, const Tensor& y, int64_t dim, Tensor& grad_x) {
  if (common_device("log_softmax_backward", {&grad_y, &y, &grad_x}).is_cuda())
    return cuda::log_softmax_backward(grad_y, y, dim, grad_x);
  cpu::log_softmax_backward(grad_y, y, dim, grad_x);
}

void cross_entropy(const Tensor& logits, const Tensor& targets, Tensor& loss, Tensor& grad_logits) {
  if (common_device("cross_entropy", {&logits, &targets, &loss, &grad_logits}).is_cuda())
    return cuda::cross_entropy(logits, targets, loss, grad_logits);
  cpu::cross_entropy(logits, targets, loss, grad_logits);
}

void cross_entropy_soft(const Tensor& logits, const Tensor& targets, Tensor& loss,
                        Tensor& grad_logits) {
  if (common_device("cross_entropy_soft", {&logits, &targets, &loss, &grad_logits}).is_cuda())
    return cuda::cross_entropy_soft(logits, targets, loss, grad_logits);
  cpu::cross_entropy_soft(logits, targets, loss, grad_logits);
}

}  // namespace selfsup::dispatch
