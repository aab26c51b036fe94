// kernels/cpu/elementwise: every op against a naive reference loop written here, on awkward and
// broadcast shapes, non-contiguous inputs and outputs, both float dtypes, poisoned outputs,
// in-place aliasing, and the error messages.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <string>

#include "core/tensor.h"
#include "core/views.h"
#include "kernels/cpu/elementwise.h"
#include "tests/tensor_test_util.h"

using namespace selfsup;
using namespace selfsup::test;
using namespace selfsup::cpu;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// ---- building inputs in several layouts ----

enum class Layout { Contiguous, Transposed, Narrowed, Expanded };
const Layout kLayouts[] = {Layout::Contiguous, Layout::Transposed, Layout::Narrowed,
                           Layout::Expanded};

std::string layout_name(Layout l) {
  switch (l) {
    case Layout::Contiguous:
      return "contiguous";
    case Layout::Transposed:
      return "transposed";
    case Layout::Narrowed:
      return "narrowed";
    case Layout::Expanded:
      return "expanded";
  }
  return "?";
}

// A tensor of `shape` laid out as asked: a transposed view of its storage, a narrowed window of
// a wider tensor, or a size-1 dim expanded with stride 0. Falls back to contiguous when the
// shape cannot carry the layout.
Tensor make_input(const Shape& shape, DType dtype, Layout layout, std::mt19937_64& rng,
                  Values v = {}) {
  const int64_t nd = static_cast<int64_t>(shape.size());
  Shape s = shape;
  if (layout == Layout::Transposed && nd >= 2) {
    std::swap(s[nd - 2], s[nd - 1]);
    return raw::transpose(random_tensor(s, dtype, rng, v), nd - 2, nd - 1);
  }
  if (layout == Layout::Narrowed && nd >= 1) {
    s[nd - 1] += 3;
    return raw::narrow(random_tensor(s, dtype, rng, v), nd - 1, 1, shape[nd - 1]);
  }
  if (layout == Layout::Expanded && nd >= 1 && shape[0] > 1) {
    s[0] = 1;
    return raw::expand(random_tensor(s, dtype, rng, v), shape);
  }
  return random_tensor(shape, dtype, rng, v);
}

// An output filled with poison, contiguous or as a transposed view.
Tensor make_out(const Shape& shape, DType dtype, bool transposed = false) {
  const int64_t nd = static_cast<int64_t>(shape.size());
  if (!transposed || nd < 2) return full(shape, poison_value(dtype), dtype);
  Shape s = shape;
  std::swap(s[nd - 2], s[nd - 1]);
  return raw::transpose(full(s, poison_value(dtype), dtype), nd - 2, nd - 1);
}

// ---- the reference: naive broadcasting over row-major element lists ----

// The row-major index into a tensor of shape `src` of element `flat` of its broadcast to `dst`.
int64_t broadcast_index(int64_t flat, const Shape& src, const Shape& dst) {
  int64_t index = 0, stride = 1;
  const int64_t lead = static_cast<int64_t>(dst.size() - src.size());
  for (int64_t d = static_cast<int64_t>(dst.size()) - 1; d >= 0; --d) {
    const int64_t coord = flat % dst[d];
    flat /= dst[d];
    const int64_t s = d - lead;
    if (s < 0) continue;
    if (src[s] != 1) index += coord * stride;
    stride *= src[s];
  }
  return index;
}

std::vector<double> reference(const std::vector<Tensor>& inputs, const Shape& shape,
                              const std::function<double(const std::vector<double>&)>& f) {
  std::vector<std::vector<double>> values;
  for (const Tensor& t : inputs)
    values.push_back(t.to_vector<double>());
  std::vector<double> out(shape_numel(shape)), args(inputs.size());
  for (int64_t i = 0; i < shape_numel(shape); ++i) {
    for (size_t k = 0; k < inputs.size(); ++k)
      args[k] = values[k][broadcast_index(i, inputs[k].shape(), shape)];
    out[i] = f(args);
  }
  return out;
}

