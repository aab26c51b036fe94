// IntBufferMirror: the host's copy of a small int64 buffer that a module reads every step
// (BatchNorm's batch count, a queue's ring pointer).
//
// Such values live in buffers so that checkpoints, state dicts and Module::to carry them. But
// reading a buffer on a GPU back to the host waits for every kernel queued before it, and a
// wait per BatchNorm layer per forward keeps the GPU idle while the host catches up. The mirror
// keeps the values last written through it and reads the buffer again only when the buffer
// changed behind its back: a different storage (Module::to, a new tensor) or a version bumped
// by another writer (load_state_dict's copy_, init_target). Writes go to the buffer's own
// device without a wait (a fill per value). The CPU takes the same path, so its tests check the
// bookkeeping the GPU relies on.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/tensor.h"

namespace selfsup::nn {

class IntBufferMirror {
 public:
  // The buffer's numel() values (an int64 buffer of 0 or 1 dimensions).
  const std::vector<int64_t>& read(const Tensor& buffer);
  // Writes exactly buffer.numel() values into the buffer and remembers them.
  void write(Tensor& buffer, const std::vector<int64_t>& values);

 private:
  bool current(const Tensor& buffer) const;
  void remember(const Tensor& buffer);

  std::weak_ptr<Storage> storage_;  // the storage the values were read from or written to
  uint64_t version_ = 0;            // its version then
  std::vector<int64_t> values_;
};

}  // namespace selfsup::nn
