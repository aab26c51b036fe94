// kernels/cpu/sinkhorn: against a naive double-precision transcription of SwAV's
// distributed_sinkhorn on awkward sizes (float32 and float64, strided inputs, poisoned outputs,
// the threaded path); the equal-partition marginals; stability for large and underflowing
// scores; error messages.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "core/random.h"
#include "core/views.h"
#include "kernels/cpu/sinkhorn.h"
#include "tests/tensor_test_util.h"

using namespace selfsup;
using namespace selfsup::test;
using Mat = std::vector<std::vector<double>>;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

Mat to_mat(const Tensor& t) {
  const Tensor c = raw::contiguous(t);
  const auto v = c.to_vector<double>();
  Mat m(t.size(0), std::vector<double>(t.size(1)));
  for (int64_t i = 0; i < t.size(0); ++i)
    for (int64_t j = 0; j < t.size(1); ++j)
      m[i][j] = v[i * t.size(1) + j];
  return m;
}

// SwAV's distributed_sinkhorn on one process, literally: Q = exp(scores / eps)^T [K, B],
// Q /= sum Q; per iteration rows (prototypes) to 1/K, then columns (samples) to 1/B; Q *= B.
// Returned transposed back to [B, K]. No max subtraction: the test scores keep exp in range.
Mat sinkhorn_reference(const Mat& s, double eps, int iterations) {
  const size_t b = s.size(), k = s[0].size();
  Mat q(k, std::vector<double>(b));
  double total = 0;
  for (size_t i = 0; i < b; ++i)
    for (size_t j = 0; j < k; ++j)
      total += q[j][i] = std::exp(s[i][j] / eps);
  for (auto& row : q)
    for (double& v : row)
      v /= total;
  for (int it = 0; it < iterations; ++it) {
    for (auto& row : q) {
      double sum = 0;
      for (double v : row)
        sum += v;
      for (double& v : row)
        v /= sum * k;
    }
    for (size_t i = 0; i < b; ++i) {
      double sum = 0;
      for (size_t j = 0; j < k; ++j)
        sum += q[j][i];
      for (size_t j = 0; j < k; ++j)
        q[j][i] /= sum * b;
    }
  }
  Mat out(b, std::vector<double>(k));
  for (size_t i = 0; i < b; ++i)
    for (size_t j = 0; j < k; ++j)
      out[i][j] = q[j][i] * b;
  return out;
}

// Cosine-like scores in [-1, 1], as SwAV's z . c for unit vectors.
Tensor scores(int64_t b, int64_t k, DType dtype, uint64_t seed) {
  Generator g(seed);
  return raw::to_dtype(rand({b, k}, kFloat64, &g) * 2.0 - 1.0, dtype);
}

Tensor run(const Tensor& s, double eps, int64_t iterations) {
  Tensor out = full(s.shape(), kNaN, s.dtype());  // poisoned: unwritten elements fail
  cpu::sinkhorn(s, eps, iterations, out);
  return out;
}

void expect_matches(const Tensor& got, const Mat& want, double tol, const std::string& what) {
  const Mat g = to_mat(got);
  ASSERT_EQ(g.size(), want.size()) << what;
  for (size_t i = 0; i < want.size(); ++i)
    for (size_t j = 0; j < want[i].size(); ++j)
      ASSERT_NEAR(g[i][j], want[i][j], tol * (1 + std::abs(want[i][j])))
          << what << " at (" << i << ", " << j << ")";
}

std::vector<double> row_sums(const Mat& m) {
  std::vector<double> s;
  for (const auto& r : m) {
    double t = 0;
    for (double v : r)
      t += v;
    s.push_back(t);
  }
  return s;
}

std::vector<double> column_sums(const Mat& m) {
  std::vector<double> s(m[0].size(), 0.0);
  for (const auto& r : m)
    for (size_t j = 0; j < r.size(); ++j)
      s[j] += r[j];
  return s;
}

}  // namespace

TEST(CpuSinkhorn, MatchesTheReferenceOnAwkwardSizes) {
  struct Case {
    int64_t b, k;
    double eps;
    int64_t iterations;
  };
  // 211 x 173 = 36503 elements takes the threaded path.
  const std::vector<Case> cases = {{37, 13, 0.05, 3}, {5, 101, 0.05, 3},   {1, 7, 0.1, 1},
                                   {64, 3, 0.3, 5},   {211, 173, 0.05, 3}, {9, 9, 1.0, 2}};
  for (DType dtype : {kFloat32, kFloat64})
    for (const Case& c : cases) {
      const std::string what = std::string(dtype_name(dtype)) + " [" + std::to_string(c.b) + ", " +
                               std::to_string(c.k) + "] eps " + std::to_string(c.eps);
      const Tensor s = scores(c.b, c.k, dtype, 100 + c.b * 7 + c.k);
      const Mat want = sinkhorn_reference(to_mat(s), c.eps, static_cast<int>(c.iterations));
      expect_matches(run(s, c.eps, c.iterations), want, dtype == kFloat32 ? 2e-5 : 1e-12, what);
    }
}

TEST(CpuSinkhorn, ReadsStridedScores) {
  for (DType dtype : {kFloat32, kFloat64}) {
    // A transposed view (column stride 1 along B) and a narrowed one (row stride 2K).
    const Tensor base = scores(19, 23, dtype, 5);  // read as its transpose [23, 19]
    const Tensor transposed = raw::transpose(base, 0, 1);
    ASSERT_FALSE(transposed.is_contiguous());
    expect_matches(run(transposed, 0.05, 3), sinkhorn_reference(to_mat(transposed), 0.05, 3),
                   dtype == kFloat32 ? 2e-5 : 1e-12, "transposed");
    const Tensor wide = scores(17, 22, dtype, 6);
    const Tensor narrowed = raw::narrow(wide, 1, 3, 11);
    expect_matches(run(narrowed, 0.07, 3), sinkhorn_reference(to_mat(narrowed), 0.07, 3),
                   dtype == kFloat32 ? 2e-5 : 1e-12, "narrowed");
  }
}

