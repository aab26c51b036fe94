#include "core/storage.h"

#include <atomic>
#include <cstdlib>
#include <mutex>

#include "core/block_cache.h"
#include "core/error.h"

namespace selfsup {

namespace {

// Host memory, 64-byte aligned (a cache line, and enough for any SIMD load).
//
// Large blocks are cached, as on the GPU: a training step allocates the same activation and
// gradient sizes every step, and a fresh multi-megabyte block from the C library arrives as new
// pages that the kernel must fault in and zero on first touch (about a quarter of a SimCLR step
// on 2 cores, seen with perf as clear_page_erms). So a freed block of at least kCacheMin bytes
// goes to a free list by rounded size, and the next request of that size takes it back. When a
// new block is needed while the cache holds more than kCacheCap bytes, the cache is emptied
// first, so shapes that stop recurring do not pin memory for good. Small blocks go straight to
// aligned_alloc / free, whose own bins reuse them.
class CpuAllocator : public Allocator {
 public:
  static constexpr size_t kCacheMin = size_t{64} << 10;  // 64 KiB
  static constexpr size_t kCacheCap = size_t{2} << 30;   // 2 GiB

  DataPtr allocate(size_t nbytes) override {
    if (nbytes < kCacheMin) {
      const size_t rounded = (nbytes + 63) / 64 * 64;
      void* p = rounded ? std::aligned_alloc(64, rounded) : nullptr;
      SELFSUP_CHECK(p || rounded == 0, "cpu allocator: out of memory allocating ", nbytes,
                    " bytes");
      return {p, [](void* q) { std::free(q); }};
    }
    const size_t size = round_size(nbytes);
    std::lock_guard<std::mutex> lock(mu_);
    void* p = cache_.take(size);
    if (!p) {
      if (cache_.bytes_cached() > kCacheCap) release_cached();
      p = std::aligned_alloc(64, size);
      SELFSUP_CHECK(p, "cpu allocator: out of memory allocating ", nbytes, " bytes");
      ++stats_.system_allocs;
    }
    stats_.bytes_in_use += size;
    return {p, [this, size](void* q) { give_back(q, size); }};
  }

  CpuAllocatorStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    CpuAllocatorStats s = stats_;
    s.bytes_cached = cache_.bytes_cached();
    return s;
  }

  void empty() {
    std::lock_guard<std::mutex> lock(mu_);
    release_cached();
  }

 private:
  // 64 KiB steps below 1 MiB, 1 MiB steps above: similar sizes share a list, and no block
  // wastes more than 1 MiB.
  static size_t round_size(size_t n) {
    const size_t unit = n < (size_t{1} << 20) ? size_t{64} << 10 : size_t{1} << 20;
    return (n + unit - 1) / unit * unit;
  }

  void give_back(void* p, size_t size) {
    std::lock_guard<std::mutex> lock(mu_);
    cache_.put(p, size);
    stats_.bytes_in_use -= size;
  }

  void release_cached() {  // mu_ held
    cache_.release([](void* p) { std::free(p); });
  }

  std::mutex mu_;
  BlockCache cache_;
  CpuAllocatorStats stats_;  // bytes_cached is read from cache_
};

// Never destroyed: tensors in static storage may outlive every other static.
CpuAllocator& cpu_allocator() {
  static CpuAllocator* a = new CpuAllocator();
  return *a;
}

Allocator* g_allocators[2] = {&cpu_allocator(), nullptr};
std::atomic<Allocator*> g_pinned_host_allocator{nullptr};

}  // namespace

CpuAllocatorStats cpu_allocator_stats() {
  return cpu_allocator().stats();
}
void cpu_empty_cache() {
  cpu_allocator().empty();
}

Allocator* get_allocator(DeviceType type) {
  return g_allocators[static_cast<int>(type)];
}

void set_allocator(DeviceType type, Allocator* allocator) {
  g_allocators[static_cast<int>(type)] = allocator;
}

Allocator* get_pinned_host_allocator() {
  return g_pinned_host_allocator.load();
}

void set_pinned_host_allocator(Allocator* allocator) {
  g_pinned_host_allocator.store(allocator);
}

std::shared_ptr<Storage> Storage::pinned_host(size_t nbytes) {
  Allocator* pinned = get_pinned_host_allocator();
  if (!pinned) return std::make_shared<Storage>(nbytes, kCPU);
  auto s = std::make_shared<Storage>(0, kCPU);
  s->data_ = pinned->allocate(nbytes);
  s->nbytes_ = nbytes;
  s->pinned_ = true;
  return s;
}

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  Allocator* a = get_allocator(device.type);
  SELFSUP_CHECK(a, "storage: no allocator for device ", device.str(),
                " (this build has no CUDA backend, or it found no GPU)");
  data_ = a->allocate(nbytes);
}

Storage::~Storage() {
  if (data_.ptr && data_.deleter) data_.deleter(data_.ptr);
}

}  // namespace selfsup
