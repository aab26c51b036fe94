// kernels/cpu/conv: im2col + GEMM convolution against a direct 7-loop convolution, its backward
// against finite differences and against direct loops, im2col/col2im against their definitions.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "core/random.h"
#include "core/tensor.h"
#include "core/views.h"
#include "kernels/cpu/conv.h"
#include "tests/tensor_test_util.h"

using namespace selfsup;
using namespace selfsup::test;
using selfsup::cpu::Conv2dParams;

namespace {

struct ConvCase {
  int64_t N, C, H, W, O, KH, KW;
  Conv2dParams p;
  bool bias;
};

std::string describe(const ConvCase& c) {
  return "N" + std::to_string(c.N) + " C" + std::to_string(c.C) + " H" + std::to_string(c.H) +
         " W" + std::to_string(c.W) + " O" + std::to_string(c.O) + " K" + std::to_string(c.KH) +
         "x" + std::to_string(c.KW) + " s" + std::to_string(c.p.stride_h) + "," +
         std::to_string(c.p.stride_w) + " p" + std::to_string(c.p.pad_h) + "," +
         std::to_string(c.p.pad_w);
}

// The same values as random_normal(shape) but stored with the last two dims swapped, so the
// result is a non-contiguous (transposed) view.
Tensor random_transposed(const Shape& shape, DType dtype, uint64_t seed) {
  Shape swapped = shape;
  std::swap(swapped[2], swapped[3]);
  return raw::transpose(random_normal(swapped, dtype, seed), 2, 3);
}

int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t p) {
  return (in + 2 * p - k) / s + 1;
}

// ---- references: direct loops in double over row-major copies ----

std::vector<double> direct_conv(const ConvCase& c, const std::vector<double>& x,
                                const std::vector<double>& w, const std::vector<double>& b) {
  const int64_t OH = out_size(c.H, c.KH, c.p.stride_h, c.p.pad_h);
  const int64_t OW = out_size(c.W, c.KW, c.p.stride_w, c.p.pad_w);
  std::vector<double> out(c.N * c.O * OH * OW);
  for (int64_t n = 0; n < c.N; ++n)
    for (int64_t o = 0; o < c.O; ++o)
      for (int64_t y = 0; y < OH; ++y)
        for (int64_t xo = 0; xo < OW; ++xo) {
          double acc = c.bias ? b[o] : 0.0;
          for (int64_t ch = 0; ch < c.C; ++ch)
            for (int64_t i = 0; i < c.KH; ++i)
              for (int64_t j = 0; j < c.KW; ++j) {
                const int64_t iy = y * c.p.stride_h - c.p.pad_h + i;
                const int64_t ix = xo * c.p.stride_w - c.p.pad_w + j;
                if (iy < 0 || iy >= c.H || ix < 0 || ix >= c.W) continue;
                acc += w[((o * c.C + ch) * c.KH + i) * c.KW + j] *
                       x[((n * c.C + ch) * c.H + iy) * c.W + ix];
              }
          out[((n * c.O + o) * OH + y) * OW + xo] = acc;
        }
  return out;
}

// The gradients of sum(go * conv(x)) by direct loops: every (output, tap) pair contributes.
void direct_conv_backward(const ConvCase& c, const std::vector<double>& go,
                          const std::vector<double>& x, const std::vector<double>& w,
                          std::vector<double>& gx, std::vector<double>& gw,
                          std::vector<double>& gb) {
  const int64_t OH = out_size(c.H, c.KH, c.p.stride_h, c.p.pad_h);
  const int64_t OW = out_size(c.W, c.KW, c.p.stride_w, c.p.pad_w);
  gx.assign(x.size(), 0.0);
  gw.assign(w.size(), 0.0);
  gb.assign(c.O, 0.0);
  for (int64_t n = 0; n < c.N; ++n)
    for (int64_t o = 0; o < c.O; ++o)
      for (int64_t y = 0; y < OH; ++y)
        for (int64_t xo = 0; xo < OW; ++xo) {
          const double g = go[((n * c.O + o) * OH + y) * OW + xo];
          gb[o] += g;
          for (int64_t ch = 0; ch < c.C; ++ch)
            for (int64_t i = 0; i < c.KH; ++i)
              for (int64_t j = 0; j < c.KW; ++j) {
                const int64_t iy = y * c.p.stride_h - c.p.pad_h + i;
                const int64_t ix = xo * c.p.stride_w - c.p.pad_w + j;
                if (iy < 0 || iy >= c.H || ix < 0 || ix >= c.W) continue;
                const int64_t xi = ((n * c.C + ch) * c.H + iy) * c.W + ix;
                const int64_t wi = ((o * c.C + ch) * c.KH + i) * c.KW + j;
                gx[xi] += g * w[wi];
                gw[wi] += g * x[xi];
              }
        }
}

