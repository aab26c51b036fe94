// Device query: the first CUDA translation unit, so the CUDA tool chain is exercised by every
// build. It asks the runtime how many GPUs there are and what they are, and turns every failure
// into a sentence for `selfsup info`.
#include <cuda_runtime.h>

#include "kernels/cuda/device_info.h"
#include "kernels/cuda/runtime.h"

namespace selfsup::cuda {

DeviceReport query_devices() {
  DeviceReport r;
  cudaRuntimeGetVersion(&r.runtime_version);
  if (cudaDriverGetVersion(&r.driver_version) != cudaSuccess || r.driver_version == 0) {
    r.reason = "no NVIDIA driver found (the CUDA backend is built, but this machine has no GPU)";
    return r;
  }
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    r.reason = std::string("cudaGetDeviceCount failed: ") + cudaGetErrorString(err);
    cudaGetLastError();  // clear the sticky error so later calls start clean
    return r;
  }
  if (count == 0) r.reason = "the driver reports no CUDA devices";
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
    r.gpus.push_back({i, p.name, p.major, p.minor, p.multiProcessorCount, p.totalGlobalMem});
  }
  if (!r.gpus.empty()) register_backend();
  return r;
}

}  // namespace selfsup::cuda
