// kernels/cpu/xcorr: the Barlow Twins cross-correlation against a naive double computation
// (statistics, standardised views and C), non-contiguous inputs and outputs, the backward
// against central finite differences of L = sum(W * C) in float64, and bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>

#include "core/random.h"
#include "core/views.h"
#include "kernels/cpu/xcorr.h"
#include "tests/tensor_test_util.h"

using namespace selfsup;
using namespace selfsup::test;

namespace {

struct NaiveXcorr {
  std::vector<double> ahat, bhat, ra, rb, c;
};

// Standardises z [N, D] (row-major values) per column: zhat and 1/sqrt(var + eps).
void naive_standardise(const std::vector<double>& z, int64_t n, int64_t d, double eps,
                       std::vector<double>& zhat, std::vector<double>& r) {
  zhat.assign(n * d, 0);
  r.assign(d, 0);
  for (int64_t j = 0; j < d; ++j) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < n; ++i)
      mean += z[i * d + j];
    mean /= n;
    for (int64_t i = 0; i < n; ++i)
      var += (z[i * d + j] - mean) * (z[i * d + j] - mean);
    var /= n;
    r[j] = 1.0 / std::sqrt(var + eps);
    for (int64_t i = 0; i < n; ++i)
      zhat[i * d + j] = (z[i * d + j] - mean) * r[j];
  }
}

NaiveXcorr naive_xcorr(const Tensor& za, const Tensor& zb, double eps) {
  const int64_t n = za.size(0), d = za.size(1);
  NaiveXcorr x;
  naive_standardise(za.to_vector<double>(), n, d, eps, x.ahat, x.ra);
  naive_standardise(zb.to_vector<double>(), n, d, eps, x.bhat, x.rb);
  x.c.assign(d * d, 0);
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j < d; ++j) {
      double s = 0;
      for (int64_t k = 0; k < n; ++k)
        s += x.ahat[k * d + i] * x.bhat[k * d + j];
      x.c[i * d + j] = s / n;
    }
  return x;
}

struct XcorrOut {
  Tensor c, ahat, bhat, ra, rb;
  XcorrOut(int64_t n, int64_t d, DType dt)
      : c(poisoned({d, d}, dt)),
        ahat(poisoned({n, d}, dt)),
        bhat(poisoned({n, d}, dt)),
        ra(poisoned({d}, dt)),
        rb(poisoned({d}, dt)) {}
  void run(const Tensor& za, const Tensor& zb, double eps) {
    cpu::cross_correlation(za, zb, eps, c, ahat, bhat, ra, rb);
  }
};

class XcorrTest : public ::testing::TestWithParam<DType> {
 protected:
  Generator gen{2024};
  // Columns with different means and scales, as real embeddings have.
  Tensor embeddings(int64_t n, int64_t d) {
    const auto v = randn({n, d}, kFloat64, &gen).to_vector<double>();
    std::vector<double> w(v.size());
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < d; ++j)
        w[i * d + j] = v[i * d + j] * (0.5 + j % 5) + 0.3 * j;
    return raw::to_dtype(from_vector<double>(w, {n, d}), GetParam());
  }
};

}  // namespace

TEST_P(XcorrTest, ForwardMatchesNaive) {
  const DType dt = GetParam();
  const double tol = dt == kFloat32 ? 2e-5 : 1e-12;
  // D = 150 crosses the kernel's 128-column block; N * D = 300 * 150 takes the threaded path.
  for (auto [n, d] : std::vector<std::pair<int64_t, int64_t>>{{2, 1}, {19, 23}, {300, 150}}) {
    Tensor za = embeddings(n, d), zb = embeddings(n, d);
    const double eps = 1e-5;
    const NaiveXcorr want = naive_xcorr(za, zb, eps);
    XcorrOut out(n, d, dt);
    out.run(za, zb, eps);
    const std::string what = "N " + std::to_string(n) + " D " + std::to_string(d);
    expect_close(out.ahat, want.ahat, tol, "za_hat " + what);
    expect_close(out.bhat, want.bhat, tol, "zb_hat " + what);
    expect_close(out.ra, want.ra, tol, "inv_std_a " + what);
    expect_close(out.rb, want.rb, tol, "inv_std_b " + what);
    expect_close(out.c, want.c, tol, "c " + what);
  }
}

