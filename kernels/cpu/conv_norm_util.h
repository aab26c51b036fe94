// Small helpers shared by the conv, pool and norm CPU kernels: argument checks whose messages
// name the op and the shapes, and a contiguous stand-in for an output of any strides.
#pragma once

#include <string>

#include "core/tensor.h"
#include "core/views.h"
#include "kernels/out_buffer.h"

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

// A contiguous stand-in for an output of any strides (kernels/out_buffer.h).
using kernels::OutBuffer;

}  // namespace selfsup::cpu::detail
