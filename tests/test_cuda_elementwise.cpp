// kernels/cuda/elementwise against the CPU reference (kernels/cpu/elementwise), entry point by
// entry point: the same random values in the same layout on both sides (contiguous, transposed,
// stepped, expanded; outputs contiguous or transposed and poisoned with NaN first), on awkward
// and broadcast shapes, float32 and float64 (and every dtype where the CPU takes it). Then the
// autograd ops (forward and backward) on CUDA against the same ops on the CPU, and the dispatch
// layer's device check. Without a GPU every test here skips.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "core/tensor.h"
#include "core/views.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/dispatch.h"
#include "tests/cuda_test_util.h"
#include "tests/tensor_test_util.h"

using namespace selfsup;
using namespace selfsup::test;
using cpu::BinaryOp;
using cpu::UnaryOp;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

const Device kGpu = Device::cuda();

const UnaryOp kUnaryOps[] = {UnaryOp::Neg,  UnaryOp::Exp,    UnaryOp::Log,        UnaryOp::Sqrt,
                             UnaryOp::Abs,  UnaryOp::Relu,   UnaryOp::Gelu,       UnaryOp::Sigmoid,
                             UnaryOp::Tanh, UnaryOp::Square, UnaryOp::Reciprocal, UnaryOp::Sign};
const BinaryOp kArithmetic[] = {BinaryOp::Add, BinaryOp::Sub,     BinaryOp::Mul,    BinaryOp::Div,
                                BinaryOp::Pow, BinaryOp::Maximum, BinaryOp::Minimum};
const BinaryOp kComparisons[] = {BinaryOp::Eq, BinaryOp::Ne, BinaryOp::Lt,
                                 BinaryOp::Le, BinaryOp::Gt, BinaryOp::Ge};
const DType kFloats[] = {kFloat32, kFloat64};
const DType kAllDtypes[] = {kFloat32, kFloat64, kInt64, kUInt8};
const DType kMaskDtypes[] = {kUInt8, kFloat32, kFloat64};

// ---- one tensor on both sides ----

enum class Layout { Contiguous, Transposed, Stepped, Expanded };
const Layout kLayouts[] = {Layout::Contiguous, Layout::Transposed, Layout::Stepped,
                           Layout::Expanded};

const char* layout_name(Layout l) {
  switch (l) {
    case Layout::Contiguous:
      return "contiguous";
    case Layout::Transposed:
      return "transposed";
    case Layout::Stepped:
      return "stepped";
    case Layout::Expanded:
      return "expanded";
  }
  return "?";
}

using ViewFn = std::function<Tensor(const Tensor&)>;

// The base shape that `layout` views as `shape`, and the view. Layouts a shape cannot carry
// fall back to contiguous.
std::pair<Shape, ViewFn> layout_of(const Shape& shape, Layout layout) {
  const int64_t nd = static_cast<int64_t>(shape.size());
  Shape base = shape;
  if (layout == Layout::Transposed && nd >= 2) {
    std::swap(base[nd - 2], base[nd - 1]);
    return {base, [nd](const Tensor& t) { return raw::transpose(t, nd - 2, nd - 1); }};
  }
  if (layout == Layout::Stepped && nd >= 1) {  // every other element, from the second
    const int64_t n = shape[nd - 1];
    base[nd - 1] = 2 * n + 1;
    return {base, [nd, n](const Tensor& t) { return raw::slice(t, nd - 1, 1, 2 * n + 1, 2); }};
  }
  if (layout == Layout::Expanded && nd >= 1 && shape[0] > 1) {  // stride 0 along dim 0
    base[0] = 1;
    return {base, [shape](const Tensor& t) { return raw::expand(t, shape); }};
  }
  return {base, [](const Tensor& t) { return t; }};
}

// An input: `host` and `dev` hold the same values with the same strides and offset.
struct Pair {
  Tensor host, dev;
};

Pair make_input(const Shape& shape, DType dtype, Layout layout, std::mt19937_64& rng,
                Values v = {}) {
  auto [base_shape, view] = layout_of(shape, layout);
  const Tensor base = random_tensor(base_shape, dtype, rng, v);
  return {view(base), view(raw::to_device(base, kGpu))};
}

