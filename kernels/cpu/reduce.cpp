// Reductions on the CPU: sum, mean and var over any set of dims; max, min and argmax along one
// dim; max and min of everything; and the two backward helpers of summing (sum_backward,
// sum_to).
//
// Bounds: a reduction of N elements does ~N adds (2N for var) while reading N*sizeof(T) bytes,
// so it is memory-bound: the loop must read x once, in memory order, at full bandwidth.
//
// How a sum runs. x and an accumulator array (one double per output element, row-major over the
// kept dims) form a two-operand loop nest (kernels/cpu/loops.h) over x's shape, in x's memory
// order; the accumulator has stride 0 along the reduced dims. Each innermost run is one of:
//   - reduced (e.g. sum over the last dim): a row sum into one accumulator, vectorised;
//   - kept (e.g. sum over dim 0 of [N, D]): the row is added into D accumulators, vectorised.
// Any mix of dims, strides and broadcasts reduces to these two. float32 is accumulated in double.
//
// Parallelism: split the nest along a kept dim (threads own disjoint outputs); when the output
// is too small for that (a full sum), split a reduced dim and give each chunk its own
// accumulators, added in chunk order afterwards (deterministic for a given thread count).
#include "kernels/cpu/reduce.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "core/views.h"
#include "kernels/cpu/loops.h"
#include "kernels/reduce_plan.h"

namespace selfsup::cpu {

using detail::kParallelGrain;
using detail::make_nest;
using detail::Nest;
using detail::parallel_for;
using detail::parallel_runs;

namespace {

using Acc = std::vector<double>;
using Offsets = std::array<int64_t, 2>;

// ============================================================================================
// Checks and small helpers
// ============================================================================================

void check_float_input(const char* op, const Tensor& x) {
  detail::check_cpu(op, x);
  SELFSUP_CHECK(is_floating(x.dtype()), op, ": expected a float32 or float64 tensor, got ",
                dtype_name(x.dtype()), " of shape ", shape_str(x.shape()));
}

void check_out(const char* op, const Tensor& out, const Shape& shape, DType dtype,
               const Tensor& x) {
  detail::check_writable(op, out);
  reduce_plan::check_result(op, out, shape, dtype, x);
}

// Calls fn(float{}) or fn(double{}) for a float tensor.
template <typename Fn>
void dispatch_float(const Tensor& x, Fn&& fn) {
  if (x.dtype() == kFloat32) return fn(float{});
  fn(double{});
}

std::vector<bool> reduced_mask(const Tensor& x, const std::vector<int64_t>& dims, const char* op) {
  return reduce_plan::reduced_mask(x.dim(), dims, op);
}

int64_t reduced_count(const Tensor& x, const std::vector<bool>& reduced) {
  return reduce_plan::reduced_count(x.shape(), reduced);
}

// Writes value(k) into the k-th element of out in row-major order (any strides).
template <typename T, typename Value>
void write_out(Tensor& out, Value value) {
  T* po = out.data_ptr<T>();
  if (out.is_contiguous()) {
    parallel_for(out.numel(), kParallelGrain, [&](int64_t begin, int64_t end) {
      for (int64_t k = begin; k < end; ++k)
        po[k] = static_cast<T>(value(k));
    });
    return;
  }
  auto nest = make_nest<2>(out.shape(), {out.strides(), contiguous_strides(out.shape())}, 0);
  parallel_runs(nest, [&](const Offsets& off, int64_t n, const Offsets& st) {
    for (int64_t i = 0; i < n; ++i)
      po[off[0] + i * st[0]] = static_cast<T>(value(off[1] + i * st[1]));
  });
}

// dst = src read through `src_strides` (one per dim of dst; 0 repeats an element).
template <typename T>
void broadcast_copy(const T* src, const Shape& src_strides, Tensor& dst) {
  T* pd = dst.data_ptr<T>();  // dst.shape(), any strides
  auto nest = make_nest<2>(dst.shape(), {dst.strides(), src_strides}, 0);
  parallel_runs(nest, [&](const Offsets& off, int64_t n, const Offsets& st) {
    T* o = pd + off[0];
    const T* g = src + off[1];
    if (st[0] == 1 && st[1] == 1) {
      std::copy(g, g + n, o);
    } else if (st[0] == 1 && st[1] == 0) {
      std::fill(o, o + n, *g);
    } else {
      for (int64_t i = 0; i < n; ++i)
        o[i * st[0]] = g[i * st[1]];
    }
  });
}

// ============================================================================================
// The summing core
// ============================================================================================

// The nest over x's shape with operands (x, accumulator); see the file comment.
Nest<2> accumulation_nest(const Tensor& x, const std::vector<bool>& reduced) {
  Shape acc_strides(x.dim(), 0);
  int64_t step = 1;
  for (int64_t d = x.dim() - 1; d >= 0; --d) {
    if (reduced[d]) continue;
    acc_strides[d] = step;
    step *= x.size(d);
  }
  return make_nest<2>(x.shape(), {x.strides(), acc_strides}, 0);
}

// The outermost dim with at least `min_size` indices that is kept (accumulator stride != 0) or
// reduced, as asked; -1 if there is none.
int64_t splittable_dim(const Nest<2>& nest, bool kept, int64_t min_size) {
  for (int64_t d = 0; d < nest.ndim(); ++d)
    if ((nest.strides[1][d] != 0) == kept && nest.shape[d] >= min_size) return d;
  return -1;
}

// Runs body(offsets, n, steps, acc) over every run of the nest, accumulating into `kept`
// zero-initialised doubles, across threads when the nest is large (see the file comment).
template <typename Body>
Acc accumulate(const Nest<2>& nest, int64_t kept, Body&& body) {
  Acc acc(kept, 0.0);
  auto run_into = [&](const Nest<2>& part, double* dst) {
    detail::for_each_run_between(
        part, 0, part.numel(),
        [&](const Offsets& off, int64_t n, const Offsets& st) { body(off, n, st, dst); });
  };
  const int64_t threads = omp_get_max_threads();
  if (nest.numel() <= kParallelGrain || threads == 1) {
    run_into(nest, acc.data());
    return acc;
  }
  if (int64_t d = splittable_dim(nest, true, threads); d >= 0) {
    parallel_for(nest.shape[d], 1, [&](int64_t begin, int64_t end) {
      run_into(detail::slice_nest(nest, d, begin, end), acc.data());
    });
    return acc;
  }
  const int64_t d = splittable_dim(nest, false, threads);
  if (d < 0) {
    run_into(nest, acc.data());
    return acc;
  }
  const int64_t size = nest.shape[d], chunks = threads;
  std::vector<Acc> partial(chunks, Acc(kept, 0.0));
  parallel_for(chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c)
      run_into(detail::slice_nest(nest, d, size * c / chunks, size * (c + 1) / chunks),
               partial[c].data());
  });
  for (const Acc& p : partial)
    for (int64_t k = 0; k < kept; ++k)
      acc[k] += p[k];
  return acc;
}

