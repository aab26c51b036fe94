// kernels/cpu/linalg: matmul and bmm (Eigen path and triple-loop reference) against a naive
// product computed here in double, on awkward shapes, transposed / sliced / broadcast inputs,
// poisoned and non-contiguous outputs, and bad input.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <functional>
#include <limits>
#include <string>

#include "core/random.h"
#include "core/views.h"
#include "kernels/cpu/linalg.h"
#include "tests/tensor_test_util.h"

using namespace selfsup;
using namespace selfsup::test;

namespace {

// out[b][i][j] = sum_k a[b][i][k] * b[b][k][j] in double, for 3-d a and b (any strides).
std::vector<double> naive_bmm(const Tensor& a, const Tensor& b) {
  const auto av = a.to_vector<double>(), bv = b.to_vector<double>();
  const int64_t nb = a.size(0), m = a.size(1), k = a.size(2), n = b.size(2);
  std::vector<double> out(nb * m * n, 0.0);
  for (int64_t p = 0; p < nb; ++p)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t q = 0; q < k; ++q)
          s += av[(p * m + i) * k + q] * bv[(p * k + q) * n + j];
        out[(p * m + i) * n + j] = s;
      }
  return out;
}

std::vector<double> naive_matmul(const Tensor& a, const Tensor& b) {
  return naive_bmm(raw::unsqueeze(a, 0), raw::unsqueeze(b, 0));
}

// Relative-to-scale tolerance: float32 products of K terms of size ~1 err by ~K * 1e-7.
double tolerance(DType dtype, int64_t k) {
  return (dtype == kFloat32 ? 2e-6 : 1e-13) * static_cast<double>(k + 1);
}

class LinalgTest : public ::testing::TestWithParam<DType> {
 protected:
  Generator gen{1234};
  Tensor randn_(const Shape& s) { return randn(s, GetParam(), &gen); }
};

}  // namespace

TEST_P(LinalgTest, MatmulMatchesNaiveOnAwkwardShapes) {
  const DType dt = GetParam();
  for (auto [m, k, n] : std::vector<std::array<int64_t, 3>>{
           {1, 1, 1}, {7, 13, 5}, {1, 37, 9}, {33, 17, 65}, {129, 70, 45}, {211, 157, 99}}) {
    Tensor a = randn_({m, k}), b = randn_({k, n});
    const auto want = naive_matmul(a, b);
    Tensor out = poisoned({m, n}, dt);
    cpu::matmul(a, b, out);
    expect_close(out, want, tolerance(dt, k), "matmul " + shape_str({m, k, n}));
    Tensor ref = poisoned({m, n}, dt);
    cpu::matmul_reference(a, b, ref);
    expect_close(ref, want, tolerance(dt, k), "matmul_reference " + shape_str({m, k, n}));
  }
}

TEST_P(LinalgTest, MatmulReadsTransposedSlicedAndBroadcastViews) {
  const DType dt = GetParam();
  const int64_t m = 23, k = 19, n = 31;
  // Each input in several layouts: row-major, transposed (strides (1, M)), a narrowed block
  // (leading dim larger than the row), a stepped slice and a broadcast row (both copied).
  auto layouts_of = [&](int64_t rows, int64_t cols) {
    std::vector<std::pair<std::string, Tensor>> v;
    v.emplace_back("contiguous", randn_({rows, cols}));
    v.emplace_back("transposed", raw::transpose(randn_({cols, rows}), 0, 1));
    v.emplace_back("narrowed",
                   raw::narrow(raw::narrow(randn_({rows + 3, cols + 5}), 1, 2, cols), 0, 1, rows));
    v.emplace_back("stepped", raw::slice(randn_({rows, 2 * cols}), 1, 1, 2 * cols, 2));
    v.emplace_back("broadcast", raw::expand(randn_({1, cols}), {rows, cols}));
    return v;
  };
  for (auto& [an, a] : layouts_of(m, k))
    for (auto& [bn, b] : layouts_of(k, n)) {
      const auto want = naive_matmul(a, b);
      Tensor out = poisoned({m, n}, dt);
      cpu::matmul(a, b, out);
      expect_close(out, want, tolerance(dt, k), "matmul a " + an + ", b " + bn);
      Tensor ref = poisoned({m, n}, dt);
      cpu::matmul_reference(a, b, ref);
      expect_close(ref, want, tolerance(dt, k), "reference a " + an + ", b " + bn);
    }
}

TEST_P(LinalgTest, MatmulWritesNonContiguousAndAliasedOut) {
  const DType dt = GetParam();
  Tensor a = randn_({17, 29}), b = randn_({29, 13});
  const auto want = naive_matmul(a, b);
  Tensor base = poisoned({13, 17}, dt);
  Tensor out = raw::transpose(base, 0, 1);  // [17, 13] with strides (1, 17)
  cpu::matmul(a, b, out);
  expect_close(out, want, tolerance(dt, 29), "transposed out");
  // out is a itself: the product must not read a half-written a.
  Tensor sq = randn_({21, 21}), w = randn_({21, 21});
  const auto want_sq = naive_matmul(sq, w);
  cpu::matmul(sq, w, sq);
  expect_close(sq, want_sq, tolerance(dt, 21), "out aliases a");
}

