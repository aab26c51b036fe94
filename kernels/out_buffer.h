// Contiguous stand-ins for kernel arguments of any strides, shared by the CPU and CUDA kernels
// (both backends' kernels read and write plain contiguous arrays). Copies run on the tensor's own
// device: raw::copy_ / raw::contiguous reach the CUDA backend's strided copy for CUDA tensors.
#pragma once

#include "core/tensor.h"
#include "core/views.h"

namespace selfsup::kernels {

// Kernels write into a contiguous buffer: the caller's `out` itself when it is contiguous,
// otherwise a scratch tensor on out's device that commit() copies into `out`. Either way
// commit() marks the write in out's version counter. An undefined `out` (an output the caller
// skips) gives a null data pointer and a commit() that does nothing.
class OutBuffer {
 public:
  explicit OutBuffer(Tensor& out) : out_(out), buf_(scratch_for(out)) {}
  template <typename T>
  T* data() const {
    return buf_.defined() ? buf_.data_ptr<T>() : nullptr;
  }
  void commit() {
    if (!out_.defined()) return;
    if (buf_.impl() == out_.impl())
      out_.bump_version();
    else
      raw::copy_(out_, buf_);
  }

 private:
  static Tensor scratch_for(const Tensor& out) {
    if (!out.defined() || out.is_contiguous()) return out;
    return empty(out.shape(), TensorOptions(out.dtype()).device(out.device()));
  }
  Tensor& out_;
  Tensor buf_;
};

// t itself when contiguous or undefined (an optional argument), else a contiguous copy on its
// device.
inline Tensor dense(const Tensor& t) {
  return !t.defined() || t.is_contiguous() ? t : raw::contiguous(t);
}

}  // namespace selfsup::kernels
