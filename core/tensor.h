// Tensor: a typed, strided view onto a Storage.
//
// A Tensor is a cheap handle (a shared_ptr to a TensorImpl). Copying a Tensor shares the data,
// like torch::Tensor. A view (transpose, narrow, expand, ...) is a new TensorImpl over the same
// Storage with its own shape, strides and element offset.
//
// The methods split in three groups:
//  - geometry and data access, defined here in core;
//  - autograd state (requires_grad, grad, detach), defined here: core only carries it;
//  - differentiable methods (view, sum, backward, ...), declared here for the familiar
//    `y.sum().backward()` spelling but defined in autograd/, which records the graph.
// Code below autograd (core, kernels) uses the raw, graph-free functions of core/views.h.
#pragma once

#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/shape.h"
#include "core/storage.h"

namespace selfsup {

struct Node;  // a recorded op of the autograd graph; defined in autograd/graph.h

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;       // in elements
  int64_t offset = 0;  // in elements, from the start of storage
  DType dtype = kFloat32;

  // Autograd state. Core only carries it; autograd/ gives it meaning.
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;  // accumulated gradient of a leaf
  std::shared_ptr<Node> grad_fn;     // the op that produced this tensor (null for leaves)
};

// What a factory makes: zeros({2, 3}, kFloat64), ones({4}, TensorOptions().requires_grad()).
struct TensorOptions {
  DType dtype_ = kFloat32;
  Device device_ = kCPU;
  bool requires_grad_ = false;

  TensorOptions() = default;
  TensorOptions(DType d) : dtype_(d) {}    // NOLINT: implicit, as in PyTorch
  TensorOptions(Device d) : device_(d) {}  // NOLINT
  TensorOptions dtype(DType d) const {
    auto o = *this;
    o.dtype_ = d;
    return o;
  }
  TensorOptions device(Device d) const {
    auto o = *this;
    o.device_ = d;
    return o;
  }
  TensorOptions requires_grad(bool r = true) const {
    auto o = *this;
    o.requires_grad_ = r;
    return o;
  }
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

  // ---- geometry ----
  const Shape& shape() const { return checked()->shape; }
  const Shape& sizes() const { return shape(); }
  const Shape& strides() const { return checked()->strides; }
  int64_t dim() const { return static_cast<int64_t>(shape().size()); }
  int64_t size(int64_t d) const;
  int64_t stride(int64_t d) const;
  int64_t numel() const { return shape_numel(shape()); }
  int64_t offset() const { return checked()->offset; }
  DType dtype() const { return checked()->dtype; }
  Device device() const { return checked()->storage->device(); }
  bool is_contiguous() const;
  // Whether the storage is page-locked host memory (see empty_pinned).
  bool is_pinned() const { return checked()->storage->pinned(); }
  size_t element_size() const { return dtype_size(dtype()); }

  // ---- data ----
  // Pointer to the first element (storage start + offset). T must match dtype.
  template <typename T>
  T* data_ptr() const {
    SELFSUP_CHECK(dtype_of<T>() == dtype(), "data_ptr: tensor is ", dtype_name(dtype()),
                  ", asked for ", dtype_name(dtype_of<T>()));
    return static_cast<T*>(raw_data_ptr());
  }
  void* raw_data_ptr() const;
  Storage& storage() const { return *checked()->storage; }
  bool shares_storage_with(const Tensor& other) const;
  // The value of a one-element tensor, converted to double (copied from the device if needed).
  double item() const;
  template <typename T>
  T item() const {
    return static_cast<T>(item());
  }
  // All elements in row-major order (any strides), converted to T; device tensors are copied
  // to the host first.
  template <typename T>
  std::vector<T> to_vector() const;

  // Version counter of the storage: bumped by every in-place write (see core/storage.h).
  uint64_t version() const { return storage().version(); }
  void bump_version() const { storage().bump_version(); }

  // ---- autograd state (defined in core) ----
  bool requires_grad() const { return checked()->requires_grad; }
  // Marks a leaf as requiring grad; only floating tensors can.
  Tensor& requires_grad_(bool on = true);
  bool is_leaf() const { return checked()->grad_fn == nullptr; }
  Node* grad_fn() const { return checked()->grad_fn.get(); }
  // The accumulated gradient (undefined Tensor until a backward reached this leaf).
  Tensor grad() const;
  void set_grad(const Tensor& g) const;
  // An alias of the same data that is cut from the graph: the stop-gradient.
  Tensor detach() const;