double rtol_for(DType dtype) {
  return dtype == kFloat32 ? 2e-6 : 1e-13;
}
double atol_for(DType dtype) {
  return dtype == kFloat32 ? 1e-6 : 1e-14;
}

// Every element close to the reference (NaN where the reference is NaN); `what` names the case.
void expect_matches(const Tensor& out, const std::vector<double>& expected, double rtol,
                    double atol, const std::string& what) {
  const std::vector<double> got = out.to_vector<double>();
  ASSERT_EQ(got.size(), expected.size()) << what;
  int failures = 0;
  for (size_t i = 0; i < got.size() && failures < 5; ++i) {
    const double e = expected[i], g = got[i];
    const bool ok = std::isnan(e)   ? std::isnan(g)
                    : std::isinf(e) ? g == e
                                    : std::abs(g - e) <= atol + rtol * std::abs(e);
    if (!ok) {
      ++failures;
      ADD_FAILURE() << what << ": element " << i << " is " << g << ", expected " << e;
    }
  }
}

double gelu_ref(double x) {
  return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
}
double sigmoid_ref(double x) {
  return 1.0 / (1.0 + std::exp(-x));
}
double sign_ref(double x) {
  return x > 0 ? 1.0 : (x < 0 ? -1.0 : x);
}

struct UnaryCase {
  UnaryOp op;
  std::function<double(double)> f;
  Values domain;
};

std::vector<UnaryCase> unary_cases() {
  const Values positive{0.05, 4.0};
  return {
      {UnaryOp::Neg, [](double x) { return -x; }, {}},
      {UnaryOp::Exp, [](double x) { return std::exp(x); }, {}},
      {UnaryOp::Log, [](double x) { return std::log(x); }, positive},
      {UnaryOp::Sqrt, [](double x) { return std::sqrt(x); }, positive},
      {UnaryOp::Abs, [](double x) { return std::abs(x); }, {}},
      {UnaryOp::Relu, [](double x) { return x > 0 ? x : 0.0; }, {}},
      {UnaryOp::Gelu, gelu_ref, {}},
      {UnaryOp::Sigmoid, sigmoid_ref, {}},
      {UnaryOp::Tanh, [](double x) { return std::tanh(x); }, {}},
      {UnaryOp::Square, [](double x) { return x * x; }, {}},
      {UnaryOp::Reciprocal, [](double x) { return 1.0 / x; }, positive},
      {UnaryOp::Sign, sign_ref, {-3.0, 3.0, true}},
  };
}

struct BinaryCase {
  BinaryOp op;
  std::function<double(double, double)> f;
};

std::vector<BinaryCase> arithmetic_cases() {
  return {
      {BinaryOp::Add, [](double a, double b) { return a + b; }},
      {BinaryOp::Sub, [](double a, double b) { return a - b; }},
      {BinaryOp::Mul, [](double a, double b) { return a * b; }},
      {BinaryOp::Div, [](double a, double b) { return a / b; }},
      {BinaryOp::Pow, [](double a, double b) { return std::pow(a, b); }},
      {BinaryOp::Maximum, [](double a, double b) { return std::max(a, b); }},
      {BinaryOp::Minimum, [](double a, double b) { return std::min(a, b); }},
  };
}

std::vector<BinaryCase> comparison_cases() {
  return {
      {BinaryOp::Eq, [](double a, double b) { return double(a == b); }},
      {BinaryOp::Ne, [](double a, double b) { return double(a != b); }},
      {BinaryOp::Lt, [](double a, double b) { return double(a < b); }},
      {BinaryOp::Le, [](double a, double b) { return double(a <= b); }},
      {BinaryOp::Gt, [](double a, double b) { return double(a > b); }},
      {BinaryOp::Ge, [](double a, double b) { return double(a >= b); }},
  };
}

