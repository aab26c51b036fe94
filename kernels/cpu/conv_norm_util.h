// Small helpers shared by the conv, pool and norm CPU kernels: argument checks whose messages
// name the op and the shapes, and a contiguous stand-in for an output of any strides.
#pragma once

#include <string>

#include "core/tensor.h"
#include "core/views.h"

namespace selfsup::cpu::detail {

// A defined CPU tensor of float32 or float64.
inline void check_float_cpu(const Tensor& t, const char* op, const char* name) {
  SELFSUP_CHECK(t.defined(), op, ": ", name, " is undefined");
  SELFSUP_CHECK(t.device().is_cpu(), op, ": ", name, " must be on the CPU, got ", t.device().str());
  SELFSUP_CHECK(is_floating(t.dtype()), op, ": ", name, " must be float32 or float64, got ",
                dtype_name(t.dtype()));
}

// A defined CPU tensor of exactly `dtype`.
inline void check_dtype_cpu(const Tensor& t, DType dtype, const char* op, const char* name) {
  SELFSUP_CHECK(t.defined(), op, ": ", name, " is undefined");
  SELFSUP_CHECK(t.device().is_cpu(), op, ": ", name, " must be on the CPU, got ", t.device().str());
  SELFSUP_CHECK(t.dtype() == dtype, op, ": ", name, " is ", dtype_name(t.dtype()), ", expected ",
                dtype_name(dtype));
}

inline void check_shape(const Tensor& t, const Shape& expected, const char* op, const char* name) {
  SELFSUP_CHECK(t.shape() == expected, op, ": ", name, " has shape ", shape_str(t.shape()),
                ", expected ", shape_str(expected));
}

// Kernels write into a contiguous buffer: the caller's `out` itself when it is contiguous,
// otherwise a scratch tensor that commit() copies into `out`. Either way commit() marks the
// write in out's version counter. An undefined `out` (an output the caller skips) gives an
// undefined buffer and a commit() that does nothing.
class OutBuffer {
 public:
  explicit OutBuffer(Tensor& out) : out_(out), buf_(scratch_for(out)) {}
  template <typename T>
  T* data() const {
    return buf_.data_ptr<T>();
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
    return empty(out.shape(), out.dtype());
  }
  Tensor& out_;
  Tensor buf_;
};

}  // namespace selfsup::cpu::detail
