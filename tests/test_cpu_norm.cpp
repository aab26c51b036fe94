// kernels/cpu/norm: batch norm, layer norm and dropout against their formulas written out in the
// test, backward passes against finite differences, dropout against the Philox convention.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "core/random.h"
#include "core/tensor.h"
#include "core/views.h"
#include "kernels/cpu/norm.h"
#include "tests/tensor_test_util.h"

using namespace selfsup;
using namespace selfsup::test;

namespace {

// A non-contiguous [N, C, ...] tensor: stored with dims 0 and 1 swapped.
Tensor random_swapped(const Shape& shape, DType dtype, uint64_t seed, double scale = 1.0,
                      double shift = 0.0) {
  Shape s = shape;
  std::swap(s[0], s[1]);
  return raw::transpose(random_normal(s, dtype, seed, scale, shift), 0, 1);
}

std::vector<double> numeric_grad(Tensor& t, const std::function<double()>& loss) {
  std::vector<double> g(t.numel());
  double* p = t.data_ptr<double>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    const double keep = p[i], h = 1e-6;
    p[i] = keep + h;
    const double lp = loss();
    p[i] = keep - h;
    const double lm = loss();
    p[i] = keep;
    g[i] = (lp - lm) / (2 * h);
  }
  return g;
}

double dot(const Tensor& a, const Tensor& b) {
  auto av = a.to_vector<double>(), bv = b.to_vector<double>();
  double s = 0;
  for (size_t i = 0; i < av.size(); ++i)
    s += av[i] * bv[i];
  return s;
}

// Per-channel mean and biased variance of a row-major [N, C, S] vector, in double.
void channel_moments(const std::vector<double>& x, int64_t N, int64_t C, int64_t S,
                     std::vector<double>& mean, std::vector<double>& var) {
  mean.assign(C, 0);
  var.assign(C, 0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t s = 0; s < S; ++s)
        mean[c] += x[(n * C + c) * S + s] / double(N * S);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t s = 0; s < S; ++s) {
        const double d = x[(n * C + c) * S + s] - mean[c];
        var[c] += d * d / double(N * S);
      }
}

const std::vector<Shape> kBatchShapes = {{13, 4}, {5, 3, 7, 6}, {3, 5, 11}, {37, 17, 9, 7}};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Batch norm
// ---------------------------------------------------------------------------------------------

TEST(CpuBatchNorm, TrainingNormalisesEachChannelAndUpdatesRunningStats) {
  for (DType dt : {kFloat64, kFloat32}) {
    const double tol = dt == kFloat64 ? 1e-10 : 2e-4;
    for (const Shape& shape : kBatchShapes) {
      const int64_t N = shape[0], C = shape[1], S = shape_numel(shape) / (N * C);
      Tensor x = random_swapped(shape, dt, 1, 3.0, 2.0);  // mean ~2, std ~3, non-contiguous
      Tensor rm = random_normal({C}, dt, 2), rv = full({C}, 1.5, dt);
      const auto rm0 = rm.to_vector<double>(), rv0 = rv.to_vector<double>();
      Tensor none, out = poisoned(shape, dt);
      Tensor sm = poisoned({C}, dt), si = poisoned({C}, dt);
      const double momentum = 0.1, eps = 1e-5;
      cpu::batch_norm(x, none, none, rm, rv, true, momentum, eps, out, sm, si);

      std::vector<double> mean, var, out_mean, out_var;
      channel_moments(x.to_vector<double>(), N, C, S, mean, var);
      channel_moments(out.to_vector<double>(), N, C, S, out_mean, out_var);
      const std::string what = shape_str(shape) + " " + dtype_name(dt);
      for (int64_t c = 0; c < C; ++c) {
        EXPECT_NEAR(out_mean[c], 0.0, tol * 10) << what;
        EXPECT_NEAR(out_var[c], var[c] / (var[c] + eps), tol * 10) << what;  // ~1
        const double unbiased = var[c] * double(N * S) / double(N * S - 1);
        EXPECT_NEAR(rm.to_vector<double>()[c], 0.9 * rm0[c] + 0.1 * mean[c], tol) << what;
        EXPECT_NEAR(rv.to_vector<double>()[c], 0.9 * rv0[c] + 0.1 * unbiased, tol) << what;
        EXPECT_NEAR(sm.to_vector<double>()[c], mean[c], tol * (1 + std::abs(mean[c]))) << what;
        EXPECT_NEAR(si.to_vector<double>()[c], 1 / std::sqrt(var[c] + eps), tol) << what;
      }
    }
  }
}

