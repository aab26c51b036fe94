// 2-d convolution on the GPU (kernels/cuda/conv.h): every version of the forward pass, grad_x,
// grad_w and grad_b against kernels/cpu/conv on the same random inputs, on awkward shapes
// (C = 1/3/5/64, H x W = 7x9/13x13/28x28/3x3/8x6, O = 5/7/16/33/64, kernels 3x3/1x1/5x3, strides
// 1 and 2 and 1x2, padding 0/1/2 and 2x1, a 1x1 output, and one ResNet-sized layer that takes
// grad_w's split-K path), float32 (every version) and float64 (which runs the direct kernels
// whatever version is asked). Outputs are poisoned with NaN, so an element a kernel fails to
// write fails the test; each of grad_x, grad_w, grad_b is skipped in turn. Without a GPU the
// device tests skip; the argument checks on host tensors still run in a CUDA build.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "core/random.h"
#include "core/tensor.h"
#include "core/views.h"
#include "kernels/cpu/conv.h"
#include "kernels/cuda/conv.h"
#include "kernels/dispatch.h"
#include "tests/cuda_test_util.h"
#include "tests/tensor_test_util.h"

using namespace selfsup;
using selfsup::test::error_of;
using selfsup::test::mentions;
using selfsup::test::poisoned_gpu;
using selfsup::test::to_cpu;
using selfsup::test::to_gpu;

namespace {

struct Case {
  int64_t N, C, H, W, O, KH, KW;
  cpu::Conv2dParams p;
  bool bias;
};

// {N, C, H, W, O, KH, KW, {stride_h, stride_w, pad_h, pad_w}, bias}
const Case kCases[] = {
    {3, 1, 28, 28, 16, 3, 3, {1, 1, 1, 1}, true},    // a first layer, C = 1
    {3, 3, 13, 13, 7, 5, 3, {2, 2, 2, 1}, true},     // 5x3 kernel, stride 2, pad 2x1
    {3, 5, 7, 9, 33, 3, 3, {1, 1, 0, 0}, false},     // O past one 32-tile, no bias
    {3, 5, 7, 9, 16, 1, 1, {2, 2, 0, 0}, true},      // 1x1 kernel, stride 2
    {3, 3, 3, 3, 7, 3, 3, {1, 1, 0, 0}, true},       // a 1x1 output
    {3, 5, 13, 13, 33, 1, 1, {1, 1, 0, 0}, false},   // 1x1, stride 1, no padding
    {3, 5, 28, 28, 7, 3, 3, {2, 2, 2, 2}, true},     // pad 2, stride 2
    {3, 3, 8, 6, 5, 3, 3, {1, 2, 2, 0}, true},       // stride 1x2, pad 2x0
    {8, 64, 16, 16, 64, 3, 3, {1, 1, 1, 1}, false},  // a ResNet layer: grad_w splits K
};

std::string case_name(const Case& c) {
  return "x [" + std::to_string(c.N) + ", " + std::to_string(c.C) + ", " + std::to_string(c.H) +
         ", " + std::to_string(c.W) + "] w [" + std::to_string(c.O) + ", " + std::to_string(c.C) +
         ", " + std::to_string(c.KH) + ", " + std::to_string(c.KW) + "] stride " +
         std::to_string(c.p.stride_h) + "x" + std::to_string(c.p.stride_w) + " pad " +
         std::to_string(c.p.pad_h) + "x" + std::to_string(c.p.pad_w);
}

int64_t out_h(const Case& c) {
  return cpu::conv_out_size(c.H, c.KH, c.p.stride_h, c.p.pad_h);
}
int64_t out_w(const Case& c) {
  return cpu::conv_out_size(c.W, c.KW, c.p.stride_w, c.p.pad_w);
}

// The versions to run: the hand-written ones, and cuDNN where the build has it.
std::vector<int> versions() {
  std::vector<int> v;
  for (int i = 0; i < cuda::kConvVersionCount; ++i)
    if (i != cuda::kConvCudnn || cuda::conv_cudnn_available()) v.push_back(i);
  return v;
}

// max |got - want| relative to max |want| (at least 1), failing on any NaN in got.
void expect_close(const Tensor& got_gpu, const Tensor& want, DType dt, const std::string& what) {
  const Tensor got = raw::to_dtype(raw::contiguous(to_cpu(got_gpu)), kFloat64);
  const Tensor ref = raw::to_dtype(raw::contiguous(want), kFloat64);
  ASSERT_EQ(got.shape(), ref.shape()) << what;
  const double* g = got.data_ptr<double>();
  const double* r = ref.data_ptr<double>();
  double scale = 1.0, err = 0.0;
  int64_t nans = 0;
  for (int64_t i = 0; i < ref.numel(); ++i) {
    scale = std::max(scale, std::abs(r[i]));
    if (std::isnan(g[i])) ++nans;
    err = std::max(err, std::abs(g[i] - r[i]));
  }
  const double tol = dt == kFloat32 ? 1e-4 : 1e-10;
  EXPECT_EQ(nans, 0) << what << ": unwritten (NaN) elements";
  EXPECT_LE(err / scale, tol) << what;
}

// The random operands of one case, on the CPU.
struct Operands {
  Tensor x, w, bias, grad_out;
};
Operands make_operands(const Case& c, DType dt, uint64_t seed) {
  Generator gen(seed);
  const TensorOptions o(dt);
  Operands ops;
  ops.x = randn({c.N, c.C, c.H, c.W}, o, &gen);
  ops.w = randn({c.O, c.C, c.KH, c.KW}, o, &gen);
  if (c.bias) ops.bias = randn({c.O}, o, &gen);
  ops.grad_out = randn({c.N, c.O, out_h(c), out_w(c)}, o, &gen);
  return ops;
}

std::string label(const Case& c, DType dt, int version) {
  return case_name(c) + " " + dtype_name(dt) + " version " + std::to_string(version) + " (" +
         cuda::conv_version_name(version) + ")";
}

}  // namespace

