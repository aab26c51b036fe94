#include <cmath>
#include <numeric>

#include "core/random.h"
#include "core/tensor.h"
#include "core/views.h"

namespace selfsup {

namespace {

Tensor finish(Tensor t, const TensorOptions& opts) {
  if (opts.requires_grad_) t.requires_grad_(true);
  return t;
}

// Builds the tensor on the CPU, then moves it to opts.device_ (factories fill on the host; the
// CUDA backend can override the hot ones later).
template <typename Fill>
Tensor make_on_host(const Shape& shape, const TensorOptions& opts, Fill&& fill) {
  for (int64_t d : shape)
    SELFSUP_CHECK(d >= 0, "factory: negative size in shape ", shape_str(shape));
  Tensor host = empty(shape, opts.dtype_);
  dispatch_dtype(opts.dtype_, [&](auto tag) {
    using T = decltype(tag);
    fill(host.data_ptr<T>(), host.numel());
  });
  return finish(raw::to_device(host, opts.device_), opts);
}

}  // namespace

Generator& default_generator() {
  static Generator gen;
  return gen;
}

void manual_seed(uint64_t seed) {
  default_generator().manual_seed(seed);
}

Tensor empty(const Shape& shape, TensorOptions opts) {
  for (int64_t d : shape)
    SELFSUP_CHECK(d >= 0, "empty: negative size in shape ", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage =
      std::make_shared<Storage>(shape_numel(shape) * dtype_size(opts.dtype_), opts.device_);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = opts.dtype_;
  return finish(Tensor(impl), opts);
}

Tensor empty_pinned(const Shape& shape, DType dtype) {
  for (int64_t d : shape)
    SELFSUP_CHECK(d >= 0, "empty_pinned: negative size in shape ", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = Storage::pinned_host(shape_numel(shape) * dtype_size(dtype));
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(impl);
}

Tensor full(const Shape& shape, double value, TensorOptions opts) {
  // On a device whose backend can fill in place, no host buffer or copy is needed.
  if (!opts.device_.is_cpu() && raw::device_fill()) {
    Tensor t = empty(shape, TensorOptions(opts.dtype_).device(opts.device_));
    raw::device_fill()(t, value);
    return finish(t, opts);
  }
  return make_on_host(shape, opts, [&](auto* p, int64_t n) {
    using T = std::remove_pointer_t<decltype(p)>;
    std::fill(p, p + n, static_cast<T>(value));
  });
}

Tensor zeros(const Shape& shape, TensorOptions opts) {
  return full(shape, 0.0, opts);
}
Tensor ones(const Shape& shape, TensorOptions opts) {
  return full(shape, 1.0, opts);
}
Tensor scalar_tensor(double value, TensorOptions opts) {
  return full({}, value, opts);
}

Tensor arange(double start, double end, double step, TensorOptions opts) {
  SELFSUP_CHECK(step != 0, "arange: step must be non-zero");
  double count = std::ceil((end - start) / step);
  int64_t n = count > 0 ? static_cast<int64_t>(count) : 0;
  return make_on_host({n}, opts, [&](auto* p, int64_t m) {
    using T = std::remove_pointer_t<decltype(p)>;
    for (int64_t i = 0; i < m; ++i)
      p[i] = static_cast<T>(start + i * step);
  });
}

Tensor arange(int64_t end, TensorOptions opts) {
  return arange(0.0, static_cast<double>(end), 1.0, opts);
}

Tensor rand(const Shape& shape, TensorOptions opts, Generator* gen) {
  SELFSUP_CHECK(is_floating(opts.dtype_), "rand: dtype must be floating, got ",
                dtype_name(opts.dtype_));
  Generator& g = gen ? *gen : default_generator();
  uint64_t first = g.advance(shape_numel(shape));
  return make_on_host(shape, opts, [&](auto* p, int64_t n) {
    using T = std::remove_pointer_t<decltype(p)>;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) {
      PhiloxOut r = philox4x32(g.seed(), first + i);
      if constexpr (std::is_same_v<T, float>)
        p[i] = uniform_float(r.v[0]);
      else
        p[i] = static_cast<T>(uniform_double(r.v[0], r.v[1]));
    }
  });
}

Tensor randn(const Shape& shape, TensorOptions opts, Generator* gen) {
  SELFSUP_CHECK(is_floating(opts.dtype_), "randn: dtype must be floating, got ",
                dtype_name(opts.dtype_));
  Generator& g = gen ? *gen : default_generator();
  uint64_t first = g.advance(shape_numel(shape));
  return make_on_host(shape, opts, [&](auto* p, int64_t n) {
    using T = std::remove_pointer_t<decltype(p)>;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i)
      p[i] = static_cast<T>(normal_from(philox4x32(g.seed(), first + i)));
  });
}

Tensor randint(int64_t low, int64_t high, const Shape& shape, TensorOptions opts, Generator* gen) {
  SELFSUP_CHECK(high > low, "randint: empty range [", low, ", ", high, ")");
  Generator& g = gen ? *gen : default_generator();
  uint64_t first = g.advance(shape_numel(shape));
  uint64_t span = static_cast<uint64_t>(high - low);
  return make_on_host(shape, opts, [&](auto* p, int64_t n) {
    using T = std::remove_pointer_t<decltype(p)>;
    for (int64_t i = 0; i < n; ++i) {
      PhiloxOut r = philox4x32(g.seed(), first + i);
      uint64_t bits = (static_cast<uint64_t>(r.v[1]) << 32) | r.v[0];
      p[i] = static_cast<T>(low + static_cast<int64_t>(bits % span));
    }
  });
}

Tensor eye(int64_t n, TensorOptions opts) {
  SELFSUP_CHECK(n >= 0, "eye: negative size ", n);
  return make_on_host({n, n}, opts, [&](auto* p, int64_t m) {
    using T = std::remove_pointer_t<decltype(p)>;
    std::fill(p, p + m, T(0));
    for (int64_t i = 0; i < n; ++i)
      p[i * n + i] = T(1);
  });
}

Tensor randperm(int64_t n, Generator* gen) {
  SELFSUP_CHECK(n >= 0, "randperm: negative n ", n);
  Generator& g = gen ? *gen : default_generator();
  uint64_t first = g.advance(n);
  Tensor out = empty({n}, kInt64);
  int64_t* p = out.data_ptr<int64_t>();
  std::iota(p, p + n, int64_t{0});
  // Fisher-Yates, one Philox draw per swap.
  for (int64_t i = n - 1; i > 0; --i) {
    PhiloxOut r = philox4x32(g.seed(), first + i);
    uint64_t bits = (static_cast<uint64_t>(r.v[1]) << 32) | r.v[0];
    std::swap(p[i], p[bits % static_cast<uint64_t>(i + 1)]);
  }
  return out;
}

template <typename T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, TensorOptions opts) {
  SELFSUP_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape),
                "from_vector: ", values.size(), " values for shape ", shape_str(shape));
  return make_on_host(shape, opts, [&](auto* p, int64_t n) {
    using D = std::remove_pointer_t<decltype(p)>;
    for (int64_t i = 0; i < n; ++i)
      p[i] = static_cast<D>(values[i]);
  });
}
template Tensor from_vector<float>(const std::vector<float>&, const Shape&, TensorOptions);
template Tensor from_vector<double>(const std::vector<double>&, const Shape&, TensorOptions);
template Tensor from_vector<int64_t>(const std::vector<int64_t>&, const Shape&, TensorOptions);
template Tensor from_vector<uint8_t>(const std::vector<uint8_t>&, const Shape&, TensorOptions);
template Tensor from_vector<int>(const std::vector<int>&, const Shape&, TensorOptions);

Tensor empty_like(const Tensor& t) {
  return empty(t.shape(), TensorOptions(t.dtype()).device(t.device()));
}
Tensor zeros_like(const Tensor& t) {
  return zeros(t.shape(), TensorOptions(t.dtype()).device(t.device()));
}
Tensor ones_like(const Tensor& t) {
  return ones(t.shape(), TensorOptions(t.dtype()).device(t.device()));
}
Tensor full_like(const Tensor& t, double value) {
  return full(t.shape(), value, TensorOptions(t.dtype()).device(t.device()));
}

}  // namespace selfsup
