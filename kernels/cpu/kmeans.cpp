// k-means on the CPU: k-means++ seeding and Lloyd's iterations.
//
// Assignment, the heavy step: for N points and K centroids in D dimensions,
//   ||x_i - c_k||^2 = ||x_i||^2 - 2 x_i.c_k + ||c_k||^2
// so the N x K cross terms are one GEMM (2 N K D flops, cpu::matmul: Eigen, vectorised and
// threaded) and the rest is O(N K) adds and an argmin per row. Minimum bytes: x and the
// centroids once, the [block, K] products written and read once per block. With D in the
// hundreds the flops dominate. The GEMM runs over blocks of rows, so the product buffer stays
// around 2^20 elements however large N is. The expansion loses precision when a point lies very
// close to a centroid relative to its norm (cancellation, ~1e-7 ||x||^2 in float32); distances
// are clamped at 0, and the argmin is unaffected except between near-ties.
//
// Update: every centroid becomes the mean of its points (sums in double, one private sum array
// per thread). Seeding: k-means++ computes its distances directly, one centroid at a time
// (N D flops per centroid), since the next centroid depends on the previous ones.
#include "kernels/cpu/kmeans.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/views.h"
#include "kernels/cpu/linalg.h"

namespace selfsup::cpu {

namespace {

// Below this many elements the thread start-up costs more than it saves.
constexpr int64_t kParallelElements = 1 << 15;
// Elements of the [rows, K] product buffer per GEMM block.
constexpr int64_t kBlockElements = 1 << 20;

template <typename T>
double squared_norm(const T* v, int64_t d) {
  double s = 0;
  for (int64_t j = 0; j < d; ++j)
    s += static_cast<double>(v[j]) * v[j];
  return s;
}

template <typename T>
double squared_distance(const T* a, const T* b, int64_t d) {
  double s = 0;
  for (int64_t j = 0; j < d; ++j) {
    const double diff = static_cast<double>(a[j]) - b[j];
    s += diff * diff;
  }
  return s;
}

// =========================================================================================
// Assignment
// =========================================================================================

// For the rows of one block: x [rows, D], dots [rows, K] = x c^T; c_norm [K].
template <typename T>
void nearest_in_block(const T* x, const T* dots, int64_t rows, int64_t d, int64_t k,
                      const double* c_norm, int64_t* assign, T* dist) {
#pragma omp parallel for schedule(static) if (rows * k > kParallelElements)
  for (int64_t i = 0; i < rows; ++i) {
    const T* dot = dots + i * k;
    double best = std::numeric_limits<double>::infinity();
    int64_t best_k = 0;
    for (int64_t j = 0; j < k; ++j) {
      const double partial = c_norm[j] - 2.0 * dot[j];  // ||x||^2 is common to the row
      if (partial < best) {
        best = partial;
        best_k = j;
      }
    }
    assign[i] = best_k;
    dist[i] = static_cast<T>(std::max(0.0, squared_norm(x + i * d, d) + best));
  }
}

template <typename T>
void assign_impl(const Tensor& x, const Tensor& centroids, int64_t* assign, T* dist) {
  const int64_t n = x.size(0), d = x.size(1), k = centroids.size(0);
  const Tensor c = raw::contiguous(centroids);
  std::vector<double> c_norm(k);
  for (int64_t j = 0; j < k; ++j)
    c_norm[j] = squared_norm(c.data_ptr<T>() + j * d, d);
  const int64_t block = std::clamp<int64_t>(kBlockElements / k, 1, n);
  Tensor dots = empty({block, k}, x.dtype());
  const Tensor c_t = raw::transpose(c, 0, 1);  // [D, K], read in place by the GEMM
  for (int64_t start = 0; start < n; start += block) {
    const int64_t rows = std::min(block, n - start);
    const Tensor xb = raw::narrow(x, 0, start, rows);
    Tensor db = raw::narrow(dots, 0, 0, rows);
    matmul(xb, c_t, db);
    nearest_in_block(xb.data_ptr<T>(), db.data_ptr<T>(), rows, d, k, c_norm.data(), assign + start,
                     dist + start);
  }
}

void check_points(const char* op, const Tensor& x) {
  SELFSUP_CHECK(x.defined() && x.dim() == 2, op, ": x must be [N, D], got ",
                x.defined() ? shape_str(x.shape()) : std::string("undefined"));
  SELFSUP_CHECK(x.size(0) > 0 && x.size(1) > 0, op, ": x ", shape_str(x.shape()), " is empty");
  SELFSUP_CHECK(is_floating(x.dtype()), op, ": x is ", dtype_name(x.dtype()),
                ", expected float32 or float64");
  SELFSUP_CHECK(x.device().is_cpu(), op, ": x ", shape_str(x.shape()), " is not on the CPU");
}

void check_centroids(const char* op, const Tensor& x, const Tensor& c) {
  SELFSUP_CHECK(c.defined() && c.dim() == 2 && c.size(0) > 0 && c.size(1) == x.size(1), op,
                ": centroids must be [K, ", x.size(1), "] with K >= 1 for x ", shape_str(x.shape()),
                ", got ", c.defined() ? shape_str(c.shape()) : std::string("undefined"));
  SELFSUP_CHECK(c.dtype() == x.dtype() && c.device().is_cpu(), op, ": centroids ",
                shape_str(c.shape()), " must be CPU ", dtype_name(x.dtype()), " like x");
}

void check_output(const char* op, const char* name, const Tensor& t, DType dtype, int64_t n) {
  SELFSUP_CHECK(t.defined() && t.shape() == Shape({n}) && t.dtype() == dtype && t.is_contiguous() &&
                    t.device().is_cpu(),
                op, ": ", name, " must be a contiguous ", dtype_name(dtype), " [", n,
                "] CPU tensor, got ",
                t.defined() ? dtype_name(t.dtype()) + std::string(" ") + shape_str(t.shape())
                            : std::string("undefined"));
}

// =========================================================================================
// Lloyd's iterations
// =========================================================================================

// Gives every empty cluster the point farthest from its centroid among the clusters of two or
// more points (see kmeans.h). Updates assign, dist (the moved point's becomes 0) and counts.
template <typename T>
int64_t reseed_empty_clusters(int64_t* assign, T* dist, int64_t n, std::vector<int64_t>& counts) {
  std::fill(counts.begin(), counts.end(), 0);
  for (int64_t i = 0; i < n; ++i)
    ++counts[assign[i]];
  int64_t reseeded = 0;
  for (size_t c = 0; c < counts.size(); ++c) {
    if (counts[c] > 0) continue;
    int64_t far = -1;  // exists: K <= N, so while a cluster is empty another holds two points
    for (int64_t i = 0; i < n; ++i)
      if (counts[assign[i]] > 1 && (far < 0 || dist[i] > dist[far])) far = i;
    --counts[assign[far]];
    assign[far] = static_cast<int64_t>(c);
    counts[c] = 1;
    dist[far] = 0;
    ++reseeded;
  }
  return reseeded;
}

// centroids [K, D] = the mean of each cluster's points (every count >= 1).
template <typename T>
void update_means(const T* x, const int64_t* assign, int64_t n, int64_t d,
                  const std::vector<int64_t>& counts, T* centroids) {
  const int64_t k = static_cast<int64_t>(counts.size());
  std::vector<double> sums(k * d, 0.0);
  double* s = sums.data();
  // Each thread sums into its own [K, D] copy: worth it only when the points far outnumber K.
#pragma omp parallel for reduction(+ : s[:k * d]) if (n * d > kParallelElements && 8 * k < n)
  for (int64_t i = 0; i < n; ++i) {
    double* row = s + assign[i] * d;
    for (int64_t j = 0; j < d; ++j)
      row[j] += x[i * d + j];
  }
  for (int64_t c = 0; c < k; ++c)
    for (int64_t j = 0; j < d; ++j)
      centroids[c * d + j] = static_cast<T>(s[c * d + j] / static_cast<double>(counts[c]));
}

template <typename T>
double inertia_of(const T* x, const int64_t* assign, const T* centroids, int64_t n, int64_t d) {
  double total = 0;
#pragma omp parallel for reduction(+ : total) if (n * d > kParallelElements)
  for (int64_t i = 0; i < n; ++i)
    total += squared_distance(x + i * d, centroids + assign[i] * d, d);
  return total;
}

template <typename T>
KMeansResult lloyd_impl(const Tensor& x, const Tensor& initial, int64_t max_iterations) {
  const int64_t n = x.size(0), d = x.size(1), k = initial.size(0);
  KMeansResult r;
  r.centroids = raw::clone(initial);
  r.assignments = empty({n}, kInt64);
  Tensor dist = empty({n}, x.dtype());
  int64_t* assign = r.assignments.data_ptr<int64_t>();
  T* c = r.centroids.data_ptr<T>();
  std::vector<int64_t> counts(k), previous;
  for (int64_t it = 0; it < max_iterations; ++it) {
    assign_impl<T>(x, r.centroids, assign, dist.data_ptr<T>());
    const int64_t reseeded = reseed_empty_clusters(assign, dist.data_ptr<T>(), n, counts);
    r.reseeded += reseeded;
    r.iterations = it + 1;
    // Unchanged assignments: the centroids are already their means.
    if (!previous.empty() && reseeded == 0 &&
        std::equal(previous.begin(), previous.end(), assign, assign + n))
      break;
    update_means(x.data_ptr<T>(), assign, n, d, counts, c);
    previous.assign(assign, assign + n);
  }
  r.counts = from_vector(counts, {k});
  r.inertia = inertia_of(x.data_ptr<T>(), assign, c, n, d);
  r.centroids.bump_version();
  return r;
}

// =========================================================================================
// k-means++
// =========================================================================================

double uniform(Generator& gen) {
  const PhiloxOut r = philox4x32(gen.seed(), gen.advance(1));
  return uniform_double(r.v[0], r.v[1]);
}

// The row drawn with probability weight[i] / total, from one uniform u in [0, 1).
int64_t draw_weighted(const std::vector<double>& weight, double total, double u) {
  const double target = u * total;
  double cumulative = 0;
  int64_t last_positive = 0;
  for (size_t i = 0; i < weight.size(); ++i) {
    if (weight[i] <= 0) continue;
    cumulative += weight[i];
    last_positive = static_cast<int64_t>(i);
    if (cumulative > target) return last_positive;
  }
  return last_positive;  // rounding left target at the very end
}

template <typename T>
Tensor plus_plus_impl(const Tensor& x, int64_t k, Generator& gen) {
  const int64_t n = x.size(0), d = x.size(1);
  const T* px = x.data_ptr<T>();
  Tensor out = empty({k, d}, x.dtype());
  T* c = out.data_ptr<T>();
  std::vector<double> d2(n, std::numeric_limits<double>::infinity());
  for (int64_t m = 0; m < k; ++m) {
    double total = 0;
    if (m > 0)
      for (double v : d2)
        total += v;
    const double u = uniform(gen);
    const int64_t pick = total > 0 ? draw_weighted(d2, total, u)
                                   : std::min<int64_t>(n - 1, static_cast<int64_t>(u * n));
    T* cm = c + m * d;
    std::copy(px + pick * d, px + (pick + 1) * d, cm);
#pragma omp parallel for schedule(static) if (n * d > kParallelElements)
    for (int64_t i = 0; i < n; ++i)
      d2[i] = std::min(d2[i], squared_distance(px + i * d, cm, d));
  }
  return out;
}

template <typename T>
void check_finite(const Tensor& x) {
  const T* p = x.data_ptr<T>();
  const int64_t n = x.size(0), d = x.size(1);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < d; ++j)
      SELFSUP_CHECK(std::isfinite(p[i * d + j]), "kmeans: row ", i, " of x ", shape_str(x.shape()),
                    " is not finite");
}

}  // namespace