// An output: a view of a base buffer poisoned with NaN (or 171 for integers) on both sides; the
// device result is read back by downloading the whole base and taking the same view.
struct Out {
  Tensor host, dev, dev_base;
  ViewFn view;
  Tensor result() const { return view(raw::to_device(dev_base, kCPU)); }
};

Out make_out(const Shape& shape, DType dtype, bool transposed) {
  auto [base_shape, view] = layout_of(shape, transposed ? Layout::Transposed : Layout::Contiguous);
  const Tensor base = poisoned(base_shape, dtype);
  Out o;
  o.dev_base = raw::to_device(base, kGpu);
  o.host = view(raw::clone(base));
  o.dev = view(o.dev_base);
  o.view = view;
  return o;
}

// Tolerances of a dtype: a few ulp of float32 transcendental functions, near-exact in float64.
double rtol_of(DType d) {
  return d == kFloat32 ? 2e-6 : 1e-13;
}
double atol_of(DType d) {
  return d == kFloat32 ? 1e-6 : 1e-13;
}

void expect_out(const Out& o, DType dtype, const std::string& what) {
  expect_close(o.result(), o.host, rtol_of(dtype), atol_of(dtype), what);
}

// Unary shapes: a single element, odd lengths, a 0-dim tensor, an empty one, and a 3-d shape.
const std::vector<Shape> kUnaryShapes = {{1}, {7}, {33, 17}, {5, 1, 129}, {}, {0, 3}};

// Binary shape pairs: same shapes, row broadcast, outer-product broadcast, the 3-d broadcast of
// the brief, a scalar against a matrix.
const std::vector<std::pair<Shape, Shape>> kBinaryShapes = {
    {{1}, {1}},       {{7}, {7}},         {{33, 17}, {33, 17}},
    {{33, 17}, {17}}, {{33, 1}, {1, 17}}, {{5, 1, 129}, {1, 9, 1}},
    {{}, {4, 3}},     {{0, 3}, {3}}};

std::string describe(const Shape& a, Layout la, const Shape& b, Layout lb, DType d, bool tout) {
  return shape_str(a) + " " + layout_name(la) + " op " + shape_str(b) + " " + layout_name(lb) +
         " " + dtype_name(d) + (tout ? " out transposed" : "");
}

// A 1-d tensor of special values, on both sides.
Pair specials(DType dtype) {
  const Tensor t = raw::to_dtype(
      from_vector<double>(
          {kNaN, kInf, -kInf, 0.0, -0.0, 1.0, -1.0, 2.0, -2.5, 0.5, 1e-30, 88.0, -100.0}, {13}),
      dtype);
  return {t, raw::to_device(t, kGpu)};
}

}  // namespace

// ============================================================================================
// Kernel level: cuda:: against cpu::
// ============================================================================================

TEST(CudaElementwise, UnaryMatchesCpuInEveryLayout) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(1);
  for (DType dtype : kFloats)
    for (const Shape& shape : kUnaryShapes)
      for (Layout layout : kLayouts)
        for (bool tout : {false, true})
          for (UnaryOp op : kUnaryOps) {
            const Pair x = make_input(shape, dtype, layout, rng);
            Out o = make_out(shape, dtype, tout);
            cpu::unary(op, x.host, o.host);
            cuda::unary(op, x.dev, o.dev);
            expect_out(o, dtype,
                       std::string(cpu::unary_op_name(op)) + " " + shape_str(shape) + " " +
                           layout_name(layout) + " " + dtype_name(dtype) +
                           (tout ? " out transposed" : ""));
          }
}

TEST(CudaElementwise, UnaryMatchesCpuOnSpecialValues) {
  SELFSUP_REQUIRE_GPU();
  for (DType dtype : kFloats)
    for (UnaryOp op : kUnaryOps) {
      const Pair x = specials(dtype);
      Out o = make_out(x.host.shape(), dtype, false);
      cpu::unary(op, x.host, o.host);
      cuda::unary(op, x.dev, o.dev);
      expect_out(o, dtype, std::string(cpu::unary_op_name(op)) + " specials " + dtype_name(dtype));
    }
}