Shape out_shape(const ConvCase& c) {
  return {c.N, c.O, out_size(c.H, c.KH, c.p.stride_h, c.p.pad_h),
          out_size(c.W, c.KW, c.p.stride_w, c.p.pad_w)};
}

const std::vector<ConvCase> kForwardCases = {
    {3, 5, 11, 9, 7, 3, 3, {2, 2, 1, 1}, true},    // the brief's awkward case
    {2, 6, 7, 5, 4, 1, 1, {1, 1, 0, 0}, true},     // 1x1: the no-im2col path
    {2, 3, 13, 10, 5, 5, 5, {1, 1, 2, 2}, false},  // K=5, "same" padding
    {2, 3, 9, 12, 4, 3, 2, {1, 3, 0, 1}, true},    // rectangular kernel, mixed stride/pad
    {1, 2, 6, 7, 3, 5, 3, {3, 2, 2, 1}, true},     // stride 3 with padding wider than needed
    {2, 4, 5, 6, 3, 1, 1, {2, 1, 0, 0}, false},    // 1x1 with stride: im2col path
    {5, 9, 17, 15, 13, 3, 3, {1, 1, 1, 1}, true},  // big enough for the batch-parallel path
};

}  // namespace

TEST(CpuConv, OutSize) {
  EXPECT_EQ(cpu::conv_out_size(11, 3, 2, 1), 6);
  EXPECT_EQ(cpu::conv_out_size(7, 1, 1, 0), 7);
  EXPECT_EQ(cpu::conv_out_size(5, 5, 1, 0), 1);
  EXPECT_THROW(cpu::conv_out_size(3, 5, 1, 0), Error);
  EXPECT_THROW(cpu::conv_out_size(3, 3, 0, 0), Error);
}

TEST(CpuConv, ForwardMatchesDirectLoops) {
  for (DType dt : {kFloat64, kFloat32}) {
    const double tol = dt == kFloat64 ? 1e-12 : 2e-5;
    for (const ConvCase& c : kForwardCases) {
      Tensor x = random_normal({c.N, c.C, c.H, c.W}, dt, 1);
      Tensor w = random_normal({c.O, c.C, c.KH, c.KW}, dt, 2);
      Tensor b = c.bias ? random_normal({c.O}, dt, 3) : Tensor();
      Tensor out = poisoned(out_shape(c), dt);
      cpu::conv2d(x, w, b, c.p, out);
      auto want = direct_conv(c, x.to_vector<double>(), w.to_vector<double>(),
                              c.bias ? b.to_vector<double>() : std::vector<double>());
      expect_close(out.to_vector<double>(), want, tol, describe(c) + " " + dtype_name(dt));
    }
  }
}

