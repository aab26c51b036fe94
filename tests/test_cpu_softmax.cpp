// kernels/cpu/softmax: softmax / log_softmax and their backwards along every dim against naive
// double loops, any layout, poisoned outputs; fused cross-entropy (hard and soft targets)
// against a naive loss and finite differences of that loss; error messages.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>

#include "core/random.h"
#include "core/strided.h"
#include "core/views.h"
#include "kernels/cpu/softmax.h"
#include "tests/tensor_test_util.h"

using namespace selfsup;
using namespace selfsup::test;

namespace {

// The flat (row-major) indices of the elements of each row along dim of a tensor of `shape`.
std::vector<std::vector<int64_t>> rows_of(const Shape& shape, int64_t dim) {
  const Shape strides = contiguous_strides(shape);
  Shape outer = shape, outer_strides = strides;
  outer.erase(outer.begin() + dim);
  outer_strides.erase(outer_strides.begin() + dim);
  std::vector<std::vector<int64_t>> rows;
  for (int64_t r = 0; r < shape_numel(outer); ++r) {
    const int64_t start = strided_offset(r, outer, outer_strides);
    std::vector<int64_t> row;
    for (int64_t i = 0; i < shape[dim]; ++i)
      row.push_back(start + i * strides[dim]);
    rows.push_back(row);
  }
  return rows;
}

// Naive softmax / log_softmax in double, max-subtracted.
std::vector<double> naive_softmax(const Tensor& x, int64_t dim, bool log) {
  const auto v = x.to_vector<double>();
  std::vector<double> out(v.size());
  for (const auto& row : rows_of(x.shape(), dim)) {
    double m = -INFINITY, s = 0;
    for (int64_t i : row)
      m = std::max(m, v[i]);
    for (int64_t i : row)
      s += std::exp(v[i] - m);
    for (int64_t i : row)
      out[i] = log ? v[i] - m - std::log(s) : std::exp(v[i] - m) / s;
  }
  return out;
}

double tol_for(DType dt) {
  return dt == kFloat32 ? 2e-5 : 1e-12;
}

class SoftmaxTest : public ::testing::TestWithParam<DType> {
 protected:
  Generator gen{99};
  Tensor randn_(const Shape& s, double scale = 1.0) {
    Tensor t = randn(s, GetParam(), &gen);
    Tensor scaled = empty(s, GetParam());
    const auto v = t.to_vector<double>();
    std::vector<double> w(v.size());
    for (size_t i = 0; i < v.size(); ++i)
      w[i] = v[i] * scale;
    raw::copy_(scaled, from_vector<double>(w, s));
    return scaled;
  }
};

}  // namespace

TEST_P(SoftmaxTest, ForwardAlongEveryDimAndLayout) {
  const DType dt = GetParam();
  const Shape shape{5, 7, 11};
  Tensor base = randn_({11, 5, 7}, 3.0);
  const Tensor permuted = raw::permute(base, {1, 2, 0});  // [5, 7, 11], nothing contiguous
  const Tensor contiguous = raw::contiguous(permuted);
  for (int64_t dim : {0, 1, 2, -1}) {
    const int64_t d = dim < 0 ? dim + 3 : dim;
    for (bool log : {false, true}) {
      const auto want = naive_softmax(contiguous, d, log);
      const std::string what =
          std::string(log ? "log_softmax" : "softmax") + " dim " + std::to_string(dim);
      for (const Tensor& x : {contiguous, permuted}) {
        Tensor out = poisoned(shape, dt);
        log ? cpu::log_softmax(x, dim, out) : cpu::softmax(x, dim, out);
        expect_close(out, want, tol_for(dt), what);
        // A transposed out, too.
        Tensor out_base = poisoned({11, 7, 5}, dt);
        Tensor out_t = raw::permute(out_base, {2, 1, 0});
        log ? cpu::log_softmax(x, dim, out_t) : cpu::softmax(x, dim, out_t);
        expect_close(out_t, want, tol_for(dt), what + " (transposed out)");
      }
    }
  }
}

