// Storage: a reference-counted block of device memory shared by a tensor and all its views.
//
// Allocation goes through a per-device Allocator, so the CUDA backend can register its caching
// allocator without core knowing anything about CUDA. Storage also carries the version counter
// that autograd uses to detect an in-place write to a value saved for backward: every in-place
// op bumps it, and every view of the storage sees the same counter.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "core/device.h"

namespace selfsup {

// A block of memory plus the function that frees it.
struct DataPtr {
  void* ptr = nullptr;
  std::function<void(void*)> deleter;
};

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual DataPtr allocate(size_t nbytes) = 0;
};

// The allocator for a device type. CPU has a 64-byte aligned allocator built in; CUDA has none
// until the CUDA backend registers one (allocating there before that is an Error).
Allocator* get_allocator(DeviceType type);
void set_allocator(DeviceType type, Allocator* allocator);

// The CPU allocator caches freed blocks of 64 KiB and more for reuse (see storage.cpp); these
// report and release that cache.
struct CpuAllocatorStats {
  size_t bytes_in_use = 0;   // large blocks held by tensors
  size_t bytes_cached = 0;   // large blocks freed by tensors, kept for reuse
  size_t system_allocs = 0;  // large blocks taken from the C library so far
};
CpuAllocatorStats cpu_allocator_stats();
// Returns every cached block to the C library.
void cpu_empty_cache();

// Page-locked ("pinned") host memory, which the GPU's copy engines read directly, so a
// host->device copy from it runs at full bus speed and can overlap compute. The CUDA backend
// registers an allocator for it when it finds a GPU; until then (or in a CPU-only build) there is
// none, and a request for pinned memory gets ordinary host memory instead.
Allocator* get_pinned_host_allocator();
void set_pinned_host_allocator(Allocator* allocator);

class Storage {
 public:
  Storage(size_t nbytes, Device device);
  // Host memory from the pinned allocator when one is registered (pinned() tells which).
  static std::shared_ptr<Storage> pinned_host(size_t nbytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_.ptr; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

  uint64_t version() const { return version_; }
  void bump_version() { ++version_; }
  bool pinned() const { return pinned_; }

 private:
  DataPtr data_;
  size_t nbytes_;
  Device device_;
  uint64_t version_ = 0;
  bool pinned_ = false;
};

}  // namespace selfsup
