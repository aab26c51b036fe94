// Softmax, log-softmax and the fused softmax cross-entropy on the CPU.
//
//   softmax(x)_i     = exp(x_i - m) / sum_j exp(x_j - m)         m = max_j x_j (stability)
//   log_softmax(x)_i = x_i - m - log(sum_j exp(x_j - m))
//
// Every op works row by row: a "row" is the 1-d slice along `dim`. Per element: one exp and a
// handful of flops; minimum bytes: read the input(s) once, write the output once. The exp and the
// memory traffic bound it, so the code aims at touching each row while it is in cache, and
// spreads rows over threads with OpenMP.
//
// Layouts: when every tensor is contiguous and dim is the last one, rows are contiguous spans
// and the row kernels run on them in place. Otherwise each row is gathered into a small
// per-thread buffer, processed, and scattered back: one readable kernel per op, any layout.
#include "kernels/cpu/softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "core/strided.h"
#include "core/views.h"
#include "kernels/softmax_plan.h"

namespace selfsup::cpu {

namespace {

// Below this many elements the thread start-up costs more than it saves.
constexpr int64_t kParallelElements = 1 << 15;

// ==========================================================================================
// Row kernels: contiguous rows of n elements
// ==========================================================================================

template <typename T>
T row_max(const T* x, int64_t n) {
  T m = -std::numeric_limits<T>::infinity();
  for (int64_t i = 0; i < n; ++i)
    m = std::max(m, x[i]);
  return m;
}

// y = exp(x - m) / sum(exp(x - m)); y may alias x.
template <typename T>
void softmax_row(const T* x, T* y, int64_t n) {
  const T m = row_max(x, n);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    const T e = std::exp(x[i] - m);
    y[i] = e;
    sum += e;
  }
  const T inv_sum = static_cast<T>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i)
    y[i] *= inv_sum;
}

// y = x - logsumexp(x); y may alias x.
template <typename T>
void log_softmax_row(const T* x, T* y, int64_t n) {
  const T m = row_max(x, n);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i)
    sum += std::exp(x[i] - m);
  const T lse = static_cast<T>(m + std::log(sum));
  for (int64_t i = 0; i < n; ++i)
    y[i] = x[i] - lse;
}

// gx = y * (gy - <gy, y>); gx may alias gy or y.
template <typename T>
void softmax_backward_row(const T* gy, const T* y, T* gx, int64_t n) {
  double dot = 0;
  for (int64_t i = 0; i < n; ++i)
    dot += static_cast<double>(gy[i]) * y[i];
  const T d = static_cast<T>(dot);
  for (int64_t i = 0; i < n; ++i)
    gx[i] = y[i] * (gy[i] - d);
}

// gx = gy - exp(y) * sum(gy); gx may alias gy or y.
template <typename T>
void log_softmax_backward_row(const T* gy, const T* y, T* gx, int64_t n) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i)
    sum += gy[i];
  const T s = static_cast<T>(sum);
  for (int64_t i = 0; i < n; ++i)
    gx[i] = gy[i] - std::exp(y[i]) * s;
}

// ==========================================================================================
// Row iteration over any layout
// ==========================================================================================

// The rows of a tensor along one dim: row r starts at element offset start(r) and steps by
// `step`. The row index r runs over the other dims in row-major order.
struct Rows {
  Shape outer_shape, outer_strides;
  int64_t step = 1;
  int64_t start(int64_t r) const { return strided_offset(r, outer_shape, outer_strides); }
};

Rows rows_along(const Tensor& t, int64_t dim) {
  Rows rows{t.shape(), t.strides(), t.stride(dim)};
  rows.outer_shape.erase(rows.outer_shape.begin() + dim);
  rows.outer_strides.erase(rows.outer_strides.begin() + dim);
  return rows;
}