// ============================================================================================
// Against the CPU
// ============================================================================================

TEST(CudaConv, ForwardMatchesTheCpuForEveryVersion) {
  SELFSUP_REQUIRE_GPU();
  uint64_t seed = 1;
  for (DType dt : {kFloat32, kFloat64})
    for (const Case& c : kCases) {
      const Operands ops = make_operands(c, dt, seed++);
      Tensor want = empty({c.N, c.O, out_h(c), out_w(c)}, dt);
      cpu::conv2d(ops.x, ops.w, ops.bias, c.p, want);
      const Tensor x = to_gpu(ops.x), w = to_gpu(ops.w);
      const Tensor bias = c.bias ? to_gpu(ops.bias) : Tensor();
      for (int v : versions()) {
        Tensor out = poisoned_gpu(want.shape(), dt);
        cuda::conv2d_forward_version(x, w, bias, c.p, out, v);
        expect_close(out, want, dt, "forward " + label(c, dt, v));
      }
    }
}

TEST(CudaConv, BackwardMatchesTheCpuForEveryVersionSkippingEachGradInTurn) {
  SELFSUP_REQUIRE_GPU();
  uint64_t seed = 100;
  for (DType dt : {kFloat32, kFloat64})
    for (const Case& c : kCases) {
      const Operands ops = make_operands(c, dt, seed++);
      Tensor want_x = empty(ops.x.shape(), dt), want_w = empty(ops.w.shape(), dt),
             want_b = empty({c.O}, dt);
      cpu::conv2d_backward(ops.grad_out, ops.x, ops.w, c.p, want_x, want_w, want_b);
      const Tensor go = to_gpu(ops.grad_out), x = to_gpu(ops.x), w = to_gpu(ops.w);
      for (int v : versions())
        for (int skip = -1; skip < 3; ++skip) {  // -1: all three; 0, 1, 2: skip x, w, b
          Tensor gx = skip == 0 ? Tensor() : poisoned_gpu(ops.x.shape(), dt);
          Tensor gw = skip == 1 ? Tensor() : poisoned_gpu(ops.w.shape(), dt);
          Tensor gb = skip == 2 ? Tensor() : poisoned_gpu({c.O}, dt);
          cuda::conv2d_backward_version(go, x, w, c.p, gx, gw, gb, v);
          const std::string what = label(c, dt, v) + " skipping " + std::to_string(skip);
          if (gx.defined()) expect_close(gx, want_x, dt, "grad_x " + what);
          if (gw.defined()) expect_close(gw, want_w, dt, "grad_w " + what);
          if (gb.defined()) expect_close(gb, want_b, dt, "grad_b " + what);
        }
    }
}