// Sum of n elements `step` apart, in double. The simd reduction lets the compiler keep several
// partial sums in vector lanes (faster, and slightly more accurate than one running sum).
template <typename T>
double run_sum(const T* p, int64_t n, int64_t step) {
  double s = 0.0;
  if (step == 1) {
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; ++i)
      s += static_cast<double>(p[i]);
  } else {
    for (int64_t i = 0; i < n; ++i)
      s += static_cast<double>(p[i * step]);
  }
  return s;
}

// Sums of x over the flagged dims, one per kept element (row-major over the kept dims).
template <typename T>
Acc sum_kept(const Tensor& x, const std::vector<bool>& reduced) {
  const T* px = x.data_ptr<T>();
  Nest<2> nest = accumulation_nest(x, reduced);
  int64_t kept = 1;
  for (int64_t d = 0; d < x.dim(); ++d)
    if (!reduced[d]) kept *= x.size(d);
  auto body = [px](const Offsets& off, int64_t n, const Offsets& st, double* acc) {
    const T* p = px + off[0];
    double* a = acc + off[1];
    if (st[1] == 0) {  // the run is reduced: a row sum
      *a += run_sum(p, n, st[0]);
    } else if (st[0] == 1 && st[1] == 1) {  // the run is kept: add the row into the sums
      for (int64_t i = 0; i < n; ++i)
        a[i] += static_cast<double>(p[i]);
    } else {
      for (int64_t i = 0; i < n; ++i)
        a[i * st[1]] += static_cast<double>(p[i * st[0]]);
    }
  };
  return accumulate(nest, kept, body);
}

// Sum of squared deviations from the per-output means `mean` (laid out like the sums).
template <typename T>
Acc squared_deviations(const Tensor& x, const std::vector<bool>& reduced, const Acc& mean) {
  const T* px = x.data_ptr<T>();
  const double* pm = mean.data();
  auto body = [px, pm](const Offsets& off, int64_t n, const Offsets& st, double* acc) {
    const T* p = px + off[0];
    double* a = acc + off[1];
    if (st[1] == 0) {
      const double mu = pm[off[1]];
      double s = 0.0;
#pragma omp simd reduction(+ : s)
      for (int64_t i = 0; i < n; ++i) {
        const double dev = static_cast<double>(p[i * st[0]]) - mu;
        s += dev * dev;
      }
      *a += s;
    } else {
      const double* m = pm + off[1];
      for (int64_t i = 0; i < n; ++i) {
        const double dev = static_cast<double>(p[i * st[0]]) - m[i * st[1]];
        a[i * st[1]] += dev * dev;
      }
    }
  };
  return accumulate(accumulation_nest(x, reduced), static_cast<int64_t>(mean.size()), body);
}