// Calls row_fn(in0_row, in1_row, out_row, len) for every row along dim, with contiguous row
// pointers (in1_row is null when in1 is). The tensors all have the same shape.
template <typename T, typename RowFn>
void for_each_row(const Tensor& in0, const Tensor* in1, Tensor& out, int64_t dim, RowFn row_fn) {
  const int64_t len = in0.size(dim);
  const int64_t count = len == 0 ? 0 : in0.numel() / len;
  const bool parallel = in0.numel() > kParallelElements && count > 1;
  const T* x0 = in0.data_ptr<T>();
  const T* x1 = in1 ? in1->data_ptr<T>() : nullptr;
  T* y = out.data_ptr<T>();

  const bool flat = dim == in0.dim() - 1 && in0.is_contiguous() && out.is_contiguous() &&
                    (!in1 || in1->is_contiguous());
  if (flat) {  // fast path: row r is the span [r * len, (r + 1) * len) of every tensor
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t r = 0; r < count; ++r)
      row_fn(x0 + r * len, x1 ? x1 + r * len : nullptr, y + r * len, len);
    return;
  }

  const Rows rows0 = rows_along(in0, dim), rows_out = rows_along(out, dim);
  const Rows rows1 = in1 ? rows_along(*in1, dim) : Rows{};
#pragma omp parallel if (parallel)
  {
    std::vector<T> buf(3 * len);  // per thread: in0 row, in1 row, out row
    T *b0 = buf.data(), *b1 = b0 + len, *bo = b1 + len;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < count; ++r) {
      const T* p0 = x0 + rows0.start(r);
      for (int64_t i = 0; i < len; ++i)
        b0[i] = p0[i * rows0.step];
      if (x1) {
        const T* p1 = x1 + rows1.start(r);
        for (int64_t i = 0; i < len; ++i)
          b1[i] = p1[i * rows1.step];
      }
      row_fn(b0, x1 ? b1 : nullptr, bo, len);
      T* po = y + rows_out.start(r);
      for (int64_t i = 0; i < len; ++i)
        po[i * rows_out.step] = bo[i];
    }
  }
}

// ==========================================================================================
// Checks and dispatch for the four row-wise ops
// ==========================================================================================

// Every tensor on the CPU (the argument checks themselves are in kernels/softmax_plan.h).
void check_input_on_cpu(const char* op, const Tensor& x) {
  SELFSUP_CHECK(x.device().is_cpu(), op, ": input is on ", x.device().str());
}
void check_on_cpu(const char* op, const char* what, const Tensor&, const Tensor& t) {
  SELFSUP_CHECK(t.device().is_cpu(), op, ": ", what, " is on ", t.device().str());
}
bool on_cpu(const Tensor& t, const Tensor&) {
  return t.device().is_cpu();
}
std::string cpu_tensor(const Tensor&) {
  return "CPU tensor";
}
constexpr softmax_plan::Devices kCpu{check_input_on_cpu, check_on_cpu, on_cpu, cpu_tensor};

// A 0-d tensor is treated as a row of one element.
Tensor as_at_least_1d(const Tensor& t) {
  return t.dim() == 0 ? raw::unsqueeze(t, 0) : t;
}

// Runs a row kernel kernel<T>(in0_row, in1_row, out_row, n) over the rows along dim.
template <typename Dispatch>
void rowwise(const char* op, const Tensor& in0, const Tensor* in1, Tensor& out, int64_t dim,
             Dispatch pick_kernel) {
  dim = softmax_plan::check_rowwise(op, in0, in1, out, dim, kCpu);
  const Tensor a = as_at_least_1d(in0);
  const Tensor b = in1 ? as_at_least_1d(*in1) : Tensor();
  Tensor y = as_at_least_1d(out);
  dispatch_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point_v<T>)
      for_each_row<T>(a, in1 ? &b : nullptr, y, dim, pick_kernel(tag));
  });
}

}  // namespace

// ============================================================================================
// Softmax and log-softmax
// ============================================================================================