TEST(CudaConv, DefaultEntryPointsAndDispatchMatchTheCpu) {
  SELFSUP_REQUIRE_GPU();
  const Case& c = kCases[1];
  const Operands ops = make_operands(c, kFloat32, 7);
  Tensor want = empty({c.N, c.O, out_h(c), out_w(c)}, kFloat32);
  cpu::conv2d(ops.x, ops.w, ops.bias, c.p, want);
  Tensor want_x = empty(ops.x.shape()), want_w = empty(ops.w.shape()), want_b = empty({c.O});
  cpu::conv2d_backward(ops.grad_out, ops.x, ops.w, c.p, want_x, want_w, want_b);

  const Tensor x = to_gpu(ops.x), w = to_gpu(ops.w), bias = to_gpu(ops.bias),
               go = to_gpu(ops.grad_out);
  Tensor out = poisoned_gpu(want.shape(), kFloat32);
  cuda::conv2d(x, w, bias, c.p, out);
  expect_close(out, want, kFloat32, "cuda::conv2d");
  out = poisoned_gpu(want.shape(), kFloat32);
  dispatch::conv2d(x, w, bias, c.p, out);
  expect_close(out, want, kFloat32, "dispatch::conv2d");

  Tensor gx = poisoned_gpu(ops.x.shape(), kFloat32), gw = poisoned_gpu(ops.w.shape(), kFloat32),
         gb = poisoned_gpu({c.O}, kFloat32);
  cuda::conv2d_backward(go, x, w, c.p, gx, gw, gb);
  expect_close(gx, want_x, kFloat32, "cuda::conv2d_backward grad_x");
  expect_close(gw, want_w, kFloat32, "cuda::conv2d_backward grad_w");
  expect_close(gb, want_b, kFloat32, "cuda::conv2d_backward grad_b");
  gx = poisoned_gpu(ops.x.shape(), kFloat32);
  gw = poisoned_gpu(ops.w.shape(), kFloat32);
  gb = poisoned_gpu({c.O}, kFloat32);
  dispatch::conv2d_backward(go, x, w, c.p, gx, gw, gb);
  expect_close(gx, want_x, kFloat32, "dispatch::conv2d_backward grad_x");
  expect_close(gw, want_w, kFloat32, "dispatch::conv2d_backward grad_w");
  expect_close(gb, want_b, kFloat32, "dispatch::conv2d_backward grad_b");
}

TEST(CudaConv, AnEmptyBatchGivesZeroWeightAndBiasGradients) {
  SELFSUP_REQUIRE_GPU();
  const cpu::Conv2dParams p{1, 1, 1, 1};
  const Tensor x = to_gpu(zeros({0, 3, 5, 5})), w = to_gpu(randn({4, 3, 3, 3})),
               go = to_gpu(zeros({0, 4, 5, 5}));
  for (int v : versions()) {
    Tensor gx = to_gpu(zeros({0, 3, 5, 5})), gw = poisoned_gpu({4, 3, 3, 3}, kFloat32),
           gb = poisoned_gpu({4}, kFloat32);
    cuda::conv2d_backward_version(go, x, w, p, gx, gw, gb, v);
    expect_close(gw, zeros({4, 3, 3, 3}), kFloat32, "grad_w of an empty batch");
    expect_close(gb, zeros({4}), kFloat32, "grad_b of an empty batch");
  }
}

// ============================================================================================
// Errors
// ============================================================================================