TEST(CpuBatchNorm, AffineAndEvalMatchTheFormula) {
  for (DType dt : {kFloat64, kFloat32}) {
    const double tol = dt == kFloat64 ? 1e-12 : 1e-5;
    for (const Shape& shape : kBatchShapes) {
      const int64_t N = shape[0], C = shape[1], S = shape_numel(shape) / (N * C);
      Tensor x = random_normal(shape, dt, 3, 2.0, -1.0);
      Tensor w = random_normal({C}, dt, 4), b = random_normal({C}, dt, 5);
      Tensor rm = random_normal({C}, dt, 6);
      Tensor rv = random_normal({C}, dt, 7, 0.2, 1.0);  // positive
      const double eps = 1e-3;
      for (bool training : {true, false}) {
        Tensor rm_copy = raw::clone(rm), rv_copy = raw::clone(rv);
        Tensor out = poisoned(shape, dt), sm = poisoned({C}, dt), si = poisoned({C}, dt);
        cpu::batch_norm(x, w, b, rm_copy, rv_copy, training, 0.1, eps, out, sm, si);
        std::vector<double> mean = rm.to_vector<double>(), var = rv.to_vector<double>();
        if (training) channel_moments(x.to_vector<double>(), N, C, S, mean, var);
        if (!training) {  // eval leaves the running statistics alone
          EXPECT_EQ(rm_copy.to_vector<double>(), rm.to_vector<double>());
          EXPECT_EQ(rv_copy.to_vector<double>(), rv.to_vector<double>());
        }
        auto xv = x.to_vector<double>(), wv = w.to_vector<double>(), bv = b.to_vector<double>();
        std::vector<double> want(xv.size());
        for (int64_t i = 0; i < x.numel(); ++i) {
          const int64_t c = (i / S) % C;
          want[i] = (xv[i] - mean[c]) / std::sqrt(var[c] + eps) * wv[c] + bv[c];
        }
        const std::string what =
            shape_str(shape) + " " + dtype_name(dt) + (training ? " train" : " eval");
        expect_close(out.to_vector<double>(), want, tol, what);
        expect_close(sm.to_vector<double>(), mean, tol, what + " save_mean");
      }
    }
  }
}

TEST(CpuBatchNorm, NonContiguousRunningStatsAndOutput) {
  const Shape shape{6, 5, 4};
  Tensor x = random_normal(shape, kFloat64, 8);
  Tensor stats = zeros({5, 2}, kFloat64);  // columns: running mean, running var
  Tensor rm = raw::select(stats, 1, 0), rv = raw::select(stats, 1, 1);
  raw::copy_(rv, ones({5}, kFloat64));
  Tensor out = raw::transpose(poisoned({5, 6, 4}, kFloat64), 0, 1);
  Tensor none, sm = poisoned({5}, kFloat64), si = poisoned({5}, kFloat64);
  cpu::batch_norm(x, none, none, rm, rv, true, 0.5, 1e-5, out, sm, si);
  Tensor rm2 = zeros({5}, kFloat64), rv2 = ones({5}, kFloat64), out2 = poisoned(shape, kFloat64);
  cpu::batch_norm(x, none, none, rm2, rv2, true, 0.5, 1e-5, out2, sm, si);
  EXPECT_EQ(out.to_vector<double>(), out2.to_vector<double>());
  EXPECT_EQ(rm.to_vector<double>(), rm2.to_vector<double>());
  EXPECT_EQ(rv.to_vector<double>(), rv2.to_vector<double>());
  // Without running statistics training still works.
  Tensor out3 = poisoned(shape, kFloat64);
  cpu::batch_norm(x, none, none, none, none, true, 0.5, 1e-5, out3, sm, si);
  EXPECT_EQ(out3.to_vector<double>(), out2.to_vector<double>());
}

