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

// The runtime entry points exist in a CPU-only build too, so code that calls them links; they
// report that there is no backend.
#include "core/error.h"
#include "kernels/cuda/runtime.h"

namespace selfsup::cuda {

void check(int status, const char* what) {
  if (status != 0) throw Error(std::string(what) + ": this build has no CUDA backend");
}
void check_launch(const char*) {}
void register_backend() {}
AllocatorStats allocator_stats() { return {}; }
void empty_cache() {}
PinnedStats pinned_stats() {
  return {};
}
bool is_page_locked(const void*) {
  return false;
}

}  // namespace selfsup::cuda

// The clustering kernels of SwAV and DeepCluster (sinkhorn.h, kmeans.h) exist too, so a caller
// that picks the device at run time links; called, they say there is no backend.
#include "kernels/cuda/kmeans.h"
#include "kernels/cuda/sinkhorn.h"

namespace selfsup::cuda {

void sinkhorn(const Tensor&, double, int64_t, Tensor&) {
  throw Error("sinkhorn: this build has no CUDA backend");
}
void kmeans_assign(const Tensor&, const Tensor&, Tensor&, Tensor&, int) {
  throw Error("kmeans_assign: this build has no CUDA backend");
}

}  // namespace selfsup::cuda
