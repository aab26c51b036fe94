// kernels/cpu/kmeans: the GEMM-based assignment against naive double distances (float32 and
// float64, strided inputs, several GEMM blocks, ties, poisoned outputs); well-separated
// synthetic clusters recovered up to relabelling; k-means++ determinism and its D^2 rule;
// empty clusters forced and re-seeded from the farthest point; Lloyd's inertia never rising;
// error messages.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "core/random.h"
#include "core/views.h"
#include "kernels/cpu/kmeans.h"
#include "tests/tensor_test_util.h"

using namespace selfsup;
using namespace selfsup::test;
using Mat = std::vector<std::vector<double>>;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

Mat to_mat(const Tensor& t) {
  const auto v = raw::contiguous(t).to_vector<double>();
  Mat m(t.size(0), std::vector<double>(t.size(1)));
  for (int64_t i = 0; i < t.size(0); ++i)
    for (int64_t j = 0; j < t.size(1); ++j)
      m[i][j] = v[i * t.size(1) + j];
  return m;
}

double sq_dist(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t j = 0; j < a.size(); ++j)
    s += (a[j] - b[j]) * (a[j] - b[j]);
  return s;
}

// Well-separated blobs: cluster c has sizes[c] points around the centre o + 10 e_c (e_c the c-th
// axis, o a random offset; every two centres are 14 apart), noise sigma 0.3 per coordinate.
// Needs d >= the number of clusters. Rows are shuffled so the clusters are interleaved.
struct Blobs {
  Tensor x;                    // [N, D]
  std::vector<int64_t> truth;  // cluster of each row
};

Blobs make_blobs(const std::vector<int64_t>& sizes, int64_t d, DType dtype, uint64_t seed) {
  Generator g(seed);
  const int64_t k = static_cast<int64_t>(sizes.size());
  const std::vector<double> offset = randn({d}, kFloat64, &g).to_vector<double>();
  Mat centres(k, offset);
  for (int64_t c = 0; c < k; ++c)
    centres[c][c] += 10.0;
  std::vector<int64_t> truth;
  for (int64_t c = 0; c < k; ++c)
    for (int64_t i = 0; i < sizes[c]; ++i)
      truth.push_back(c);
  const int64_t n = static_cast<int64_t>(truth.size());
  const auto order = randperm(n, &g).to_vector<int64_t>();
  const Mat noise = to_mat(randn({n, d}, kFloat64, &g) * 0.3);
  std::vector<double> values;
  Blobs b;
  for (int64_t r = 0; r < n; ++r) {
    const int64_t c = truth[order[r]];
    b.truth.push_back(c);
    for (int64_t j = 0; j < d; ++j)
      values.push_back(centres[c][j] + noise[r][j]);
  }
  b.x = raw::to_dtype(from_vector(values, {n, d}), dtype);
  return b;
}

// True when `found` is `truth` up to a relabelling (a bijection between the label sets).
bool same_partition(const std::vector<int64_t>& found, const std::vector<int64_t>& truth) {
  std::map<int64_t, int64_t> f2t, t2f;
  for (size_t i = 0; i < truth.size(); ++i) {
    auto [a, fresh_a] = f2t.emplace(found[i], truth[i]);
    auto [b, fresh_b] = t2f.emplace(truth[i], found[i]);
    if (a->second != truth[i] || b->second != found[i]) return false;
  }
  return true;
}

struct Assigned {
  std::vector<int64_t> index;
  std::vector<double> dist;
};

Assigned assign(const Tensor& x, const Tensor& c) {
  Tensor a = full({x.size(0)}, -7, kInt64);  // poisoned
  Tensor d = full({x.size(0)}, kNaN, x.dtype());
  cpu::kmeans_assign(x, c, a, d);
  return {a.to_vector<int64_t>(), d.to_vector<double>()};
}

}  // namespace

