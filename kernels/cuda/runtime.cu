// The caching device allocator, the caching pinned host allocator and host<->device copies.
//
// cudaMalloc and cudaFree synchronise the device and cost tens of microseconds, so a training
// step that allocated per op would crawl. Instead freed blocks go into per-size free lists and
// the next request of the same rounded size takes one back: in steady state (the same shapes
// every step) no cudaMalloc happens at all. Sizes are rounded up to 512 bytes below 1 MiB and to
// 2 MiB above, so similar requests share bins.
#include <cuda_runtime.h>

#include <map>
#include <mutex>
#include <vector>

#include "core/error.h"
#include "core/storage.h"
#include "core/views.h"
#include "kernels/cuda/copy.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/runtime.h"

namespace selfsup::cuda {

void check(int status, const char* what) {
  if (status == cudaSuccess) return;
  throw Error(std::string("CUDA error in ") + what + ": " +
              cudaGetErrorString(static_cast<cudaError_t>(status)));
}

void check_launch(const char* what) { check(cudaGetLastError(), what); }

namespace {

size_t round_size(size_t n) {
  constexpr size_t kSmall = 512, kLarge = 2u << 20, kSplit = 1u << 20;
  size_t unit = n < kSplit ? kSmall : kLarge;
  return (n + unit - 1) / unit * unit;
}

class CachingAllocator : public Allocator {
 public:
  DataPtr allocate(size_t nbytes) override {
    size_t size = round_size(nbytes ? nbytes : 1);
    void* p = take_cached(size);
    if (!p) {
      check(cudaMalloc(&p, size), "cudaMalloc");
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.device_allocs;
    }
    std::lock_guard<std::mutex> lock(mu_);
    stats_.bytes_in_use += size;
    return {p, [this, size](void* q) { give_back(q, size); }};
  }

  AllocatorStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

  void empty() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [size, blocks] : free_)
      for (void* p : blocks) cudaFree(p);
    free_.clear();
    stats_.bytes_cached = 0;
  }

 private:
  void* take_cached(size_t size) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = free_.find(size);
    if (it == free_.end() || it->second.empty()) return nullptr;
    void* p = it->second.back();
    it->second.pop_back();
    stats_.bytes_cached -= size;
    return p;
  }

  void give_back(void* p, size_t size) {
    std::lock_guard<std::mutex> lock(mu_);
    free_[size].push_back(p);
    stats_.bytes_in_use -= size;
    stats_.bytes_cached += size;
  }

  std::mutex mu_;
  std::map<size_t, std::vector<void*>> free_;
  AllocatorStats stats_;
};

CachingAllocator& allocator() {
  static CachingAllocator* a = new CachingAllocator();  // never destroyed: outlives all tensors
  return *a;
}

// Pinned host memory for the data loader's batches. cudaHostAlloc page-locks memory and costs
// far more than malloc (it maps the pages for the GPU), so freed blocks are cached by exact size
// as on the device: a loader that makes batches of the same shape every step allocates only
// during its first few batches. Loader workers allocate from several threads: one mutex.
class PinnedHostAllocator : public Allocator {
 public:
  DataPtr allocate(size_t nbytes) override {
    size_t size = round_size(nbytes ? nbytes : 1);
    std::lock_guard<std::mutex> lock(mu_);
    void* p = nullptr;
    auto it = free_.find(size);
    if (it != free_.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      stats_.bytes_cached -= size;
    } else {
      check(cudaHostAlloc(&p, size, cudaHostAllocDefault), "cudaHostAlloc");
      ++stats_.host_allocs;
    }
    stats_.bytes_in_use += size;
    return {p, [this, size](void* q) { give_back(q, size); }};
  }

  PinnedStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

 private:
  void give_back(void* p, size_t size) {
    std::lock_guard<std::mutex> lock(mu_);
    free_[size].push_back(p);
    stats_.bytes_in_use -= size;
    stats_.bytes_cached += size;
  }

  std::mutex mu_;
  std::map<size_t, std::vector<void*>> free_;
  PinnedStats stats_;
};

PinnedHostAllocator& pinned_allocator() {
  static PinnedHostAllocator* a = new PinnedHostAllocator();  // outlives every tensor
  return *a;
}

void device_copy(void* dst, Device dst_device, const void* src, Device src_device, size_t n) {
  cudaMemcpyKind kind = dst_device.is_cpu()   ? cudaMemcpyDeviceToHost
                        : src_device.is_cpu() ? cudaMemcpyHostToDevice
                                              : cudaMemcpyDeviceToDevice;
  check(cudaMemcpy(dst, src, n, kind), "cudaMemcpy");
}

// full / zeros / ones on the device: the element-wise fill kernel, no host buffer.
void device_fill(Tensor& t, double value) { cuda::fill(t, value); }

}  // namespace

void register_backend() {
  static std::once_flag once;
  std::call_once(once, [] {
    set_allocator(DeviceType::CUDA, &allocator());
    set_pinned_host_allocator(&pinned_allocator());
    raw::set_device_copy(&device_copy);
    raw::set_strided_copy(&strided_copy);  // copy_/clone/to_dtype of CUDA views
    raw::set_device_fill(&device_fill);    // full/zeros/ones on the device
  });
}

AllocatorStats allocator_stats() { return allocator().stats(); }
void empty_cache() { allocator().empty(); }
PinnedStats pinned_stats() { return pinned_allocator().stats(); }

bool is_page_locked(const void* p) {
  cudaPointerAttributes attributes{};
  if (cudaPointerGetAttributes(&attributes, p) != cudaSuccess) {
    cudaGetLastError();  // an unknown pointer is an answer (no), not a sticky error
    return false;
  }
  return attributes.type == cudaMemoryTypeHost;
}

}  // namespace selfsup::cuda
