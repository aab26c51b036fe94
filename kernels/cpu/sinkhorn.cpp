// Sinkhorn-Knopp equal-partition assignment on the CPU (Cuturi 2013; SwAV, Caron et al. 2020).
//
//   Q_ij = exp((s_ij - max s) / eps)                          s = scores [B, K]
//   repeat `iterations` times:
//     Q_ij <- Q_ij / (K * sum_i Q_ij)     every column (prototype) holds 1/K of the mass
//     Q_ij <- Q_ij / (B * sum_j Q_ij)     every row (sample) holds 1/B
//   Q <- B * Q                            every row sums to 1: the codes
// The last row normalisation and the final rescale are one step (divide each row by its sum).
// Subtracting the global maximum changes nothing (the first column normalisation removes any
// common factor) and keeps exp from overflowing; SwAV's initial division by the total mass is
// left out for the same reason.
//
// The two numbers that bound it, per element: one exp, then per iteration 2 sums and 2 scalings
// (~4 flops); bytes: the scores read once, Q written once and read/written twice per
// normalisation. A few flops per byte: memory-bound, and for SwAV's sizes (a few hundred rows,
// a few hundred prototypes) Q stays in cache, so the passes are cheap next to the GEMM that
// made the scores. Rows are spread over threads; the column sums use one private sum array per
// thread (an OpenMP array reduction). Sums are accumulated in double.
#include "kernels/cpu/sinkhorn.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

namespace selfsup::cpu {

namespace {

// Below this many elements the thread start-up costs more than it saves.
constexpr int64_t kParallelElements = 1 << 15;

// The largest score, or NaN when a score is not finite (an Error follows).
template <typename T>
double checked_max(const T* s, int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride) {
  double m = -INFINITY;
  bool finite = true;
#pragma omp parallel for reduction(max : m) reduction(&& : finite) if (rows * cols > kParallelElements)
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      const double v = s[i * row_stride + j * col_stride];
      finite = finite && std::isfinite(v);
      m = std::max(m, v);
    }
  return finite ? m : NAN;
}

// q = exp((s - max) / eps), q contiguous [rows, cols].
template <typename T>
void exp_shifted(const T* s, int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride,
                 T max, T inv_eps, T* q) {
#pragma omp parallel for schedule(static) if (rows * cols > kParallelElements)
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j)
      q[i * cols + j] = std::exp((s[i * row_stride + j * col_stride] - max) * inv_eps);
}

// Scales every column of q [rows, cols] so that it sums to `target` (an all-zero column stays 0).
template <typename T>
void normalize_columns(T* q, int64_t rows, int64_t cols, double target, std::vector<double>& sums,
                       std::vector<T>& scale) {
  double* col_sum = sums.data();
  std::fill(sums.begin(), sums.end(), 0.0);
#pragma omp parallel for reduction(+ : col_sum[:cols]) if (rows * cols > kParallelElements)
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j)
      col_sum[j] += q[i * cols + j];
  for (int64_t j = 0; j < cols; ++j)
    scale[j] = col_sum[j] > 0 ? static_cast<T>(target / col_sum[j]) : T(0);
  const T* sc = scale.data();
#pragma omp parallel for schedule(static) if (rows * cols > kParallelElements)
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j)
      q[i * cols + j] *= sc[j];
}

// Scales every row of q [rows, cols] so that it sums to `target` (an all-zero row stays 0).
template <typename T>
void normalize_rows(T* q, int64_t rows, int64_t cols, double target) {
#pragma omp parallel for schedule(static) if (rows * cols > kParallelElements)
  for (int64_t i = 0; i < rows; ++i) {
    T* row = q + i * cols;
    double sum = 0;
    for (int64_t j = 0; j < cols; ++j)
      sum += row[j];
    const T s = sum > 0 ? static_cast<T>(target / sum) : T(0);
    for (int64_t j = 0; j < cols; ++j)
      row[j] *= s;
  }
}

void check_args(const Tensor& scores, double epsilon, int64_t iterations, const Tensor& out) {
  SELFSUP_CHECK(scores.defined() && scores.dim() == 2, "sinkhorn: scores must be [B, K], got ",
                scores.defined() ? shape_str(scores.shape()) : std::string("undefined"));
  SELFSUP_CHECK(scores.size(0) > 0 && scores.size(1) > 0, "sinkhorn: scores ",
                shape_str(scores.shape()), " are empty");
  SELFSUP_CHECK(is_floating(scores.dtype()), "sinkhorn: scores are ", dtype_name(scores.dtype()),
                ", expected float32 or float64");
  SELFSUP_CHECK(scores.device().is_cpu(), "sinkhorn: scores ", shape_str(scores.shape()),
                " are not on the CPU");
  SELFSUP_CHECK(epsilon > 0 && std::isfinite(epsilon), "sinkhorn: epsilon must be > 0, got ",
                epsilon);
  SELFSUP_CHECK(iterations >= 1, "sinkhorn: iterations must be >= 1, got ", iterations);
  SELFSUP_CHECK(out.defined() && out.shape() == scores.shape() && out.dtype() == scores.dtype() &&
                    out.is_contiguous() && out.device().is_cpu(),
                "sinkhorn: out must be a contiguous ", dtype_name(scores.dtype()), " ",
                shape_str(scores.shape()), " CPU tensor, got ",
                out.defined() ? dtype_name(out.dtype()) + std::string(" ") + shape_str(out.shape())
                              : std::string("undefined"));
}

}  // namespace

void sinkhorn(const Tensor& scores, double epsilon, int64_t iterations, Tensor& out) {
  check_args(scores, epsilon, iterations, out);
  const int64_t rows = scores.size(0), cols = scores.size(1);
  dispatch_dtype(scores.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point_v<T>) {
      const T* s = scores.data_ptr<T>();
      const int64_t rs = scores.stride(0), cs = scores.stride(1);
      const double max = checked_max(s, rows, cols, rs, cs);
      SELFSUP_CHECK(!std::isnan(max), "sinkhorn: scores ", shape_str(scores.shape()),
                    " contain a non-finite value");
      T* q = out.data_ptr<T>();
      exp_shifted(s, rows, cols, rs, cs, static_cast<T>(max), static_cast<T>(1.0 / epsilon), q);
      std::vector<double> sums(cols);
      std::vector<T> scale(cols);
      for (int64_t it = 0; it < iterations; ++it) {
        normalize_columns(q, rows, cols, 1.0 / cols, sums, scale);
        const bool last = it + 1 == iterations;
        normalize_rows(q, rows, cols, last ? 1.0 : 1.0 / rows);  // last: 1/B, then times B
      }
    }
  });
  out.bump_version();
}

}  // namespace selfsup::cpu
