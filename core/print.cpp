// Printing in PyTorch's spirit: nested brackets, then the shape and dtype.
#include <iomanip>
#include <sstream>

#include "core/tensor.h"
#include "core/views.h"

namespace selfsup {

namespace {

constexpr int64_t kEdgeItems = 3;  // elements shown at each end of a long dim

void print_rec(std::ostream& os, const Tensor& t, int64_t dim, Shape& idx, int indent) {
  int64_t n = t.shape()[dim];
  bool summarise = n > 2 * kEdgeItems + 1;
  os << "[";
  for (int64_t i = 0; i < n; ++i) {
    if (summarise && i == kEdgeItems) {
      os << (dim + 1 == t.dim() ? "..., " : "...,\n" + std::string(indent + 1, ' '));
      i = n - kEdgeItems;
    }
    idx[dim] = i;
    if (dim + 1 == t.dim()) {
      int64_t off = t.offset();
      for (int64_t d = 0; d < t.dim(); ++d)
        off += idx[d] * t.strides()[d];
      dispatch_dtype(t.dtype(), [&](auto tag) {
        using T = decltype(tag);
        T v = static_cast<const T*>(t.storage().data())[off];
        if constexpr (std::is_floating_point_v<T>)
          os << std::setprecision(4) << v;
        else
          os << static_cast<int64_t>(v);
      });
    } else {
      print_rec(os, t, dim + 1, idx, indent + 1);
    }
    if (i + 1 < n) os << (dim + 1 == t.dim() ? ", " : ",\n" + std::string(indent + 1, ' '));
  }
  os << "]";
}

}  // namespace

std::string Tensor::str() const {
  if (!defined()) return "Tensor(undefined)";
  std::ostringstream os;
  Tensor host = device().is_cpu() ? *this : raw::to_device(raw::contiguous(*this), kCPU);
  os << "tensor(";
  if (dim() == 0) {
    os << host.item();
  } else {
    Shape idx(dim(), 0);
    print_rec(os, host, 0, idx, 7);
  }
  os << ", shape=" << shape_str(shape()) << ", dtype=" << dtype_name(dtype());
  if (!device().is_cpu()) os << ", device=" << device().str();
  if (requires_grad()) os << ", requires_grad=true";
  os << ")";
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  return os << t.str();
}

}  // namespace selfsup
