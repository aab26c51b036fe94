// kernels/dispatch: on CPU tensors every entry point gives exactly what the cpu:: kernel gives
// (it is a pass-through), argument errors still come from the kernel, and the device check names
// the op and both devices. These run on any machine; the CPU/CUDA mismatch itself is tested in
// test_cuda_elementwise (it needs a CUDA tensor).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "core/views.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/linalg.h"
#include "kernels/cpu/reduce.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/dispatch.h"
#include "tests/cuda_test_util.h"
#include "tests/tensor_test_util.h"

using namespace selfsup;
using namespace selfsup::test;
using cpu::BinaryOp;
using cpu::UnaryOp;

namespace {

// Bit-for-bit equal, NaN matching NaN (the same kernel ran on both sides).
void expect_identical(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  const std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  for (size_t i = 0; i < w.size(); ++i) {
    if (std::isnan(w[i])) {
      ASSERT_TRUE(std::isnan(g[i])) << what << ": element " << i;
      continue;
    }
    ASSERT_EQ(g[i], w[i]) << what << ": element " << i;
  }
}

const UnaryOp kUnaryOps[] = {UnaryOp::Neg,  UnaryOp::Exp,    UnaryOp::Log,        UnaryOp::Sqrt,
                             UnaryOp::Abs,  UnaryOp::Relu,   UnaryOp::Gelu,       UnaryOp::Sigmoid,
                             UnaryOp::Tanh, UnaryOp::Square, UnaryOp::Reciprocal, UnaryOp::Sign};
const BinaryOp kBinaryOps[] = {BinaryOp::Add, BinaryOp::Sub,     BinaryOp::Mul,     BinaryOp::Div,
                               BinaryOp::Pow, BinaryOp::Maximum, BinaryOp::Minimum, BinaryOp::Eq,
                               BinaryOp::Ne,  BinaryOp::Lt,      BinaryOp::Le,      BinaryOp::Gt,
                               BinaryOp::Ge};

bool is_comparison(BinaryOp op) {
  return op >= BinaryOp::Eq;
}

}  // namespace

TEST(KernelsDispatch, UnaryOnCpuIsTheCpuKernel) {
  std::mt19937_64 rng(1);
  for (DType dtype : {kFloat32, kFloat64})
    for (UnaryOp op : kUnaryOps) {
      // A transposed input, to go through the strided path too.
      const Tensor x = raw::transpose(random_tensor({17, 33}, dtype, rng), 0, 1);
      Tensor want = poisoned({33, 17}, dtype), got = poisoned({33, 17}, dtype);
      cpu::unary(op, x, want);
      dispatch::unary(op, x, got);
      expect_identical(got, want, cpu::unary_op_name(op));
    }
}

TEST(KernelsDispatch, BinaryAndScalarOnCpuAreTheCpuKernels) {
  std::mt19937_64 rng(2);
  for (DType dtype : {kFloat32, kFloat64})
    for (BinaryOp op : kBinaryOps) {
      const Tensor a = random_tensor({5, 1, 129}, dtype, rng, {.integers = true});
      const Tensor b = random_tensor({1, 9, 1}, dtype, rng, {.integers = true});
      const DType out_dtype = is_comparison(op) ? kUInt8 : dtype;
      Tensor want = poisoned({5, 9, 129}, out_dtype), got = poisoned({5, 9, 129}, out_dtype);
      cpu::binary(op, a, b, want);
      dispatch::binary(op, a, b, got);
      expect_identical(got, want, cpu::binary_op_name(op));

      Tensor want_s = poisoned({5, 1, 129}, out_dtype), got_s = poisoned({5, 1, 129}, out_dtype);
      cpu::binary_scalar(op, a, 2.0, want_s);
      dispatch::binary_scalar(op, a, 2.0, got_s);
      expect_identical(got_s, want_s, std::string(cpu::binary_op_name(op)) + " scalar");
    }
}

TEST(KernelsDispatch, AxpbyClampWhereFillOnCpuAreTheCpuKernels) {
  std::mt19937_64 rng(3);
  for (DType dtype : {kFloat32, kFloat64}) {
    const Tensor a = random_tensor({33, 17}, dtype, rng), b = random_tensor({17}, dtype, rng);
    Tensor want = poisoned({33, 17}, dtype), got = poisoned({33, 17}, dtype);
    cpu::axpby(0.5, a, -2.0, b, want);
    dispatch::axpby(0.5, a, -2.0, b, got);
    expect_identical(got, want, "axpby");

    cpu::clamp(a, -1.0, 0.5, want);
    dispatch::clamp(a, -1.0, 0.5, got);
    expect_identical(got, want, "clamp");

    const Tensor cond = random_tensor({33, 1}, kUInt8, rng, {.integers = true});
    cpu::where(cond, a, b, want);
    dispatch::where(cond, a, b, got);
    expect_identical(got, want, "where");

    Tensor view_want = raw::slice(want, 1, 1, 17, 3), view_got = raw::slice(got, 1, 1, 17, 3);
    cpu::fill(view_want, 4.0);
    dispatch::fill(view_got, 4.0);
    expect_identical(got, want, "fill");
  }
}

