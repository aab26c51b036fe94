// kernels/cuda/pool against the CPU reference (kernels/cpu/pool), entry point by entry point:
// the same random values on both sides, odd plane sizes (7x9, 13x5, ...), windows that skip
// (kernel 3 stride 2 pad 1), overlap (kernel 3 stride 1) and tile, adaptive sizes that do not
// divide (and that upsample), float32 and float64, outputs poisoned with NaN (indices with a
// sentinel) first, ties and NaN for max pooling, non-contiguous inputs and outputs, the index
// range error, and the dispatch layer's device check. Without a GPU every test here skips.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "core/views.h"
#include "kernels/cpu/pool.h"
#include "kernels/cuda/pool.h"
#include "kernels/dispatch.h"
#include "tests/cuda_test_util.h"
#include "tests/tensor_test_util.h"

using namespace selfsup;
using cpu::Pool2dParams;
using selfsup::test::error_of;
using selfsup::test::poisoned_gpu;
using selfsup::test::random_tensor;
using selfsup::test::to_cpu;
using selfsup::test::to_gpu;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
const DType kFloats[] = {kFloat32, kFloat64};

// A poisoned output on the GPU: NaN, or -7 for integers (never an index).
Tensor poisoned(const Shape& shape, DType dtype) {
  return poisoned_gpu(shape, dtype, -7.0);
}

// An output buffer on the GPU, poisoned, either contiguous or a transposed view (H and W
// swapped in memory) of a poisoned base.
Tensor gpu_out(const Shape& shape, DType dtype, bool transposed) {
  if (!transposed) return poisoned(shape, dtype);
  const Shape base{shape[0], shape[1], shape[3], shape[2]};
  return raw::transpose(poisoned(base, dtype), 2, 3);
}

// A GPU input with the host values: contiguous, or the transpose of a transposed copy.
Tensor gpu_in(const Tensor& host, bool transposed) {
  if (!transposed) return to_gpu(host);
  return raw::transpose(to_gpu(raw::contiguous(raw::transpose(host, 2, 3))), 2, 3);
}

double tol(DType d) {
  return d == kFloat32 ? 1e-5 : 1e-12;
}

void expect_close(const Tensor& got_dev, const Tensor& want, double atol, const std::string& what) {
  const Tensor got = to_cpu(got_dev);
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  for (size_t i = 0; i < w.size(); ++i) {
    if (std::isnan(w[i])) {
      ASSERT_TRUE(std::isnan(g[i])) << what << ": element " << i << " is " << g[i];
      continue;
    }
    ASSERT_FALSE(std::isnan(g[i])) << what << ": element " << i << " is NaN (unwritten?)";
    ASSERT_NEAR(g[i], w[i], atol * (1 + std::abs(w[i]))) << what << ": element " << i;
  }
}

void expect_equal_ints(const Tensor& got_dev, const Tensor& want, const std::string& what) {
  const Tensor got = to_cpu(got_dev);
  ASSERT_EQ(got.shape(), want.shape()) << what;
  EXPECT_EQ(got.to_vector<int64_t>(), want.to_vector<int64_t>()) << what;
}

struct WindowCase {
  const char* name;
  Pool2dParams p;
};

const WindowCase kWindows[] = {
    {"k3 s2 p1", {3, 3, 2, 2, 1, 1}},        // skipping windows with padding (the ResNet stem)
    {"k3 s1 p1", {3, 3, 1, 1, 1, 1}},        // overlapping windows
    {"k3 s1 p0", {3, 3, 1, 1, 0, 0}},        // overlapping, no padding
    {"k2 s2 p0", {2, 2, 2, 2, 0, 0}},        // tiling (a row or column left over on odd sizes)
    {"k2x3 s1x2 p1x1", {2, 3, 1, 2, 1, 1}},  // non-square everything
    {"k5 s3 p2", {5, 5, 3, 3, 2, 2}},
};

const std::vector<Shape> kInputs = {{2, 3, 7, 9}, {1, 2, 13, 5}, {3, 1, 8, 8}, {1, 1, 3, 4}};

Shape pooled(const Shape& in, const Pool2dParams& p) {
  return {in[0], in[1], (in[2] + 2 * p.pad_h - p.kernel_h) / p.stride_h + 1,
          (in[3] + 2 * p.pad_w - p.kernel_w) / p.stride_w + 1};
}

