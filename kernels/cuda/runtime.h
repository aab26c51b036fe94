// The CUDA runtime glue every CUDA file shares: error checks that become selfsup::Error, the
// caching device allocator, and host<->device copies. Plain C++ header (no CUDA types), so CPU
// code and tests can include it.
//
// Synchronisation rules (one stream per device, the legacy default stream):
//  - every kernel of selfsup is launched on the default stream, so kernels run in launch order
//    and no kernel needs an event to wait for another;
//  - a device->host copy is synchronous (cudaMemcpy): when it returns the data is on the host;
//  - freeing a block returns it to the allocator's cache without synchronising: a later kernel
//    that reuses it is ordered after the kernels that used it, because all share one stream.
#pragma once

#include <cstddef>
#include <string>

namespace selfsup::cuda {

// Throws selfsup::Error "CUDA error in <what>: <error string>" unless `status` is cudaSuccess
// (status is an int so this header needs no CUDA include).
void check(int status, const char* what);
// Checks the last kernel launch (cudaGetLastError) of op `what`.
void check_launch(const char* what);

// Registers the caching allocators (device, pinned host) and the host<->device copy routine
// with core, once. Called by
// query_devices() when it finds a GPU; safe to call more than once.
void register_backend();

struct AllocatorStats {
  size_t bytes_in_use = 0;   // handed out to tensors
  size_t bytes_cached = 0;   // freed by tensors, kept for reuse
  size_t device_allocs = 0;  // cudaMalloc calls so far
};
AllocatorStats allocator_stats();
// Returns every cached block to the driver (cudaFree).
void empty_cache();

// The pinned host allocator behind empty_pinned() (registered with the device allocator).
struct PinnedStats {
  size_t bytes_in_use = 0;  // held by tensors
  size_t bytes_cached = 0;  // freed by tensors, kept for reuse
  size_t host_allocs = 0;   // cudaHostAlloc calls so far
};
PinnedStats pinned_stats();
// Whether the CUDA driver knows p as page-locked host memory (cudaPointerGetAttributes).
bool is_page_locked(const void* p);

}  // namespace selfsup::cuda
