// Pooling stubs (kernels/cuda/pool.h), built instead of pool.cu in a CPU-only build so
// kernels/dispatch_pool.cpp links. No CUDA tensor can exist there; called, they say so.
#include "core/error.h"
#include "kernels/cuda/pool.h"

namespace selfsup::cuda {

namespace {
[[noreturn]] void no_pool_backend(const char* op) {
  throw Error(std::string(op) + ": this build has no CUDA backend");
}
}  // namespace

void max_pool2d(const Tensor&, const Pool2dParams&, Tensor&, Tensor&) {
  no_pool_backend("max_pool2d");
}
void max_pool2d_backward(const Tensor&, const Tensor&, Tensor&) {
  no_pool_backend("max_pool2d_backward");
}
void avg_pool2d(const Tensor&, const Pool2dParams&, Tensor&) {
  no_pool_backend("avg_pool2d");
}
void avg_pool2d_backward(const Tensor&, const Pool2dParams&, Tensor&) {
  no_pool_backend("avg_pool2d_backward");
}
void adaptive_avg_pool2d(const Tensor&, Tensor&) {
  no_pool_backend("adaptive_avg_pool2d");
}
void adaptive_avg_pool2d_backward(const Tensor&, Tensor&) {
  no_pool_backend("adaptive_avg_pool2d_backward");
}

}  // namespace selfsup::cuda
