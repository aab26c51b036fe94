#include "core/views.h"

#include <algorithm>
#include <cstring>
#include <optional>

#include "core/strided.h"

namespace selfsup::raw {

namespace {

std::shared_ptr<TensorImpl> alias(const Tensor& t) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = t.impl()->storage;
  impl->dtype = t.dtype();
  return impl;
}

// Replaces one -1 in shape by the size that makes numel match.
Shape infer_size(Shape shape, int64_t numel, const char* op, const Shape& from) {
  int64_t known = 1, infer_at = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      SELFSUP_CHECK(infer_at < 0, op, ": only one dim can be -1 in ", shape_str(shape));
      infer_at = static_cast<int64_t>(i);
    } else {
      SELFSUP_CHECK(shape[i] >= 0, op, ": negative size in ", shape_str(shape));
      known *= shape[i];
    }
  }
  if (infer_at >= 0) {
    SELFSUP_CHECK(known != 0 && numel % known == 0, op, ": cannot view ", shape_str(from), " as ",
                  shape_str(shape));
    shape[infer_at] = numel / known;
  }
  SELFSUP_CHECK(shape_numel(shape) == numel, op, ": cannot view ", shape_str(from), " (", numel,
                " elements) as ", shape_str(shape));
  return shape;
}

// Strides that let (old shape, old strides) be read as new_shape without a copy, if any.
// Groups of old dims that are contiguous with each other can be split or merged freely.
std::optional<Shape> view_strides(const Shape& old_shape, const Shape& old_strides,
                                  const Shape& new_shape) {
  Shape new_strides(new_shape.size());
  if (shape_numel(old_shape) == 0) return contiguous_strides(new_shape);
  int64_t view_d = static_cast<int64_t>(new_shape.size()) - 1;
  int64_t chunk_base_stride = old_strides.empty() ? 1 : old_strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = static_cast<int64_t>(old_shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= old_shape[d];
    bool chunk_ends =
        d == 0 || (old_shape[d - 1] != 1 && old_strides[d - 1] != tensor_numel * chunk_base_stride);
    if (chunk_ends) {
      while (view_d >= 0 && (view_numel < tensor_numel || new_shape[view_d] == 1)) {
        new_strides[view_d] = view_numel * chunk_base_stride;
        view_numel *= new_shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return std::nullopt;
      if (d > 0) {
        chunk_base_stride = old_strides[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  if (view_d != -1) return std::nullopt;
  return new_strides;
}

}  // namespace

Tensor as_strided(const Tensor& t, const Shape& shape, const Shape& strides, int64_t offset) {
  SELFSUP_CHECK(shape.size() == strides.size(), "as_strided: shape ", shape_str(shape),
                " and strides ", shape_str(strides), " differ in length");
  int64_t max_off = offset;
  for (size_t i = 0; i < shape.size(); ++i) {
    SELFSUP_CHECK(shape[i] >= 0 && strides[i] >= 0, "as_strided: negative size or stride in ",
                  shape_str(shape), " / ", shape_str(strides));
    if (shape[i] == 0) max_off = -1;
    if (max_off >= 0) max_off += (shape[i] - 1) * strides[i];
  }
  int64_t capacity = static_cast<int64_t>(t.storage().nbytes() / t.element_size());
  SELFSUP_CHECK(offset >= 0 && max_off < capacity, "as_strided: view ", shape_str(shape),
                " with strides ", shape_str(strides), " at offset ", offset,
                " reaches past the storage (", capacity, " elements)");
  auto impl = alias(t);
  impl->shape = shape;
  impl->strides = strides;
  impl->offset = offset;
  return Tensor(impl);
}

Tensor view(const Tensor& t, Shape shape) {
  shape = infer_size(std::move(shape), t.numel(), "view", t.shape());
  auto strides = view_strides(t.shape(), t.strides(), shape);
  SELFSUP_CHECK(strides.has_value(), "view: cannot view a tensor of shape ", shape_str(t.shape()),
                " and strides ", shape_str(t.strides()), " as ", shape_str(shape),
                " without a copy; use reshape()");
  return as_strided(t, shape, *strides, t.offset());
}

Tensor reshape(const Tensor& t, Shape shape) {
  shape = infer_size(std::move(shape), t.numel(), "reshape", t.shape());
  auto strides = view_strides(t.shape(), t.strides(), shape);
  if (strides) return as_strided(t, shape, *strides, t.offset());
  return view(clone(t), shape);
}

Tensor permute(const Tensor& t, const Shape& dims) {
  SELFSUP_CHECK(static_cast<int64_t>(dims.size()) == t.dim(), "permute: ", dims.size(),
                " dims given for a tensor of shape ", shape_str(t.shape()));
  Shape shape(dims.size()), strides(dims.size());
  std::vector<bool> seen(dims.size(), false);
  for (size_t i = 0; i < dims.size(); ++i) {
    int64_t d = normalize_dim(dims[i], t.dim(), "permute");
    SELFSUP_CHECK(!seen[d], "permute: dim ", d, " repeated in ", shape_str(dims));
    seen[d] = true;
    shape[i] = t.shape()[d];
    strides[i] = t.strides()[d];
  }
  return as_strided(t, shape, strides, t.offset());
}

Tensor transpose(const Tensor& t, int64_t d0, int64_t d1) {
  d0 = normalize_dim(d0, t.dim(), "transpose");
  d1 = normalize_dim(d1, t.dim(), "transpose");
  Shape shape = t.shape(), strides = t.strides();
  std::swap(shape[d0], shape[d1]);
  std::swap(strides[d0], strides[d1]);
  return as_strided(t, shape, strides, t.offset());
}

Tensor narrow(const Tensor& t, int64_t dim, int64_t start, int64_t length) {
  dim = normalize_dim(dim, t.dim(), "narrow");
  int64_t n = t.shape()[dim];
  if (start < 0) start += n;
  SELFSUP_CHECK(start >= 0 && length >= 0 && start + length <= n, "narrow: range [", start, ", ",
                start + length, ") is outside dim ", dim, " of size ", n, " (shape ",
                shape_str(t.shape()), ")");
  Shape shape = t.shape();
  shape[dim] = length;
  return as_strided(t, shape, t.strides(), t.offset() + start * t.strides()[dim]);
}

Tensor slice(const Tensor& t, int64_t dim, int64_t start, int64_t end, int64_t step) {
  dim = normalize_dim(dim, t.dim(), "slice");
  SELFSUP_CHECK(step > 0, "slice: step must be positive, got ", step);
  int64_t n = t.shape()[dim];
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape shape = t.shape(), strides = t.strides();
  shape[dim] = (end - start + step - 1) / step;
  strides[dim] *= step;
  return as_strided(t, shape, strides, t.offset() + start * t.strides()[dim]);
}

Tensor select(const Tensor& t, int64_t dim, int64_t index) {
  dim = normalize_dim(dim, t.dim(), "select");
  int64_t n = t.shape()[dim];
  SELFSUP_CHECK(index >= -n && index < n, "select: index ", index, " is out of range for dim ", dim,
                " of size ", n);
  if (index < 0) index += n;
  Shape shape = t.shape(), strides = t.strides();
  int64_t off = t.offset() + index * strides[dim];
  shape.erase(shape.begin() + dim);
  strides.erase(strides.begin() + dim);
  return as_strided(t, shape, strides, off);
}

Tensor expand(const Tensor& t, const Shape& shape) {
  SELFSUP_CHECK(shape.size() >= t.shape().size(), "expand: cannot expand ", shape_str(t.shape()),
                " to fewer dims ", shape_str(shape));
  Shape target = shape;
  size_t lead = shape.size() - t.shape().size();
  for (size_t i = 0; i < shape.size(); ++i) {
    int64_t have = i < lead ? 1 : t.shape()[i - lead];
    if (target[i] == -1) {
      SELFSUP_CHECK(i >= lead, "expand: -1 not allowed for a new leading dim in ",
                    shape_str(shape));
      target[i] = have;
    }
    SELFSUP_CHECK(have == target[i] || have == 1, "expand: cannot expand ", shape_str(t.shape()),
                  " to ", shape_str(shape));
  }
  return as_strided(t, target, broadcast_strides(t.shape(), t.strides(), target), t.offset());
}

Tensor squeeze(const Tensor& t) {
  Shape shape, strides;
  for (int64_t d = 0; d < t.dim(); ++d)
    if (t.shape()[d] != 1) {
      shape.push_back(t.shape()[d]);
      strides.push_back(t.strides()[d]);
    }
  return as_strided(t, shape, strides, t.offset());
}

Tensor squeeze(const Tensor& t, int64_t dim) {
  dim = normalize_dim(dim, t.dim(), "squeeze");
  if (t.dim() == 0 || t.shape()[dim] != 1) return as_strided(t, t.shape(), t.strides(), t.offset());
  Shape shape = t.shape(), strides = t.strides();
  shape.erase(shape.begin() + dim);
  strides.erase(strides.begin() + dim);
  return as_strided(t, shape, strides, t.offset());
}

Tensor unsqueeze(const Tensor& t, int64_t dim) {
  dim = normalize_dim(dim, t.dim() + 1, "unsqueeze");
  Shape shape = t.shape(), strides = t.strides();
  int64_t s = dim < t.dim() ? strides[dim] * shape[dim] : 1;
  shape.insert(shape.begin() + dim, 1);
  strides.insert(strides.begin() + dim, s);
  return as_strided(t, shape, strides, t.offset());
}

// ---- copies ----

namespace {

DeviceCopyFn g_device_copy = nullptr;
StridedCopyFn g_strided_copy = nullptr;
DeviceFillFn g_device_fill = nullptr;

template <typename D, typename S>
void copy_cpu(Tensor& dst, const Tensor& src) {
  D* d = static_cast<D*>(dst.storage().data());
  const S* s = static_cast<const S*>(src.storage().data());
  Shape sstrides = broadcast_strides(src.shape(), src.strides(), dst.shape());
  std::array<const Shape*, 2> strides = {&dst.strides(), &sstrides};
  for_each_run<2>(
      dst.shape(), strides, {dst.offset(), src.offset()},
      [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& step) {
        D* dp = d + off[0];
        const S* sp = s + off[1];
        if (step[0] == 1 && step[1] == 1 && std::is_same_v<D, S>) {
          std::memcpy(dp, sp, n * sizeof(D));
          return;
        }
        for (int64_t i = 0; i < n; ++i)
          dp[i * step[0]] = static_cast<D>(sp[i * step[1]]);
      });
}

}  // namespace

void set_device_copy(DeviceCopyFn fn) {
  g_device_copy = fn;
}
void set_strided_copy(StridedCopyFn fn) {
  g_strided_copy = fn;
}
void set_device_fill(DeviceFillFn fn) {
  g_device_fill = fn;
}
DeviceFillFn device_fill() {
  return g_device_fill;
}

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes) {
  if (nbytes == 0) return;
  if (dst_device.is_cpu() && src_device.is_cpu()) {
    std::memcpy(dst, src, nbytes);
    return;
  }
  SELFSUP_CHECK(g_device_copy, "copy: no copy routine from ", src_device.str(), " to ",
                dst_device.str(), " (this build has no CUDA backend)");
  g_device_copy(dst, dst_device, src, src_device, nbytes);
}

void copy_(Tensor& dst, const Tensor& src) {
  broadcast_shapes(dst.shape(), src.shape(), "copy_");
  SELFSUP_CHECK(broadcast_shapes(dst.shape(), src.shape(), "copy_") == dst.shape(),
                "copy_: source of shape ", shape_str(src.shape()),
                " cannot be broadcast to destination shape ", shape_str(dst.shape()));
  dst.bump_version();
  if (dst.device().is_cpu() && src.device().is_cpu()) {
    dispatch_dtype(dst.dtype(), [&](auto dtag) {
      dispatch_dtype(src.dtype(),
                     [&](auto stag) { copy_cpu<decltype(dtag), decltype(stag)>(dst, src); });
    });
    return;
  }
  if (dst.device() == src.device()) {  // within one device: that backend's strided copy
    SELFSUP_CHECK(g_strided_copy, "copy_: no strided copy routine on ", dst.device().str(),
                  " (this build has no backend for it)");
    g_strided_copy(dst, src);
    return;
  }
  // Across devices: bytes only, so both sides must be contiguous, same dtype and shape.
  SELFSUP_CHECK(dst.dtype() == src.dtype() && dst.shape() == src.shape() && dst.is_contiguous() &&
                    src.is_contiguous(),
                "copy_: a copy between ", src.device().str(), " and ", dst.device().str(),
                " needs contiguous tensors of one dtype and shape");
  copy_bytes(dst.raw_data_ptr(), dst.device(), src.raw_data_ptr(), src.device(),
             src.numel() * src.element_size());
}

Tensor clone(const Tensor& t) {
  Tensor out = empty(t.shape(), TensorOptions(t.dtype()).device(t.device()));
  if (t.device().is_cpu() || !t.is_contiguous()) {
    copy_(out, t);  // a strided copy on a device goes to its backend (set_strided_copy)
  } else {
    copy_bytes(out.raw_data_ptr(), out.device(), t.raw_data_ptr(), t.device(),
               t.numel() * t.element_size());
  }
  return out;
}

Tensor contiguous(const Tensor& t) {
  return t.is_contiguous() ? t : clone(t);
}

Tensor to_dtype(const Tensor& t, DType dtype) {
  if (t.dtype() == dtype && t.is_contiguous()) return t;
  Tensor out = empty(t.shape(), TensorOptions(dtype).device(t.device()));
  copy_(out, t);
  return out;
}

Tensor to_device(const Tensor& t, Device device) {
  if (t.device() == device) return t;
  Tensor src = contiguous(t);  // on t's device (a CUDA view uses the strided copy)
  Tensor out = empty(t.shape(), TensorOptions(t.dtype()).device(device));
  copy_bytes(out.raw_data_ptr(), device, src.raw_data_ptr(), src.device(),
             src.numel() * src.element_size());
  return out;
}

}  // namespace selfsup::raw
