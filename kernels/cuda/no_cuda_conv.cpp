// Built instead of kernels/cuda/conv.cu in a CPU-only build: the entry points of
// kernels/cuda/conv.h exist, so kernels/dispatch_conv.cpp links; called, they say there is no
// backend. No CUDA tensor can exist in such a build, so dispatch never reaches them in practice.
#include <string>

#include "core/error.h"
#include "kernels/cuda/conv.h"

namespace selfsup::cuda {

namespace {
[[noreturn]] void no_conv_backend(const char* op) {
  throw Error(std::string(op) + ": this build has no CUDA backend");
}
}  // namespace

const char* conv_version_name(int version) {
  static const char* const names[kConvVersionCount] = {"cudnn", "direct", "igemm_smem_32",
                                                       "igemm_regs_64"};
  return version >= 0 && version < kConvVersionCount ? names[version] : "?";
}
bool conv_cudnn_available() {
  return false;
}

void conv2d(const Tensor&, const Tensor&, const Tensor&, const Conv2dParams&, Tensor&) {
  no_conv_backend("conv2d");
}
void conv2d_backward(const Tensor&, const Tensor&, const Tensor&, const Conv2dParams&, Tensor&,
                     Tensor&, Tensor&) {
  no_conv_backend("conv2d_backward");
}
void conv2d_forward_version(const Tensor&, const Tensor&, const Tensor&, const Conv2dParams&,
                            Tensor&, int) {
  no_conv_backend("conv2d");
}
void conv2d_backward_version(const Tensor&, const Tensor&, const Tensor&, const Conv2dParams&,
                             Tensor&, Tensor&, Tensor&, int) {
  no_conv_backend("conv2d_backward");
}

}  // namespace selfsup::cuda