TEST(CudaConv, ShapeMismatchesAreErrorsNamingBothShapes) {
  SELFSUP_REQUIRE_GPU();
  const cpu::Conv2dParams p{1, 1, 1, 1};
  const Tensor x = to_gpu(randn({3, 5, 7, 9})), w = to_gpu(randn({7, 5, 3, 3}));
  const Tensor w_bad = to_gpu(randn({7, 4, 3, 3})), bias_bad = to_gpu(randn({6}));
  Tensor out = poisoned_gpu({3, 7, 7, 9}, kFloat32), out_bad = poisoned_gpu({3, 7, 7, 8}, kFloat32);
  const Tensor go = to_gpu(randn({3, 7, 7, 9}));
  Tensor none, gw_bad = poisoned_gpu({7, 5, 3, 2}, kFloat32);

  const std::string channels = error_of([&] { cuda::conv2d(x, w_bad, Tensor(), p, out); });
  EXPECT_PRED2(mentions, channels, "conv2d: input [3, 5, 7, 9]");
  EXPECT_PRED2(mentions, channels, "[7, 4, 3, 3]");
  EXPECT_PRED2(mentions, error_of([&] { cuda::conv2d(x, w, Tensor(), p, out_bad); }),
               "out has shape [3, 7, 7, 8], expected [3, 7, 7, 9]");
  const std::string bias = error_of([&] { cuda::conv2d(x, w, bias_bad, p, out); });
  EXPECT_PRED2(mentions, bias, "bias [6]");
  EXPECT_PRED2(mentions, bias, "[7, 5, 3, 3]");
  EXPECT_PRED2(mentions, error_of([&] { cuda::conv2d_backward(go, x, w, p, none, gw_bad, none); }),
               "conv2d_backward: grad_w has shape [7, 5, 3, 2], expected [7, 5, 3, 3]");
  EXPECT_PRED2(mentions,
               error_of([&] { cuda::conv2d_backward(out_bad, x, w, p, none, none, none); }),
               "grad_out has shape [3, 7, 7, 8]");
  // Non-contiguous and float64-with-float32 inputs.
  const Tensor x_t = raw::transpose(to_gpu(randn({3, 5, 9, 7})), 2, 3);
  EXPECT_PRED2(mentions, error_of([&] { cuda::conv2d(x_t, w, Tensor(), p, out); }),
               "must be contiguous");
  const Tensor w64 = to_gpu(randn({7, 5, 3, 3}, kFloat64));
  EXPECT_PRED2(mentions, error_of([&] { cuda::conv2d(x, w64, Tensor(), p, out); }),
               "weight is float64, expected float32");
}

TEST(CudaConv, MixedDevicesThroughDispatchAreAnError) {
  SELFSUP_REQUIRE_GPU();
  const cpu::Conv2dParams p{};
  const Tensor x = to_gpu(randn({1, 2, 5, 5})), w = randn({3, 2, 3, 3});
  Tensor out = poisoned_gpu({1, 3, 3, 3}, kFloat32);
  EXPECT_PRED2(mentions, error_of([&] { dispatch::conv2d(x, w, Tensor(), p, out); }),
               "conv2d: tensors on cuda:0 and cpu");
  Tensor gw = zeros({3, 2, 3, 3}), none;
  const Tensor go = to_gpu(randn({1, 3, 3, 3}));
  EXPECT_PRED2(mentions,
               error_of([&] { dispatch::conv2d_backward(go, x, to_gpu(w), p, none, gw, none); }),
               "conv2d_backward: tensors on cuda:0 and cpu");
}

#if SELFSUP_WITH_CUDA

// Host tensors and bad versions are refused before anything touches a GPU, so these run
// everywhere the CUDA backend is built.
TEST(CudaConvHost, HostTensorsAndUnknownVersionsAreErrorsNamingTheOp) {
  const cpu::Conv2dParams p{};
  const Tensor x = randn({1, 2, 5, 5}), w = randn({3, 2, 3, 3});
  Tensor out = zeros({1, 3, 3, 3}), none;
  EXPECT_PRED2(mentions, error_of([&] { cuda::conv2d(x, w, Tensor(), p, out); }),
               "conv2d: input must be on the CUDA device, got cpu");
  EXPECT_PRED2(mentions, error_of([&] { cuda::conv2d_backward(out, x, w, p, none, none, none); }),
               "conv2d_backward: input must be on the CUDA device");
  EXPECT_PRED2(mentions, error_of([&] { cuda::conv2d_forward_version(x, w, none, p, out, 9); }),
               "conv2d: unknown version 9");
  EXPECT_EQ(std::string(cuda::conv_version_name(cuda::kConvDefault)), "igemm_regs_64");
  EXPECT_EQ(std::string(cuda::conv_version_name(-1)), "?");
  if (!cuda::conv_cudnn_available()) {
    EXPECT_PRED2(mentions, error_of([&] {
                   cuda::conv2d_forward_version(x, w, none, p, out, cuda::kConvCudnn);
                 }),
                 "cuDNN");
  }
}

#endif