TEST(CpuConv, ForwardNonContiguousInputsAndOutput) {
  const ConvCase c{3, 5, 11, 9, 7, 3, 3, {2, 2, 1, 1}, true};
  for (DType dt : {kFloat64, kFloat32}) {
    Tensor x = random_transposed({c.N, c.C, c.H, c.W}, dt, 4);
    Tensor w = random_transposed({c.O, c.C, c.KH, c.KW}, dt, 5);
    Tensor b = raw::select(random_normal({2, c.O}, dt, 6), 0, 1);
    Shape os = out_shape(c);
    // out: a transposed view of a poisoned buffer.
    Tensor out = raw::transpose(poisoned({os[0], os[1], os[3], os[2]}, dt), 2, 3);
    ASSERT_FALSE(x.is_contiguous());
    ASSERT_FALSE(out.is_contiguous());
    cpu::conv2d(x, w, b, c.p, out);
    auto want = direct_conv(c, x.to_vector<double>(), w.to_vector<double>(), b.to_vector<double>());
    expect_close(out.to_vector<double>(), want, dt == kFloat64 ? 1e-12 : 2e-5, "transposed");
  }
}

TEST(CpuConv, Im2colMatchesDefinitionAndCol2imIsItsAdjoint) {
  const int64_t C = 3, H = 7, W = 8, KH = 3, KW = 4;
  const Conv2dParams p{2, 3, 1, 2};
  const int64_t OH = out_size(H, KH, p.stride_h, p.pad_h),
                OW = out_size(W, KW, p.stride_w, p.pad_w);
  const int64_t rows = C * KH * KW, cols_n = OH * OW;
  Tensor img = random_normal({C, H, W}, kFloat64, 7);
  std::vector<double> cols(rows * cols_n, std::nan(""));
  cpu::im2col(img.data_ptr<double>(), C, H, W, KH, KW, p, cols.data());
  const double* x = img.data_ptr<double>();
  for (int64_t c = 0; c < C; ++c)
    for (int64_t i = 0; i < KH; ++i)
      for (int64_t j = 0; j < KW; ++j)
        for (int64_t y = 0; y < OH; ++y)
          for (int64_t xo = 0; xo < OW; ++xo) {
            const int64_t iy = y * p.stride_h - p.pad_h + i, ix = xo * p.stride_w - p.pad_w + j;
            const bool inside = iy >= 0 && iy < H && ix >= 0 && ix < W;
            const double want = inside ? x[(c * H + iy) * W + ix] : 0.0;
            ASSERT_EQ(cols[((c * KH + i) * KW + j) * cols_n + y * OW + xo], want);
          }
  // <col2im(r), img> == <r, im2col(img)> for a random r.
  Tensor r = random_normal({rows, cols_n}, kFloat64, 8);
  std::vector<double> back(C * H * W, 0.0);
  cpu::col2im(r.data_ptr<double>(), C, H, W, KH, KW, p, back.data());
  double lhs = 0, rhs = 0;
  for (int64_t i = 0; i < C * H * W; ++i)
    lhs += back[i] * x[i];
  for (int64_t i = 0; i < rows * cols_n; ++i)
    rhs += r.data_ptr<double>()[i] * cols[i];
  EXPECT_NEAR(lhs, rhs, 1e-10 * (1 + std::abs(rhs)));
  // The float instantiation too.
  Tensor imgf = raw::to_dtype(img, kFloat32);
  std::vector<float> colsf(rows * cols_n, std::nanf(""));
  cpu::im2col(imgf.data_ptr<float>(), C, H, W, KH, KW, p, colsf.data());
  for (int64_t i = 0; i < rows * cols_n; ++i)
    ASSERT_EQ(colsf[i], static_cast<float>(cols[i]));
  std::vector<float> backf(C * H * W, 0.0f);
  Tensor rf = raw::to_dtype(r, kFloat32);
  cpu::col2im(rf.data_ptr<float>(), C, H, W, KH, KW, p, backf.data());
  for (int64_t i = 0; i < C * H * W; ++i)
    ASSERT_NEAR(backf[i], back[i], 1e-5);
}