bool fits(const Shape& in, const Pool2dParams& p) {
  return in[2] + 2 * p.pad_h >= p.kernel_h && in[3] + 2 * p.pad_w >= p.kernel_w;
}

std::string describe(const Shape& in, const char* window, DType d, bool t_in, bool t_out) {
  return shape_str(in) + " " + window + " " + dtype_name(d) + (t_in ? " input transposed" : "") +
         (t_out ? " out transposed" : "");
}

}  // namespace

// ============================================================================================
// Max pooling
// ============================================================================================

TEST(CudaPool, MaxPoolMatchesCpuWithTies) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(1);
  for (DType dtype : kFloats)
    for (const Shape& in : kInputs)
      for (const WindowCase& w : kWindows)
        for (bool integers : {false, true})
          for (bool t_in : {false, true}) {
            if (!fits(in, w.p)) continue;
            const bool t_out = t_in;  // both layouts change together: enough coverage
            const std::string what =
                describe(in, w.name, dtype, t_in, t_out) + (integers ? " (ties)" : "");
            const Tensor x = random_tensor(in, dtype, rng, {.integers = integers});
            const Shape os = pooled(in, w.p);
            Tensor out = empty(os, dtype), idx = empty(os, kInt64);
            cpu::max_pool2d(x, w.p, out, idx);
            Tensor dout = gpu_out(os, dtype, t_out), didx = gpu_out(os, kInt64, t_out);
            cuda::max_pool2d(gpu_in(x, t_in), w.p, dout, didx);
            expect_close(dout, out, 0.0, what);  // a max is exact
            expect_equal_ints(didx, idx, what + " indices");
          }
}

TEST(CudaPool, MaxPoolLetsNaNWinLikeTheCpu) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(2);
  for (DType dtype : kFloats) {
    std::vector<double> v =
        random_tensor({1, 2, 7, 9}, kFloat64, rng, {.integers = true}).to_vector<double>();
    v[10] = kNaN;
    v[11] = kNaN;
    v[70] = kNaN;
    const Tensor x = raw::to_dtype(from_vector<double>(v, {1, 2, 7, 9}), dtype);
    const Pool2dParams p{3, 3, 2, 2, 1, 1};
    const Shape os = pooled(x.shape(), p);
    Tensor out = empty(os, dtype), idx = empty(os, kInt64);
    cpu::max_pool2d(x, p, out, idx);
    Tensor dout = poisoned(os, dtype), didx = poisoned(os, kInt64);
    cuda::max_pool2d(to_gpu(x), p, dout, didx);
    expect_close(dout, out, 0.0, dtype_name(dtype));
    expect_equal_ints(didx, idx, std::string(dtype_name(dtype)) + " indices");
  }
}

TEST(CudaPool, MaxPoolBackwardMatchesCpuWithOverlappingWindows) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(3);
  for (DType dtype : kFloats)
    for (const Shape& in : kInputs)
      for (const WindowCase& w : kWindows)
        for (bool t : {false, true}) {
          if (!fits(in, w.p)) continue;
          const std::string what = describe(in, w.name, dtype, t, t);
          // Ties in x make many windows pick one cell: the scatter's grouping is exercised.
          const Tensor x = random_tensor(in, dtype, rng, {.integers = true});
          const Shape os = pooled(in, w.p);
          Tensor out = empty(os, dtype), idx = empty(os, kInt64);
          cpu::max_pool2d(x, w.p, out, idx);
          const Tensor gy = random_tensor(os, dtype, rng);
          Tensor gx = empty(in, dtype);
          cpu::max_pool2d_backward(gy, idx, gx);
          Tensor dgx = gpu_out(in, dtype, t);
          cuda::max_pool2d_backward(gpu_in(gy, t), gpu_in(idx, t), dgx);
          expect_close(dgx, gx, tol(dtype), what);
        }
}

