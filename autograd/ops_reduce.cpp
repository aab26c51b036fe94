// Reductions and their gradients.
#include "autograd/op_utils.h"
#include "autograd/ops.h"
#include "kernels/dispatch.h"

namespace selfsup {

namespace {

int64_t reduced_count(const Shape& shape, const std::vector<int64_t>& dims, const char* op) {
  int64_t n = 1;
  for (int64_t d : normalize_dims(dims, static_cast<int64_t>(shape.size()), op))
    n *= shape[d];
  return n;
}

// The gradient of a reduction, broadcast back to x's shape.
Tensor expand_back(const Tensor& g, const Shape& x_shape, const std::vector<int64_t>& dims) {
  Tensor gx = detail::empty_as(x_shape, g);
  dispatch::sum_backward(g, x_shape, dims, gx);
  return gx;
}

// grad (reduced shape, with or without kept dims) reshaped to keep the reduced dims as 1s.
Tensor keep_dims(const Tensor& g, const Shape& x_shape, const std::vector<int64_t>& dims,
                 const char* op) {
  return raw::reshape(g, reduced_shape(x_shape, dims, true, op));
}

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  Tensor out = detail::empty_as(reduced_shape(x.shape(), dims, keepdim, "sum"), x);
  dispatch::sum(x, dims, keepdim, out);
  return record(out, "sum", {x}, [=, xs = x.shape()](const Tensor& g) {
    return std::vector<Tensor>{expand_back(g, xs, dims)};
  });
}

Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  Tensor out = detail::empty_as(reduced_shape(x.shape(), dims, keepdim, "mean"), x);
  dispatch::mean(x, dims, keepdim, out);
  double n = static_cast<double>(reduced_count(x.shape(), dims, "mean"));
  return record(out, "mean", {x}, [=, xs = x.shape()](const Tensor& g) {
    return std::vector<Tensor>{expand_back(mul(g, 1.0 / n), xs, dims)};
  });
}

Tensor var(const Tensor& x, const std::vector<int64_t>& dims, int64_t correction, bool keepdim) {
  detail::check_floating("var", x);
  Tensor out = detail::empty_as(reduced_shape(x.shape(), dims, keepdim, "var"), x);
  dispatch::var(x, dims, correction, keepdim, out);
  double n = static_cast<double>(reduced_count(x.shape(), dims, "var"));
  Tensor sx = x.detach();
  return record(out, "var", {x},
                [=](const Tensor& g) {
                  // d var / dx = 2 (x - mean) / (n - correction)
                  Tensor centred = sub(sx, mean(sx, dims, true));
                  Tensor gk = keep_dims(g, sx.shape(), dims, "var");
                  return std::vector<Tensor>{mul(mul(centred, gk), 2.0 / (n - correction))};
                },
                {x});
}

Tensor std(const Tensor& x, const std::vector<int64_t>& dims, int64_t correction, bool keepdim) {
  return sqrt(var(x, dims, correction, keepdim));
}

namespace {

std::pair<Tensor, Tensor> extreme(const Tensor& x, int64_t dim, bool keepdim, bool is_max) {
  const char* name = is_max ? "max" : "min";
  dim = normalize_dim(dim, x.dim(), name);
  Shape shape = reduced_shape(x.shape(), {dim}, keepdim, name);
  Tensor values = detail::empty_as(shape, x), indices = detail::empty_as(shape, x, kInt64);
  if (is_max)
    dispatch::max(x, dim, keepdim, values, indices);
  else
    dispatch::min(x, dim, keepdim, values, indices);
  Tensor idx = keep_dims(indices, x.shape(), {dim}, name);
  values = record(values, name, {x}, [=, xs = x.shape()](const Tensor& g) {
    Tensor gx = detail::zeros_as(xs, g);
    dispatch::scatter_add_(gx, dim, idx, raw::contiguous(keep_dims(g, xs, {dim}, "max")));
    return std::vector<Tensor>{gx};
  });
  return {values, indices};
}

}  // namespace

std::pair<Tensor, Tensor> max(const Tensor& x, int64_t dim, bool keepdim) {
  return extreme(x, dim, keepdim, true);
}

std::pair<Tensor, Tensor> min(const Tensor& x, int64_t dim, bool keepdim) {
  return extreme(x, dim, keepdim, false);
}

Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  dim = normalize_dim(dim, x.dim(), "argmax");
  Tensor out = detail::empty_as(reduced_shape(x.shape(), {dim}, keepdim, "argmax"), x, kInt64);
  dispatch::argmax(x, dim, keepdim, out);
  return out;
}

Tensor amax(const Tensor& x) {
  Tensor out = detail::empty_as({}, x);
  dispatch::max_all(x, out);
  return out;
}

Tensor amin(const Tensor& x) {
  Tensor out = detail::empty_as({}, x);
  dispatch::min_all(x, out);
  return out;
}

Tensor normalize(const Tensor& x, int64_t dim, double eps) {
  Tensor norm = sqrt(sum(square(x), {dim}, true));
  return div(x, clamp_min(norm, eps));
}

}  // namespace selfsup