const DType kFloatTypes[] = {kFloat32, kFloat64};

}  // namespace

// ============================================================================================
// Unary
// ============================================================================================

TEST(CpuUnary, EveryOpMatchesReferenceInEveryLayout) {
  std::mt19937_64 rng(1);
  const Shape shape = {3, 5, 7};
  for (const UnaryCase& c : unary_cases())
    for (DType dt : kFloatTypes)
      for (Layout layout : kLayouts)
        for (bool out_t : {false, true}) {
          Tensor x = make_input(shape, dt, layout, rng, c.domain);
          Tensor out = make_out(shape, dt, out_t);
          unary(c.op, x, out);
          const std::string what = std::string(unary_op_name(c.op)) + " " + dtype_name(dt) + " " +
                                   layout_name(layout) + (out_t ? " out^T" : "");
          expect_matches(out, reference({x}, shape, [&](auto& v) { return c.f(v[0]); }),
                         rtol_for(dt), atol_for(dt), what);
        }
}

TEST(CpuUnary, LargeTensorsTakeTheParallelPaths) {
  std::mt19937_64 rng(2);
  const Shape shape = {301, 257};  // 77k elements, above the parallel threshold
  for (DType dt : kFloatTypes)
    for (Layout layout : {Layout::Contiguous, Layout::Transposed}) {
      Tensor x = make_input(shape, dt, layout, rng);
      Tensor out = make_out(shape, dt);
      unary(UnaryOp::Gelu, x, out);
      expect_matches(out, reference({x}, shape, [](auto& v) { return gelu_ref(v[0]); }),
                     rtol_for(dt), atol_for(dt), "large gelu " + layout_name(layout));
    }
}

TEST(CpuUnary, GeluIsTheExactErfForm) {
  Tensor x = from_vector<double>({-1.0, 0.0, 1.0, 2.5}, {4});
  Tensor out = make_out({4}, kFloat64);
  unary(UnaryOp::Gelu, x, out);
  // Phi(1) = 0.841344746068543, Phi(2.5) = 0.99379033467422 (normal CDF tables).
  const std::vector<double> expected = {-1.0 * (1 - 0.841344746068543), 0.0, 0.841344746068543,
                                        2.5 * 0.99379033467422};
  expect_matches(out, expected, 1e-13, 1e-14, "gelu known values");
}

TEST(CpuUnary, SigmoidStaysFiniteAndNaNPropagates) {
  Tensor x = from_vector<float>({-200.0f, 200.0f, -90.0f, NAN}, {4});
  Tensor out = make_out({4}, kFloat32);
  unary(UnaryOp::Sigmoid, x, out);
  auto v = out.to_vector<float>();
  EXPECT_EQ(v[0], 0.0f);
  EXPECT_EQ(v[1], 1.0f);
  EXPECT_GT(v[2], 0.0f);  // exp(-90) ~ 8e-40 is a float32 denormal, not flushed to 0 by 1/inf
  EXPECT_TRUE(std::isnan(v[3]));
  Tensor r = make_out({4}, kFloat32);
  unary(UnaryOp::Relu, x, r);
  EXPECT_TRUE(std::isnan(r.to_vector<float>()[3]));
}

TEST(CpuUnary, WorksOnEmptyAndZeroDimTensors) {
  Tensor e = zeros({0, 3});
  Tensor eo = empty({0, 3});
  unary(UnaryOp::Exp, e, eo);
  Tensor s = scalar_tensor(2.0, kFloat64);
  Tensor so = make_out({}, kFloat64);
  unary(UnaryOp::Square, s, so);
  EXPECT_EQ(so.item(), 4.0);
}

// ============================================================================================
// Binary
// ============================================================================================

