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
#include "kernels/cuda/elementwise.h"
#include "kernels/dispatch.h"

using namespace selfsup;
using cpu::BinaryOp;
using cpu::UnaryOp;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

Tensor random_tensor(const Shape& shape, DType dtype, std::mt19937_64& rng, bool integers = false) {
  std::uniform_real_distribution<double> u(-3.0, 3.0);
  std::vector<double> data(shape_numel(shape));
  for (double& x : data)
    x = integers ? std::round(u(rng)) : u(rng);
  return raw::to_dtype(from_vector<double>(data, shape), dtype);
}

Tensor poisoned(const Shape& shape, DType dtype) {
  return full(shape, is_floating(dtype) ? kNaN : 171.0, dtype);
}

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

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
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
      const Tensor a = random_tensor({5, 1, 129}, dtype, rng, true);
      const Tensor b = random_tensor({1, 9, 1}, dtype, rng, true);
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

    const Tensor cond = random_tensor({33, 1}, kUInt8, rng, true);
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