TEST(CudaPool, MaxPoolBackwardOfManyPlanesAndLongPlanes) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(4);
  // One warp per plane: 3000 planes make 375 blocks of 8 warps. A 61x67 plane pools to 31x34 =
  // 1054 outputs, 33 chunks of 32 lanes with a ragged last one.
  for (const Shape& in : std::vector<Shape>{{3000, 1, 5, 7}, {1, 3, 61, 67}}) {
    const Pool2dParams p{3, 3, 2, 2, 1, 1};
    const Tensor x = random_tensor(in, kFloat64, rng, {.integers = true});
    const Shape os = pooled(in, p);
    Tensor out = empty(os, kFloat64), idx = empty(os, kInt64);
    cpu::max_pool2d(x, p, out, idx);
    const Tensor gy = random_tensor(os, kFloat64, rng);
    Tensor gx = empty(in, kFloat64);
    cpu::max_pool2d_backward(gy, idx, gx);
    Tensor dgx = poisoned(in, kFloat64);
    cuda::max_pool2d_backward(to_gpu(gy), to_gpu(idx), dgx);
    expect_close(dgx, gx, 1e-12, shape_str(in));
  }
}

TEST(CudaPool, MaxPoolBackwardRejectsAnOutOfRangeIndexBeforeWriting) {
  SELFSUP_REQUIRE_GPU();
  const Tensor gy = to_gpu(ones({1, 2, 2, 2}));
  for (int64_t bad : {63, -1}) {
    std::vector<int64_t> ix = {0, 1, 2, 3, 4, 5, 6, 7};
    ix[5] = bad;
    ix[6] = 99;  // a later bad index is not the one reported
    const Tensor idx = from_vector<int64_t>(ix, {1, 2, 2, 2});
    Tensor gx_cpu = zeros({1, 2, 7, 9});
    const std::string want =
        error_of([&] { cpu::max_pool2d_backward(raw::to_device(gy, kCPU), idx, gx_cpu); });
    Tensor dgx = poisoned({1, 2, 7, 9}, kFloat32);
    EXPECT_EQ(error_of([&] { cuda::max_pool2d_backward(gy, to_gpu(idx), dgx); }), want);
    EXPECT_EQ(want, "max_pool2d_backward: index " + std::to_string(bad) +
                        " out of range for a 7x9 plane");
    for (double v : to_cpu(dgx).to_vector<double>())
      ASSERT_TRUE(std::isnan(v)) << "grad_x was written";
  }
}

// ============================================================================================
// Average pooling
// ============================================================================================

TEST(CudaPool, AvgPoolAndBackwardMatchCpu) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(5);
  for (DType dtype : kFloats)
    for (const Shape& in : kInputs)
      for (const WindowCase& w : kWindows)
        for (bool t : {false, true}) {
          if (!fits(in, w.p)) continue;
          const std::string what = describe(in, w.name, dtype, t, t);
          const Tensor x = random_tensor(in, dtype, rng);
          const Shape os = pooled(in, w.p);
          Tensor out = empty(os, dtype);
          cpu::avg_pool2d(x, w.p, out);
          Tensor dout = gpu_out(os, dtype, t);
          cuda::avg_pool2d(gpu_in(x, t), w.p, dout);
          expect_close(dout, out, tol(dtype), what);

          const Tensor gy = random_tensor(os, dtype, rng);
          Tensor gx = empty(in, dtype);
          cpu::avg_pool2d_backward(gy, w.p, gx);
          Tensor dgx = gpu_out(in, dtype, t);
          cuda::avg_pool2d_backward(gpu_in(gy, t), w.p, dgx);
          expect_close(dgx, gx, tol(dtype), what + " backward");
        }
}

// ============================================================================================
// Adaptive average pooling
// ============================================================================================

TEST(CudaPool, AdaptiveAvgPoolAndBackwardMatchCpu) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(6);
  const std::vector<std::pair<Shape, std::pair<int64_t, int64_t>>> cases = {
      {{2, 3, 7, 9}, {3, 4}},  // sizes that do not divide: overlapping cells
      {{1, 2, 13, 5}, {4, 3}}, {{2, 2, 8, 8}, {1, 1}},  // global average pooling
      {{1, 3, 5, 5}, {7, 3}},  // more output rows than input rows (cells repeat inputs)
      {{1, 1, 6, 6}, {6, 6}},  // identity
      {{3, 2, 1, 1}, {2, 2}},
  };
  for (DType dtype : kFloats)
    for (const auto& [in, o] : cases)
      for (bool t : {false, true}) {
        const std::string what = shape_str(in) + " -> " + std::to_string(o.first) + "x" +
                                 std::to_string(o.second) + " " + dtype_name(dtype) +
                                 (t ? " transposed" : "");
        const Shape os{in[0], in[1], o.first, o.second};
        const Tensor x = random_tensor(in, dtype, rng);
        Tensor out = empty(os, dtype);
        cpu::adaptive_avg_pool2d(x, out);
        Tensor dout = gpu_out(os, dtype, t);
        cuda::adaptive_avg_pool2d(gpu_in(x, t), dout);
        expect_close(dout, out, tol(dtype), what);

        const Tensor gy = random_tensor(os, dtype, rng);
        Tensor gx = empty(in, dtype);
        cpu::adaptive_avg_pool2d_backward(gy, gx);
        Tensor dgx = gpu_out(in, dtype, t);
        cuda::adaptive_avg_pool2d_backward(gpu_in(gy, t), dgx);
        expect_close(dgx, gx, tol(dtype), what + " backward");
      }
}

