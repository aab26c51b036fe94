// kernels/cpu/pool: max / average / adaptive average pooling against naive loops, backward passes
// against finite differences.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "core/random.h"
#include "core/tensor.h"
#include "core/views.h"
#include "kernels/cpu/pool.h"
#include "tests/tensor_test_util.h"

using namespace selfsup;
using namespace selfsup::test;
using selfsup::cpu::Pool2dParams;

namespace {

// The same kind of values, stored [N, C, W, H] and viewed as [N, C, H, W]: non-contiguous.
Tensor random_transposed(const Shape& shape, DType dtype, uint64_t seed) {
  return raw::transpose(random_normal({shape[0], shape[1], shape[3], shape[2]}, dtype, seed), 2, 3);
}

int64_t pooled(int64_t in, int64_t k, int64_t s, int64_t p) {
  return (in + 2 * p - k) / s + 1;
}

struct PoolCase {
  int64_t N, C, H, W;
  Pool2dParams p;
  Shape out_shape() const {
    return {N, C, pooled(H, p.kernel_h, p.stride_h, p.pad_h),
            pooled(W, p.kernel_w, p.stride_w, p.pad_w)};
  }
};

const std::vector<PoolCase> kCases = {
    {2, 3, 11, 9, {3, 3, 2, 2, 1, 1}},     // ResNet's stem pool on an awkward size
    {3, 2, 7, 10, {2, 2, 2, 2, 0, 0}},     // the default 2x2/2, odd height drops a row
    {1, 4, 9, 8, {3, 2, 1, 3, 1, 1}},      // overlapping rows, strided columns
    {2, 1, 6, 13, {5, 4, 3, 2, 2, 2}},     // large kernel, maximum padding
    {33, 31, 13, 11, {3, 3, 2, 2, 1, 1}},  // big enough for the parallel path
};

// ---- naive references (double, row-major copies) ----

void naive_max_pool(const PoolCase& c, const std::vector<double>& x, std::vector<double>& out,
                    std::vector<int64_t>& idx) {
  const Shape os = c.out_shape();
  out.assign(shape_numel(os), 0);
  idx.assign(shape_numel(os), -1);
  for (int64_t pl = 0; pl < c.N * c.C; ++pl)
    for (int64_t y = 0; y < os[2]; ++y)
      for (int64_t xo = 0; xo < os[3]; ++xo) {
        double best = -INFINITY;
        int64_t arg = -1;
        for (int64_t i = 0; i < c.p.kernel_h; ++i)
          for (int64_t j = 0; j < c.p.kernel_w; ++j) {
            const int64_t iy = y * c.p.stride_h - c.p.pad_h + i;
            const int64_t ix = xo * c.p.stride_w - c.p.pad_w + j;
            if (iy < 0 || iy >= c.H || ix < 0 || ix >= c.W) continue;
            const double v = x[(pl * c.H + iy) * c.W + ix];
            if (arg < 0 || v > best) {
              best = v;
              arg = iy * c.W + ix;
            }
          }
        out[(pl * os[2] + y) * os[3] + xo] = best;
        idx[(pl * os[2] + y) * os[3] + xo] = arg;
      }
}

std::vector<double> naive_avg_pool(const PoolCase& c, const std::vector<double>& x) {
  const Shape os = c.out_shape();
  std::vector<double> out(shape_numel(os));
  for (int64_t pl = 0; pl < c.N * c.C; ++pl)
    for (int64_t y = 0; y < os[2]; ++y)
      for (int64_t xo = 0; xo < os[3]; ++xo) {
        double sum = 0;
        for (int64_t i = 0; i < c.p.kernel_h; ++i)
          for (int64_t j = 0; j < c.p.kernel_w; ++j) {
            const int64_t iy = y * c.p.stride_h - c.p.pad_h + i;
            const int64_t ix = xo * c.p.stride_w - c.p.pad_w + j;
            if (iy >= 0 && iy < c.H && ix >= 0 && ix < c.W) sum += x[(pl * c.H + iy) * c.W + ix];
          }
        out[(pl * os[2] + y) * os[3] + xo] = sum / double(c.p.kernel_h * c.p.kernel_w);
      }
  return out;
}

std::vector<double> naive_adaptive(int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW,
                                   const std::vector<double>& x) {
  std::vector<double> out(planes * OH * OW);
  for (int64_t pl = 0; pl < planes; ++pl)
    for (int64_t y = 0; y < OH; ++y)
      for (int64_t xo = 0; xo < OW; ++xo) {
        const int64_t y0 = static_cast<int64_t>(std::floor(double(y * H) / OH));
        const int64_t y1 = static_cast<int64_t>(std::ceil(double((y + 1) * H) / OH));
        const int64_t x0 = static_cast<int64_t>(std::floor(double(xo * W) / OW));
        const int64_t x1 = static_cast<int64_t>(std::ceil(double((xo + 1) * W) / OW));
        double sum = 0;
        for (int64_t iy = y0; iy < y1; ++iy)
          for (int64_t ix = x0; ix < x1; ++ix)
            sum += x[(pl * H + iy) * W + ix];
        out[(pl * OH + y) * OW + xo] = sum / double((y1 - y0) * (x1 - x0));
      }
  return out;
}

// Central differences of loss() with respect to every element of the contiguous float64 t.
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

std::string describe(const PoolCase& c) {
  std::ostringstream os;
  os << "[" << c.N << ", " << c.C << ", " << c.H << ", " << c.W << "] kernel " << c.p.kernel_h
     << "x" << c.p.kernel_w;
  return os.str();
}

}  // namespace

