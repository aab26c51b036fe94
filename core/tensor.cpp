#include "core/tensor.h"

#include "core/random.h"
#include "core/views.h"

namespace selfsup {

int64_t Tensor::size(int64_t d) const {
  return shape()[normalize_dim(d, dim(), "size")];
}

int64_t Tensor::stride(int64_t d) const {
  return strides()[normalize_dim(d, dim(), "stride")];
}

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int64_t d = dim() - 1; d >= 0; --d) {
    if (shape()[d] == 1) continue;
    if (strides()[d] != expected) return false;
    expected *= shape()[d];
  }
  return true;
}

void* Tensor::raw_data_ptr() const {
  return static_cast<char*>(storage().data()) + offset() * static_cast<int64_t>(element_size());
}

bool Tensor::shares_storage_with(const Tensor& other) const {
  return defined() && other.defined() && impl_->storage == other.impl_->storage;
}

double Tensor::item() const {
  SELFSUP_CHECK(numel() == 1, "item: tensor of shape ", shape_str(shape()), " has ", numel(),
                " elements, not 1");
  // A device tensor is copied to the host first (a synchronising copy, as in PyTorch).
  if (!device().is_cpu()) return raw::to_device(raw::contiguous(*this), kCPU).item();
  return dispatch_dtype(dtype(), [&](auto tag) {
    using T = decltype(tag);
    return static_cast<double>(*static_cast<const T*>(raw_data_ptr()));
  });
}

template <typename T>
std::vector<T> Tensor::to_vector() const {
  if (!device().is_cpu()) return raw::to_device(raw::contiguous(*this), kCPU).to_vector<T>();
  Tensor c = raw::to_dtype(*this, dtype_of<T>());
  const T* p = c.data_ptr<T>();
  return std::vector<T>(p, p + c.numel());
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;
template std::vector<uint8_t> Tensor::to_vector<uint8_t>() const;

Tensor& Tensor::requires_grad_(bool on) {
  SELFSUP_CHECK(!on || is_floating(dtype()), "requires_grad_: only floating tensors can ",
                "require grad, this one is ", dtype_name(dtype()));
  SELFSUP_CHECK(is_leaf(),
                "requires_grad_: can only be set on a leaf tensor; use detach() to "
                "make one from the output of an op");
  checked()->requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const {
  const auto& g = checked()->grad;
  return g ? Tensor(g) : Tensor();
}

void Tensor::set_grad(const Tensor& g) const {
  if (g.defined())
    SELFSUP_CHECK(g.shape() == shape(), "set_grad: gradient of shape ", shape_str(g.shape()),
                  " for a tensor of shape ", shape_str(shape()));
  checked()->grad = g.impl_ptr();
}

Tensor Tensor::detach() const {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = checked()->storage;
  impl->shape = shape();
  impl->strides = strides();
  impl->offset = offset();
  impl->dtype = dtype();
  return Tensor(impl);
}

}  // namespace selfsup