TEST_P(XcorrTest, NonContiguousInputsAndOutputs) {
  const DType dt = GetParam();
  const int64_t n = 17, d = 11;
  Tensor za_t = raw::transpose(raw::contiguous(raw::transpose(embeddings(n, d), 0, 1)), 0, 1);
  Tensor zb_s = raw::narrow(embeddings(n, d + 4), 1, 3, d);
  const NaiveXcorr want = naive_xcorr(za_t, zb_s, 1e-3);
  Tensor c_base = poisoned({d, d}, dt), ahat_base = poisoned({d, n}, dt);
  Tensor ra_base = poisoned({2 * d}, dt);
  Tensor c = raw::transpose(c_base, 0, 1), ahat = raw::transpose(ahat_base, 0, 1);
  Tensor ra = raw::slice(ra_base, 0, 0, 2 * d, 2);
  Tensor bhat = poisoned({n, d}, dt), rb = poisoned({d}, dt);
  cpu::cross_correlation(za_t, zb_s, 1e-3, c, ahat, bhat, ra, rb);
  const double tol = dt == kFloat32 ? 2e-5 : 1e-12;
  expect_close(c, want.c, tol, "c (transposed out)");
  expect_close(ahat, want.ahat, tol, "za_hat (transposed out)");
  expect_close(ra, want.ra, tol, "inv_std_a (strided out)");
  expect_close(bhat, want.bhat, tol, "zb_hat");
}

TEST_P(XcorrTest, SelfCorrelationHasUnitDiagonal) {
  const DType dt = GetParam();
  Tensor z = embeddings(64, 9);
  XcorrOut out(64, 9, dt);
  out.run(z, z, 0.0);
  const auto c = out.c.to_vector<double>();
  for (int64_t i = 0; i < 9; ++i)
    EXPECT_NEAR(c[i * 9 + i], 1.0, dt == kFloat32 ? 1e-5 : 1e-12);
}