// out = (sum of x over the flagged dims) / divisor, for sum (divisor 1) and mean (the count;
// 0 / 0 gives NaN for an empty mean).
void sum_into(const Tensor& x, const std::vector<bool>& reduced, bool divide, Tensor& out) {
  const double divisor = divide ? static_cast<double>(reduced_count(x, reduced)) : 1.0;
  dispatch_float(x, [&](auto tag) {
    using T = decltype(tag);
    const Acc acc = sum_kept<T>(x, reduced);
    write_out<T>(out, [&](int64_t k) { return acc[k] / divisor; });
  });
}

void check_reduction(const char* op, const Tensor& x, const std::vector<int64_t>& dims,
                     bool keepdim, const Tensor& out) {
  check_float_input(op, x);
  check_out(op, out, reduced_shape(x.shape(), dims, keepdim, op), x.dtype(), x);
}

// ============================================================================================
// Extremes along one dim
// ============================================================================================

// Does v replace the running extreme `best`? Strictly better keeps the first of equal extremes;
// a NaN beats everything and then stays (max and min propagate NaN, as in PyTorch).
template <bool kMax, typename T>
bool beats(T v, T best) {
  if constexpr (std::is_floating_point_v<T>) {
    if (v != v) return best == best;
  }
  return kMax ? v > best : v < best;
}

// x contiguous, viewed as [outer, n, inner]; best and where are [outer, inner] contiguous.
template <bool kMax, typename T>
void extremes_along(const T* x, int64_t outer, int64_t n, int64_t inner, T* best, int64_t* where) {
  if (inner == 1) {  // the reduced dim is innermost: scan each contiguous row
    parallel_for(outer, std::max<int64_t>(1, kParallelGrain / n), [&](int64_t begin, int64_t end) {
      for (int64_t o = begin; o < end; ++o) {
        const T* row = x + o * n;  // [n]
        T bv = row[0];
        int64_t bi = 0;
        for (int64_t j = 1; j < n; ++j)
          if (beats<kMax>(row[j], bv)) bv = row[j], bi = j;
        best[o] = bv;
        where[o] = bi;
      }
    });
    return;
  }
  // The reduced dim is not innermost: sweep its n rows of `inner` elements in memory order,
  // updating a block of running extremes small enough to stay in L1.
  constexpr int64_t kBlock = 1024;
  const int64_t blocks = (inner + kBlock - 1) / kBlock;
  const int64_t grain = std::max<int64_t>(1, kParallelGrain / (n * std::min(inner, kBlock)));
  parallel_for(outer * blocks, grain, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t o = t / blocks, i0 = (t % blocks) * kBlock;
      const int64_t i1 = std::min(inner, i0 + kBlock);
      const T* slab = x + o * n * inner;  // [n, inner]
      T* bv = best + o * inner;           // [inner]
      int64_t* bi = where + o * inner;    // [inner]
      for (int64_t i = i0; i < i1; ++i)
        bv[i] = slab[i], bi[i] = 0;
      for (int64_t j = 1; j < n; ++j) {
        const T* row = slab + j * inner;
        for (int64_t i = i0; i < i1; ++i)
          if (beats<kMax>(row[i], bv[i])) bv[i] = row[i], bi[i] = j;
      }
    }
  });
}

// Values (optional) and indices of the max (kMax) or min along `dim`.
template <bool kMax>
void extreme_dim(const char* op, const Tensor& x, int64_t dim, bool keepdim, Tensor* values,
                 Tensor& indices) {
  detail::check_cpu(op, x);
  const int64_t d = normalize_dim(dim, x.dim(), op);
  const Shape shape = reduced_shape(x.shape(), {d}, keepdim, op);
  if (values) check_out(op, *values, shape, x.dtype(), x);
  check_out(op, indices, shape, kInt64, x);
  const int64_t n = x.dim() == 0 ? 1 : x.size(d);
  SELFSUP_CHECK(n > 0, op, ": dim ", d, " of the tensor of shape ", shape_str(x.shape()),
                " is empty, so it has no ", kMax ? "maximum" : "minimum");
  const int64_t kept = shape_numel(shape);
  if (kept == 0) return;
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < x.dim(); ++i) {
    if (i < d) outer *= x.size(i);
    if (i > d) inner *= x.size(i);
  }
  const Tensor xc = raw::contiguous(x);
  dispatch_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    std::vector<T> best(kept);
    std::vector<int64_t> where(kept);
    extremes_along<kMax>(xc.data_ptr<T>(), outer, n, inner, best.data(), where.data());
    if (values) write_out<T>(*values, [&](int64_t k) { return best[k]; });
    write_out<int64_t>(indices, [&](int64_t k) { return where[k]; });
  });
}