TEST(CpuPool, MaxPoolMatchesNaiveLoops) {
  for (DType dt : {kFloat64, kFloat32}) {
    for (const PoolCase& c : kCases) {
      Tensor x = random_transposed({c.N, c.C, c.H, c.W}, dt, 1);
      Tensor out = poisoned(c.out_shape(), dt);
      Tensor idx = full(c.out_shape(), -7, kInt64);
      cpu::max_pool2d(x, c.p, out, idx);
      std::vector<double> want;
      std::vector<int64_t> want_idx;
      naive_max_pool(c, x.to_vector<double>(), want, want_idx);
      EXPECT_EQ(out.to_vector<double>(), want) << describe(c);
      EXPECT_EQ(idx.to_vector<int64_t>(), want_idx) << describe(c);
    }
  }
}

TEST(CpuPool, MaxPoolPaddingNeverWinsAndNanPropagates) {
  // All inputs negative: a padded cell (0 if padding were zeros) must not win.
  Tensor x = from_vector<double>({-5, -4, -3, -2, -1, -6, -7, -8, -9}, {1, 1, 3, 3});
  Tensor out = poisoned({1, 1, 2, 2}, kFloat64);
  Tensor idx = zeros({1, 1, 2, 2}, kInt64);
  cpu::max_pool2d(x, Pool2dParams{2, 2, 2, 2, 1, 1}, out, idx);
  EXPECT_EQ(out.to_vector<double>(), (std::vector<double>{-5, -3, -2, -1}));
  EXPECT_EQ(idx.to_vector<int64_t>(), (std::vector<int64_t>{0, 2, 3, 4}));
  x.data_ptr<double>()[4] = std::nan("");
  Tensor out1 = zeros({1, 1, 1, 1}, kFloat64), idx1 = zeros({1, 1, 1, 1}, kInt64);
  cpu::max_pool2d(x, Pool2dParams{3, 3, 1, 1, 0, 0}, out1, idx1);
  EXPECT_TRUE(std::isnan(out1.item()));
  EXPECT_EQ(idx1.item(), 4);
}

TEST(CpuPool, MaxPoolBackwardMatchesFiniteDifferencesAndScatter) {
  for (const PoolCase& c : std::vector<PoolCase>(kCases.begin(), kCases.end() - 1)) {
    Tensor x = random_normal({c.N, c.C, c.H, c.W}, kFloat64, 2);
    Tensor R = random_normal(c.out_shape(), kFloat64, 3);
    auto loss = [&] {
      Tensor out = poisoned(c.out_shape(), kFloat64), idx = zeros(c.out_shape(), kInt64);
      cpu::max_pool2d(x, c.p, out, idx);
      return dot(out, R);
    };
    Tensor out = poisoned(c.out_shape(), kFloat64), idx = zeros(c.out_shape(), kInt64);
    cpu::max_pool2d(x, c.p, out, idx);
    Tensor gx = poisoned(x.shape(), kFloat64);
    cpu::max_pool2d_backward(R, idx, gx);
    expect_close(gx.to_vector<double>(), numeric_grad(x, loss), 1e-6, describe(c));
  }
  // float32, non-contiguous grad_out, the parallel case: against a naive scatter.
  const PoolCase& c = kCases.back();
  Tensor x = random_normal({c.N, c.C, c.H, c.W}, kFloat32, 4);
  Tensor out = poisoned(c.out_shape(), kFloat32), idx = zeros(c.out_shape(), kInt64);
  cpu::max_pool2d(x, c.p, out, idx);
  Tensor go = random_transposed(c.out_shape(), kFloat32, 5);
  Tensor gx = poisoned(x.shape(), kFloat32);
  cpu::max_pool2d_backward(go, idx, gx);
  std::vector<double> want(x.numel(), 0.0);
  auto gov = go.to_vector<double>();
  auto iv = idx.to_vector<int64_t>();
  const int64_t out_plane = c.out_shape()[2] * c.out_shape()[3];
  for (size_t i = 0; i < gov.size(); ++i)
    want[(i / out_plane) * c.H * c.W + iv[i]] += gov[i];
  expect_close(gx.to_vector<double>(), want, 1e-5, "scatter");
}