// L = sum(R * batch_norm(x, w, b)) in training mode: the kernel's three gradients against
// central differences (the batch statistics move with x).
TEST(CpuBatchNorm, BackwardMatchesFiniteDifferences) {
  for (const Shape& shape : {Shape{7, 3}, Shape{3, 4, 5}, Shape{2, 3, 3, 4}}) {
    const int64_t C = shape[1];
    Tensor x = random_normal(shape, kFloat64, 9, 2.0, 1.0);
    Tensor w = random_normal({C}, kFloat64, 10), b = random_normal({C}, kFloat64, 11);
    Tensor R = random_normal(shape, kFloat64, 12);
    Tensor none;
    const double eps = 1e-4;
    auto loss = [&] {
      Tensor out = poisoned(shape, kFloat64), sm = poisoned({C}, kFloat64),
             si = poisoned({C}, kFloat64);
      cpu::batch_norm(x, w, b, none, none, true, 0.1, eps, out, sm, si);
      return dot(out, R);
    };
    Tensor out = poisoned(shape, kFloat64), sm = poisoned({C}, kFloat64),
           si = poisoned({C}, kFloat64);
    cpu::batch_norm(x, w, b, none, none, true, 0.1, eps, out, sm, si);
    Tensor gx = poisoned(shape, kFloat64), gw = poisoned({C}, kFloat64),
           gb = poisoned({C}, kFloat64);
    // grad_out given as a non-contiguous view with the same values.
    Tensor R_view = raw::transpose(raw::contiguous(raw::transpose(R, 0, 1)), 0, 1);
    cpu::batch_norm_backward(R_view, x, w, sm, si, gx, gw, gb);
    const std::string what = shape_str(shape);
    expect_close(gx.to_vector<double>(), numeric_grad(x, loss), 1e-6, "grad_x " + what);
    expect_close(gw.to_vector<double>(), numeric_grad(w, loss), 1e-6, "grad_w " + what);
    expect_close(gb.to_vector<double>(), numeric_grad(b, loss), 1e-6, "grad_b " + what);
    // Without affine the gradient is the weight-1 one; grad_w/grad_b may be skipped.
    Tensor gx1 = poisoned(shape, kFloat64);
    cpu::batch_norm_backward(R, x, none, sm, si, gx1, none, none);
    Tensor ones_w = ones({C}, kFloat64), gx_ones = poisoned(shape, kFloat64);
    cpu::batch_norm_backward(R, x, ones_w, sm, si, gx_ones, none, none);
    EXPECT_EQ(gx1.to_vector<double>(), gx_ones.to_vector<double>());
  }
}

TEST(CpuBatchNorm, BackwardFloat32AgreesWithFloat64OnALargeBatch) {
  const Shape shape{37, 17, 9, 7};
  Tensor x = random_normal(shape, kFloat64, 13), R = random_normal(shape, kFloat64, 14);
  Tensor w = random_normal({17}, kFloat64, 15), none;
  Tensor gx[2], gw[2], gb[2];
  int k = 0;
  for (DType dt : {kFloat64, kFloat32}) {
    Tensor xd = raw::to_dtype(x, dt), wd = raw::to_dtype(w, dt);
    Tensor out = poisoned(shape, dt), sm = poisoned({17}, dt), si = poisoned({17}, dt);
    cpu::batch_norm(xd, wd, none, none, none, true, 0.1, 1e-5, out, sm, si);
    gx[k] = poisoned(shape, dt), gw[k] = poisoned({17}, dt), gb[k] = poisoned({17}, dt);
    cpu::batch_norm_backward(raw::to_dtype(R, dt), xd, wd, sm, si, gx[k], gw[k], gb[k]);
    ++k;
  }
  expect_close(gx[1].to_vector<double>(), gx[0].to_vector<double>(), 1e-4, "grad_x");
  expect_close(gw[1].to_vector<double>(), gw[0].to_vector<double>(), 1e-4, "grad_w");
  expect_close(gb[1].to_vector<double>(), gb[0].to_vector<double>(), 1e-4, "grad_b");
}

TEST(CpuBatchNorm, EvalBackwardIsTheAffineMap) {
  const Shape shape{4, 3, 5};
  Tensor x = random_normal(shape, kFloat64, 16);
  Tensor w = random_normal({3}, kFloat64, 17), b = random_normal({3}, kFloat64, 18);
  Tensor rm = random_normal({3}, kFloat64, 19), rv = random_normal({3}, kFloat64, 20, 0.1, 1.0);
  Tensor R = random_normal(shape, kFloat64, 21);
  Tensor sm = poisoned({3}, kFloat64), si = poisoned({3}, kFloat64);
  auto loss = [&] {
    Tensor out = poisoned(shape, kFloat64);
    cpu::batch_norm(x, w, b, rm, rv, false, 0.1, 1e-5, out, sm, si);
    return dot(out, R);
  };
  loss();  // writes save_invstd from the running variance
  Tensor gx = poisoned(shape, kFloat64);
  cpu::batch_norm_eval_backward(R, w, si, gx);
  expect_close(gx.to_vector<double>(), numeric_grad(x, loss), 1e-6, "eval grad_x");
}