TEST_P(LinalgTest, MatmulWithEmptyInnerDimIsZero) {
  const DType dt = GetParam();
  Tensor out = poisoned({4, 3}, dt);
  cpu::matmul(randn_({4, 0}), randn_({0, 3}), out);
  expect_close(out, std::vector<double>(12, 0.0), 0, "K = 0");
  Tensor ref = poisoned({4, 3}, dt);
  cpu::matmul_reference(randn_({4, 0}), randn_({0, 3}), ref);
  expect_close(ref, std::vector<double>(12, 0.0), 0, "reference K = 0");
  Tensor none = empty({0, 3}, dt);
  cpu::matmul(randn_({0, 5}), randn_({5, 3}), none);  // M = 0: nothing to write, no crash
}

TEST_P(LinalgTest, BmmManySmallAndFewLargeMatrices) {
  const DType dt = GetParam();
  // 37 small products take the batch-parallel path; 2 large ones the Eigen-parallel path.
  for (auto [nb, m, k, n] : std::vector<std::array<int64_t, 4>>{
           {1, 3, 4, 5}, {37, 5, 7, 3}, {9, 31, 17, 23}, {2, 140, 130, 121}}) {
    Tensor a = randn_({nb, m, k}), b = randn_({nb, k, n});
    const auto want = naive_bmm(a, b);
    Tensor out = poisoned({nb, m, n}, dt);
    cpu::bmm(a, b, out);
    expect_close(out, want, tolerance(dt, k), "bmm " + shape_str({nb, m, k, n}));
    Tensor ref = poisoned({nb, m, n}, dt);
    cpu::bmm_reference(a, b, ref);
    expect_close(ref, want, tolerance(dt, k), "bmm_reference " + shape_str({nb, m, k, n}));
  }
}

TEST_P(LinalgTest, BmmReadsPermutedAndBroadcastBatches) {
  const DType dt = GetParam();
  const int64_t nb = 11, m = 9, k = 14, n = 6;
  // a as [M, B, K] permuted to [B, M, K]; b^T per batch; b broadcast over the batch.
  Tensor a = raw::permute(randn_({m, nb, k}), {1, 0, 2});
  Tensor bt = raw::transpose(randn_({nb, n, k}), 1, 2);
  Tensor bb = raw::expand(randn_({1, k, n}), {nb, k, n});
  Tensor base = poisoned({nb, n, m}, dt);
  Tensor out_t = raw::transpose(base, 1, 2);  // non-contiguous out
  for (const Tensor& b : {bt, bb}) {
    const auto want = naive_bmm(a, b);
    Tensor out = poisoned({nb, m, n}, dt);
    cpu::bmm(a, b, out);
    expect_close(out, want, tolerance(dt, k), "bmm permuted");
    cpu::bmm(a, b, out_t);
    expect_close(out_t, want, tolerance(dt, k), "bmm into transposed out");
    Tensor ref = poisoned({nb, m, n}, dt);
    cpu::bmm_reference(a, b, ref);
    expect_close(ref, want, tolerance(dt, k), "bmm_reference permuted");
  }
}

INSTANTIATE_TEST_SUITE_P(Float, LinalgTest, ::testing::Values(kFloat32, kFloat64),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(Linalg, ShapeErrorsNameBothShapes) {
  Tensor out = zeros({2, 5});
  std::string msg = error_of([&] { cpu::matmul(zeros({2, 3}), zeros({4, 5}), out); });
  EXPECT_NE(msg.find("matmul: shapes [2, 3] and [4, 5] do not match"), std::string::npos) << msg;
  msg = error_of([&] { cpu::matmul_reference(zeros({2, 3}), zeros({4, 5}), out); });
  EXPECT_NE(msg.find("shapes [2, 3] and [4, 5] do not match"), std::string::npos) << msg;
  Tensor bad_out = zeros({5, 2});
  msg = error_of([&] { cpu::matmul(zeros({2, 3}), zeros({3, 5}), bad_out); });
  EXPECT_NE(msg.find("out has shape [5, 2], expected [2, 5]"), std::string::npos) << msg;
  Tensor out3 = zeros({2, 4, 5});
  msg = error_of([&] { cpu::bmm(zeros({2, 4, 3}), zeros({3, 3, 5}), out3); });
  EXPECT_NE(msg.find("bmm: shapes [2, 4, 3] and [3, 3, 5] do not match"), std::string::npos) << msg;
  msg = error_of([&] { cpu::bmm(zeros({2, 3}), zeros({3, 5}), out3); });
  EXPECT_NE(msg.find("bmm: expects 3-d tensors"), std::string::npos) << msg;
}

TEST(Linalg, DtypeErrors) {
  Tensor out = zeros({2, 2});
  std::string msg = error_of([&] { cpu::matmul(zeros({2, 2}, kFloat64), zeros({2, 2}), out); });
  EXPECT_NE(msg.find("matmul: dtypes float64, float32"), std::string::npos) << msg;
  Tensor iout = zeros({2, 2}, kInt64);
  msg = error_of([&] { cpu::matmul(zeros({2, 2}, kInt64), zeros({2, 2}, kInt64), iout); });
  EXPECT_NE(msg.find("matmul: expects float32 or float64, got int64"), std::string::npos) << msg;
}
