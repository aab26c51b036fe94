// Views, indexing and joining, with their gradients. A view's gradient maps the output's
// gradient back onto the input's geometry (a narrow scatters into zeros, an expand sums back).
#include "autograd/op_utils.h"
#include "autograd/ops.h"
#include "kernels/dispatch.h"

namespace selfsup {

namespace {

// The backward of every view that keeps all elements: reshape the gradient to the input shape.
Tensor record_reshape_like(Tensor out, const char* name, const Tensor& x) {
  return record(out, name, {x}, [xs = x.shape()](const Tensor& g) {
    return std::vector<Tensor>{raw::reshape(g, xs)};
  });
}

// The backward of a view that picks a sub-block: zeros with the gradient written into the block.
template <typename Pick>
Tensor record_pick(Tensor out, const char* name, const Tensor& x, Pick pick) {
  return record(out, name, {x}, [=, xs = x.shape()](const Tensor& g) {
    Tensor gx = detail::zeros_as(xs, g);
    Tensor block = pick(gx);
    raw::copy_(block, g);
    return std::vector<Tensor>{gx};
  });
}

}  // namespace

Tensor view(const Tensor& x, const Shape& shape) {
  return record_reshape_like(raw::view(x, shape), "view", x);
}

Tensor reshape(const Tensor& x, const Shape& shape) {
  return record_reshape_like(raw::reshape(x, shape), "reshape", x);
}

Tensor flatten(const Tensor& x, int64_t start_dim, int64_t end_dim) {
  if (x.dim() == 0) return reshape(x, {1});
  start_dim = normalize_dim(start_dim, x.dim(), "flatten");
  end_dim = normalize_dim(end_dim, x.dim(), "flatten");
  SELFSUP_CHECK(start_dim <= end_dim, "flatten: start_dim ", start_dim, " > end_dim ", end_dim);
  Shape shape(x.shape().begin(), x.shape().begin() + start_dim);
  int64_t folded = 1;
  for (int64_t d = start_dim; d <= end_dim; ++d)
    folded *= x.size(d);
  shape.push_back(folded);
  shape.insert(shape.end(), x.shape().begin() + end_dim + 1, x.shape().end());
  return reshape(x, shape);
}

Tensor permute(const Tensor& x, const Shape& dims) {
  Tensor out = raw::permute(x, dims);
  Shape inverse(dims.size());
  for (size_t i = 0; i < dims.size(); ++i)
    inverse[normalize_dim(dims[i], x.dim(), "permute")] = i;
  return record(out, "permute", {x}, [inverse](const Tensor& g) {
    return std::vector<Tensor>{raw::permute(g, inverse)};
  });
}

Tensor transpose(const Tensor& x, int64_t d0, int64_t d1) {
  Tensor out = raw::transpose(x, d0, d1);
  return record(out, "transpose", {x}, [d0, d1](const Tensor& g) {
    return std::vector<Tensor>{raw::transpose(g, d0, d1)};
  });
}

Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length) {
  return record_pick(raw::narrow(x, dim, start, length), "narrow", x,
                     [=](const Tensor& gx) { return raw::narrow(gx, dim, start, length); });
}

Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step) {
  return record_pick(raw::slice(x, dim, start, end, step), "slice", x,
                     [=](const Tensor& gx) { return raw::slice(gx, dim, start, end, step); });
}

Tensor select(const Tensor& x, int64_t dim, int64_t index) {
  return record_pick(raw::select(x, dim, index), "select", x,
                     [=](const Tensor& gx) { return raw::select(gx, dim, index); });
}

Tensor expand(const Tensor& x, const Shape& shape) {
  Tensor out = raw::expand(x, shape);
  return record(out, "expand", {x}, [xs = x.shape()](const Tensor& g) {
    return std::vector<Tensor>{detail::reduce_to(g, xs)};
  });
}

Tensor squeeze(const Tensor& x) {
  return record_reshape_like(raw::squeeze(x), "squeeze", x);
}
Tensor squeeze(const Tensor& x, int64_t dim) {
  return record_reshape_like(raw::squeeze(x, dim), "squeeze", x);
}
Tensor unsqueeze(const Tensor& x, int64_t dim) {
  return record_reshape_like(raw::unsqueeze(x, dim), "unsqueeze", x);
}