// L = sum(R * conv(x, w, b)); every gradient from the kernel against central differences.
TEST(CpuConv, BackwardMatchesFiniteDifferences) {
  const std::vector<ConvCase> cases = {
      {2, 3, 6, 5, 4, 3, 3, {2, 2, 1, 1}, true},
      {2, 4, 5, 3, 3, 1, 1, {1, 1, 0, 0}, true},
      {1, 2, 7, 6, 2, 5, 5, {2, 1, 2, 2}, true},
  };
  for (const ConvCase& c : cases) {
    Tensor x = random_normal({c.N, c.C, c.H, c.W}, kFloat64, 11);
    Tensor w = random_normal({c.O, c.C, c.KH, c.KW}, kFloat64, 12);
    Tensor b = random_normal({c.O}, kFloat64, 13);
    Tensor R = random_normal(out_shape(c), kFloat64, 14);
    auto loss = [&]() {
      Tensor out = poisoned(out_shape(c), kFloat64);
      cpu::conv2d(x, w, b, c.p, out);
      double l = 0;
      for (int64_t i = 0; i < out.numel(); ++i)
        l += R.data_ptr<double>()[i] * out.data_ptr<double>()[i];
      return l;
    };
    auto numeric = [&](Tensor& t) {
      std::vector<double> g(t.numel());
      double* p = t.data_ptr<double>();
      for (int64_t i = 0; i < t.numel(); ++i) {
        const double keep = p[i], h = 1e-5;
        p[i] = keep + h;
        const double lp = loss();
        p[i] = keep - h;
        const double lm = loss();
        p[i] = keep;
        g[i] = (lp - lm) / (2 * h);
      }
      return g;
    };
    Tensor gx = poisoned(x.shape(), kFloat64), gw = poisoned(w.shape(), kFloat64),
           gb = poisoned(b.shape(), kFloat64);
    cpu::conv2d_backward(R, x, w, c.p, gx, gw, gb);
    expect_close(gx.to_vector<double>(), numeric(x), 1e-6, "grad_x " + describe(c));
    expect_close(gw.to_vector<double>(), numeric(w), 1e-6, "grad_w " + describe(c));
    expect_close(gb.to_vector<double>(), numeric(b), 1e-6, "grad_b " + describe(c));
  }
}

// Larger problems (batch-parallel path, per-thread grad_w reduction) against direct loops,
// both dtypes, non-contiguous grad_out and x, with 1, 2 and 3 threads.
TEST(CpuConv, BackwardMatchesDirectLoopsOnEveryPath) {
  const int saved_threads = omp_get_max_threads();
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    for (DType dt : {kFloat64, kFloat32}) {
      const double tol = dt == kFloat64 ? 1e-11 : 1e-4;
      for (const ConvCase& c : kForwardCases) {
        Tensor x = random_transposed({c.N, c.C, c.H, c.W}, dt, 21);
        Tensor w = random_normal({c.O, c.C, c.KH, c.KW}, dt, 22);
        Shape os = out_shape(c);
        Tensor go = random_transposed(os, dt, 23);
        Tensor gx = poisoned(x.shape(), dt), gw = poisoned(w.shape(), dt), gb = poisoned({c.O}, dt);
        cpu::conv2d_backward(go, x, w, c.p, gx, gw, gb);
        std::vector<double> wx, ww, wb;
        direct_conv_backward(c, go.to_vector<double>(), x.to_vector<double>(),
                             w.to_vector<double>(), wx, ww, wb);
        const std::string what =
            describe(c) + " " + dtype_name(dt) + " threads " + std::to_string(threads);
        expect_close(gx.to_vector<double>(), wx, tol, "grad_x " + what);
        expect_close(gw.to_vector<double>(), ww, tol, "grad_w " + what);
        expect_close(gb.to_vector<double>(), wb, tol, "grad_b " + what);
      }
    }
  }
  omp_set_num_threads(saved_threads);
}