TEST(CpuKMeans, AssignmentMatchesNaiveDistances) {
  struct Case {
    int64_t n, k, d;
  };
  // 2500 x 601: the GEMM runs in blocks of 2^20 / 601 = 1744 rows, so two blocks.
  const std::vector<Case> cases = {{37, 5, 3}, {1, 1, 7}, {129, 17, 33}, {2500, 601, 5}};
  for (DType dtype : {kFloat32, kFloat64})
    for (const Case& c : cases) {
      SCOPED_TRACE(std::string(dtype_name(dtype)) + " n " + std::to_string(c.n) + " k " +
                   std::to_string(c.k) + " d " + std::to_string(c.d));
      Generator g(c.n + c.k + c.d);
      const Tensor x = raw::to_dtype(randn({c.n, c.d}, kFloat64, &g), dtype);
      const Tensor cen = raw::to_dtype(randn({c.k, c.d}, kFloat64, &g), dtype);
      const Assigned got = assign(x, cen);
      const Mat xm = to_mat(x), cm = to_mat(cen);
      const double tol = dtype == kFloat32 ? 1e-4 : 1e-10;
      for (int64_t i = 0; i < c.n; ++i) {
        double best = std::numeric_limits<double>::infinity();
        for (const auto& row : cm)
          best = std::min(best, sq_dist(xm[i], row));
        ASSERT_GE(got.index[i], 0);
        ASSERT_LT(got.index[i], c.k);
        // The chosen centroid is a nearest one (up to rounding between near-ties) ...
        ASSERT_NEAR(sq_dist(xm[i], cm[got.index[i]]), best, tol * (1 + best)) << "row " << i;
        // ... and the reported distance is its distance.
        ASSERT_NEAR(got.dist[i], best, tol * (1 + best)) << "row " << i;
      }
    }
}

TEST(CpuKMeans, AssignmentReadsStridedInputsAndBreaksTiesTowardsTheLowestIndex) {
  Generator g(3);
  const Tensor xt = randn({6, 41}, kFloat64, &g);  // read as its transpose [41, 6]
  const Tensor x = raw::transpose(xt, 0, 1);
  const Tensor wide = randn({9, 10}, kFloat64, &g);
  const Tensor c = raw::narrow(wide, 1, 2, 6);  // [9, 6], row stride 10
  const Assigned got = assign(x, c), want = assign(raw::contiguous(x), raw::contiguous(c));
  EXPECT_EQ(got.index, want.index);
  EXPECT_EQ(got.dist, want.dist);
  // Centroid 1 and 3 are the same point: nobody may be assigned to 3.
  const Tensor dup = raw::clone(c);
  raw::select(dup, 0, 3).copy_(raw::select(dup, 0, 1));
  for (int64_t a : assign(x, dup).index)
    EXPECT_NE(a, 3);
}

TEST(CpuKMeans, RecoversWellSeparatedClusters) {
  const std::vector<int64_t> sizes = {23, 41, 17, 50, 33, 29, 11};
  for (DType dtype : {kFloat32, kFloat64})
    for (uint64_t seed : {1u, 2u, 3u}) {
      SCOPED_TRACE(std::string(dtype_name(dtype)) + " seed " + std::to_string(seed));
      const Blobs b = make_blobs(sizes, 8, dtype, 40 + seed);
      Generator g(seed);
      const cpu::KMeansResult r = cpu::kmeans(b.x, 7, 50, g);
      EXPECT_TRUE(same_partition(r.assignments.to_vector<int64_t>(), b.truth));
      EXPECT_LT(r.iterations, 50);  // converged: an assignment repeated
      EXPECT_EQ(r.reseeded, 0);
      // Each centroid is the mean of its cluster, and counts match the cluster sizes.
      const std::vector<int64_t> found = r.counts.to_vector<int64_t>();
      EXPECT_EQ(std::multiset<int64_t>(found.begin(), found.end()),
                std::multiset<int64_t>(sizes.begin(), sizes.end()));
    }
}