TEST(CudaElementwise, ArithmeticMatchesCpuWithBroadcasting) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(2);
  for (DType dtype : kFloats)
    for (const auto& [sa, sb] : kBinaryShapes)
      for (size_t li = 0; li < std::size(kLayouts); ++li)
        for (bool tout : {false, true}) {
          const Layout la = kLayouts[li], lb = kLayouts[(li + 1) % std::size(kLayouts)];
          const Shape shape = broadcast_shapes(sa, sb, "test");
          for (BinaryOp op : kArithmetic) {
            // Ties for maximum / minimum, positive bases for pow (NaN-free, but NaNs are
            // compared too where they come).
            const Values v = op == BinaryOp::Pow       ? Values{0.1, 3.0, false}
                             : op >= BinaryOp::Maximum ? Values{-2, 2, true}
                                                       : Values{};
            const Pair a = make_input(sa, dtype, la, rng, v), b = make_input(sb, dtype, lb, rng, v);
            Out o = make_out(shape, dtype, tout);
            cpu::binary(op, a.host, b.host, o.host);
            cuda::binary(op, a.dev, b.dev, o.dev);
            expect_out(
                o, dtype,
                std::string(cpu::binary_op_name(op)) + " " + describe(sa, la, sb, lb, dtype, tout));
          }
        }
}

TEST(CudaElementwise, ArithmeticMatchesCpuOnEveryPairOfSpecialValues) {
  SELFSUP_REQUIRE_GPU();
  for (DType dtype : kFloats) {
    const Pair s = specials(dtype);
    // [13, 1] op [13]: every pair of specials, including NaN on either side.
    const Pair col{raw::view(s.host, {13, 1}), raw::view(s.dev, {13, 1})};
    for (BinaryOp op : kArithmetic) {
      Out o = make_out({13, 13}, dtype, false);
      cpu::binary(op, col.host, s.host, o.host);
      cuda::binary(op, col.dev, s.dev, o.dev);
      expect_out(o, dtype, std::string(cpu::binary_op_name(op)) + " specials " + dtype_name(dtype));
    }
  }
}

TEST(CudaElementwise, LargeBroadcastRunsTheGridStrideLoops) {
  SELFSUP_REQUIRE_GPU();
  // More elements than one grid of the launcher (4096 blocks x 256 threads), contiguous and
  // strided.
  std::mt19937_64 rng(3);
  for (Layout la : {Layout::Contiguous, Layout::Transposed}) {
    const Pair a = make_input({1100, 1025}, kFloat32, la, rng);
    const Pair b = make_input(la == Layout::Contiguous ? Shape{1100, 1025} : Shape{1025}, kFloat32,
                              Layout::Contiguous, rng);
    Out o = make_out({1100, 1025}, kFloat32, false);
    cpu::binary(BinaryOp::Mul, a.host, b.host, o.host);
    cuda::binary(BinaryOp::Mul, a.dev, b.dev, o.dev);
    expect_out(o, kFloat32, std::string("mul 1100x1025 ") + layout_name(la));
  }
}

TEST(CudaElementwise, ComparisonsMatchCpuForEveryInputAndMaskDtype) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(4);
  const Values ties{0, 3, true};  // whole numbers in [0, 3]: fit uint8, plenty of ties
  for (DType in : kAllDtypes)
    for (DType mask : kMaskDtypes)
      for (const auto& [sa, sb] : {kBinaryShapes[3], kBinaryShapes[5], kBinaryShapes[6]})
        for (BinaryOp op : kComparisons) {
          const Pair a = make_input(sa, in, Layout::Transposed, rng, ties);
          const Pair b = make_input(sb, in, Layout::Stepped, rng, ties);
          const Shape shape = broadcast_shapes(sa, sb, "test");
          Out o = make_out(shape, mask, true);
          cpu::binary(op, a.host, b.host, o.host);
          cuda::binary(op, a.dev, b.dev, o.dev);
          expect_close(o.result(), o.host, 0, 0,
                       std::string(cpu::binary_op_name(op)) + " " + dtype_name(in) + " -> " +
                           dtype_name(mask) + " " + shape_str(shape));
        }
  // NaN compares unequal to everything, itself included.
  for (DType dtype : kFloats) {
    const Pair s = specials(dtype);
    const Pair col{raw::view(s.host, {13, 1}), raw::view(s.dev, {13, 1})};
    for (BinaryOp op : kComparisons) {
      Out o = make_out({13, 13}, kUInt8, false);
      cpu::binary(op, col.host, s.host, o.host);
      cuda::binary(op, col.dev, s.dev, o.dev);
      expect_close(o.result(), o.host, 0, 0, std::string(cpu::binary_op_name(op)) + " specials");
    }
  }
}