TEST(CpuConv, BackwardSkipsUndefinedOutputs) {
  const ConvCase c{4, 3, 8, 7, 5, 3, 3, {1, 2, 1, 0}, true};
  Tensor x = random_normal({c.N, c.C, c.H, c.W}, kFloat64, 31);
  Tensor w = random_normal({c.O, c.C, c.KH, c.KW}, kFloat64, 32);
  Tensor go = random_normal(out_shape(c), kFloat64, 33);
  Tensor gx = poisoned(x.shape(), kFloat64), gw = poisoned(w.shape(), kFloat64),
         gb = poisoned({c.O}, kFloat64);
  cpu::conv2d_backward(go, x, w, c.p, gx, gw, gb);
  Tensor none;
  Tensor gx_only = poisoned(x.shape(), kFloat64);
  cpu::conv2d_backward(go, x, w, c.p, gx_only, none, none);
  EXPECT_EQ(gx_only.to_vector<double>(), gx.to_vector<double>());
  Tensor gw_only = poisoned(w.shape(), kFloat64);
  cpu::conv2d_backward(go, x, w, c.p, none, gw_only, none);
  EXPECT_EQ(gw_only.to_vector<double>(), gw.to_vector<double>());
  Tensor gb_only = poisoned({c.O}, kFloat64);
  cpu::conv2d_backward(go, x, w, c.p, none, none, gb_only);
  EXPECT_EQ(gb_only.to_vector<double>(), gb.to_vector<double>());
  EXPECT_NO_THROW(cpu::conv2d_backward(go, x, w, c.p, none, none, none));
}

TEST(CpuConv, ErrorsNameTheShapes) {
  Tensor x = zeros({2, 3, 8, 8}), w = zeros({4, 5, 3, 3}), out = zeros({2, 4, 6, 6});
  Tensor none;
  const Conv2dParams p;
  expect_error([&] { cpu::conv2d(x, w, none, p, out); },
               "conv2d: input [2, 3, 8, 8] has 3 channels, weight [4, 5, 3, 3] expects 5");
  Tensor w3 = zeros({4, 3, 3, 3});
  expect_error(
      [&] {
        cpu::conv2d(zeros({3, 8, 8}), w3, none, p, out);
      },
      "conv2d: input must be 4-d [N, C, H, W], got [3, 8, 8]");
  expect_error(
      [&] {
        cpu::conv2d(x, zeros({4, 3, 3, 3}, kFloat64), none, p, out);
      },
      "conv2d: input is float32 but weight is float64");
  expect_error([&] { cpu::conv2d(x, w3, zeros({5}), p, out); },
               "conv2d: bias [5] does not match weight [4, 3, 3, 3]");
  Tensor bad_out = zeros({2, 4, 7, 6});
  expect_error([&] { cpu::conv2d(x, w3, none, p, bad_out); },
               "conv2d: out has shape [2, 4, 7, 6], expected [2, 4, 6, 6]");
  expect_error(
      [&] {
        cpu::conv2d(x, zeros({4, 3, 9, 3}), none, p, out);
      },
      "conv2d: kernel size 9 is larger than the padded input size 8");
  expect_error(
      [&] {
        cpu::conv2d(x, w3, none, Conv2dParams{0, 1, 0, 0}, out);
      },
      "conv2d: stride must be positive, got 0");
  expect_error(
      [&] {
        cpu::conv2d(zeros({2, 3, 8, 8}, kInt64), w3, none, p, out);
      },
      "conv2d: input must be float32 or float64, got int64");
  Tensor gx = zeros({2, 3, 8, 8}), gw = zeros({4, 3, 3, 3}), gb = zeros({4});
  expect_error(
      [&] {
        cpu::conv2d_backward(zeros({2, 4, 5, 6}), x, w3, p, gx, gw, gb);
      },
      "conv2d_backward: grad_out has shape [2, 4, 5, 6], expected [2, 4, 6, 6]");
  Tensor bad_gw = zeros({4, 3, 3, 2});
  expect_error([&] { cpu::conv2d_backward(out, x, w3, p, gx, bad_gw, gb); },
               "conv2d_backward: grad_w has shape [4, 3, 3, 2], expected [4, 3, 3, 3]");
}