TEST(CpuBatchNorm, Errors) {
  Tensor x = zeros({4, 3, 5}), none, out = zeros({4, 3, 5});
  Tensor rm = zeros({3}), rv = ones({3}), sm = zeros({3}), si = zeros({3});
  Tensor w4 = ones({4});
  expect_error([&] { cpu::batch_norm(x, w4, none, rm, rv, true, 0.1, 1e-5, out, sm, si); },
               "batch_norm: weight [4] does not match input [4, 3, 5] (expects [3])");
  Tensor x1 = zeros({5});
  expect_error([&] { cpu::batch_norm(x1, none, none, rm, rv, true, 0.1, 1e-5, out, sm, si); },
               "batch_norm: input must be [N, C] or [N, C, *], got [5]");
  expect_error([&] { cpu::batch_norm(x, none, none, none, none, false, 0.1, 1e-5, out, sm, si); },
               "batch_norm: eval mode needs running_mean and running_var");
  Tensor x_one = zeros({1, 3}), out_one = zeros({1, 3});
  expect_error(
      [&] { cpu::batch_norm(x_one, none, none, rm, rv, true, 0.1, 1e-5, out_one, sm, si); },
      "batch_norm: training needs more than 1 value per channel, got input [1, 3]");
  Tensor out_bad = zeros({4, 3, 6});
  expect_error([&] { cpu::batch_norm(x, none, none, rm, rv, true, 0.1, 1e-5, out_bad, sm, si); },
               "batch_norm: out has shape [4, 3, 6], expected [4, 3, 5]");
  Tensor rm64 = zeros({3}, kFloat64);
  expect_error([&] { cpu::batch_norm(x, none, none, rm64, rv, true, 0.1, 1e-5, out, sm, si); },
               "batch_norm: running_mean is float64, expected float32");
  Tensor gx = zeros({4, 3, 5}), g_bad = zeros({4, 3, 4});
  expect_error([&] { cpu::batch_norm_backward(g_bad, x, none, sm, si, gx, none, none); },
               "batch_norm_backward: grad_out has shape [4, 3, 4], expected [4, 3, 5]");
  expect_error([&] { cpu::batch_norm_backward(x, x, none, none, si, gx, none, none); },
               "batch_norm_backward: save_mean and save_invstd are required");
}

// ---------------------------------------------------------------------------------------------
// Layer norm
// ---------------------------------------------------------------------------------------------

TEST(CpuLayerNorm, NormalisesEachRowAndMatchesTheFormula) {
  struct Case {
    Shape shape;
    int64_t k;
  };
  for (const Case& c : std::vector<Case>{
           {{7, 13}, 1}, {{3, 4, 5, 6}, 2}, {{5, 9}, 2}, {{2, 3, 11}, 1}, {{263, 197}, 1}}) {
    for (DType dt : {kFloat64, kFloat32}) {
      const double tol = dt == kFloat64 ? 1e-12 : 2e-5;
      const Shape row(c.shape.end() - c.k, c.shape.end()),
          stat(c.shape.begin(), c.shape.end() - c.k);
      const int64_t D = shape_numel(row), M = shape_numel(stat);
      Tensor x = random_swapped(c.shape, dt, 22, 3.0, -2.0);
      Tensor w = random_normal(row, dt, 23), b = random_normal(row, dt, 24);
      const double eps = 1e-5;
      for (bool affine : {false, true}) {
        Tensor out = poisoned(c.shape, dt), mean = poisoned(stat, dt), rstd = poisoned(stat, dt);
        Tensor none;
        cpu::layer_norm(x, c.k, affine ? w : none, affine ? b : none, eps, out, mean, rstd);
        auto xv = x.to_vector<double>(), wv = w.to_vector<double>(), bv = b.to_vector<double>();
        std::vector<double> want(xv.size()), want_mean(M), want_rstd(M);
        for (int64_t r = 0; r < M; ++r) {
          double mu = 0, var = 0;
          for (int64_t j = 0; j < D; ++j)
            mu += xv[r * D + j] / D;
          for (int64_t j = 0; j < D; ++j)
            var += (xv[r * D + j] - mu) * (xv[r * D + j] - mu) / D;
          want_mean[r] = mu;
          want_rstd[r] = 1 / std::sqrt(var + eps);
          for (int64_t j = 0; j < D; ++j) {
            const double xhat = (xv[r * D + j] - mu) * want_rstd[r];
            want[r * D + j] = affine ? xhat * wv[j] + bv[j] : xhat;
          }
        }
        const std::string what = shape_str(c.shape) + " " + dtype_name(dt);
        expect_close(out.to_vector<double>(), want, tol, what);
        expect_close(mean.to_vector<double>(), want_mean, tol, what + " mean");
        expect_close(rstd.to_vector<double>(), want_rstd, tol, what + " rstd");
      }
    }
  }
}