INSTANTIATE_TEST_SUITE_P(Float, XcorrTest, ::testing::Values(kFloat32, kFloat64),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(Xcorr, BackwardMatchesFiniteDifferences) {
  Generator gen(11);
  const int64_t n = 7, d = 5;
  const double eps = 1e-3;
  Tensor za = randn({n, d}, kFloat64, &gen), zb = randn({n, d}, kFloat64, &gen);
  const auto w = randn({d, d}, kFloat64, &gen).to_vector<double>();
  // L = sum(W * C): dL/dC = W.
  auto loss = [&](const Tensor& a, const Tensor& b) {
    XcorrOut out(n, d, kFloat64);
    out.run(a, b, eps);
    const auto c = out.c.to_vector<double>();
    double l = 0;
    for (size_t i = 0; i < c.size(); ++i)
      l += w[i] * c[i];
    return l;
  };
  XcorrOut fwd(n, d, kFloat64);
  fwd.run(za, zb, eps);
  Tensor grad_c = from_vector<double>(w, {d, d});
  Tensor ga = poisoned({n, d}, kFloat64), gb = poisoned({n, d}, kFloat64);
  cpu::cross_correlation_backward(grad_c, fwd.ahat, fwd.bhat, fwd.ra, fwd.rb, ga, gb);
  const auto gav = ga.to_vector<double>(), gbv = gb.to_vector<double>();
  const double h = 1e-6;
  for (int64_t i = 0; i < n * d; ++i) {
    Tensor ap = raw::clone(za), am = raw::clone(za), bp = raw::clone(zb), bm = raw::clone(zb);
    ap.data_ptr<double>()[i] += h;
    am.data_ptr<double>()[i] -= h;
    bp.data_ptr<double>()[i] += h;
    bm.data_ptr<double>()[i] -= h;
    EXPECT_NEAR((loss(ap, zb) - loss(am, zb)) / (2 * h), gav[i], 1e-7) << "za at " << i;
    EXPECT_NEAR((loss(za, bp) - loss(za, bm)) / (2 * h), gbv[i], 1e-7) << "zb at " << i;
  }
}

TEST(Xcorr, BackwardFloat32MatchesFloat64AndTransposedGradC) {
  Generator gen(5);
  const int64_t n = 260, d = 140;  // threaded column blocks, two of them
  Tensor za = randn({n, d}, kFloat64, &gen), zb = randn({n, d}, kFloat64, &gen);
  Tensor gc = randn({d, d}, kFloat64, &gen);
  std::vector<double> want_a, want_b;
  for (DType dt : {kFloat64, kFloat32}) {
    XcorrOut fwd(n, d, dt);
    fwd.run(raw::to_dtype(za, dt), raw::to_dtype(zb, dt), 1e-5);
    // grad_c handed over as the transpose of a contiguous transpose: non-contiguous, same values.
    Tensor gct = raw::transpose(raw::contiguous(raw::transpose(raw::to_dtype(gc, dt), 0, 1)), 0, 1);
    Tensor ga = poisoned({n, d}, dt), gb = poisoned({n, d}, dt);
    cpu::cross_correlation_backward(gct, fwd.ahat, fwd.bhat, fwd.ra, fwd.rb, ga, gb);
    if (dt == kFloat64) {
      want_a = ga.to_vector<double>();
      want_b = gb.to_vector<double>();
    } else {
      expect_close(ga, want_a, 1e-4, "float32 grad_za");
      expect_close(gb, want_b, 1e-4, "float32 grad_zb");
    }
  }
}

TEST(Xcorr, BadInputErrors) {
  Tensor c = zeros({4, 4}), ah = zeros({8, 4}), bh = zeros({8, 4}), ra = zeros({4}),
         rb = zeros({4});
  std::string msg = error_of([&] {
    cpu::cross_correlation(zeros({8, 4}), zeros({8, 5}), 1e-5, c, ah, bh, ra, rb);
  });
  EXPECT_NE(msg.find("cross_correlation: za and zb must both be [N, D], got [8, 4] and [8, 5]"),
            std::string::npos)
      << msg;
  Tensor c_bad = zeros({4, 5});
  msg = error_of([&] {
    cpu::cross_correlation(zeros({8, 4}), zeros({8, 4}), 1e-5, c_bad, ah, bh, ra, rb);
  });
  EXPECT_NE(msg.find("c has shape [4, 5], expected [4, 4]"), std::string::npos) << msg;
  msg = error_of([&] {
    cpu::cross_correlation(zeros({8, 4}, kFloat64), zeros({8, 4}, kFloat64), 1e-5, c, ah, bh, ra,
                           rb);
  });
  EXPECT_NE(msg.find("c is float32, expected float64"), std::string::npos) << msg;
  msg = error_of([&] {
    cpu::cross_correlation(zeros({8, 4}, kInt64), zeros({8, 4}, kInt64), 1e-5, c, ah, bh, ra, rb);
  });
  EXPECT_NE(msg.find("expects float32 or float64, got int64"), std::string::npos) << msg;
  Tensor ga = zeros({8, 4}), gb = zeros({8, 3});
  msg = error_of([&] { cpu::cross_correlation_backward(c, ah, bh, ra, rb, ga, gb); });
  EXPECT_NE(msg.find("cross_correlation_backward: grad_zb has shape [8, 3], expected [8, 4]"),
            std::string::npos)
      << msg;
}