TEST(CudaElementwise, ScalarOpsMatchCpu) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(5);
  for (DType dtype : kFloats)
    for (const Shape& shape : kUnaryShapes)
      for (Layout layout : kLayouts)
        for (BinaryOp op : kArithmetic)
          for (double s : {2.0, -1.5, 0.1, 0.0}) {  // 2.0: pow's multiply path
            const Pair x = make_input(shape, dtype, layout, rng);
            Out o = make_out(shape, dtype, layout == Layout::Stepped);
            cpu::binary_scalar(op, x.host, s, o.host);
            cuda::binary_scalar(op, x.dev, s, o.dev);
            expect_out(o, dtype,
                       std::string(cpu::binary_op_name(op)) + " scalar " + std::to_string(s) + " " +
                           shape_str(shape) + " " + layout_name(layout) + " " + dtype_name(dtype));
          }
  for (DType dtype : kFloats)
    for (BinaryOp op : kArithmetic)
      for (double s : {kNaN, 2.0, -0.5}) {
        const Pair x = specials(dtype);
        Out o = make_out(x.host.shape(), dtype, false);
        cpu::binary_scalar(op, x.host, s, o.host);
        cuda::binary_scalar(op, x.dev, s, o.dev);
        expect_out(o, dtype, std::string(cpu::binary_op_name(op)) + " specials scalar");
      }
}

TEST(CudaElementwise, ScalarComparisonsMatchCpuForEveryDtype) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(6);
  for (DType in : kAllDtypes)
    for (DType mask : kMaskDtypes)
      for (BinaryOp op : kComparisons)
        for (double s : {1.0, 2.5, 0.1}) {  // 2.5 against integers: compared in double
          const Pair x = make_input({33, 17}, in, Layout::Transposed, rng, {0, 3, true});
          Out o = make_out({33, 17}, mask, false);
          cpu::binary_scalar(op, x.host, s, o.host);
          cuda::binary_scalar(op, x.dev, s, o.dev);
          expect_close(o.result(), o.host, 0, 0,
                       std::string(cpu::binary_op_name(op)) + " scalar " + std::to_string(s) + " " +
                           dtype_name(in) + " -> " + dtype_name(mask));
        }
  // float32 0.1f == 0.1 holds: the scalar is cast to the tensor's dtype.
  const Tensor x = full({3}, 0.1, kFloat32);
  Tensor out = empty({3}, TensorOptions(kUInt8).device(kGpu));
  cuda::binary_scalar(BinaryOp::Eq, raw::to_device(x, kGpu), 0.1, out);
  EXPECT_EQ(raw::to_device(out, kCPU).to_vector<uint8_t>(), (std::vector<uint8_t>{1, 1, 1}));
}

TEST(CudaElementwise, AxpbyMatchesCpu) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(7);
  for (DType dtype : kFloats)
    for (const auto& [sa, sb] : kBinaryShapes)
      for (size_t li = 0; li < std::size(kLayouts); ++li) {
        const Layout la = kLayouts[li], lb = kLayouts[(li + 2) % std::size(kLayouts)];
        const Pair a = make_input(sa, dtype, la, rng), b = make_input(sb, dtype, lb, rng);
        Out o = make_out(broadcast_shapes(sa, sb, "test"), dtype, li % 2 == 1);
        cpu::axpby(0.75, a.host, -1.25, b.host, o.host);
        cuda::axpby(0.75, a.dev, -1.25, b.dev, o.dev);
        expect_out(o, dtype, "axpby " + describe(sa, la, sb, lb, dtype, li % 2 == 1));
      }
}