TEST(CpuLayerNorm, BackwardMatchesFiniteDifferences) {
  struct Case {
    Shape shape;
    int64_t k;
  };
  for (const Case& c : std::vector<Case>{{{5, 7}, 1}, {{2, 3, 4, 3}, 2}, {{3, 5}, 2}}) {
    const Shape row(c.shape.end() - c.k, c.shape.end()), stat(c.shape.begin(), c.shape.end() - c.k);
    Tensor x = random_normal(c.shape, kFloat64, 25, 2.0, 0.5);
    Tensor w = random_normal(row, kFloat64, 26), b = random_normal(row, kFloat64, 27);
    Tensor R = random_normal(c.shape, kFloat64, 28);
    Tensor mean = poisoned(stat, kFloat64), rstd = poisoned(stat, kFloat64);
    auto loss = [&] {
      Tensor out = poisoned(c.shape, kFloat64);
      cpu::layer_norm(x, c.k, w, b, 1e-5, out, mean, rstd);
      return dot(out, R);
    };
    loss();
    Tensor gx = poisoned(c.shape, kFloat64), gw = poisoned(row, kFloat64),
           gb = poisoned(row, kFloat64);
    cpu::layer_norm_backward(R, x, c.k, w, mean, rstd, gx, gw, gb);
    const Tensor mean0 = raw::clone(mean), rstd0 = raw::clone(rstd);
    const std::string what = shape_str(c.shape);
    expect_close(gx.to_vector<double>(), numeric_grad(x, loss), 1e-6, "grad_x " + what);
    expect_close(gw.to_vector<double>(), numeric_grad(w, loss), 1e-6, "grad_w " + what);
    expect_close(gb.to_vector<double>(), numeric_grad(b, loss), 1e-6, "grad_b " + what);
    // Without affine: the same as weight 1 (mean/rstd do not depend on the affine).
    Tensor none, gx1 = poisoned(c.shape, kFloat64), gx_ones = poisoned(c.shape, kFloat64);
    Tensor ones_w = ones(row, kFloat64);
    cpu::layer_norm_backward(R, x, c.k, none, mean0, rstd0, gx1, none, none);
    cpu::layer_norm_backward(R, x, c.k, ones_w, mean0, rstd0, gx_ones, none, none);
    EXPECT_EQ(gx1.to_vector<double>(), gx_ones.to_vector<double>());
  }
}