TEST(CpuKMeans, CentroidsAreTheMeansAndInertiaTheirCost) {
  Generator g(4);
  const Tensor x = randn({97, 5}, kFloat64, &g);
  Generator seeds(5);
  const cpu::KMeansResult r = cpu::kmeans(x, 6, 3, seeds);  // not converged: 3 iterations
  const Mat xm = to_mat(x), cm = to_mat(r.centroids);
  const auto a = r.assignments.to_vector<int64_t>();
  Mat sums(6, std::vector<double>(5, 0.0));
  std::vector<int64_t> counts(6, 0);
  double inertia = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ++counts[a[i]];
    for (int j = 0; j < 5; ++j)
      sums[a[i]][j] += xm[i][j];
    inertia += sq_dist(xm[i], cm[a[i]]);
  }
  EXPECT_EQ(r.counts.to_vector<int64_t>(), counts);
  for (int c = 0; c < 6; ++c)
    for (int j = 0; j < 5; ++j)
      EXPECT_NEAR(cm[c][j], sums[c][j] / counts[c], 1e-12);
  EXPECT_NEAR(r.inertia, inertia, 1e-9);
}

TEST(CpuKMeans, LloydNeverRaisesTheInertia) {
  Generator g(6);
  const Tensor x = randn({301, 4}, kFloat32, &g);
  Generator seeds(7);
  const Tensor init = cpu::kmeans_plus_plus(x, 13, seeds);
  double previous = std::numeric_limits<double>::infinity();
  for (int64_t iterations = 1; iterations <= 8; ++iterations) {
    const double inertia = cpu::kmeans_lloyd(x, init, iterations).inertia;
    EXPECT_LE(inertia, previous * (1 + 1e-6)) << iterations << " iterations";
    previous = inertia;
  }
}

TEST(CpuKMeans, PlusPlusSeedingIsDeterministicAndPicksDataRows) {
  const Blobs b = make_blobs({13, 27, 19, 8, 30}, 5, kFloat64, 50);
  Generator g1(9), g2(9), g3(10);
  const Tensor c1 = cpu::kmeans_plus_plus(b.x, 5, g1), c2 = cpu::kmeans_plus_plus(b.x, 5, g2);
  const Tensor c3 = cpu::kmeans_plus_plus(b.x, 5, g3);
  EXPECT_EQ(c1.to_vector<double>(), c2.to_vector<double>());
  EXPECT_NE(c1.to_vector<double>(), c3.to_vector<double>());
  EXPECT_EQ(g1.offset(), 5u);  // one uniform per centroid
  // Every seed is a row of x, and the D^2 rule puts the 5 seeds in 5 different blobs.
  const Mat xm = to_mat(b.x);
  std::set<int64_t> blobs;
  for (const auto& seed : to_mat(c1)) {
    int64_t row = -1;
    for (size_t i = 0; i < xm.size(); ++i)
      if (xm[i] == seed) row = static_cast<int64_t>(i);
    ASSERT_GE(row, 0);
    blobs.insert(b.truth[row]);
  }
  EXPECT_EQ(blobs.size(), 5u);
}

TEST(CpuKMeans, PlusPlusCoversEveryDistinctPointFirst) {
  // Three distinct points, each repeated: the first three seeds are the three points (an
  // already chosen point has weight 0), the other two are drawn uniformly among the rows.
  std::vector<double> v;
  for (int rep = 0; rep < 7; ++rep)
    for (double p : {0.0, 1.0, 5.0})
      v.insert(v.end(), {p, -p});
  const Tensor x = from_vector(v, {21, 2});
  Generator g(11);
  const Mat c = to_mat(cpu::kmeans_plus_plus(x, 5, g));
  std::set<double> first3 = {c[0][0], c[1][0], c[2][0]};
  EXPECT_EQ(first3, (std::set<double>{0.0, 1.0, 5.0}));
}