struct ShapePair {
  Shape a, b, out;
};
const ShapePair kShapePairs[] = {
    {{3, 5, 7}, {3, 5, 7}, {3, 5, 7}}, {{3, 1, 7}, {5, 1}, {3, 5, 7}},
    {{7}, {3, 5, 7}, {3, 5, 7}},       {{}, {4, 3}, {4, 3}},
    {{5, 1}, {1, 6}, {5, 6}},          {{2, 3, 1, 5}, {3, 4, 1}, {2, 3, 4, 5}},
};

TEST(CpuBinary, ArithmeticMatchesReferenceWithBroadcasting) {
  std::mt19937_64 rng(3);
  for (const BinaryCase& c : arithmetic_cases())
    for (DType dt : kFloatTypes)
      for (const ShapePair& sp : kShapePairs)
        for (Layout la : kLayouts) {
          const Layout lb = kLayouts[(static_cast<int>(la) + 1) % 4];
          // pow gets positive bases so that non-integer exponents stay real.
          const Values va = c.op == BinaryOp::Pow ? Values{0.2, 3.0} : Values{};
          Tensor a = make_input(sp.a, dt, la, rng, va);
          Tensor b = make_input(sp.b, dt, lb, rng);
          Tensor out = make_out(sp.out, dt, la == Layout::Narrowed);
          binary(c.op, a, b, out);
          const std::string what = std::string(binary_op_name(c.op)) + " " + dtype_name(dt) + " " +
                                   shape_str(sp.a) + " " + layout_name(la) + " with " +
                                   shape_str(sp.b) + " " + layout_name(lb);
          expect_matches(out, reference({a, b}, sp.out, [&](auto& v) { return c.f(v[0], v[1]); }),
                         rtol_for(dt), atol_for(dt), what);
        }
}

TEST(CpuBinary, LargeBroadcastTakesTheParallelNest) {
  std::mt19937_64 rng(4);
  for (DType dt : kFloatTypes) {
    // [N, D] - [N, 1] and [N, D] * [D] over a transposed output: the inner-broadcast loops.
    Tensor a = make_input({313, 211}, dt, Layout::Narrowed, rng);
    Tensor b = make_input({313, 1}, dt, Layout::Contiguous, rng);
    Tensor c = make_input({211}, dt, Layout::Contiguous, rng);
    Tensor out = make_out({313, 211}, dt);
    binary(BinaryOp::Sub, a, b, out);
    expect_matches(out, reference({a, b}, {313, 211}, [](auto& v) { return v[0] - v[1]; }),
                   rtol_for(dt), atol_for(dt), "large [N,D]-[N,1]");
    Tensor out_t = make_out({313, 211}, dt, true);
    binary(BinaryOp::Mul, c, a, out_t);
    expect_matches(out_t, reference({c, a}, {313, 211}, [](auto& v) { return v[0] * v[1]; }),
                   rtol_for(dt), atol_for(dt), "large [D]*[N,D] into a transposed out");
  }
}

TEST(CpuBinary, MaximumAndMinimumPropagateNaN) {
  Tensor a = from_vector<double>({1.0, kNaN, 3.0, kNaN}, {4});
  Tensor b = from_vector<double>({kNaN, 2.0, 1.0, kNaN}, {4});
  for (BinaryOp op : {BinaryOp::Maximum, BinaryOp::Minimum}) {
    Tensor out = zeros({4}, kFloat64);
    binary(op, a, b, out);
    auto v = out.to_vector<double>();
    EXPECT_TRUE(std::isnan(v[0]) && std::isnan(v[1]) && std::isnan(v[3]));
    EXPECT_EQ(v[2], op == BinaryOp::Maximum ? 3.0 : 1.0);
  }
}