TEST_P(SoftmaxTest, LargeLogitsStayFiniteAndRowsParallel) {
  const DType dt = GetParam();
  // 300 rows of 131: large enough for the threaded path; values near 1000 would overflow exp
  // without the max subtraction.
  Tensor x = randn_({300, 131}, 50.0);
  Tensor shifted = empty({300, 131}, dt);
  const auto v = x.to_vector<double>();
  std::vector<double> w(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    w[i] = v[i] + 1000.0;
  raw::copy_(shifted, from_vector<double>(w, {300, 131}));
  for (bool log : {false, true}) {
    Tensor out = poisoned({300, 131}, dt);
    log ? cpu::log_softmax(shifted, 1, out) : cpu::softmax(shifted, 1, out);
    expect_close(out, naive_softmax(shifted, 1, log), dt == kFloat32 ? 1e-4 : 1e-10,
                 log ? "log_softmax" : "softmax");
  }
}

TEST_P(SoftmaxTest, InPlaceAndZeroDim) {
  const DType dt = GetParam();
  Tensor x = randn_({6, 9});
  const auto want = naive_softmax(x, 1, false);
  cpu::softmax(x, 1, x);
  expect_close(x, want, tol_for(dt), "in place");
  Tensor s = full({}, 3.0, dt), out = poisoned({}, dt);
  cpu::softmax(s, 0, out);
  EXPECT_EQ(out.item(), 1.0);
  cpu::log_softmax(s, -1, out);
  EXPECT_EQ(out.item(), 0.0);
}

TEST_P(SoftmaxTest, BackwardsMatchNaiveFormulaAndFiniteDifferences) {
  const DType dt = GetParam();
  const Shape shape{4, 9, 6};
  Tensor x = randn_(shape, 2.0), gy = randn_(shape);
  for (int64_t dim : {0, 1, 2}) {
    for (bool log : {false, true}) {
      Tensor y = poisoned(shape, dt);
      log ? cpu::log_softmax(x, dim, y) : cpu::softmax(x, dim, y);
      // Naive backward in double from the same y.
      const auto yv = y.to_vector<double>(), gv = gy.to_vector<double>();
      std::vector<double> want(yv.size());
      for (const auto& row : rows_of(shape, dim)) {
        double s = 0;
        for (int64_t i : row)
          s += log ? gv[i] : gv[i] * yv[i];
        for (int64_t i : row)
          want[i] = log ? gv[i] - std::exp(yv[i]) * s : yv[i] * (gv[i] - s);
      }
      // Non-contiguous grad_y: a transposed copy of gy.
      Tensor gy_t = raw::transpose(raw::contiguous(raw::transpose(gy, 0, 2)), 0, 2);
      Tensor gx = poisoned(shape, dt);
      log ? cpu::log_softmax_backward(gy_t, y, dim, gx) : cpu::softmax_backward(gy_t, y, dim, gx);
      expect_close(gx, want, tol_for(dt) * 5, "backward dim " + std::to_string(dim));
      if (dt != kFloat64) continue;
      // Central differences of L(x) = sum(gy * f(x)) at a few elements.
      auto loss = [&](const Tensor& xx) {
        Tensor yy = empty(shape, dt);
        log ? cpu::log_softmax(xx, dim, yy) : cpu::softmax(xx, dim, yy);
        double l = 0;
        const auto a = yy.to_vector<double>();
        for (size_t i = 0; i < a.size(); ++i)
          l += a[i] * gv[i];
        return l;
      };
      const auto gxv = gx.to_vector<double>();
      for (int64_t i : {0, 17, 100, 215}) {
        Tensor xp = raw::clone(x), xm = raw::clone(x);
        xp.data_ptr<double>()[i] += 1e-6;
        xm.data_ptr<double>()[i] -= 1e-6;
        EXPECT_NEAR((loss(xp) - loss(xm)) / 2e-6, gxv[i], 1e-6) << "dim " << dim << " at " << i;
      }
    }
  }
}

// ---- cross-entropy ----

namespace {

// Mean over rows of -sum_c p_ic log_softmax(x)_ic, in double; p from hard or soft targets.
double naive_ce(const std::vector<double>& x, const std::vector<double>& p, int64_t n, int64_t c) {
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    double m = -INFINITY, s = 0;
    for (int64_t j = 0; j < c; ++j)
      m = std::max(m, x[i * c + j]);
    for (int64_t j = 0; j < c; ++j)
      s += std::exp(x[i * c + j] - m);
    for (int64_t j = 0; j < c; ++j)
      total -= p[i * c + j] * (x[i * c + j] - m - std::log(s));
  }
  return total / static_cast<double>(n);
}

std::vector<double> one_hot(const Tensor& targets, int64_t c) {
  const auto t = targets.to_vector<int64_t>();
  std::vector<double> p(t.size() * c, 0.0);
  for (size_t i = 0; i < t.size(); ++i)
    p[i * c + t[i]] = 1.0;
  return p;
}

// The gradient of the mean loss: (softmax(x) * sum_c p - p) / N, in double.
std::vector<double> naive_ce_grad(const std::vector<double>& x, const std::vector<double>& p,
                                  int64_t n, int64_t c) {
  std::vector<double> g(x.size());
  for (int64_t i = 0; i < n; ++i) {
    double m = -INFINITY, s = 0, mass = 0;
    for (int64_t j = 0; j < c; ++j)
      m = std::max(m, x[i * c + j]);
    for (int64_t j = 0; j < c; ++j)
      s += std::exp(x[i * c + j] - m), mass += p[i * c + j];
    for (int64_t j = 0; j < c; ++j)
      g[i * c + j] = (std::exp(x[i * c + j] - m) / s * mass - p[i * c + j]) / n;
  }
  return g;
}

}  // namespace