void softmax(const Tensor& x, int64_t dim, Tensor& out) {
  rowwise("softmax", x, nullptr, out, dim, [](auto tag) {
    using T = decltype(tag);
    return [](const T* xr, const T*, T* yr, int64_t n) { softmax_row(xr, yr, n); };
  });
}

void log_softmax(const Tensor& x, int64_t dim, Tensor& out) {
  rowwise("log_softmax", x, nullptr, out, dim, [](auto tag) {
    using T = decltype(tag);
    return [](const T* xr, const T*, T* yr, int64_t n) { log_softmax_row(xr, yr, n); };
  });
}

void softmax_backward(const Tensor& grad_y, const Tensor& y, int64_t dim, Tensor& grad_x) {
  rowwise("softmax_backward", grad_y, &y, grad_x, dim, [](auto tag) {
    using T = decltype(tag);
    return [](const T* gy, const T* yr, T* gx, int64_t n) { softmax_backward_row(gy, yr, gx, n); };
  });
}

void log_softmax_backward(const Tensor& grad_y, const Tensor& y, int64_t dim, Tensor& grad_x) {
  rowwise("log_softmax_backward", grad_y, &y, grad_x, dim, [](auto tag) {
    using T = decltype(tag);
    return
        [](const T* gy, const T* yr, T* gx, int64_t n) { log_softmax_backward_row(gy, yr, gx, n); };
  });
}

// ============================================================================================
// Fused cross-entropy
//
// Per row of logits x [C]: one streaming pass computes the running max m and the running
// sum s = sum exp(x - m) together ("online softmax", Milakov & Gimelshein 2018): when a new
// maximum appears the sum so far is rescaled by exp(old_m - new_m). logsumexp = m + log(s).
// A second pass over the same row, still in cache, writes the gradient exp(x - m) / s - onehot.
// Reads N*C logits once and writes N*C gradients once; the exp per element dominates.
// ============================================================================================

namespace {

template <typename T>
struct OnlineLse {
  T max = -std::numeric_limits<T>::infinity();
  double sum = 0;  // sum of exp(x - max)

