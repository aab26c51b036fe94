#include "core/storage.h"

#include <atomic>
#include <cstdlib>

#include "core/error.h"

namespace selfsup {

namespace {

class CpuAllocator : public Allocator {
 public:
  DataPtr allocate(size_t nbytes) override {
    // 64-byte alignment: a cache line, and enough for any SIMD load.
    size_t rounded = (nbytes + 63) / 64 * 64;
    void* p = rounded ? std::aligned_alloc(64, rounded) : nullptr;
    SELFSUP_CHECK(p || rounded == 0, "cpu allocator: out of memory allocating ", nbytes, " bytes");
    return {p, [](void* q) { std::free(q); }};
  }
};

CpuAllocator g_cpu_allocator;
Allocator* g_allocators[2] = {&g_cpu_allocator, nullptr};
std::atomic<Allocator*> g_pinned_host_allocator{nullptr};

}  // namespace

Allocator* get_allocator(DeviceType type) { return g_allocators[static_cast<int>(type)]; }

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