void kmeans_assign(const Tensor& x, const Tensor& centroids, Tensor& assignments,
                   Tensor& sq_distances) {
  const char* op = "kmeans_assign";
  check_points(op, x);
  check_centroids(op, x, centroids);
  check_output(op, "assignments", assignments, kInt64, x.size(0));
  check_output(op, "sq_distances", sq_distances, x.dtype(), x.size(0));
  dispatch_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point_v<T>)
      assign_impl<T>(raw::contiguous(x), centroids, assignments.data_ptr<int64_t>(),
                     sq_distances.data_ptr<T>());
  });
  assignments.bump_version();
  sq_distances.bump_version();
}

Tensor kmeans_plus_plus(const Tensor& x, int64_t k, Generator& gen) {
  check_points("kmeans_plus_plus", x);
  SELFSUP_CHECK(k >= 1 && k <= x.size(0), "kmeans_plus_plus: k = ", k, " must lie in [1, ",
                x.size(0), "] for x ", shape_str(x.shape()));
  Tensor out;
  dispatch_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point_v<T>) out = plus_plus_impl<T>(raw::contiguous(x), k, gen);
  });
  return out;
}

KMeansResult kmeans_lloyd(const Tensor& x, const Tensor& initial_centroids,
                          int64_t max_iterations) {
  const char* op = "kmeans_lloyd";
  check_points(op, x);
  check_centroids(op, x, initial_centroids);
  SELFSUP_CHECK(initial_centroids.size(0) <= x.size(0), op, ": ", initial_centroids.size(0),
                " clusters need at least as many points, x is ", shape_str(x.shape()));
  SELFSUP_CHECK(max_iterations >= 1, op, ": max_iterations must be >= 1, got ", max_iterations);
  KMeansResult r;
  dispatch_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point_v<T>)
      r = lloyd_impl<T>(raw::contiguous(x), initial_centroids, max_iterations);
  });
  return r;
}

KMeansResult kmeans(const Tensor& x, int64_t k, int64_t max_iterations, Generator& gen) {
  check_points("kmeans", x);
  SELFSUP_CHECK(k >= 1 && k <= x.size(0), "kmeans: k = ", k, " must lie in [1, ", x.size(0),
                "] for x ", shape_str(x.shape()));
  SELFSUP_CHECK(max_iterations >= 1, "kmeans: max_iterations must be >= 1, got ", max_iterations);
  const Tensor xc = raw::contiguous(x);
  dispatch_dtype(xc.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point_v<T>) check_finite<T>(xc);
  });
  return kmeans_lloyd(xc, kmeans_plus_plus(xc, k, gen), max_iterations);
}

}  // namespace selfsup::cpu