TEST_P(SoftmaxTest, CrossEntropyMatchesNaiveLossAndGradient) {
  const DType dt = GetParam();
  for (auto [n, c] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {13, 7}, {300, 151}}) {
    Tensor logits = randn_({n, c}, 4.0);
    Tensor targets = randint(0, c, {n}, kInt64, &gen);
    const auto xv = logits.to_vector<double>();
    const auto p = one_hot(targets, c);
    Tensor loss = poisoned({}, dt), grad = poisoned({n, c}, dt);
    cpu::cross_entropy(logits, targets, loss, grad);
    const double want = naive_ce(xv, p, n, c);
    EXPECT_NEAR(loss.item(), want, tol_for(dt) * (1 + std::abs(want))) << n << "x" << c;
    expect_close(grad, naive_ce_grad(xv, p, n, c), tol_for(dt), "ce grad");
    // Transposed logits and grad, strided targets; and no gradient at all.
    Tensor logits_t = raw::transpose(raw::contiguous(raw::transpose(logits, 0, 1)), 0, 1);
    Tensor grad_base = poisoned({c, n}, dt);
    Tensor grad_t = raw::transpose(grad_base, 0, 1);
    Tensor targets2 = randint(0, c, {n, 2}, kInt64, &gen);
    raw::copy_(targets2, raw::unsqueeze(targets, 1));
    Tensor targets_s = raw::select(targets2, 1, 0);  // stride 2
    Tensor loss2 = poisoned({}, dt), no_grad;
    cpu::cross_entropy(logits_t, targets_s, loss2, grad_t);
    EXPECT_NEAR(loss2.item(), loss.item(), tol_for(dt));
    expect_close(grad_t, naive_ce_grad(xv, p, n, c), tol_for(dt), "ce grad (transposed)");
    cpu::cross_entropy(logits, targets, loss2, no_grad);
    EXPECT_NEAR(loss2.item(), loss.item(), tol_for(dt));
  }
}