// A large case takes the parallel path with per-thread weight-gradient partials: against the
// same formula written as direct loops in double.
TEST(CpuLayerNorm, LargeBackwardMatchesDirectLoops) {
  const int64_t M = 301, D = 173;
  for (DType dt : {kFloat64, kFloat32}) {
    Tensor x = random_normal({M, D}, dt, 29), w = random_normal({D}, dt, 30);
    Tensor R = random_normal({M, D}, dt, 31);
    Tensor out = poisoned({M, D}, dt), mean = poisoned({M}, dt), rstd = poisoned({M}, dt), none;
    cpu::layer_norm(x, 1, w, none, 1e-5, out, mean, rstd);
    Tensor gx = poisoned({M, D}, dt), gw = poisoned({D}, dt), gb = poisoned({D}, dt);
    cpu::layer_norm_backward(R, x, 1, w, mean, rstd, gx, gw, gb);
    auto xv = x.to_vector<double>(), wv = w.to_vector<double>(), g = R.to_vector<double>();
    auto mv = mean.to_vector<double>(), rv = rstd.to_vector<double>();
    std::vector<double> want_gx(M * D), want_gw(D, 0), want_gb(D, 0);
    for (int64_t r = 0; r < M; ++r) {
      double a = 0, bsum = 0;
      for (int64_t j = 0; j < D; ++j) {
        const double xhat = (xv[r * D + j] - mv[r]) * rv[r];
        want_gw[j] += g[r * D + j] * xhat;
        want_gb[j] += g[r * D + j];
        a += g[r * D + j] * wv[j];
        bsum += g[r * D + j] * wv[j] * xhat;
      }
      for (int64_t j = 0; j < D; ++j) {
        const double xhat = (xv[r * D + j] - mv[r]) * rv[r];
        want_gx[r * D + j] = rv[r] * (g[r * D + j] * wv[j] - a / D - xhat * bsum / D);
      }
    }
    const double tol = dt == kFloat64 ? 1e-10 : 1e-4;
    expect_close(gx.to_vector<double>(), want_gx, tol, std::string("grad_x ") + dtype_name(dt));
    expect_close(gw.to_vector<double>(), want_gw, tol, std::string("grad_w ") + dtype_name(dt));
    expect_close(gb.to_vector<double>(), want_gb, tol, std::string("grad_b ") + dtype_name(dt));
  }
}

TEST(CpuLayerNorm, Errors) {
  Tensor x = zeros({4, 6}), none, out = zeros({4, 6}), mean = zeros({4}), rstd = zeros({4});
  expect_error([&] { cpu::layer_norm(x, 3, none, none, 1e-5, out, mean, rstd); },
               "layer_norm: normalized_ndim 3 out of range for input [4, 6] (1..2)");
  Tensor w5 = ones({5});
  expect_error([&] { cpu::layer_norm(x, 1, w5, none, 1e-5, out, mean, rstd); },
               "layer_norm: weight [5] does not match input [4, 6] (expects [6])");
  Tensor mean_bad = zeros({6});
  expect_error([&] { cpu::layer_norm(x, 1, none, none, 1e-5, out, mean_bad, rstd); },
               "layer_norm: mean [6] does not match input [4, 6] (expects [4])");
  Tensor xi = zeros({4, 6}, kInt64);
  expect_error([&] { cpu::layer_norm(xi, 1, none, none, 1e-5, out, mean, rstd); },
               "layer_norm: input must be float32 or float64, got int64");
  Tensor gx = zeros({4, 6});
  expect_error(
      [&] {
        cpu::layer_norm_backward(zeros({4, 5}), x, 1, none, mean, rstd, gx, none, none);
      },
      "layer_norm_backward: grad_out has shape [4, 5], expected [4, 6]");
}

// ---------------------------------------------------------------------------------------------
// Dropout
// ---------------------------------------------------------------------------------------------

TEST(CpuDropout, FollowsThePhiloxConventionAndAdvancesTheGenerator) {
  for (DType dt : {kFloat32, kFloat64}) {
    const Shape shape{37, 29};
    Tensor x = random_swapped(shape, dt, 32);
    const double p = 0.3;
    Generator gen(1234);
    gen.set_offset(77);
    Tensor out = poisoned(shape, dt), mask = full(shape, 9, kUInt8);
    cpu::dropout(x, p, gen, out, mask);
    EXPECT_EQ(gen.offset(), 77u + 37 * 29);
    auto xv = x.to_vector<double>(), ov = out.to_vector<double>();
    auto mv = mask.to_vector<uint8_t>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      const PhiloxOut r = philox4x32(1234, 77 + i);
      const bool keep = uniform_float(r.v[0]) >= static_cast<float>(p);  // for every dtype
      ASSERT_EQ(mv[i], keep ? 1 : 0) << i;
      ASSERT_NEAR(ov[i], keep ? xv[i] / (1 - p) : 0.0, 1e-6 * (1 + std::abs(xv[i]))) << i;
    }
    // Same seed and offset: the same mask. The next draw (advanced offset): a different one.
    Generator again(1234);
    again.set_offset(77);
    Tensor out2 = poisoned(shape, dt), mask2 = zeros(shape, kUInt8);
    cpu::dropout(x, p, again, out2, mask2);
    EXPECT_EQ(mask2.to_vector<uint8_t>(), mv);
    EXPECT_EQ(out2.to_vector<double>(), ov);
    cpu::dropout(x, p, again, out2, mask2);
    EXPECT_NE(mask2.to_vector<uint8_t>(), mv);
  }
}