TEST(CudaElementwise, ClampAndClampBackwardMatchCpu) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(8);
  const std::pair<double, double> bounds[] = {{-1, 1}, {0, kInf}, {-kInf, 0.5}, {1, -1}, {-1, -1}};
  for (DType dtype : kFloats)
    for (const Shape& shape : kUnaryShapes)
      for (Layout layout : kLayouts)
        for (const auto& [lo, hi] : bounds) {
          // Whole numbers hit the bounds exactly (the backward passes the gradient there).
          const Pair x = make_input(shape, dtype, layout, rng, {-2, 2, true});
          const Pair g = make_input(shape, dtype, Layout::Contiguous, rng);
          const std::string what = shape_str(shape) + " " + layout_name(layout) + " " +
                                   dtype_name(dtype) + " [" + std::to_string(lo) + ", " +
                                   std::to_string(hi) + "]";
          Out o = make_out(shape, dtype, layout == Layout::Transposed);
          cpu::clamp(x.host, lo, hi, o.host);
          cuda::clamp(x.dev, lo, hi, o.dev);
          expect_out(o, dtype, "clamp " + what);
          Out gx = make_out(shape, dtype, false);
          cpu::clamp_backward(g.host, x.host, lo, hi, gx.host);
          cuda::clamp_backward(g.dev, x.dev, lo, hi, gx.dev);
          expect_out(gx, dtype, "clamp_backward " + what);
        }
  for (DType dtype : kFloats) {  // NaN passes through clamp
    const Pair x = specials(dtype);
    Out o = make_out(x.host.shape(), dtype, false);
    cpu::clamp(x.host, -1, 1, o.host);
    cuda::clamp(x.dev, -1, 1, o.dev);
    expect_out(o, dtype, "clamp specials");
  }
}

TEST(CudaElementwise, WhereMatchesCpuForEveryConditionAndValueDtype) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(9);
  const Shape sc = {5, 1, 129}, sa = {1, 9, 1}, sb = {129};
  for (DType cond_dtype : kMaskDtypes)
    for (DType dtype : kAllDtypes)
      for (Layout layout : kLayouts)
        for (bool tout : {false, true}) {
          const Pair c = make_input(sc, cond_dtype, layout, rng, {0, 1, true});
          const Pair a = make_input(sa, dtype, Layout::Contiguous, rng, {0, 9, true});
          const Pair b = make_input(sb, dtype, Layout::Stepped, rng, {0, 9, true});
          Out o = make_out({5, 9, 129}, dtype, tout);
          cpu::where(c.host, a.host, b.host, o.host);
          cuda::where(c.dev, a.dev, b.dev, o.dev);
          expect_close(o.result(), o.host, 0, 0,
                       std::string("where cond ") + dtype_name(cond_dtype) + " values " +
                           dtype_name(dtype) + " " + layout_name(layout) +
                           (tout ? " out transposed" : ""));
        }
  // All contiguous, same shape: the fast path.
  for (DType dtype : kFloats) {
    const Pair c = make_input({33, 17}, kUInt8, Layout::Contiguous, rng, {0, 1, true});
    const Pair a = make_input({33, 17}, dtype, Layout::Contiguous, rng);
    const Pair b = make_input({33, 17}, dtype, Layout::Contiguous, rng);
    Out o = make_out({33, 17}, dtype, false);
    cpu::where(c.host, a.host, b.host, o.host);
    cuda::where(c.dev, a.dev, b.dev, o.dev);
    expect_close(o.result(), o.host, 0, 0, "where contiguous");
  }
}

TEST(CudaElementwise, FillWritesEveryDtypeAndOnlyTheView) {
  SELFSUP_REQUIRE_GPU();
  for (DType dtype : kAllDtypes)
    for (Layout layout : {Layout::Contiguous, Layout::Transposed, Layout::Stepped}) {
      // The stepped view covers every other element of its base: the rest must stay poisoned.
      auto [base_shape, view] = layout_of({33, 17}, layout);
      const Tensor base = poisoned(base_shape, dtype);
      Tensor host = raw::clone(base), dev_base = raw::to_device(base, kGpu);
      Tensor host_view = view(host), dev_view = view(dev_base);
      cpu::fill(host_view, 3.0);
      cuda::fill(dev_view, 3.0);
      expect_close(raw::to_device(dev_base, kCPU), host, 0, 0,
                   std::string("fill ") + dtype_name(dtype) + " " + layout_name(layout));
    }
  // 0-dim and empty tensors.
  Tensor scalar = raw::to_device(full({}, kNaN, kFloat64), kGpu);
  cuda::fill(scalar, -2.0);
  EXPECT_EQ(raw::to_device(scalar, kCPU).item(), -2.0);
  Tensor none = empty({0, 4}, TensorOptions(kFloat32).device(kGpu));
  EXPECT_NO_THROW(cuda::fill(none, 1.0));
}

