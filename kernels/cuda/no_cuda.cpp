// Built instead of kernels/cuda/*.cu when the CUDA backend is off (-DSELFSUP_CUDA=OFF or no nvcc).
#include "kernels/cuda/device_info.h"

namespace selfsup::cuda {

DeviceReport query_devices() {
  DeviceReport r;
  r.compiled = false;
  r.reason = "this build has no CUDA backend (configured with SELFSUP_CUDA=OFF or nvcc not found)";
  return r;
}

}  // namespace selfsup::cuda