TEST(CpuDropout, KeepsAFractionOneMinusP) {
  const int64_t n = 200003;
  for (double p : {0.1, 0.5, 0.85}) {
    Tensor x = ones({n}, kFloat32), out = poisoned({n}, kFloat32), mask = zeros({n}, kUInt8);
    Generator gen(99);
    cpu::dropout(x, p, gen, out, mask);
    double kept = 0, out_sum = 0;
    auto mv = mask.to_vector<uint8_t>();
    auto ov = out.to_vector<float>();
    for (int64_t i = 0; i < n; ++i) {
      kept += mv[i];
      out_sum += ov[i];
    }
    // The standard error of the kept fraction is below 0.0012 here: 5 of them.
    EXPECT_NEAR(kept / n, 1 - p, 0.006) << "p = " << p;
    EXPECT_NEAR(out_sum / n, 1.0, 0.006 / (1 - p)) << "p = " << p;  // inverted dropout: E = x
  }
}

TEST(CpuDropout, ZeroIsIdentityOneIsZeros) {
  Tensor x = random_normal({5, 7}, kFloat64, 33);
  Generator gen(5);
  Tensor out = poisoned({5, 7}, kFloat64), mask = zeros({5, 7}, kUInt8);
  cpu::dropout(x, 0.0, gen, out, mask);
  EXPECT_EQ(out.to_vector<double>(), x.to_vector<double>());
  EXPECT_EQ(mask.to_vector<uint8_t>(), std::vector<uint8_t>(35, 1));
  EXPECT_EQ(gen.offset(), 35u);
  cpu::dropout(x, 1.0, gen, out, mask);
  EXPECT_EQ(out.to_vector<double>(), std::vector<double>(35, 0.0));
  EXPECT_EQ(mask.to_vector<uint8_t>(), std::vector<uint8_t>(35, 0));
  EXPECT_EQ(gen.offset(), 70u);
  Tensor g = random_normal({5, 7}, kFloat64, 34), gx = poisoned({5, 7}, kFloat64);
  cpu::dropout_backward(g, mask, 1.0, gx);
  EXPECT_EQ(gx.to_vector<double>(), std::vector<double>(35, 0.0));
}

TEST(CpuDropout, BackwardScalesByTheMask) {
  for (DType dt : {kFloat32, kFloat64}) {
    const Shape shape{23, 19};
    const double p = 0.4;
    Tensor x = random_normal(shape, dt, 35), out = poisoned(shape, dt);
    Tensor mask = zeros(shape, kUInt8);
    Generator gen(7);
    cpu::dropout(x, p, gen, out, mask);
    Tensor g = random_swapped(shape, dt, 36);
    Tensor gx = raw::transpose(poisoned({19, 23}, dt), 0, 1);  // non-contiguous output
    cpu::dropout_backward(g, mask, p, gx);
    auto gv = g.to_vector<double>(), gxv = gx.to_vector<double>();
    auto mv = mask.to_vector<uint8_t>();
    for (size_t i = 0; i < gv.size(); ++i)
      ASSERT_NEAR(gxv[i], mv[i] ? gv[i] / (1 - p) : 0.0, 1e-6 * (1 + std::abs(gv[i])));
  }
}

TEST(CpuDropout, Errors) {
  Tensor x = zeros({3, 4}), out = zeros({3, 4}), mask = zeros({3, 4}, kUInt8);
  Generator gen;
  expect_error([&] { cpu::dropout(x, 1.5, gen, out, mask); },
               "dropout: probability p must be in [0, 1], got 1.5");
  expect_error([&] { cpu::dropout(x, -0.1, gen, out, mask); },
               "dropout: probability p must be in [0, 1], got -0.1");
  Tensor mask_f = zeros({3, 4});
  expect_error([&] { cpu::dropout(x, 0.5, gen, out, mask_f); },
               "dropout: mask is float32, expected uint8");
  Tensor mask_bad = zeros({4, 3}, kUInt8);
  expect_error([&] { cpu::dropout_backward(x, mask_bad, 0.5, out); },
               "dropout_backward: mask has shape [4, 3], expected [3, 4]");
  EXPECT_EQ(gen.offset(), 0u);  // failed calls draw nothing
}