TEST(CudaElementwise, ActivationBackwardsMatchCpu) {
  SELFSUP_REQUIRE_GPU();
  using Backward = void (*)(const Tensor&, const Tensor&, Tensor&);
  struct Case {
    const char* name;
    Backward cpu_fn, cuda_fn;
    UnaryOp saved_from;  // the saved tensor: x itself (marked Neg) or sigmoid(x) / tanh(x)
  };
  const Case cases[] = {
      {"relu_backward", cpu::relu_backward, cuda::relu_backward, UnaryOp::Neg},
      {"gelu_backward", cpu::gelu_backward, cuda::gelu_backward, UnaryOp::Neg},
      {"sigmoid_backward", cpu::sigmoid_backward, cuda::sigmoid_backward, UnaryOp::Sigmoid},
      {"tanh_backward", cpu::tanh_backward, cuda::tanh_backward, UnaryOp::Tanh},
  };
  std::mt19937_64 rng(10);
  for (const Case& c : cases)
    for (DType dtype : kFloats)
      for (const Shape& shape : kUnaryShapes)
        for (Layout layout : kLayouts) {
          const Pair x = make_input(shape, dtype, layout, rng);
          const Pair g = make_input(shape, dtype, Layout::Transposed, rng);
          // The saved tensor, computed on the CPU and uploaded (so both sides see the same one).
          Tensor saved = raw::clone(x.host);
          if (c.saved_from != UnaryOp::Neg) cpu::unary(c.saved_from, x.host, saved);
          const Tensor saved_dev = raw::to_device(saved, kGpu);
          Out o = make_out(shape, dtype, layout == Layout::Stepped);
          c.cpu_fn(g.host, saved, o.host);
          c.cuda_fn(g.dev, saved_dev, o.dev);
          expect_out(o, dtype,
                     std::string(c.name) + " " + shape_str(shape) + " " + layout_name(layout) +
                         " " + dtype_name(dtype));
        }
}

TEST(CudaElementwise, BadArgumentsThrowNamedErrors) {
  SELFSUP_REQUIRE_GPU();
  const Tensor cpu_x = zeros({3});
  const Tensor x = raw::to_device(cpu_x, kGpu);
  Tensor out = empty({3}, TensorOptions(kFloat32).device(kGpu));
  Tensor out4 = empty({4}, TensorOptions(kFloat32).device(kGpu));
  Tensor out_int = empty({3}, TensorOptions(kInt64).device(kGpu));
  EXPECT_NE(error_of([&] { cuda::unary(UnaryOp::Exp, x, out4); }).find("exp: out has shape [4]"),
            std::string::npos);
  EXPECT_NE(error_of([&] { cuda::binary(BinaryOp::Add, x, cpu_x, out); }).find("add"),
            std::string::npos);
  EXPECT_NE(error_of([&] { cuda::binary(BinaryOp::Lt, x, x, out_int); }).find("uint8, float32"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              Tensor expanded = raw::expand(raw::to_device(zeros({1}), kGpu), {3});
              cuda::fill(expanded, 1.0);
            }).find("stride 0"),
            std::string::npos);
  // The dispatch layer names the op and both devices.
  EXPECT_EQ(error_of([&] { dispatch::binary(BinaryOp::Add, cpu_x, x, out); }),
            "add: tensors on cpu and cuda:0");
  Tensor cpu_out = zeros({3});
  EXPECT_EQ(error_of([&] { dispatch::unary(UnaryOp::Exp, x, cpu_out); }),
            "exp: tensors on cuda:0 and cpu");
}

// ============================================================================================
// Autograd level: forward and backward on CUDA equal the CPU
// ============================================================================================