  void add(T v) {
    // A -inf (a masked logit) adds nothing; without this, one arriving before any finite value
    // would compute exp(-inf - -inf) = NaN.
    if (v == -std::numeric_limits<T>::infinity()) return;
    if (v > max) {
      sum = sum * std::exp(static_cast<double>(max - v)) + 1.0;
      max = v;
    } else {
      sum += std::exp(v - max);  // NaN lands here and poisons the sum, as it should
    }
  }
  double lse() const { return max + std::log(sum); }
};

// grad[c] = (exp(x[c] - max) / sum * weight - target_c) / N, written for a whole row.
// `target_at(c)` gives the target mass at class c.
template <typename T, typename TargetAt>
void write_grad_row(const T* x, const OnlineLse<T>& acc, double weight, TargetAt target_at,
                    int64_t c, int64_t n_rows, T* grad) {
  const T scale = static_cast<T>(weight / (acc.sum * n_rows));
  const T inv_n = static_cast<T>(1.0 / n_rows);
  for (int64_t j = 0; j < c; ++j)
    grad[j] = std::exp(x[j] - acc.max) * scale - target_at(j) * inv_n;
}

// The gradient goes straight into grad when it is contiguous, else through a scratch copy.
Tensor contiguous_target(const Tensor& grad) {
  if (!grad.defined() || grad.is_contiguous()) return grad;
  return empty(grad.shape(), grad.dtype());
}

void finish_grad(Tensor& grad, const Tensor& written) {
  if (grad.defined() && !written.shares_storage_with(grad)) raw::copy_(grad, written);
}

template <typename T>
T mean_of(const std::vector<double>& row_losses) {
  double total = 0;  // summed in row order, so the result does not depend on the thread count
  for (double l : row_losses)
    total += l;
  return static_cast<T>(total / static_cast<double>(row_losses.size()));
}

template <typename T>
void cross_entropy_typed(const Tensor& logits, const Tensor& targets, Tensor& loss, Tensor& grad) {
  const Tensor xc = raw::contiguous(logits), tc = raw::contiguous(targets);
  Tensor g = contiguous_target(grad);
  const int64_t n = xc.size(0), c = xc.size(1);
  const T* x = xc.data_ptr<T>();                    // [N, C] row-major
  const int64_t* target = tc.data_ptr<int64_t>();   // [N]
  T* gp = g.defined() ? g.data_ptr<T>() : nullptr;  // [N, C] row-major, or null
  std::vector<double> row_loss(n);
#pragma omp parallel for schedule(static) if (n * c > kParallelElements)
  for (int64_t i = 0; i < n; ++i) {
    const T* row = x + i * c;
    OnlineLse<T> acc;
    for (int64_t j = 0; j < c; ++j)
      acc.add(row[j]);
    const int64_t t = target[i];
    row_loss[i] = acc.lse() - row[t];
    if (gp)
      write_grad_row(
          row, acc, 1.0, [t](int64_t j) { return T(j == t); }, c, n, gp + i * c);
  }
  loss.data_ptr<T>()[0] = mean_of<T>(row_loss);
  finish_grad(grad, g);
}

template <typename T>
void cross_entropy_soft_typed(const Tensor& logits, const Tensor& targets, Tensor& loss,
                              Tensor& grad) {
  const Tensor xc = raw::contiguous(logits), tc = raw::contiguous(targets);
  Tensor g = contiguous_target(grad);
  const int64_t n = xc.size(0), c = xc.size(1);
  const T* x = xc.data_ptr<T>();  // [N, C] row-major
  const T* p = tc.data_ptr<T>();  // [N, C] row-major target probabilities
  T* gp = g.defined() ? g.data_ptr<T>() : nullptr;
  std::vector<double> row_loss(n);
#pragma omp parallel for schedule(static) if (n * c > kParallelElements)
  for (int64_t i = 0; i < n; ++i) {
    const T *row = x + i * c, *prob = p + i * c;
    OnlineLse<T> acc;
    double mass = 0, dot = 0;  // sum_c p_c and sum_c p_c x_c
    for (int64_t j = 0; j < c; ++j) {
      acc.add(row[j]);
      mass += prob[j];
      dot += static_cast<double>(prob[j]) * row[j];
    }
    // -sum_c p_c (x_c - lse) = lse * sum_c p_c - sum_c p_c x_c
    row_loss[i] = acc.lse() * mass - dot;
    if (gp)
      write_grad_row(
          row, acc, mass, [prob](int64_t j) { return prob[j]; }, c, n, gp + i * c);
  }
  loss.data_ptr<T>()[0] = mean_of<T>(row_loss);
  finish_grad(grad, g);
}

}  // namespace

void cross_entropy(const Tensor& logits, const Tensor& targets, Tensor& loss, Tensor& grad_logits) {
  const char* op = "cross_entropy";
  softmax_plan::check_cross_entropy(op, logits, loss, grad_logits, kCpu);
  softmax_plan::check_class_targets(op, logits, targets, kCpu);
  const int64_t n = logits.size(0), c = logits.size(1);
  // Checked before the parallel loop: an exception cannot leave an OpenMP region.
  const Tensor tc = raw::contiguous(targets);
  const int64_t* t = tc.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i)
    softmax_plan::check_target_value(op, t[i], i, c);
  dispatch_dtype(logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point_v<T>)
      cross_entropy_typed<T>(logits, tc, loss, grad_logits);
  });
}

void cross_entropy_soft(const Tensor& logits, const Tensor& targets, Tensor& loss,
                        Tensor& grad_logits) {
  const char* op = "cross_entropy_soft";
  softmax_plan::check_cross_entropy(op, logits, loss, grad_logits, kCpu);
  softmax_plan::check_same(op, "targets", logits, targets, kCpu);
  dispatch_dtype(logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point_v<T>)
      cross_entropy_soft_typed<T>(logits, targets, loss, grad_logits);
  });
}

}  // namespace selfsup::cpu