TEST(CpuBinary, ComparisonsWriteOneAndZeroInEveryMaskDtype) {
  std::mt19937_64 rng(5);
  const Values ties{-2.0, 2.0, true};  // whole numbers: many equal pairs
  for (const BinaryCase& c : comparison_cases())
    for (DType in : {kFloat32, kFloat64, kInt64})
      for (DType out_dt : {kUInt8, kFloat32, kFloat64})
        for (const ShapePair& sp : {kShapePairs[0], kShapePairs[1], kShapePairs[3]}) {
          Tensor a = make_input(sp.a, in, Layout::Transposed, rng, ties);
          Tensor b = make_input(sp.b, in, Layout::Expanded, rng, ties);
          Tensor out = make_out(sp.out, out_dt, true);
          binary(c.op, a, b, out);
          const std::string what = std::string(binary_op_name(c.op)) + " " + dtype_name(in) +
                                   " -> " + dtype_name(out_dt) + " " + shape_str(sp.out);
          expect_matches(out, reference({a, b}, sp.out, [&](auto& v) { return c.f(v[0], v[1]); }),
                         0, 0, what);
        }
  // NaN compares unequal to everything, itself included.
  Tensor n = from_vector<float>({NAN, 1.0f}, {2});
  Tensor m = make_out({2}, kUInt8);
  binary(BinaryOp::Ne, n, n, m);
  EXPECT_EQ(m.to_vector<uint8_t>(), (std::vector<uint8_t>{1, 0}));
  binary(BinaryOp::Eq, n, n, m);
  EXPECT_EQ(m.to_vector<uint8_t>(), (std::vector<uint8_t>{0, 1}));
}

TEST(CpuBinary, ScalarOpsMatchReference) {
  std::mt19937_64 rng(6);
  const Shape shape = {4, 9, 5};
  std::vector<BinaryCase> cases = arithmetic_cases();
  for (const BinaryCase& c : comparison_cases())
    cases.push_back(c);
  for (const BinaryCase& c : cases)
    for (DType dt : kFloatTypes)
      for (Layout layout : kLayouts) {
        const bool cmp = c.op >= BinaryOp::Eq;
        // Exact in float32, so float32 and the double reference agree; 1.0 makes ties.
        const double s = cmp ? 1.0 : 1.75;
        const Values v = c.op == BinaryOp::Pow ? Values{0.2, 3.0} : Values{-3.0, 3.0, cmp};
        Tensor x = make_input(shape, dt, layout, rng, v);
        Tensor out = make_out(shape, cmp ? kUInt8 : dt, layout == Layout::Transposed);
        binary_scalar(c.op, x, s, out);
        const std::string what = std::string(binary_op_name(c.op)) + " scalar " + dtype_name(dt) +
                                 " " + layout_name(layout);
        expect_matches(out, reference({x}, shape, [&](auto& a) { return c.f(a[0], s); }),
                       rtol_for(dt), atol_for(dt), what);
      }
  // x^2 takes a multiply, other exponents pow.
  for (double e : {2.0, 3.0, -0.5}) {
    Tensor x = make_input({3, 7}, kFloat64, Layout::Contiguous, rng, {0.2, 3.0});
    Tensor out = make_out({3, 7}, kFloat64);
    binary_scalar(BinaryOp::Pow, x, e, out);
    expect_matches(out, reference({x}, {3, 7}, [&](auto& a) { return std::pow(a[0], e); }), 1e-15,
                   0, "pow " + std::to_string(e));
  }
}

TEST(CpuBinary, ScalarComparisonsUseTheTensorsDtypeForFloatsAndDoubleForIntegers) {
  Tensor f = from_vector<float>({0.1f, 0.2f}, {2});
  Tensor m = make_out({2}, kUInt8);
  binary_scalar(BinaryOp::Eq, f, 0.1, m);  // 0.1 rounds to the same float as 0.1f
  EXPECT_EQ(m.to_vector<uint8_t>(), (std::vector<uint8_t>{1, 0}));
  Tensor i = from_vector<int64_t>({2, 3}, {2});
  binary_scalar(BinaryOp::Lt, i, 2.5, m);  // not 2 < 2
  EXPECT_EQ(m.to_vector<uint8_t>(), (std::vector<uint8_t>{1, 0}));
}

