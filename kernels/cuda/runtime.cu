// The caching device allocator, the caching pinned host allocator and host<->device copies.
//
// cudaMalloc and cudaFree synchronise the device and cost tens of microseconds, so a training
// step that allocated per op would crawl. Instead freed blocks go into per-size free lists and
// the next request of the same rounded size takes one back: in steady state (the same shapes
// every step) no cudaMalloc happens at all. Sizes are rounded up to 512 bytes below 1 MiB and to
// 2 MiB above, so similar requests share bins.
#include <cuda_runtime.h>

#include <mutex>

#include "core/block_cache.h"
#include "core/error.h"
#include "core/storage.h"
#include "core/views.h"
#include "kernels/cuda/copy.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/runtime.h"

namespace selfsup::cuda {

void check(int status, const char* what) {
  if (status == cudaSuccess) return;
  // A failed call also sets the runtime's last error; clear it, or the next launch check would
  // report this failure (say an out-of-memory the caller caught) under its own name.
  cudaGetLastError();
  throw Error(std::string("CUDA error in ") + what + ": " +
              cudaGetErrorString(static_cast<cudaError_t>(status)));
}

void check_launch(const char* what) {
  check(cudaGetLastError(), what);
}

namespace {

size_t round_size(size_t n) {
  constexpr size_t kSmall = 512, kLarge = 2u << 20, kSplit = 1u << 20;
  size_t unit = n < kSplit ? kSmall : kLarge;
  return (n + unit - 1) / unit * unit;
}

// Free lists by rounded size in front of a raw allocate/free pair: the device allocator
// (cudaMalloc) and the pinned host allocator (cudaHostAlloc) are both this class. Loader workers
// allocate pinned blocks from several threads, so every call takes one mutex.
class CachingAllocator : public Allocator {
 public:
  using RawAlloc = void* (*)(size_t size);
  using RawFree = void (*)(void* p);
  struct Stats {
    size_t bytes_in_use = 0;  // handed out
    size_t bytes_cached = 0;  // freed, kept for reuse
    size_t raw_allocs = 0;    // calls of raw_alloc so far
  };

  CachingAllocator(RawAlloc raw_alloc, RawFree raw_free)
      : raw_alloc_(raw_alloc), raw_free_(raw_free) {}

  DataPtr allocate(size_t nbytes) override {
    const size_t size = round_size(nbytes ? nbytes : 1);
    std::lock_guard<std::mutex> lock(mu_);
    void* p = cache_.take(size);
    if (!p) {
      p = raw_alloc_or_release_cache(size);
      ++stats_.raw_allocs;
    }
    stats_.bytes_in_use += size;
    return {p, [this, size](void* q) { give_back(q, size); }};
  }

  Stats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    Stats s = stats_;
    s.bytes_cached = cache_.bytes_cached();
    return s;
  }

  // Returns every cached block to the driver.
  void empty() {
    std::lock_guard<std::mutex> lock(mu_);
    release_cached();
  }

 private:
  // Blocks are reused only at their own rounded size, so memory cached at other sizes (a last
  // partial batch, an evaluation pass) can fill the device: when the driver refuses, give the
  // cache back and try once more before reporting the failure. Called with mu_ held.
  void* raw_alloc_or_release_cache(size_t size) {
    try {
      return raw_alloc_(size);
    } catch (const Error&) {
      if (cache_.bytes_cached() == 0) throw;
      release_cached();
      return raw_alloc_(size);
    }
  }

  void release_cached() { cache_.release(raw_free_); }

  void give_back(void* p, size_t size) {
    std::lock_guard<std::mutex> lock(mu_);
    cache_.put(p, size);
    stats_.bytes_in_use -= size;
  }

  RawAlloc raw_alloc_;
  RawFree raw_free_;
  std::mutex mu_;
  BlockCache cache_;
  Stats stats_;  // bytes_cached is read from cache_
};

void* device_malloc(size_t size) {
  void* p = nullptr;
  check(cudaMalloc(&p, size), "cudaMalloc");
  return p;
}
void device_free(void* p) {
  cudaFree(p);
}

// Pinned host memory for the data loader's batches: cudaHostAlloc page-locks memory and costs
// far more than malloc (it maps the pages for the GPU), so freed blocks are cached as on the
// device: a loader that makes batches of the same shape every step allocates only during its
// first few batches.
void* pinned_malloc(size_t size) {
  void* p = nullptr;
  check(cudaHostAlloc(&p, size, cudaHostAllocDefault), "cudaHostAlloc");
  return p;
}
void pinned_free(void* p) {
  cudaFreeHost(p);
}

CachingAllocator& allocator() {
  // Never destroyed: outlives every tensor.
  static CachingAllocator* a = new CachingAllocator(&device_malloc, &device_free);
  return *a;
}

CachingAllocator& pinned_allocator() {
  static CachingAllocator* a = new CachingAllocator(&pinned_malloc, &pinned_free);
  return *a;
}
void device_copy(void* dst, Device dst_device, const void* src, Device src_device, size_t n) {
  cudaMemcpyKind kind = dst_device.is_cpu()   ? cudaMemcpyDeviceToHost
                        : src_device.is_cpu() ? cudaMemcpyHostToDevice
                                              : cudaMemcpyDeviceToDevice;
  check(cudaMemcpy(dst, src, n, kind), "cudaMemcpy");
}

// full / zeros / ones on the device: the element-wise fill kernel, no host buffer.
void device_fill(Tensor& t, double value) {
  cuda::fill(t, value);
}

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

AllocatorStats allocator_stats() {
  const CachingAllocator::Stats s = allocator().stats();
  return {s.bytes_in_use, s.bytes_cached, s.raw_allocs};
}
void empty_cache() {
  allocator().empty();
}
PinnedStats pinned_stats() {
  const CachingAllocator::Stats s = pinned_allocator().stats();
  return {s.bytes_in_use, s.bytes_cached, s.raw_allocs};
}

bool is_page_locked(const void* p) {
  cudaPointerAttributes attributes{};
  if (cudaPointerGetAttributes(&attributes, p) != cudaSuccess) {
    cudaGetLastError();  // an unknown pointer is an answer (no), not a sticky error
    return false;
  }
  return attributes.type == cudaMemoryTypeHost;
}

}  // namespace selfsup::cuda
