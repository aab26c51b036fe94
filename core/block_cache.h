// BlockCache: freed memory blocks kept by size for reuse, the free lists behind both caching
// allocators (the CPU's in core/storage.cpp; the CUDA device and pinned host ones in
// kernels/cuda/runtime.cu). Each allocator rounds sizes its own way and owns the mutex: the
// cache itself is not thread-safe, so every call is made with that mutex held.
#pragma once

#include <cstddef>
#include <map>
#include <vector>

namespace selfsup {

class BlockCache {
 public:
  // A cached block of exactly `size` bytes, removed from the cache; null when there is none.
  void* take(size_t size) {
    auto it = free_.find(size);
    if (it == free_.end() || it->second.empty()) return nullptr;
    void* p = it->second.back();
    it->second.pop_back();
    bytes_cached_ -= size;
    return p;
  }

  void put(void* p, size_t size) {
    free_[size].push_back(p);
    bytes_cached_ += size;
  }

  // Hands every cached block to free_block(void*) and empties the cache.
  template <typename FreeBlock>
  void release(FreeBlock free_block) {
    for (auto& [size, blocks] : free_)
      for (void* p : blocks)
        free_block(p);
    free_.clear();
    bytes_cached_ = 0;
  }

  size_t bytes_cached() const { return bytes_cached_; }

 private:
  std::map<size_t, std::vector<void*>> free_;
  size_t bytes_cached_ = 0;
};

}  // namespace selfsup