// ============================================================================================
// In place, axpby, clamp, where, fill
// ============================================================================================

TEST(CpuElementwise, InPlaceAliasingGivesTheOutOfPlaceResult) {
  std::mt19937_64 rng(7);
  for (DType dt : kFloatTypes)
    for (Layout layout : {Layout::Contiguous, Layout::Transposed, Layout::Narrowed})
      for (const Shape& shape : {Shape{3, 5, 7}, Shape{263, 149}}) {
        Tensor x = make_input(shape, dt, layout, rng);
        Tensor b = make_input({shape.back()}, dt, Layout::Contiguous, rng);
        const auto expect_tanh = reference({x}, shape, [](auto& v) { return std::tanh(v[0]); });
        unary(UnaryOp::Tanh, x, x);
        const std::string what =
            std::string(dtype_name(dt)) + " " + layout_name(layout) + " " + shape_str(shape);
        expect_matches(x, expect_tanh, rtol_for(dt), atol_for(dt), "tanh_ " + what);
        const auto expect_add = reference({x, b}, shape, [](auto& v) { return v[0] + v[1]; });
        binary(BinaryOp::Add, x, b, x);
        expect_matches(x, expect_add, rtol_for(dt), atol_for(dt), "add_ " + what);
        const auto expect_mul = reference({x}, shape, [](auto& v) { return v[0] * 0.5; });
        binary_scalar(BinaryOp::Mul, x, 0.5, x);
        expect_matches(x, expect_mul, rtol_for(dt), atol_for(dt), "mul_ " + what);
        const auto expect_axpby =
            reference({x, b}, shape, [](auto& v) { return 0.75 * v[0] - 1.5 * v[1]; });
        axpby(0.75, x, -1.5, b, x);
        expect_matches(x, expect_axpby, rtol_for(dt), atol_for(dt), "axpby_ " + what);
      }
}

TEST(CpuElementwise, AxpbyMatchesReference) {
  std::mt19937_64 rng(8);
  for (DType dt : kFloatTypes)
    for (const ShapePair& sp : kShapePairs) {
      Tensor a = make_input(sp.a, dt, Layout::Transposed, rng);
      Tensor b = make_input(sp.b, dt, Layout::Narrowed, rng);
      Tensor out = make_out(sp.out, dt);
      axpby(0.75, a, -1.5, b, out);
      expect_matches(out,
                     reference({a, b}, sp.out, [](auto& v) { return 0.75 * v[0] - 1.5 * v[1]; }),
                     rtol_for(dt), atol_for(dt), "axpby " + shape_str(sp.out));
    }
}

TEST(CpuElementwise, ClampAndItsBackward) {
  std::mt19937_64 rng(9);
  for (DType dt : kFloatTypes)
    for (Layout layout : kLayouts) {
      Tensor x = make_input({4, 6, 5}, dt, layout, rng, {-3.0, 3.0, true});  // hits the bounds
      Tensor out = make_out({4, 6, 5}, dt, true);
      clamp(x, -1.0, 2.0, out);
      expect_matches(out,
                     reference({x}, {4, 6, 5}, [](auto& v) { return std::clamp(v[0], -1.0, 2.0); }),
                     0, 0, "clamp " + layout_name(layout));
      Tensor g = make_input({6, 5}, dt, Layout::Contiguous, rng);
      Tensor gx = make_out({4, 6, 5}, dt);
      clamp_backward(g, x, -1.0, 2.0, gx);  // grad broadcast over the leading dim
      expect_matches(gx,
                     reference({g, x}, {4, 6, 5},
                               [](auto& v) { return v[1] >= -1.0 && v[1] <= 2.0 ? v[0] : 0.0; }),
                     0, 0, "clamp_backward " + layout_name(layout));
    }
  Tensor n = from_vector<float>({NAN, 5.0f}, {2});
  Tensor o = make_out({2}, kFloat32);
  clamp(n, 3.0, 1.0, o);  // NaN passes; lo > hi gives hi, as min(max(x, lo), hi) does
  EXPECT_TRUE(std::isnan(o.to_vector<float>()[0]));
  EXPECT_EQ(o.to_vector<float>()[1], 1.0f);
}