TEST(KernelsDispatch, BackwardHelpersOnCpuAreTheCpuKernels) {
  using Backward = void (*)(const Tensor&, const Tensor&, Tensor&);
  const std::pair<Backward, Backward> pairs[] = {
      {cpu::relu_backward, dispatch::relu_backward},
      {cpu::gelu_backward, dispatch::gelu_backward},
      {cpu::sigmoid_backward, dispatch::sigmoid_backward},
      {cpu::tanh_backward, dispatch::tanh_backward},
  };
  std::mt19937_64 rng(4);
  for (DType dtype : {kFloat32, kFloat64}) {
    const Tensor g = random_tensor({7, 5}, dtype, rng), x = random_tensor({7, 5}, dtype, rng);
    for (const auto& [cpu_fn, dispatch_fn] : pairs) {
      Tensor want = poisoned({7, 5}, dtype), got = poisoned({7, 5}, dtype);
      cpu_fn(g, x, want);
      dispatch_fn(g, x, got);
      expect_identical(got, want, "backward");
    }
    Tensor want = poisoned({7, 5}, dtype), got = poisoned({7, 5}, dtype);
    cpu::clamp_backward(g, x, -1.0, 1.0, want);
    dispatch::clamp_backward(g, x, -1.0, 1.0, got);
    expect_identical(got, want, "clamp_backward");
  }
}

TEST(KernelsDispatch, KernelArgumentErrorsPassThrough) {
  const Tensor x = zeros({3});
  Tensor out = zeros({4});
  EXPECT_NE(error_of([&] { dispatch::unary(UnaryOp::Exp, x, out); }).find("exp: out has shape"),
            std::string::npos);
}

TEST(KernelsDispatch, CommonDeviceSkipsUndefinedAndNamesBothDevices) {
  const Tensor a = zeros({2}), undefined = Tensor();
  EXPECT_EQ(dispatch::detail::common_device("op", {&undefined, &a}), kCPU);
  EXPECT_EQ(dispatch::detail::common_device("op", {&undefined}), kCPU);
}

TEST(KernelsDispatch, ReductionsOnCpuAreTheCpuKernels) {
  std::mt19937_64 rng(5);
  for (DType dtype : {kFloat32, kFloat64}) {
    const Tensor x = raw::transpose(random_tensor({9, 5, 7}, dtype, rng), 0, 2);  // [7, 5, 9]
    for (const std::vector<int64_t>& dims : {std::vector<int64_t>{}, {0}, {1, 2}, {-1}}) {
      const Shape shape = reduced_shape(x.shape(), dims, false, "sum");
      Tensor want = poisoned(shape, dtype), got = poisoned(shape, dtype);
      cpu::sum(x, dims, false, want);
      dispatch::sum(x, dims, false, got);
      expect_identical(got, want, "sum");
      cpu::mean(x, dims, false, want);
      dispatch::mean(x, dims, false, got);
      expect_identical(got, want, "mean");
      cpu::var(x, dims, 1, false, want);
      dispatch::var(x, dims, 1, false, got);
      expect_identical(got, want, "var");
    }
    Tensor want_v = poisoned({7, 9}, dtype), got_v = poisoned({7, 9}, dtype);
    Tensor want_i = poisoned({7, 9}, kInt64), got_i = poisoned({7, 9}, kInt64);
    cpu::max(x, 1, false, want_v, want_i);
    dispatch::max(x, 1, false, got_v, got_i);
    expect_identical(got_v, want_v, "max values");
    expect_identical(got_i, want_i, "max indices");
    cpu::min(x, 1, false, want_v, want_i);
    dispatch::min(x, 1, false, got_v, got_i);
    expect_identical(got_v, want_v, "min values");
    expect_identical(got_i, want_i, "min indices");
    cpu::argmax(x, 1, false, want_i);
    dispatch::argmax(x, 1, false, got_i);
    expect_identical(got_i, want_i, "argmax");
    Tensor want_0 = poisoned({}, dtype), got_0 = poisoned({}, dtype);
    cpu::max_all(x, want_0);
    dispatch::max_all(x, got_0);
    expect_identical(got_0, want_0, "max_all");
    cpu::min_all(x, want_0);
    dispatch::min_all(x, got_0);
    expect_identical(got_0, want_0, "min_all");

    const Tensor g = random_tensor({7, 9}, dtype, rng);
    Tensor want_g = poisoned({7, 5, 9}, dtype), got_g = poisoned({7, 5, 9}, dtype);
    cpu::sum_backward(g, x.shape(), {1}, want_g);
    dispatch::sum_backward(g, x.shape(), {1}, got_g);
    expect_identical(got_g, want_g, "sum_backward");
    Tensor want_t = poisoned({5, 1}, dtype), got_t = poisoned({5, 1}, dtype);
    cpu::sum_to(x, {5, 1}, want_t);
    dispatch::sum_to(x, {5, 1}, got_t);
    expect_identical(got_t, want_t, "sum_to");
  }
}