TEST(CrossEntropy, GradientMatchesFiniteDifferencesOfTheLoss) {
  Generator gen(7);
  const int64_t n = 6, c = 5;
  Tensor logits = randn({n, c}, kFloat64, &gen), targets = randint(0, c, {n}, kInt64, &gen);
  Tensor soft = rand({n, c}, kFloat64, &gen);  // unnormalised on purpose: mass != 1 per row
  Tensor loss = scalar_tensor(0, kFloat64), grad = empty({n, c}, kFloat64);
  Tensor soft_grad = empty({n, c}, kFloat64), none;
  cpu::cross_entropy(logits, targets, loss, grad);
  cpu::cross_entropy_soft(logits, soft, loss, soft_grad);
  const auto g = grad.to_vector<double>(), gs = soft_grad.to_vector<double>();
  auto loss_at = [&](const Tensor& x, bool use_soft) {
    Tensor l = scalar_tensor(0, kFloat64);
    use_soft ? cpu::cross_entropy_soft(x, soft, l, none) : cpu::cross_entropy(x, targets, l, none);
    return l.item();
  };
  for (int64_t i = 0; i < n * c; ++i) {
    Tensor xp = raw::clone(logits), xm = raw::clone(logits);
    xp.data_ptr<double>()[i] += 1e-6;
    xm.data_ptr<double>()[i] -= 1e-6;
    EXPECT_NEAR((loss_at(xp, false) - loss_at(xm, false)) / 2e-6, g[i], 1e-7) << i;
    EXPECT_NEAR((loss_at(xp, true) - loss_at(xm, true)) / 2e-6, gs[i], 1e-7) << i;
  }
}

TEST_P(SoftmaxTest, SoftCrossEntropyMatchesNaiveAndHardTargets) {
  const DType dt = GetParam();
  for (auto [n, c] : std::vector<std::pair<int64_t, int64_t>>{{9, 3}, {257, 130}}) {
    Tensor logits = randn_({n, c}, 3.0);
    Tensor probs = empty({n, c}, dt);
    cpu::softmax(randn_({n, c}), 1, probs);
    const auto xv = logits.to_vector<double>(), pv = probs.to_vector<double>();
    Tensor loss = poisoned({}, dt), grad = poisoned({n, c}, dt);
    cpu::cross_entropy_soft(logits, probs, loss, grad);
    const double want = naive_ce(xv, pv, n, c);
    EXPECT_NEAR(loss.item(), want, tol_for(dt) * (1 + std::abs(want)));
    expect_close(grad, naive_ce_grad(xv, pv, n, c), tol_for(dt), "soft ce grad");
    // One-hot soft targets give the hard-target loss and gradient.
    Tensor targets = randint(0, c, {n}, kInt64, &gen);
    Tensor hot = empty({n, c}, dt);
    raw::copy_(hot, from_vector<double>(one_hot(targets, c), {n, c}));
    Tensor l1 = poisoned({}, dt), l2 = poisoned({}, dt);
    Tensor g1 = poisoned({n, c}, dt), g2 = poisoned({n, c}, dt);
    cpu::cross_entropy_soft(logits, hot, l1, g1);
    cpu::cross_entropy(logits, targets, l2, g2);
    EXPECT_NEAR(l1.item(), l2.item(), tol_for(dt) * (1 + std::abs(l2.item())));
    expect_close(g1, g2.to_vector<double>(), tol_for(dt), "one-hot vs hard");
  }
}