TEST(CpuElementwise, WhereSelectsWithUint8AndFloatConditions) {
  std::mt19937_64 rng(10);
  for (DType cond_dt : {kUInt8, kFloat32, kFloat64})
    for (DType dt : {kFloat32, kFloat64, kInt64}) {
      // cond [3, 1, 7], a [5, 1], b [7]: all three broadcast to [3, 5, 7].
      Tensor cond = raw::to_dtype(
          make_input({3, 1, 7}, kFloat64, Layout::Contiguous, rng, {0.0, 1.0, true}), cond_dt);
      Tensor a = make_input({5, 1}, dt, Layout::Narrowed, rng, {-9.0, 9.0, true});
      Tensor b = make_input({7}, dt, Layout::Contiguous, rng, {-9.0, 9.0, true});
      Tensor out = make_out({3, 5, 7}, dt, true);
      where(cond, a, b, out);
      expect_matches(
          out, reference({cond, a, b}, {3, 5, 7}, [](auto& v) { return v[0] != 0 ? v[1] : v[2]; }),
          0, 0, std::string("where cond ") + dtype_name(cond_dt) + " " + dtype_name(dt));
    }
  // The contiguous fast path, large.
  Tensor c = make_input({70001}, kFloat32, Layout::Contiguous, rng, {0.0, 1.0, true});
  Tensor a = make_input({70001}, kFloat32, Layout::Contiguous, rng);
  Tensor b = make_input({70001}, kFloat32, Layout::Contiguous, rng);
  Tensor out = make_out({70001}, kFloat32);
  where(c, a, b, out);
  expect_matches(out,
                 reference({c, a, b}, {70001}, [](auto& v) { return v[0] != 0 ? v[1] : v[2]; }), 0,
                 0, "where large");
}

TEST(CpuElementwise, FillWritesEveryDtypeAndOnlyTheView) {
  for (DType dt : {kFloat32, kFloat64, kInt64, kUInt8}) {
    Tensor base = zeros({5, 9}, dt);
    Tensor window = raw::transpose(raw::narrow(base, 1, 2, 4), 0, 1);  // [4, 5], strided
    fill(window, 7.0);
    auto v = base.to_vector<double>();
    for (int64_t r = 0; r < 5; ++r)
      for (int64_t c = 0; c < 9; ++c)
        EXPECT_EQ(v[r * 9 + c], (c >= 2 && c < 6) ? 7.0 : 0.0) << dtype_name(dt) << r << c;
    Tensor big = empty({40003}, dt);
    fill(big, 3.0);
    for (double x : big.to_vector<double>())
      ASSERT_EQ(x, 3.0);
  }
}

// ============================================================================================
// Backward helpers
// ============================================================================================