// The max (kMax) or min of all elements into a 0-d tensor.
template <bool kMax>
void extreme_all(const char* op, const Tensor& x, Tensor& out) {
  detail::check_cpu(op, x);
  check_out(op, out, Shape{}, x.dtype(), x);
  SELFSUP_CHECK(x.numel() > 0, op, ": the tensor of shape ", shape_str(x.shape()),
                " is empty, so it has no ", kMax ? "maximum" : "minimum");
  const Tensor xc = raw::contiguous(x);
  dispatch_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* p = xc.data_ptr<T>();  // [numel]
    const int64_t numel = xc.numel();
    const int64_t chunks = std::clamp<int64_t>(numel / kParallelGrain, 1, omp_get_max_threads());
    std::vector<T> best(chunks);
    parallel_for(chunks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        const int64_t i0 = numel * c / chunks, i1 = numel * (c + 1) / chunks;
        T bv = p[i0];
        for (int64_t i = i0 + 1; i < i1; ++i)
          if (beats<kMax>(p[i], bv)) bv = p[i];
        best[c] = bv;
      }
    });
    T result = best[0];
    for (int64_t c = 1; c < chunks; ++c)
      if (beats<kMax>(best[c], result)) result = best[c];
    *out.data_ptr<T>() = result;
  });
}

}  // namespace

// ============================================================================================
// Public entry points
// ============================================================================================

void sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, Tensor& out) {
  check_reduction("sum", x, dims, keepdim, out);
  sum_into(x, reduced_mask(x, dims, "sum"), false, out);
}

void mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, Tensor& out) {
  check_reduction("mean", x, dims, keepdim, out);
  sum_into(x, reduced_mask(x, dims, "mean"), true, out);
}

void var(const Tensor& x, const std::vector<int64_t>& dims, int64_t correction, bool keepdim,
         Tensor& out) {
  check_reduction("var", x, dims, keepdim, out);
  SELFSUP_CHECK(correction >= 0, "var: correction must be >= 0, got ", correction);
  const std::vector<bool> reduced = reduced_mask(x, dims, "var");
  const int64_t count = reduced_count(x, reduced);
  // Two passes (mean, then squared deviations) rather than one-pass sums of squares, which
  // cancel catastrophically when the mean is large against the spread.
  const double denom = static_cast<double>(std::max<int64_t>(count - correction, 0));
  dispatch_float(x, [&](auto tag) {
    using T = decltype(tag);
    Acc mean = sum_kept<T>(x, reduced);
    for (double& m : mean)
      m /= static_cast<double>(count);
    const Acc sq = squared_deviations<T>(x, reduced, mean);
    write_out<T>(out, [&](int64_t k) { return sq[k] / denom; });
  });
}

void max(const Tensor& x, int64_t dim, bool keepdim, Tensor& values, Tensor& indices) {
  extreme_dim<true>("max", x, dim, keepdim, &values, indices);
}

void min(const Tensor& x, int64_t dim, bool keepdim, Tensor& values, Tensor& indices) {
  extreme_dim<false>("min", x, dim, keepdim, &values, indices);
}

void argmax(const Tensor& x, int64_t dim, bool keepdim, Tensor& out) {
  extreme_dim<true>("argmax", x, dim, keepdim, nullptr, out);
}

void max_all(const Tensor& x, Tensor& out) {
  extreme_all<true>("max_all", x, out);
}

void min_all(const Tensor& x, Tensor& out) {
  extreme_all<false>("min_all", x, out);
}

// ============================================================================================
// Backward helpers
// ============================================================================================

void sum_backward(const Tensor& grad_y, const Shape& x_shape, const std::vector<int64_t>& dims,
                  Tensor& grad_x) {
  const char* op = "sum_backward";
  check_float_input(op, grad_y);
  check_out(op, grad_x, x_shape, grad_y.dtype(), grad_y);
  const Shape gstrides = reduce_plan::sum_backward_grad_strides(grad_y, x_shape, dims, op);
  dispatch_float(grad_y, [&](auto tag) {
    using T = decltype(tag);
    broadcast_copy(grad_y.data_ptr<T>(), gstrides, grad_x);
  });
}

void sum_to(const Tensor& x, const Shape& shape, Tensor& out) {
  const char* op = "sum_to";
  check_float_input(op, x);
  check_out(op, out, shape, x.dtype(), x);
  const std::vector<bool> reduced = reduce_plan::sum_to_reduced_dims(x.shape(), shape, op);
  sum_into(x, reduced, false, out);
}

}  // namespace selfsup::cpu
