// The Tensor methods declared in core/tensor.h that record the graph: each forwards to the free
// function of autograd/ops.h, so `x.sum()` and `sum(x)` are the same op.
#include "autograd/op_utils.h"
#include "autograd/ops.h"
#include "kernels/dispatch.h"

namespace selfsup {

Tensor Tensor::view(const Shape& s) const {
  return selfsup::view(*this, s);
}
Tensor Tensor::reshape(const Shape& s) const {
  return selfsup::reshape(*this, s);
}
Tensor Tensor::flatten(int64_t a, int64_t b) const {
  return selfsup::flatten(*this, a, b);
}
Tensor Tensor::permute(const Shape& d) const {
  return selfsup::permute(*this, d);
}
Tensor Tensor::transpose(int64_t a, int64_t b) const {
  return selfsup::transpose(*this, a, b);
}
Tensor Tensor::t() const {
  SELFSUP_CHECK(dim() == 2, "t: expects a 2-d tensor, got ", shape_str(shape()));
  return selfsup::transpose(*this, 0, 1);
}
Tensor Tensor::narrow(int64_t d, int64_t s, int64_t n) const {
  return selfsup::narrow(*this, d, s, n);
}
Tensor Tensor::slice(int64_t d, int64_t s, int64_t e, int64_t st) const {
  return selfsup::slice(*this, d, s, e, st);
}
Tensor Tensor::select(int64_t d, int64_t i) const {
  return selfsup::select(*this, d, i);
}
Tensor Tensor::expand(const Shape& s) const {
  return selfsup::expand(*this, s);
}
Tensor Tensor::squeeze() const {
  return selfsup::squeeze(*this);
}
Tensor Tensor::squeeze(int64_t d) const {
  return selfsup::squeeze(*this, d);
}
Tensor Tensor::unsqueeze(int64_t d) const {
  return selfsup::unsqueeze(*this, d);
}
Tensor Tensor::contiguous() const {
  return selfsup::contiguous(*this);
}
Tensor Tensor::clone() const {
  return selfsup::clone(*this);
}
Tensor Tensor::to(DType d) const {
  return selfsup::to_dtype(*this, d);
}
Tensor Tensor::to(Device d) const {
  if (device() == d) return *this;
  Tensor out = raw::to_device(*this, d);
  return record(out, "to", {*this}, [from = device()](const Tensor& g) {
    return std::vector<Tensor>{raw::to_device(raw::contiguous(g), from)};
  });
}
Tensor Tensor::sum() const {
  return selfsup::sum(*this);
}
Tensor Tensor::sum(const std::vector<int64_t>& d, bool k) const {
  return selfsup::sum(*this, d, k);
}
Tensor Tensor::mean() const {
  return selfsup::mean(*this);
}
Tensor Tensor::mean(const std::vector<int64_t>& d, bool k) const {
  return selfsup::mean(*this, d, k);
}
Tensor Tensor::pow(double e) const {
  return selfsup::pow(*this, e);
}
Tensor Tensor::exp() const {
  return selfsup::exp(*this);
}
Tensor Tensor::log() const {
  return selfsup::log(*this);
}
Tensor Tensor::sqrt() const {
  return selfsup::sqrt(*this);
}
Tensor Tensor::abs() const {
  return selfsup::abs(*this);
}
Tensor Tensor::neg() const {
  return selfsup::neg(*this);
}
Tensor Tensor::relu() const {
  return selfsup::relu(*this);
}
Tensor Tensor::sigmoid() const {
  return selfsup::sigmoid(*this);
}
Tensor Tensor::tanh() const {
  return selfsup::tanh(*this);
}
Tensor Tensor::matmul(const Tensor& o) const {
  return selfsup::matmul(*this, o);
}

// ---- in place ----

namespace {

// What an in-place op on `self` reads for `other`: other itself, unless it shares memory with
// self without being the very same view (x.add_(x.t()), x.mul_(x[0])). Then the kernel would
// read elements it has already overwritten, in an order that differs between the CPU and the
// GPU, so it reads a copy instead.
Tensor readable_operand(const Tensor& self, const Tensor& other) {
  if (!other.shares_storage_with(self)) return other;
  const bool same_view = other.offset() == self.offset() && other.shape() == self.shape() &&
                         other.strides() == self.strides();
  return same_view ? other : raw::clone(other);
}

}  // namespace

Tensor& Tensor::zero_() {
  return fill_(0.0);
}

Tensor& Tensor::fill_(double value) {
  check_inplace_allowed(*this, "fill_");
  dispatch::fill(*this, value);
  bump_version();
  return *this;
}

Tensor& Tensor::copy_(const Tensor& src) {
  check_inplace_allowed(*this, "copy_");
  raw::copy_(*this, src);  // bumps the version
  return *this;
}

Tensor& Tensor::add_(const Tensor& other, double alpha) {
  check_inplace_allowed(*this, "add_");
  detail::check_same_dtype("add_", *this, other);
  dispatch::axpby(1.0, *this, alpha, readable_operand(*this, other), *this);
  bump_version();
  return *this;
}

Tensor& Tensor::mul_(double factor) {
  check_inplace_allowed(*this, "mul_");
  dispatch::binary_scalar(cpu::BinaryOp::Mul, *this, factor, *this);
  bump_version();
  return *this;
}

Tensor& Tensor::mul_(const Tensor& other) {
  check_inplace_allowed(*this, "mul_");
  detail::check_same_dtype("mul_", *this, other);
  dispatch::binary(cpu::BinaryOp::Mul, *this, readable_operand(*this, other), *this);
  bump_version();
  return *this;
}

}  // namespace selfsup
