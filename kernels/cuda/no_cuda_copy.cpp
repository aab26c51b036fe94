// The strided-copy stub (kernels/cuda/copy.h), built instead of copy.cu in a CPU-only build so a
// caller that names it links. No CUDA tensor can exist there; called, it says so.
#include "core/error.h"
#include "kernels/cuda/copy.h"

namespace selfsup::cuda {

void strided_copy(Tensor&, const Tensor&) {
  throw Error("copy_: this build has no CUDA backend");
}

}  // namespace selfsup::cuda