INSTANTIATE_TEST_SUITE_P(Float, SoftmaxTest, ::testing::Values(kFloat32, kFloat64),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

// Masked logits (-inf) add nothing to a row's logsumexp, wherever they sit in the row: the first
// entry of row 0, all but the target of row 1. The loss and gradient are those of the finite
// logits alone.
TEST(CrossEntropy, MaskedLogitsAddNothingEvenFirstInTheRow) {
  const double inf = std::numeric_limits<double>::infinity();
  for (DType dtype : {kFloat32, kFloat64}) {
    Tensor logits =
        raw::to_dtype(from_vector<double>({-inf, 1.0, 2.0, -inf, 0.5, -inf}, {2, 3}), dtype);
    Tensor targets = from_vector<int64_t>({2, 1}, {2});
    Tensor loss = zeros({}, dtype), grad = zeros({2, 3}, dtype);
    cpu::cross_entropy(logits, targets, loss, grad);
    // Row 0: logsumexp(1, 2) - 2; row 1: logsumexp(0.5) - 0.5 = 0.
    const double want = 0.5 * (std::log(std::exp(1.0) + std::exp(2.0)) - 2.0);
    EXPECT_NEAR(loss.item(), want, 1e-6) << dtype_name(dtype);
    const std::vector<double> g = grad.to_vector<double>();
    const double p1 = std::exp(1.0) / (std::exp(1.0) + std::exp(2.0));
    const std::vector<double> want_g = {0.0, p1 / 2, (1 - p1 - 1) / 2, 0.0, 0.0, 0.0};
    for (size_t i = 0; i < g.size(); ++i)
      EXPECT_NEAR(g[i], want_g[i], 1e-6) << dtype_name(dtype) << " element " << i;
  }
}

TEST(CrossEntropy, BadTargetsNameTheRowAndValue) {
  Tensor logits = zeros({4, 5}), loss = zeros({}), grad = zeros({4, 5});
  std::string msg = error_of([&] {
    cpu::cross_entropy(logits, from_vector<int64_t>({0, 1, 9, 2}, {4}), loss, grad);
  });
  EXPECT_NE(msg.find("cross_entropy: target 9 at row 2 is out of range [0, 5)"), std::string::npos)
      << msg;
  msg = error_of([&] {
    cpu::cross_entropy(logits, from_vector<int64_t>({0, 1, 2, -1}, {4}), loss, grad);
  });
  EXPECT_NE(msg.find("target -1 at row 3"), std::string::npos) << msg;
  msg = error_of([&] { cpu::cross_entropy(logits, zeros({3}, kInt64), loss, grad); });
  EXPECT_NE(msg.find("targets have shape [3], expected [4]"), std::string::npos) << msg;
  msg = error_of([&] { cpu::cross_entropy(logits, zeros({4}), loss, grad); });
  EXPECT_NE(msg.find("targets must be an int64"), std::string::npos) << msg;
  Tensor bad_grad = zeros({5, 4});
  msg = error_of([&] { cpu::cross_entropy(logits, zeros({4}, kInt64), loss, bad_grad); });
  EXPECT_NE(msg.find("grad_logits has shape [5, 4], expected [4, 5]"), std::string::npos) << msg;
  msg = error_of([&] { cpu::cross_entropy_soft(logits, zeros({4, 6}), loss, grad); });
  EXPECT_NE(msg.find("cross_entropy_soft: targets has shape [4, 6], expected [4, 5]"),
            std::string::npos)
      << msg;
  Tensor loss64 = zeros({}, kFloat64);
  msg = error_of([&] { cpu::cross_entropy(logits, zeros({4}, kInt64), loss64, grad); });
  EXPECT_NE(msg.find("loss must be a one-element float32"), std::string::npos) << msg;
}

TEST(Softmax, BadInputErrors) {
  Tensor x = zeros({3, 4}), out = zeros({3, 4});
  std::string msg = error_of([&] { cpu::softmax(x, 2, out); });
  EXPECT_NE(msg.find("softmax: dim 2 is out of range"), std::string::npos) << msg;
  Tensor wrong = zeros({4, 3});
  msg = error_of([&] { cpu::log_softmax(x, 1, wrong); });
  EXPECT_NE(msg.find("log_softmax: out has shape [4, 3], expected [3, 4]"), std::string::npos)
      << msg;
  Tensor xi = zeros({3, 4}, kInt64), outi = zeros({3, 4}, kInt64);
  msg = error_of([&] { cpu::softmax(xi, 1, outi); });
  EXPECT_NE(msg.find("softmax: expects float32 or float64, got int64"), std::string::npos) << msg;
  Tensor y64 = zeros({3, 4}, kFloat64);
  msg = error_of([&] { cpu::softmax_backward(x, y64, 1, out); });
  EXPECT_NE(msg.find("softmax_backward: second input is float64, expected float32"),
            std::string::npos)
      << msg;
}
