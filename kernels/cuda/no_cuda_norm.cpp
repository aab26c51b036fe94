// Built instead of kernels/cuda/norm.cu when the CUDA backend is off: stubs, so
// kernels/dispatch_norm.cpp links in a CPU-only build. No CUDA tensor can exist there, so
// dispatch never reaches them in practice; called, they say there is no backend.
#include "core/error.h"
#include "kernels/cuda/norm.h"

namespace selfsup::cuda {

namespace {
[[noreturn]] void no_backend(const char* op) {
  throw Error(std::string(op) + ": this build has no CUDA backend");
}
}  // namespace

void batch_norm(const Tensor&, const Tensor&, const Tensor&, Tensor&, Tensor&, bool, double, double,
                Tensor&, Tensor&, Tensor&) {
  no_backend("batch_norm");
}
void batch_norm_backward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                         Tensor&, Tensor&, Tensor&) {
  no_backend("batch_norm_backward");
}
void batch_norm_eval_backward(const Tensor&, const Tensor&, const Tensor&, Tensor&) {
  no_backend("batch_norm_eval_backward");
}
void layer_norm(const Tensor&, int64_t, const Tensor&, const Tensor&, double, Tensor&, Tensor&,
                Tensor&) {
  no_backend("layer_norm");
}
void layer_norm_backward(const Tensor&, const Tensor&, int64_t, const Tensor&, const Tensor&,
                         const Tensor&, Tensor&, Tensor&, Tensor&) {
  no_backend("layer_norm_backward");
}
void dropout(const Tensor&, double, Generator&, Tensor&, Tensor&) {
  no_backend("dropout");
}
void dropout_backward(const Tensor&, const Tensor&, double, Tensor&) {
  no_backend("dropout_backward");
}

}  // namespace selfsup::cuda