TEST(CpuPool, AvgPoolMatchesNaiveLoops) {
  for (DType dt : {kFloat64, kFloat32}) {
    for (const PoolCase& c : kCases) {
      Tensor x = random_transposed({c.N, c.C, c.H, c.W}, dt, 6);
      Tensor out = poisoned(c.out_shape(), dt);
      cpu::avg_pool2d(x, c.p, out);
      expect_close(out.to_vector<double>(), naive_avg_pool(c, x.to_vector<double>()),
                   dt == kFloat64 ? 1e-13 : 1e-5, describe(c));
    }
  }
}

TEST(CpuPool, AvgPoolBackwardMatchesFiniteDifferences) {
  for (const PoolCase& c : std::vector<PoolCase>(kCases.begin(), kCases.end() - 1)) {
    Tensor x = random_normal({c.N, c.C, c.H, c.W}, kFloat64, 7);
    Tensor R = random_normal(c.out_shape(), kFloat64, 8);
    auto loss = [&] {
      Tensor out = poisoned(c.out_shape(), kFloat64);
      cpu::avg_pool2d(x, c.p, out);
      return dot(out, R);
    };
    Tensor gx = poisoned(x.shape(), kFloat64);
    cpu::avg_pool2d_backward(R, c.p, gx);
    expect_close(gx.to_vector<double>(), numeric_grad(x, loss), 1e-6, describe(c));
  }
  // The parallel case in float32 against float64 (the same kernel, both dtypes agree).
  const PoolCase& c = kCases.back();
  Tensor go = random_transposed(c.out_shape(), kFloat64, 9);
  Tensor gx64 = poisoned({c.N, c.C, c.H, c.W}, kFloat64);
  Tensor gx32 = poisoned({c.N, c.C, c.H, c.W}, kFloat32);
  cpu::avg_pool2d_backward(go, c.p, gx64);
  cpu::avg_pool2d_backward(raw::to_dtype(go, kFloat32), c.p, gx32);
  expect_close(gx32.to_vector<double>(), gx64.to_vector<double>(), 1e-5, "float32");
}

TEST(CpuPool, AdaptiveAvgPoolMatchesNaiveLoops) {
  struct Case {
    int64_t N, C, H, W, OH, OW;
  };
  // Shrinking with overlapping windows, growing (OH > H), identity, global pooling, parallel.
  for (const Case& c : std::vector<Case>{{2, 3, 11, 9, 4, 5},
                                         {1, 2, 5, 3, 7, 4},
                                         {2, 2, 6, 5, 6, 5},
                                         {3, 4, 7, 9, 1, 1},
                                         {17, 33, 14, 15, 3, 2}}) {
    for (DType dt : {kFloat64, kFloat32}) {
      Tensor x = random_transposed({c.N, c.C, c.H, c.W}, dt, 10);
      Tensor out = poisoned({c.N, c.C, c.OH, c.OW}, dt);
      cpu::adaptive_avg_pool2d(x, out);
      expect_close(out.to_vector<double>(),
                   naive_adaptive(c.N * c.C, c.H, c.W, c.OH, c.OW, x.to_vector<double>()),
                   dt == kFloat64 ? 1e-13 : 1e-5, "adaptive " + std::to_string(c.H));
    }
    if (c.N * c.C * c.H * c.W > 5000) continue;  // finite differences on the small ones
    Tensor x = random_normal({c.N, c.C, c.H, c.W}, kFloat64, 11);
    Tensor R = random_normal({c.N, c.C, c.OH, c.OW}, kFloat64, 12);
    auto loss = [&] {
      Tensor out = poisoned({c.N, c.C, c.OH, c.OW}, kFloat64);
      cpu::adaptive_avg_pool2d(x, out);
      return dot(out, R);
    };
    Tensor gx = poisoned(x.shape(), kFloat64);
    cpu::adaptive_avg_pool2d_backward(R, gx);
    expect_close(gx.to_vector<double>(), numeric_grad(x, loss), 1e-6, "adaptive backward");
  }
}

