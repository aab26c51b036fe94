#include "nn/buffer_mirror.h"

#include "core/views.h"

namespace selfsup::nn {

namespace {

void check_int_buffer(const char* what, const Tensor& buffer) {
  SELFSUP_CHECK(buffer.defined() && buffer.dtype() == kInt64 && buffer.dim() <= 1,
                "IntBufferMirror::", what, ": expected an int64 buffer of 0 or 1 dimensions, got ",
                buffer.defined()
                    ? std::string(dtype_name(buffer.dtype())) + " " + shape_str(buffer.shape())
                    : std::string("an undefined tensor"));
}

}  // namespace

bool IntBufferMirror::current(const Tensor& buffer) const {
  return storage_.lock() == buffer.impl()->storage && version_ == buffer.version() &&
         static_cast<int64_t>(values_.size()) == buffer.numel();
}

void IntBufferMirror::remember(const Tensor& buffer) {
  storage_ = buffer.impl()->storage;
  version_ = buffer.version();
}

const std::vector<int64_t>& IntBufferMirror::read(const Tensor& buffer) {
  check_int_buffer("read", buffer);
  if (!current(buffer)) {
    values_ = buffer.to_vector<int64_t>();  // the one wait, after a change from outside
    remember(buffer);
  }
  return values_;
}

void IntBufferMirror::write(Tensor& buffer, const std::vector<int64_t>& values) {
  check_int_buffer("write", buffer);
  SELFSUP_CHECK(static_cast<int64_t>(values.size()) == buffer.numel(),
                "IntBufferMirror::write: ", values.size(), " values for a buffer of shape ",
                shape_str(buffer.shape()));
  if (buffer.dim() == 0) {
    buffer.fill_(static_cast<double>(values[0]));
  } else {
    for (int64_t i = 0; i < buffer.numel(); ++i) {
      Tensor element = raw::narrow(buffer, 0, i, 1);
      element.fill_(static_cast<double>(values[static_cast<size_t>(i)]));
    }
  }
  values_ = values;
  remember(buffer);
}

}  // namespace selfsup::nn