TEST(CpuKMeans, EmptyClusterTakesTheFarthestPoint) {
  // Two blobs and three initial centroids, the third far from everything: after the first
  // assignment cluster 2 is empty, so it must take the point farthest from its centroid.
  const Blobs b = make_blobs({31, 26}, 2, kFloat64, 60);
  const Mat xm = to_mat(b.x);
  Generator g(12);
  const Tensor two = cpu::kmeans_plus_plus(b.x, 2, g);
  const Tensor init = cat({two, full({1, 2}, 1000.0, kFloat64)}, 0);
  // The point a two-centroid assignment fits worst.
  const Assigned fit = assign(b.x, two);
  const int64_t farthest = std::max_element(fit.dist.begin(), fit.dist.end()) - fit.dist.begin();
  const cpu::KMeansResult r = cpu::kmeans_lloyd(b.x, init, 1);
  EXPECT_EQ(r.reseeded, 1);
  const auto a = r.assignments.to_vector<int64_t>();
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_EQ(a[i] == 2, static_cast<int64_t>(i) == farthest) << "row " << i;
  EXPECT_EQ(to_mat(r.centroids)[2], xm[farthest]);
  EXPECT_EQ(r.counts.to_vector<int64_t>()[2], 1);
}

TEST(CpuKMeans, DuplicateSeedsLeaveNoClusterEmpty) {
  // Four copies of one centroid: ties send every point to cluster 0, clusters 1-3 are empty and
  // get re-seeded; the run still ends with every cluster non-empty.
  Generator g(13);
  const Tensor x = randn({43, 3}, kFloat32, &g);
  const Tensor init = raw::contiguous(raw::expand(raw::narrow(x, 0, 0, 1), {4, 3}));
  const cpu::KMeansResult r = cpu::kmeans_lloyd(x, init, 10);
  EXPECT_GE(r.reseeded, 3);
  for (int64_t count : r.counts.to_vector<int64_t>())
    EXPECT_GE(count, 1);
  EXPECT_EQ(r.assignments.size(0), 43);
}

TEST(CpuKMeans, BadInputIsAnErrorNamingTheOpAndShapes) {
  Generator g(14);
  const Tensor x = randn({5, 3}, kFloat32, &g);
  EXPECT_NE(error_of([&] {
              cpu::kmeans(zeros({5}), 2, 10, g);
            }).find("kmeans: x must be [N, D], got [5]"),
            std::string::npos);
  EXPECT_NE(error_of([&] { cpu::kmeans(x, 0, 10, g); }).find("kmeans: k = 0 must lie in [1, 5]"),
            std::string::npos);
  EXPECT_NE(
      error_of([&] { cpu::kmeans(x, 6, 10, g); }).find("k = 6 must lie in [1, 5] for x [5, 3]"),
      std::string::npos);
  EXPECT_NE(error_of([&] { cpu::kmeans(x, 2, 0, g); }).find("max_iterations must be >= 1"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              cpu::kmeans(zeros({5, 3}, kInt64), 2, 10, g);
            }).find("x is int64"),
            std::string::npos);
  Tensor bad = raw::clone(x);
  bad.data_ptr<float>()[7] = NAN;
  EXPECT_NE(
      error_of([&] { cpu::kmeans(bad, 2, 10, g); }).find("kmeans: row 2 of x [5, 3] is not finite"),
      std::string::npos);
  EXPECT_NE(error_of([&] {
              cpu::kmeans_lloyd(x, zeros({2, 4}), 5);
            }).find("kmeans_lloyd: centroids must be [K, 3] with K >= 1 for x [5, 3], got [2, 4]"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              cpu::kmeans_lloyd(x, zeros({2, 3}, kFloat64), 5);
            }).find("centroids [2, 3] must be CPU float32 like x"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              cpu::kmeans_lloyd(x, zeros({6, 3}), 5);
            }).find("6 clusters need at least as many points"),
            std::string::npos);
  Tensor a = empty({5}, kInt64), d = empty({5});
  EXPECT_NE(error_of([&] {
              Tensor a4 = empty({4}, kInt64);
              cpu::kmeans_assign(x, zeros({2, 3}), a4, d);
            })
                .find("kmeans_assign: assignments must be a contiguous int64 [5] CPU tensor, got "
                      "int64 [4]"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              Tensor d64 = empty({5}, kFloat64);
              cpu::kmeans_assign(x, zeros({2, 3}), a, d64);
            }).find("sq_distances must be a contiguous float32 [5]"),
            std::string::npos);
  EXPECT_NE(error_of([&] { cpu::kmeans_plus_plus(x, 9, g); }).find("kmeans_plus_plus: k = 9"),
            std::string::npos);
}
