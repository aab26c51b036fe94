// Built instead of kernels/cuda/softmax.cu when the CUDA backend is off: stubs, so
// kernels/dispatch_softmax.cpp links in a CPU-only build. No CUDA tensor can exist there, so
// dispatch never reaches them in practice; called, they say there is no backend.
#include "core/error.h"
#include "kernels/cuda/softmax.h"

namespace selfsup::cuda {

namespace {
[[noreturn]] void no_backend(const char* op) {
  throw Error(std::string(op) + ": this build has no CUDA backend");
}
}  // namespace

void softmax(const Tensor&, int64_t, Tensor&) {
  no_backend("softmax");
}
void log_softmax(const Tensor&, int64_t, Tensor&) {
  no_backend("log_softmax");
}
void softmax_backward(const Tensor&, const Tensor&, int64_t, Tensor&) {
  no_backend("softmax_backward");
}
void log_softmax_backward(const Tensor&, const Tensor&, int64_t, Tensor&) {
  no_backend("log_softmax_backward");
}
void cross_entropy(const Tensor&, const Tensor&, Tensor&, Tensor&) {
  no_backend("cross_entropy");
}
void cross_entropy_soft(const Tensor&, const Tensor&, Tensor&, Tensor&) {
  no_backend("cross_entropy_soft");
}

}  // namespace selfsup::cuda