TEST(KernelsDispatch, MatmulAndBmmOnCpuAreTheCpuKernels) {
  std::mt19937_64 rng(6);
  for (DType dtype : {kFloat32, kFloat64}) {
    const Tensor a = random_tensor({13, 7}, dtype, rng);
    const Tensor b = raw::transpose(random_tensor({5, 7}, dtype, rng), 0, 1);  // [7, 5] view
    Tensor want = poisoned({13, 5}, dtype), got = poisoned({13, 5}, dtype);
    cpu::matmul(a, b, want);
    dispatch::matmul(a, b, got);
    expect_identical(got, want, "matmul");

    const Tensor ba = random_tensor({3, 13, 7}, dtype, rng),
                 bb = random_tensor({3, 7, 5}, dtype, rng);
    Tensor want_b = poisoned({3, 13, 5}, dtype), got_b = poisoned({3, 13, 5}, dtype);
    cpu::bmm(ba, bb, want_b);
    dispatch::bmm(ba, bb, got_b);
    expect_identical(got_b, want_b, "bmm");
  }
}

// dispatch::matmul on the GPU reads transposed operands in place through gemm's NT / TN layouts
// and copies the rest: every combination of plain, transposed and strided operands must give the
// CPU's product (float32, awkward sizes), and float64 is refused with the op's name.
TEST(KernelsDispatch, MatmulOnCudaMatchesCpuForEveryOperandLayout) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(7);
  const int64_t M = 37, K = 19, N = 23;
  // A random base tensor and the view of it to multiply: 0 plain, 1 transposed, 2 every other
  // column (neither rows nor columns contiguous, so dispatch must copy it), 3 one row expanded
  // to all rows (row stride 0: the rows overlap, so dispatch must copy it too).
  struct Operand {
    Tensor base;
    int layout;
    int64_t rows;
    Tensor view_of(const Tensor& t) const {
      if (layout == 1) return raw::transpose(t, 0, 1);
      if (layout == 2) return raw::slice(t, 1, 0, t.size(1), 2);
      if (layout == 3) return raw::expand(t, {rows, t.size(1)});
      return t;
    }
  };
  auto operand = [&](int64_t rows, int64_t cols, int layout) {
    const Shape base_shape = layout == 0   ? Shape{rows, cols}
                             : layout == 1 ? Shape{cols, rows}
                             : layout == 2 ? Shape{rows, 2 * cols}
                                           : Shape{1, cols};
    return Operand{random_tensor(base_shape, kFloat32, rng), layout, rows};
  };
  for (int la = 0; la < 4; ++la)
    for (int lb = 0; lb < 4; ++lb) {
      const Operand a = operand(M, K, la), b = operand(K, N, lb);
      Tensor want = poisoned({M, N}, kFloat32);
      cpu::matmul(a.view_of(a.base), b.view_of(b.base), want);
      const Tensor a_gpu = a.view_of(raw::to_device(a.base, Device::cuda()));
      const Tensor b_gpu = b.view_of(raw::to_device(b.base, Device::cuda()));
      Tensor got = raw::to_device(poisoned({M, N}, kFloat32), Device::cuda());
      dispatch::matmul(a_gpu, b_gpu, got);
      const std::vector<float> g = raw::to_device(got, kCPU).to_vector<float>();
      const std::vector<float> w = want.to_vector<float>();
      for (size_t i = 0; i < w.size(); ++i)
        ASSERT_NEAR(g[i], w[i], 1e-4 * (1 + std::fabs(w[i])))
            << "layouts " << la << lb << ", element " << i;
    }
  const Tensor a64 = raw::to_device(random_tensor({3, 4}, kFloat64, rng), Device::cuda());
  Tensor out64 = raw::to_device(poisoned({3, 3}, kFloat64), Device::cuda());
  EXPECT_NE(error_of([&] {
              dispatch::matmul(a64, raw::transpose(a64, 0, 1), out64);
            }).find("matmul: the GPU kernels take float32"),
            std::string::npos);
}

TEST(KernelsDispatch, MixedDevicesInAReductionNameBothDevices) {
  SELFSUP_REQUIRE_GPU();
  const Tensor x = raw::to_device(zeros({4, 3}), Device::cuda());
  Tensor out = zeros({3});
  EXPECT_EQ(error_of([&] { dispatch::sum(x, {0}, false, out); }), "sum: tensors on cuda:0 and cpu");
}

#if !SELFSUP_WITH_CUDA
// In a CPU-only build the CUDA entry points exist (so dispatch links) and say why they can't run.
TEST(KernelsDispatch, CudaStubsSayThereIsNoBackend) {
  const Tensor x = zeros({3});
  Tensor out = zeros({3});
  EXPECT_EQ(error_of([&] { cuda::unary(UnaryOp::Exp, x, out); }),
            "exp: this build has no CUDA backend");
  EXPECT_EQ(error_of([&] { cuda::binary(BinaryOp::Add, x, x, out); }),
            "add: this build has no CUDA backend");
  EXPECT_EQ(error_of([&] { cuda::fill(out, 1.0); }), "fill: this build has no CUDA backend");
  EXPECT_EQ(error_of([&] { cuda::clamp_backward(x, x, 0, 1, out); }),
            "clamp_backward: this build has no CUDA backend");
}
#endif
