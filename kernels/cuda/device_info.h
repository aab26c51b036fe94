// What the CUDA runtime reports about the GPUs of this machine, for `selfsup info` and for tests
// that must skip when there is no GPU. Plain C++ so CPU-only code can include it.
#pragma once

#include <string>
#include <vector>

namespace selfsup::cuda {

struct GpuInfo {
  int index = 0;
  std::string name;
  int cc_major = 0, cc_minor = 0;  // compute capability
  int sm_count = 0;
  size_t total_memory = 0;  // bytes
};

struct DeviceReport {
  bool compiled = true;       // was the CUDA backend built in?
  int runtime_version = 0;    // e.g. 13000
  int driver_version = 0;     // 0 when no driver is installed
  std::vector<GpuInfo> gpus;  // empty when none is usable
  std::string reason;         // why gpus is empty, in words
};

DeviceReport query_devices();

// True when this build has CUDA and at least one GPU answers.
inline bool gpu_available() {
  return !query_devices().gpus.empty();
}

}  // namespace selfsup::cuda