TEST(CpuPool, NonContiguousOutputs) {
  const PoolCase& c = kCases[0];
  Shape os = c.out_shape();
  Tensor x = random_normal({c.N, c.C, c.H, c.W}, kFloat32, 13);
  Tensor out = raw::transpose(poisoned({os[0], os[1], os[3], os[2]}, kFloat32), 2, 3);
  Tensor idx = raw::transpose(full({os[0], os[1], os[3], os[2]}, -1, kInt64), 2, 3);
  cpu::max_pool2d(x, c.p, out, idx);
  Tensor out_c = poisoned(os, kFloat32), idx_c = zeros(os, kInt64);
  cpu::max_pool2d(x, c.p, out_c, idx_c);
  EXPECT_EQ(out.to_vector<float>(), out_c.to_vector<float>());
  EXPECT_EQ(idx.to_vector<int64_t>(), idx_c.to_vector<int64_t>());
  Tensor gx = raw::transpose(poisoned({c.N, c.C, c.W, c.H}, kFloat32), 2, 3);
  cpu::avg_pool2d_backward(out_c, c.p, gx);
  Tensor gx_c = poisoned({c.N, c.C, c.H, c.W}, kFloat32);
  cpu::avg_pool2d_backward(out_c, c.p, gx_c);
  EXPECT_EQ(gx.to_vector<float>(), gx_c.to_vector<float>());
}

TEST(CpuPool, ErrorsNameTheShapes) {
  Tensor x = zeros({2, 3, 8, 8});
  Tensor out = zeros({2, 3, 4, 4}), idx = zeros({2, 3, 4, 4}, kInt64);
  expect_error(
      [&] {
        cpu::max_pool2d(zeros({3, 8, 8}), {}, out, idx);
      },
      "max_pool2d: input must be 4-d [N, C, H, W], got [3, 8, 8]");
  expect_error(
      [&] {
        cpu::max_pool2d(x, Pool2dParams{2, 2, 2, 2, 2, 0}, out, idx);
      },
      "max_pool2d: padding 2x0 must be non-negative and at most half the kernel 2x2");
  Tensor bad = zeros({2, 3, 4, 5});
  expect_error([&] { cpu::max_pool2d(x, {}, bad, idx); },
               "max_pool2d: out has shape [2, 3, 4, 5], expected [2, 3, 4, 4]");
  Tensor idx32 = zeros({2, 3, 4, 4});
  expect_error([&] { cpu::max_pool2d(x, {}, out, idx32); },
               "max_pool2d: indices is float32, expected int64");
  expect_error(
      [&] {
        cpu::max_pool2d(x, Pool2dParams{9, 9, 1, 1, 0, 0}, out, idx);
      },
      "max_pool2d: kernel size 9 is larger than the padded input size 8");
  Tensor gx = zeros({2, 3, 8, 8});
  Tensor bad_idx = full({2, 3, 4, 4}, 64, kInt64);
  expect_error([&] { cpu::max_pool2d_backward(out, bad_idx, gx); },
               "max_pool2d_backward: index 64 out of range for a 8x8 plane");
  expect_error(
      [&] {
        cpu::avg_pool2d_backward(zeros({2, 3, 3, 4}), {}, gx);
      },
      "avg_pool2d_backward: grad_out has shape [2, 3, 3, 4], expected [2, 3, 4, 4]");
  Tensor out64 = zeros({2, 3, 4, 4}, kFloat64);
  expect_error([&] { cpu::avg_pool2d(x, {}, out64); },
               "avg_pool2d: out is float64, expected float32");
  Tensor aout = zeros({2, 4, 3, 3});
  expect_error([&] { cpu::adaptive_avg_pool2d(x, aout); },
               "adaptive_avg_pool2d: out [2, 4, 3, 3] does not fit input [2, 3, 8, 8]");
  Tensor aout0 = zeros({2, 3, 0, 3});
  expect_error([&] { cpu::adaptive_avg_pool2d(x, aout0); },
               "adaptive_avg_pool2d: out [2, 3, 0, 3]");
}
