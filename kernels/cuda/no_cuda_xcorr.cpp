// Built instead of kernels/cuda/xcorr.cu when the CUDA backend is off: stubs, so
// kernels/dispatch_xcorr.cpp links in a CPU-only build. No CUDA tensor can exist there, so
// dispatch never reaches them in practice; called, they say there is no backend.
#include "core/error.h"
#include "kernels/cuda/xcorr.h"

namespace selfsup::cuda {

void barlow_xcorr_forward(const Tensor&, const Tensor&, double, double, Tensor&, Tensor&, Tensor&,
                          Tensor&, Tensor&, Tensor&, int) {
  throw Error("barlow_xcorr_forward: this build has no CUDA backend");
}

void barlow_xcorr_backward(const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                           const Tensor&, const Tensor&, const Tensor&, double, Tensor&, Tensor&) {
  throw Error("barlow_xcorr_backward: this build has no CUDA backend");
}

}  // namespace selfsup::cuda
