// Small helpers shared by the kernel tests (CPU and CUDA): random inputs, poisoned outputs,
// host/device copies, error messages and element-wise comparisons. Header-only.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/random.h"
#include "core/tensor.h"
#include "core/views.h"

namespace selfsup::test {

// ---- errors ----

// The selfsup::Error message fn throws, or "(no error)".
inline std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Whether message contains fragment (a predicate for EXPECT_PRED2).
inline bool mentions(const std::string& message, const std::string& fragment) {
  return message.find(fragment) != std::string::npos;
}

// fn must throw a selfsup::Error whose message contains every fragment.
inline void expect_error(const std::function<void()>& fn,
                         const std::vector<std::string>& fragments) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected one containing: " << fragments[0];
  } catch (const Error& e) {
    for (const std::string& fragment : fragments)
      EXPECT_TRUE(mentions(e.what(), fragment))
          << "message: " << e.what() << "\nexpected to contain: " << fragment;
  }
}
inline void expect_error(const std::function<void()>& fn, const char* fragment) {
  expect_error(fn, std::vector<std::string>{fragment});
}

// ---- random inputs ----

// Uniform values in [lo, hi); with `integers`, rounded to whole numbers (ties for extremes and
// comparisons).
struct Values {
  double lo = -3.0, hi = 3.0;
  bool integers = false;
};

// A contiguous tensor of Values drawn from rng: one draw per element, in row-major order.
inline Tensor random_tensor(const Shape& shape, DType dtype, std::mt19937_64& rng, Values v = {}) {
  std::uniform_real_distribution<double> u(v.lo, v.hi);
  std::vector<double> data(shape_numel(shape));
  for (double& x : data)
    x = v.integers ? std::round(u(rng)) : u(rng);
  return raw::to_dtype(from_vector<double>(data, shape), dtype);
}

// randn from Generator(seed), then scale * x + shift, rounded to the dtype.
inline Tensor random_normal(const Shape& shape, DType dtype, uint64_t seed, double scale = 1.0,
                            double shift = 0.0) {
  Generator gen(seed);
  Tensor t = randn(shape, dtype, &gen);
  if (scale == 1.0 && shift == 0.0) return t;
  dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    T* p = t.data_ptr<T>();
    for (int64_t i = 0; i < t.numel(); ++i)
      p[i] = static_cast<T>(p[i] * scale + shift);
  });
  return t;
}

// ---- host and device ----

// A contiguous copy on the GPU (an undefined tensor stays undefined).
inline Tensor to_gpu(const Tensor& t) {
  if (!t.defined()) return t;
  return raw::to_device(raw::contiguous(t), Device::cuda());
}

inline Tensor to_cpu(const Tensor& t) {
  return raw::to_device(t, kCPU);
}

// ---- poisoned outputs: a kernel that leaves an element unwritten fails the comparison ----

// NaN for floating dtypes, else `integer`.
inline double poison_value(DType dtype, double integer = 171.0) {
  return is_floating(dtype) ? std::numeric_limits<double>::quiet_NaN() : integer;
}

inline Tensor poisoned(const Shape& shape, DType dtype = kFloat32, double integer = 171.0) {
  return full(shape, poison_value(dtype, integer), dtype);
}

inline Tensor poisoned_gpu(const Shape& shape, DType dtype = kFloat32, double integer = 171.0) {
  return to_gpu(poisoned(shape, dtype, integer));
}

// ---- comparisons ----

// The largest |x|, over the finite elements (or, with finite_only false, all but NaN).
inline double max_abs(const Tensor& x, bool finite_only = true) {
  double m = 0;
  for (double v : x.to_vector<double>())
    if (finite_only ? std::isfinite(v) : !std::isnan(v)) m = std::max(m, std::abs(v));
  return m;
}

// got against want: NaN where want is NaN, equal infinities, else within atol + rtol |want|.
// Reports the first five bad elements.
inline void expect_close(const Tensor& got, const Tensor& want, double rtol, double atol,
                         const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  int failures = 0;
  for (size_t i = 0; i < w.size() && failures < 5; ++i) {
    const double e = w[i], v = g[i];
    bool ok;
    if (std::isnan(e))
      ok = std::isnan(v);
    else if (std::isinf(e))
      ok = v == e;
    else
      ok = std::abs(v - e) <= atol + rtol * std::abs(e);
    if (!ok) {
      ++failures;
      ADD_FAILURE() << what << ": element " << i << " is " << v << ", expected " << e;
    }
  }
}

// Every element within tol * (1 + |want|) (any NaN fails); stops at the first bad one.
inline void expect_close(const std::vector<double>& got, const std::vector<double>& want,
                         double tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], tol * (1.0 + std::abs(want[i]))) << what << " at " << i;
}
inline void expect_close(const Tensor& got, const std::vector<double>& want, double tol,
                         const std::string& what) {
  expect_close(got.to_vector<double>(), want, tol, what);
}

}  // namespace selfsup::test