// ============================================================================================
// Errors and the dispatch layer
// ============================================================================================

TEST(CudaPool, ArgumentErrorsNameTheOpAndShapes) {
  SELFSUP_REQUIRE_GPU();
  const Tensor x = to_gpu(zeros({1, 2, 7, 9}));
  Tensor out = poisoned({1, 2, 4, 5}, kFloat32), idx = poisoned({1, 2, 4, 5}, kInt64);
  Tensor wrong = poisoned({1, 2, 4, 4}, kFloat32);
  EXPECT_NE(error_of([&] {
              cuda::avg_pool2d(x, {3, 3, 2, 2, 1, 1}, wrong);
            }).find("avg_pool2d: out has shape [1, 2, 4, 4], expected [1, 2, 4, 5]"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              cuda::max_pool2d(x, {3, 3, 2, 2, 2, 2}, out, idx);
            }).find("max_pool2d: padding 2x2"),
            std::string::npos);
  Tensor out64 = poisoned({1, 2, 4, 5}, kFloat64);
  EXPECT_NE(error_of([&] {
              cuda::max_pool2d(x, {3, 3, 2, 2, 1, 1}, out64, idx);
            }).find("max_pool2d: out is float64, expected float32"),
            std::string::npos);
  const Tensor x3 = to_gpu(zeros({2, 7, 9}));
  EXPECT_NE(error_of([&] { cuda::adaptive_avg_pool2d(x3, out); }).find("must be 4-d"),
            std::string::npos);
}

TEST(CudaPool, DispatchRoutesByDeviceAndRejectsMixedDevices) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(7);
  const Tensor x = random_tensor({2, 3, 7, 9}, kFloat32, rng);
  const Pool2dParams p{3, 3, 2, 2, 1, 1};
  Tensor out = empty({2, 3, 4, 5}), idx = empty({2, 3, 4, 5}, kInt64);
  dispatch::max_pool2d(x, p, out, idx);
  Tensor dout = poisoned({2, 3, 4, 5}, kFloat32), didx = poisoned({2, 3, 4, 5}, kInt64);
  dispatch::max_pool2d(to_gpu(x), p, dout, didx);
  expect_close(dout, out, 0.0, "dispatch::max_pool2d");

  Tensor cpu_out = empty({2, 3, 4, 5});
  EXPECT_EQ(error_of([&] { dispatch::max_pool2d(to_gpu(x), p, cpu_out, didx); }),
            "max_pool2d: tensors on cuda:0 and cpu");
  EXPECT_EQ(error_of([&] { dispatch::avg_pool2d(x, p, dout); }),
            "avg_pool2d: tensors on cpu and cuda:0");
  Tensor gx = poisoned({2, 3, 7, 9}, kFloat32);
  EXPECT_EQ(error_of([&] { dispatch::max_pool2d_backward(dout, idx, gx); }),
            "max_pool2d_backward: tensors on cuda:0 and cpu");
  EXPECT_EQ(error_of([&] { dispatch::avg_pool2d_backward(out, p, gx); }),
            "avg_pool2d_backward: tensors on cpu and cuda:0");
  EXPECT_EQ(error_of([&] { dispatch::adaptive_avg_pool2d(x, dout); }),
            "adaptive_avg_pool2d: tensors on cpu and cuda:0");
  EXPECT_EQ(error_of([&] { dispatch::adaptive_avg_pool2d_backward(out, gx); }),
            "adaptive_avg_pool2d_backward: tensors on cpu and cuda:0");
}