Tensor contiguous(const Tensor& x) {
  return record(raw::contiguous(x), "contiguous", {x},
                [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

Tensor clone(const Tensor& x) {
  return record(raw::clone(x), "clone", {x},
                [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

Tensor to_dtype(const Tensor& x, DType dtype) {
  if (x.dtype() == dtype) return x;
  Tensor out = raw::to_dtype(x, dtype);
  if (!is_floating(dtype)) return out;
  return record(out, "to", {x}, [from = x.dtype()](const Tensor& g) {
    return std::vector<Tensor>{raw::to_dtype(g, from)};
  });
}

// ---- indexing ----

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  detail::check_same_device("index_select", {x, index});
  dim = normalize_dim(dim, x.dim(), "index_select");
  SELFSUP_CHECK(index.dim() == 1 && index.dtype() == kInt64, "index_select: index must be a 1-d ",
                "int64 tensor, got ", dtype_name(index.dtype()), " ", shape_str(index.shape()));
  Shape shape = x.shape();
  shape[dim] = index.numel();
  Tensor out = detail::empty_as(shape, x);
  dispatch::index_select(x, dim, index, out);
  return record(out, "index_select", {x}, [=, xs = x.shape()](const Tensor& g) {
    Tensor gx = detail::zeros_as(xs, g);
    dispatch::index_add_(gx, dim, index, g);
    return std::vector<Tensor>{gx};
  });
}

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  detail::check_same_device("gather", {x, index});
  dim = normalize_dim(dim, x.dim(), "gather");
  Tensor out = detail::empty_as(index.shape(), x);
  dispatch::gather(x, dim, index, out);
  return record(out, "gather", {x}, [=, xs = x.shape()](const Tensor& g) {
    Tensor gx = detail::zeros_as(xs, g);
    dispatch::scatter_add_(gx, dim, index, g);
    return std::vector<Tensor>{gx};
  });
}

Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  detail::check_same_device("scatter_add", {x, index, src});
  detail::check_same_dtype("scatter_add", x, src);
  dim = normalize_dim(dim, x.dim(), "scatter_add");
  Tensor out = raw::clone(x);
  dispatch::scatter_add_(out, dim, index, src);
  return record(out, "scatter_add", {x, src}, [=](const Tensor& g) {
    Tensor gsrc = detail::empty_as(index.shape(), g);
    dispatch::gather(g, dim, index, gsrc);
    return std::vector<Tensor>{g, gsrc};
  });
}

// ---- joining and splitting ----

Tensor cat(const std::vector<Tensor>& xs, int64_t dim) {
  SELFSUP_CHECK(!xs.empty(), "cat: needs at least one tensor");
  dim = normalize_dim(dim, xs[0].dim(), "cat");
  Shape shape = xs[0].shape();
  shape[dim] = 0;
  for (const Tensor& x : xs) {
    detail::check_same_device("cat", {xs[0], x});
    detail::check_same_dtype("cat", xs[0], x);
    Shape s = x.shape();
    SELFSUP_CHECK(s.size() == shape.size(), "cat: shapes ", shape_str(xs[0].shape()), " and ",
                  shape_str(s), " differ in rank");
    for (size_t d = 0; d < s.size(); ++d)
      SELFSUP_CHECK(static_cast<int64_t>(d) == dim || s[d] == shape[d], "cat: shapes ",
                    shape_str(xs[0].shape()), " and ", shape_str(s), " differ outside dim ", dim);
    shape[dim] += s[dim];
  }
  Tensor out = detail::empty_as(shape, xs[0]);
  dispatch::cat(xs, dim, out);
  std::vector<int64_t> sizes;
  for (const Tensor& x : xs)
    sizes.push_back(x.size(dim));
  return record(out, "cat", xs, [=](const Tensor& g) {
    std::vector<Tensor> grads;
    int64_t start = 0;
    for (int64_t n : sizes) {
      grads.push_back(raw::narrow(g, dim, start, n));
      start += n;
    }
    return grads;
  });
}

Tensor stack(const std::vector<Tensor>& xs, int64_t dim) {
  SELFSUP_CHECK(!xs.empty(), "stack: needs at least one tensor");
  dim = normalize_dim(dim, xs[0].dim() + 1, "stack");
  std::vector<Tensor> parts;
  for (const Tensor& x : xs) {
    SELFSUP_CHECK(x.shape() == xs[0].shape(), "stack: shapes ", shape_str(xs[0].shape()), " and ",
                  shape_str(x.shape()), " differ");
    parts.push_back(unsqueeze(x, dim));
  }
  return cat(parts, dim);
}

std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim) {
  SELFSUP_CHECK(split_size > 0, "split: split_size must be positive, got ", split_size);
  dim = normalize_dim(dim, x.dim(), "split");
  std::vector<Tensor> parts;
  for (int64_t start = 0; start < x.size(dim); start += split_size)
    parts.push_back(narrow(x, dim, start, std::min(split_size, x.size(dim) - start)));
  return parts;
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  SELFSUP_CHECK(chunks > 0, "chunk: chunks must be positive, got ", chunks);
  int64_t n = x.size(dim);
  return split(x, std::max<int64_t>(1, (n + chunks - 1) / chunks), dim);
}

}  // namespace selfsup