namespace {

struct AutogradCase {
  const char* name;
  int inputs;
  Values values;
  std::function<Tensor(const std::vector<Tensor>&)> fn;
};

using Args = const std::vector<Tensor>&;

// Same-shape inputs only: a broadcast input's gradient needs reduce_to, a reduction, which is
// not dispatched to CUDA yet.
std::vector<AutogradCase> autograd_cases() {
  const Values positive{0.2, 3.0, false}, ties{-2, 2, true};
  return {
      {"add", 2, {}, [](Args x) { return add(x[0], x[1]); }},
      {"sub", 2, {}, [](Args x) { return sub(x[0], x[1]); }},
      {"mul", 2, {}, [](Args x) { return mul(x[0], x[1]); }},
      {"div", 2, positive, [](Args x) { return div(x[0], x[1]); }},
      {"maximum", 2, ties, [](Args x) { return maximum(x[0], x[1]); }},
      {"minimum", 2, ties, [](Args x) { return minimum(x[0], x[1]); }},
      {"pow", 2, positive, [](Args x) { return pow(x[0], x[1]); }},
      {"pow_scalar", 1, positive, [](Args x) { return pow(x[0], 2.5); }},
      {"scalar_ops", 1, {}, [](Args x) { return 2.0 - x[0] * 3.0 + 1.0 / (x[0] * x[0] + 1.0); }},
      {"neg", 1, {}, [](Args x) { return neg(x[0]); }},
      {"exp", 1, {}, [](Args x) { return exp(x[0]); }},
      {"log", 1, positive, [](Args x) { return log(x[0]); }},
      {"sqrt", 1, positive, [](Args x) { return sqrt(x[0]); }},
      {"abs", 1, {}, [](Args x) { return abs(x[0]); }},
      {"square", 1, {}, [](Args x) { return square(x[0]); }},
      {"relu", 1, {}, [](Args x) { return relu(x[0]); }},
      {"gelu", 1, {}, [](Args x) { return gelu(x[0]); }},
      {"sigmoid", 1, {}, [](Args x) { return sigmoid(x[0]); }},
      {"tanh", 1, {}, [](Args x) { return tanh(x[0]); }},
      {"clamp", 1, ties, [](Args x) { return clamp(x[0], -1.0, 1.0); }},
      {"where", 2, {}, [](Args x) { return where(gt(x[0], 0.0), x[0], x[1]); }},
      {"chain", 2, {}, [](Args x) { return tanh(mul(gelu(x[0]), sigmoid(x[1]))); }},
  };
}

}  // namespace

TEST(CudaElementwiseAutograd, ForwardAndBackwardMatchCpu) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(11);
  for (const AutogradCase& c : autograd_cases())
    for (DType dtype : kFloats)
      for (const Shape& shape : {Shape{7}, Shape{33, 17}}) {
        const std::string what =
            std::string(c.name) + " " + shape_str(shape) + " " + dtype_name(dtype);
        std::vector<Tensor> host, dev;
        for (int i = 0; i < c.inputs; ++i) {
          Tensor h = random_tensor(shape, dtype, rng, c.values);
          Tensor d = raw::to_device(h, kGpu);
          host.push_back(h.requires_grad_());
          dev.push_back(d.requires_grad_());
        }
        const Tensor upstream = random_tensor(shape, dtype, rng);
        const Tensor y_host = c.fn(host), y_dev = c.fn(dev);
        ASSERT_TRUE(y_dev.device().is_cuda()) << what;
        expect_close(raw::to_device(y_dev, kCPU), y_host, rtol_of(dtype), atol_of(dtype),
                     what + " forward");
        y_host.backward(upstream);
        y_dev.backward(raw::to_device(upstream, kGpu));
        for (int i = 0; i < c.inputs; ++i) {
          ASSERT_TRUE(dev[i].grad().defined()) << what;
          ASSERT_TRUE(dev[i].grad().device().is_cuda()) << what;
          expect_close(raw::to_device(dev[i].grad(), kCPU), host[i].grad(), 10 * rtol_of(dtype),
                       10 * atol_of(dtype), what + " grad " + std::to_string(i));
        }
      }
}

TEST(CudaElementwiseAutograd, MixedDevicesAreAnError) {
  SELFSUP_REQUIRE_GPU();
  const Tensor a = zeros({3}), b = raw::to_device(zeros({3}), kGpu);
  EXPECT_THROW(add(a, b), Error);
  EXPECT_THROW(where(gt(a, 0.0), b, b), Error);
}