TEST(CpuElementwise, ActivationBackwardsMatchTheirDerivatives) {
  std::mt19937_64 rng(11);
  for (DType dt : kFloatTypes)
    for (Layout layout : kLayouts) {
      const Shape shape = {3, 5, 7};
      Tensor x = make_input(shape, dt, layout, rng);
      Tensor g = make_input(shape, dt, Layout::Transposed, rng);
      const std::string what = std::string(dtype_name(dt)) + " " + layout_name(layout);

      Tensor gx = make_out(shape, dt, true);
      relu_backward(g, x, gx);
      expect_matches(gx, reference({g, x}, shape, [](auto& v) { return v[1] > 0 ? v[0] : 0.0; }), 0,
                     0, "relu_backward " + what);

      // GELU: compare with a central difference of the reference formula (in double).
      gelu_backward(g, x, gx);
      expect_matches(gx,
                     reference({g, x}, shape,
                               [](auto& v) {
                                 const double h = 1e-5;
                                 return v[0] * (gelu_ref(v[1] + h) - gelu_ref(v[1] - h)) / (2 * h);
                               }),
                     dt == kFloat32 ? 1e-5 : 1e-8, 1e-8, "gelu_backward " + what);

      // Sigmoid and tanh take the saved output y.
      Tensor y = make_input(shape, dt, layout, rng, {0.01, 0.99});
      sigmoid_backward(g, y, gx);
      expect_matches(gx, reference({g, y}, shape, [](auto& v) { return v[0] * v[1] * (1 - v[1]); }),
                     rtol_for(dt), atol_for(dt), "sigmoid_backward " + what);
      tanh_backward(g, y, gx);
      expect_matches(gx, reference({g, y}, shape, [](auto& v) { return v[0] * (1 - v[1] * v[1]); }),
                     rtol_for(dt), atol_for(dt), "tanh_backward " + what);
    }
  // relu'(0) is taken as 0.
  Tensor z = zeros({1}, kFloat64), one = ones({1}, kFloat64), gz = make_out({1}, kFloat64);
  relu_backward(one, z, gz);
  EXPECT_EQ(gz.item(), 0.0);
}

// ============================================================================================
// Errors
// ============================================================================================

TEST(CpuElementwise, BadArgumentsThrowNamedErrors) {
  Tensor f32 = zeros({3, 7}), f64 = zeros({3, 7}, kFloat64), i64 = zeros({3, 7}, kInt64);
  Tensor out = zeros({3, 7});
  expect_error([&] { binary(BinaryOp::Add, f32, f64, out); },
               "add: mixed dtypes float32 [3, 7] and float64 [3, 7]");
  expect_error(
      [&] {
        Tensor o = zeros({3, 5});
        binary(BinaryOp::Mul, f32, zeros({7}), o);
      },
      "mul: out has shape [3, 5] but the inputs broadcast to [3, 7]");
  expect_error([&] { binary(BinaryOp::Sub, f32, zeros({4}), out); },
               "sub: shapes [3, 7] and [4] cannot be broadcast");
  expect_error(
      [&] {
        Tensor o = zeros({3, 7}, kInt64);
        unary(UnaryOp::Exp, i64, o);
      },
      "exp: expected a float32 or float64 tensor, got int64 of shape [3, 7]");
  expect_error(
      [&] {
        Tensor o = zeros({3, 7}, kFloat64);
        unary(UnaryOp::Sqrt, f32, o);
      },
      "sqrt: out is float64 but the result is float32");
  expect_error(
      [&] {
        Tensor o = zeros({3, 7}, kInt64);
        binary(BinaryOp::Lt, f32, f32, o);
      },
      {"lt: out must be uint8, float32 or float64", "int64"});
  expect_error([&] { where(i64, f32, f32, out); }, {"where: cond must be uint8", "int64"});
  expect_error([&] { where(zeros({3, 7}, kUInt8), f32, f64, out); }, "where: mixed dtypes");
  expect_error(
      [&] {
        Tensor o = raw::expand(zeros({1, 7}), {3, 7});
        binary(BinaryOp::Add, f32, f32, o);
      },
      "add: out of shape [3, 7] has stride 0 along dim 0");
  expect_error(
      [&] {
        Tensor o = zeros({3, 7});
        gelu_backward(zeros({3, 6}), f32, o);
      },
      "gelu_backward: shapes [3, 6] and [3, 7] cannot be broadcast");
  expect_error(
      [&] {
        Tensor o = raw::expand(zeros({1}), {4});
        fill(o, 1.0);
      },
      "fill: out of shape [4] has stride 0");
  expect_error([&] { axpby(1.0, i64, 1.0, i64, out); }, "axpby: expected a float32 or float64");
}