TEST(CpuSinkhorn, RowsSumToOneAndColumnsToAnEqualShare) {
  const int64_t b = 53, k = 17;
  const Tensor s = scores(b, k, kFloat64, 7);
  // Few iterations: rows are exact (the last step normalises them), columns only close.
  for (const auto& sum : row_sums(to_mat(run(s, 0.05, 3))))
    EXPECT_NEAR(sum, 1.0, 1e-12);
  // Many iterations: the columns converge to the equal partition B / K as well.
  const Mat q = to_mat(run(s, 0.05, 300));
  for (const auto& sum : row_sums(q))
    EXPECT_NEAR(sum, 1.0, 1e-12);
  for (const auto& sum : column_sums(q))
    EXPECT_NEAR(sum, static_cast<double>(b) / k, 1e-6 * b / k);
  // Without the balancing, a softmax over prototypes at eps 0.05 (SwAV's codes without
  // Sinkhorn) is far from equal shares: the check above would catch a kernel that skipped the
  // column step.
  const Mat sm = to_mat(softmax(s * 20.0, 1));
  double worst = 0;
  for (const auto& sum : column_sums(sm))
    worst = std::max(worst, std::abs(sum * k / b - 1.0));
  EXPECT_GT(worst, 0.2);
}

TEST(CpuSinkhorn, OutputIsANonNegativeDistributionPerRow) {
  const Mat q = to_mat(run(scores(29, 31, kFloat32, 8), 0.05, 3));
  for (const auto& r : q)
    for (double v : r) {
      EXPECT_GE(v, 0.0);
      EXPECT_LE(v, 1.0 + 1e-6);
    }
}

TEST(CpuSinkhorn, LargeScoresDoNotOverflow) {
  // exp(1000 / 0.05) overflows in any precision; subtracting the maximum makes a constant shift
  // of the scores a no-op.
  for (DType dtype : {kFloat32, kFloat64}) {
    const Tensor s = scores(11, 7, dtype, 9);
    const Tensor shifted = raw::to_dtype(raw::to_dtype(s, kFloat64) + 1000.0, dtype);
    const Mat want = to_mat(run(s, 0.05, 3));
    expect_matches(run(shifted, 0.05, 3), want, dtype == kFloat32 ? 1e-3 : 1e-9, "shifted");
  }
}

TEST(CpuSinkhorn, AnUnderflowingColumnStaysZeroInsteadOfNaN) {
  // Prototype 2 scores 1000 below every other: exp underflows to exactly 0 for the whole column.
  Tensor s = scores(6, 4, kFloat32, 10);
  raw::select(s, 1, 2).fill_(-1000.0);
  const Mat q = to_mat(run(s, 0.05, 3));
  for (const auto& r : q) {
    EXPECT_EQ(r[2], 0.0);
    double sum = 0;
    for (double v : r) {
      EXPECT_TRUE(std::isfinite(v));
      sum += v;
    }
    EXPECT_NEAR(sum, 1.0, 1e-6);
  }
}

TEST(CpuSinkhorn, BadInputIsAnErrorNamingTheOpAndShape) {
  const Tensor s = scores(4, 3, kFloat32, 11);
  Tensor out = empty({4, 3});
  EXPECT_NE(error_of([&] {
              Tensor o = empty({4});
              cpu::sinkhorn(zeros({4}), 0.05, 3, o);
            }).find("sinkhorn: scores must be [B, K], got [4]"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              Tensor o = empty({0, 3});
              cpu::sinkhorn(zeros({0, 3}), 0.05, 3, o);
            }).find("scores [0, 3] are empty"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              cpu::sinkhorn(zeros({4, 3}, kInt64), 0.05, 3, out);
            }).find("scores are int64"),
            std::string::npos);
  EXPECT_NE(error_of([&] { cpu::sinkhorn(s, 0.0, 3, out); }).find("epsilon must be > 0, got 0"),
            std::string::npos);
  EXPECT_NE(error_of([&] { cpu::sinkhorn(s, -1.0, 3, out); }).find("epsilon"), std::string::npos);
  EXPECT_NE(error_of([&] { cpu::sinkhorn(s, 0.05, 0, out); }).find("iterations must be >= 1"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              Tensor o = empty({3, 4});
              cpu::sinkhorn(s, 0.05, 3, o);
            }).find("out must be a contiguous float32 [4, 3] CPU tensor, got float32 [3, 4]"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              Tensor o = empty({4, 3}, kFloat64);
              cpu::sinkhorn(s, 0.05, 3, o);
            }).find("got float64 [4, 3]"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              Tensor o = raw::transpose(empty({3, 4}), 0, 1);
              cpu::sinkhorn(s, 0.05, 3, o);
            }).find("out must be a contiguous"),
            std::string::npos);
  for (double bad : {kNaN, std::numeric_limits<double>::infinity()}) {
    Tensor t = raw::clone(s);
    t.data_ptr<float>()[5] = static_cast<float>(bad);
    EXPECT_NE(error_of([&] {
                cpu::sinkhorn(t, 0.05, 3, out);
              }).find("sinkhorn: scores [4, 3] contain a non-finite value"),
              std::string::npos);
  }
}