  // ---- autograd and differentiable methods (defined in autograd/) ----
  void backward(const Tensor& gradient = Tensor()) const;
  Tensor view(const Shape& shape) const;
  Tensor reshape(const Shape& shape) const;
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor permute(const Shape& dims) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor t() const;  // transpose of a 2-d tensor
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor select(int64_t dim, int64_t index) const;
  Tensor expand(const Shape& shape) const;
  Tensor squeeze() const;
  Tensor squeeze(int64_t dim) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor contiguous() const;
  Tensor clone() const;
  Tensor to(DType dtype) const;
  Tensor to(Device device) const;
  Tensor sum() const;
  Tensor sum(const std::vector<int64_t>& dims, bool keepdim = false) const;
  Tensor mean() const;
  Tensor mean(const std::vector<int64_t>& dims, bool keepdim = false) const;
  Tensor pow(double exponent) const;
  Tensor exp() const;
  Tensor log() const;
  Tensor sqrt() const;
  Tensor abs() const;
  Tensor neg() const;
  Tensor relu() const;
  Tensor sigmoid() const;
  Tensor tanh() const;
  Tensor matmul(const Tensor& other) const;

  // In-place (bump the version; refused on a leaf that requires grad while grad mode is on).
  Tensor& zero_();
  Tensor& fill_(double value);
  Tensor& copy_(const Tensor& src);
  Tensor& add_(const Tensor& other, double alpha = 1.0);
  Tensor& mul_(double factor);
  Tensor& mul_(const Tensor& other);

  std::string str() const;

 private:
  TensorImpl* checked() const {
    SELFSUP_CHECK(impl_, "tensor: use of an undefined tensor");
    return impl_.get();
  }
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// ---- factories (core/factory.cpp) ----
class Generator;
Tensor empty(const Shape& shape, TensorOptions opts = {});
// An uninitialised CPU tensor in pinned (page-locked) host memory when the CUDA backend has
// registered its pinned allocator (a GPU was found), else in ordinary host memory: is_pinned()
// says which. Data loaders fill these so that the copy to the GPU runs at full bus speed.
Tensor empty_pinned(const Shape& shape, DType dtype = kFloat32);
Tensor zeros(const Shape& shape, TensorOptions opts = {});
Tensor ones(const Shape& shape, TensorOptions opts = {});
Tensor full(const Shape& shape, double value, TensorOptions opts = {});
Tensor scalar_tensor(double value, TensorOptions opts = {});
// [start, end) in steps of step; float32 unless opts says otherwise.
Tensor arange(double start, double end, double step = 1.0, TensorOptions opts = {});
Tensor arange(int64_t end, TensorOptions opts = {});
// Uniform [0, 1) and standard normal, from the Philox stream of gen (the default generator
// when null): the same seed gives the same numbers on every device.
Tensor rand(const Shape& shape, TensorOptions opts = {}, Generator* gen = nullptr);
Tensor randn(const Shape& shape, TensorOptions opts = {}, Generator* gen = nullptr);
// Uniform integers in [low, high), int64 unless opts says otherwise.
Tensor randint(int64_t low, int64_t high, const Shape& shape, TensorOptions opts = kInt64,
               Generator* gen = nullptr);
// The n x n identity matrix.
Tensor eye(int64_t n, TensorOptions opts = {});
// A random permutation of 0..n-1 (int64).
Tensor randperm(int64_t n, Generator* gen = nullptr);
// Copies values into a new CPU tensor of the given shape (numel must match).
template <typename T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape,
                   TensorOptions opts = dtype_of<T>());
// A 1-d tensor from a braced list: tensor({1.0f, 2.0f}).
template <typename T>
Tensor tensor(std::initializer_list<T> values, TensorOptions opts = dtype_of<T>()) {
  return from_vector(std::vector<T>(values), {static_cast<int64_t>(values.size())}, opts);
}
Tensor empty_like(const Tensor& t);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor full_like(const Tensor& t, double value);

}  // namespace selfsup
