// The host-side argument checks of softmax, log-softmax, their backwards and the fused
// cross-entropy, shared by kernels/cpu/softmax.cpp and kernels/cuda/softmax.cu so both backends
// take the same arguments to mean the same thing and refuse bad ones with the same words. The
// backends differ only in where the tensors must live: each passes its Devices, the device checks
// (and the words for them) the checks below use where they reach a tensor's device. Plain C++ on
// shapes and dtypes: no loops over data (the cross-entropy targets' range is checked on the data,
// by each backend).
#pragma once

#include <cstdint>
#include <string>

#include "core/error.h"
#include "core/shape.h"
#include "core/tensor.h"

namespace selfsup::softmax_plan {

// A backend's device rules. x is the op's main input (the logits, or grad_y for the backwards).
struct Devices {
  // Throws unless x is on the backend's device.
  void (*input)(const char* op, const Tensor& x);
  // Throws unless t (named `what`) is where the kernels can read it with x.
  void (*other)(const char* op, const char* what, const Tensor& x, const Tensor& t);
  // Whether t is where the kernels can read it with x, and how the messages say where that is
  // ("CPU tensor", "tensor on cuda:0").
  bool (*with_input)(const Tensor& t, const Tensor& x);
  std::string (*where)(const Tensor& x);
};

// The main input: defined, on the backend's device, float32 or float64.
inline void check_floating(const char* op, const Tensor& x, const Devices& dev) {
  SELFSUP_CHECK(x.defined(), op, ": input is undefined");
  dev.input(op, x);
  SELFSUP_CHECK(is_floating(x.dtype()), op, ": expects float32 or float64, got ",
                dtype_name(x.dtype()));
}

// t (named `what`) has x's device, shape and dtype.
inline void check_same(const char* op, const char* what, const Tensor& x, const Tensor& t,
                       const Devices& dev) {
  SELFSUP_CHECK(t.defined(), op, ": ", what, " is undefined");
  dev.other(op, what, x, t);
  SELFSUP_CHECK(t.shape() == x.shape(), op, ": ", what, " has shape ", shape_str(t.shape()),
                ", expected ", shape_str(x.shape()));
  SELFSUP_CHECK(t.dtype() == x.dtype(), op, ": ", what, " is ", dtype_name(t.dtype()),
                ", expected ", dtype_name(x.dtype()));
}

// The four row-wise ops (in1, the y of the backwards, may be null). Returns dim in [0, ndim).
inline int64_t check_rowwise(const char* op, const Tensor& in0, const Tensor* in1,
                             const Tensor& out, int64_t dim, const Devices& dev) {
  check_floating(op, in0, dev);
  if (in1) check_same(op, "second input", in0, *in1, dev);
  check_same(op, "out", in0, out, dev);
  return normalize_dim(dim, in0.dim(), op);
}

// Either cross-entropy: logits [N, C] non-empty, loss one element of their dtype, grad_logits
// (optional) like the logits.
inline void check_cross_entropy(const char* op, const Tensor& logits, const Tensor& loss,
                                const Tensor& grad, const Devices& dev) {
  check_floating(op, logits, dev);
  SELFSUP_CHECK(logits.dim() == 2, op, ": logits must be [N, C], got ", shape_str(logits.shape()));
  SELFSUP_CHECK(logits.size(0) > 0 && logits.size(1) > 0, op, ": logits ",
                shape_str(logits.shape()), " are empty");
  SELFSUP_CHECK(loss.defined() && loss.numel() == 1 && loss.dtype() == logits.dtype() &&
                    dev.with_input(loss, logits),
                op, ": loss must be a one-element ", dtype_name(logits.dtype()), " ",
                dev.where(logits));
  if (grad.defined()) check_same(op, "grad_logits", logits, grad, dev);
}

// cross_entropy's class indices: int64 [N] (their range is checked on the data, by each backend,
// with check_target_value).
inline void check_class_targets(const char* op, const Tensor& logits, const Tensor& targets,
                                const Devices& dev) {
  SELFSUP_CHECK(targets.defined() && targets.dtype() == kInt64 && dev.with_input(targets, logits),
                op, ": targets must be an int64 ", dev.where(logits));
  const int64_t n = logits.size(0);
  SELFSUP_CHECK(targets.shape() == Shape{n}, op, ": targets have shape ",
                shape_str(targets.shape()), ", expected [", n, "] for logits ",
                shape_str(logits.shape()));
}

// The target of one row must be a class in [0, classes).
inline void check_target_value(const char* op, int64_t value, int64_t row, int64_t classes) {
  SELFSUP_CHECK(value >= 0 && value < classes, op, ": target ", value, " at row ", row,
                " is out of range [0, ", classes, ")");
}

}  // namespace selfsup::softmax_plan
