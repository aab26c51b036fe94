// kernels/cpu/reduce: sums, means, variances, extremes and the summing backward helpers against
// naive reference loops written here, on awkward shapes, every dim set, non-contiguous inputs
// and outputs, both float dtypes, poisoned outputs, empty dims and the error messages.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <string>

#include "core/tensor.h"
#include "core/views.h"
#include "kernels/cpu/reduce.h"
#include "tests/tensor_test_util.h"

using namespace selfsup;
using namespace selfsup::test;
using namespace selfsup::cpu;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
const DType kFloatTypes[] = {kFloat32, kFloat64};

// ---- inputs in several layouts (as in test_cpu_elementwise) ----

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

// Transposed (the first two dims), narrowed (the last dim) or expanded (the first dim) views.
Tensor make_input(const Shape& shape, DType dtype, Layout layout, std::mt19937_64& rng,
                  Values v = {}) {
  const int64_t nd = static_cast<int64_t>(shape.size());
  Shape s = shape;
  if (layout == Layout::Transposed && nd >= 2) {
    std::swap(s[0], s[1]);
    return raw::transpose(random_tensor(s, dtype, rng, v), 0, 1);
  }
  if (layout == Layout::Narrowed && nd >= 1) {
    s[nd - 1] += 3;
    return raw::narrow(random_tensor(s, dtype, rng, v), nd - 1, 2, shape[nd - 1]);
  }
  if (layout == Layout::Expanded && nd >= 1 && shape[0] > 1) {
    s[0] = 1;
    return raw::expand(random_tensor(s, dtype, rng, v), shape);
  }
  return random_tensor(shape, dtype, rng, v);
}

// A poisoned output, contiguous or a transposed view (last two dims).
Tensor make_out(const Shape& shape, DType dtype, bool transposed = false) {
  const double poison = poison_value(dtype, -77.0);
  const int64_t nd = static_cast<int64_t>(shape.size());
  if (!transposed || nd < 2) return full(shape, poison, dtype);
  Shape s = shape;
  std::swap(s[nd - 2], s[nd - 1]);
  return raw::transpose(full(s, poison, dtype), nd - 2, nd - 1);
}

// ---- reference: group x's elements by their kept coordinates ----

std::vector<bool> reduced_flags(int64_t nd, const std::vector<int64_t>& dims) {
  std::vector<bool> reduced(nd, dims.empty());
  for (int64_t d : dims)
    reduced[d < 0 ? d + nd : d] = true;
  return reduced;
}

// groups[k] = the values of x (row-major) that land in output k (row-major over kept dims).
std::vector<std::vector<double>> group_by_kept(const Tensor& x, const std::vector<bool>& reduced) {
  const std::vector<double> v = x.to_vector<double>();
  const Shape& shape = x.shape();
  int64_t kept = 1;
  for (size_t d = 0; d < shape.size(); ++d)
    if (!reduced[d]) kept *= shape[d];
  std::vector<std::vector<double>> groups(kept);
  for (int64_t i = 0; i < static_cast<int64_t>(v.size()); ++i) {
    int64_t rem = i, k = 0, stride = 1;
    for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
      const int64_t coord = rem % shape[d];
      rem /= shape[d];
      if (reduced[d]) continue;
      k += coord * stride;
      stride *= shape[d];
    }
    groups[k].push_back(v[i]);
  }
  return groups;
}

std::vector<double> reference(const Tensor& x, const std::vector<bool>& reduced,
                              const std::function<double(const std::vector<double>&)>& f) {
  std::vector<double> out;
  for (const auto& g : group_by_kept(x, reduced))
    out.push_back(f(g));
  return out;
}

double ref_sum(const std::vector<double>& g) {
  long double s = 0;
  for (double v : g)
    s += v;
  return static_cast<double>(s);
}
double ref_mean(const std::vector<double>& g) {
  return ref_sum(g) / g.size();
}
double ref_var(const std::vector<double>& g, int64_t correction) {
  const double m = ref_mean(g);
  long double s = 0;
  for (double v : g)
    s += (v - m) * (v - m);
  return static_cast<double>(s) / std::max<int64_t>(static_cast<int64_t>(g.size()) - correction, 0);
}

double rtol_for(DType dtype) {
  return dtype == kFloat32 ? 1e-6 : 1e-12;
}

void expect_matches(const Tensor& out, const std::vector<double>& expected, double rtol,
                    double atol, const std::string& what) {
  const std::vector<double> got = out.to_vector<double>();
  ASSERT_EQ(got.size(), expected.size()) << what;
  int failures = 0;
  for (size_t i = 0; i < got.size() && failures < 5; ++i) {
    const double e = expected[i], g = got[i];
    const bool ok = std::isnan(e) ? std::isnan(g) : std::abs(g - e) <= atol + rtol * std::abs(e);
    if (!ok) {
      ++failures;
      ADD_FAILURE() << what << ": element " << i << " is " << g << ", expected " << e;
    }
  }
}

std::string dims_str(const std::vector<int64_t>& dims) {
  return "dims " + shape_str(dims);
}

const std::vector<std::vector<int64_t>> kDimSets = {{},   {0},    {1},    {2},
                                                    {-1}, {0, 2}, {1, 2}, {2, 0, 1}};

}  // namespace

// ============================================================================================
// sum, mean, var
// ============================================================================================

TEST(CpuReduce, SumAndMeanMatchReferenceOverEveryDimSet) {
  std::mt19937_64 rng(1);
  const Shape shape = {3, 5, 7};
  for (DType dt : kFloatTypes)
    for (Layout layout : kLayouts)
      for (const auto& dims : kDimSets)
        for (bool keepdim : {false, true}) {
          Tensor x = make_input(shape, dt, layout, rng);
          const Shape out_shape = reduced_shape(shape, dims, keepdim, "test");
          const auto reduced = reduced_flags(3, dims);
          const std::string what = std::string(dtype_name(dt)) + " " + layout_name(layout) + " " +
                                   dims_str(dims) + (keepdim ? " keepdim" : "");
          Tensor s = make_out(out_shape, dt, layout == Layout::Narrowed);
          sum(x, dims, keepdim, s);
          expect_matches(s, reference(x, reduced, ref_sum), rtol_for(dt), 1e-6, "sum " + what);
          Tensor m = make_out(out_shape, dt, layout == Layout::Transposed);
          mean(x, dims, keepdim, m);
          expect_matches(m, reference(x, reduced, ref_mean), rtol_for(dt), 1e-6, "mean " + what);
        }
}

TEST(CpuReduce, VarMatchesReferenceForEachCorrection) {
  std::mt19937_64 rng(2);
  const Shape shape = {3, 5, 7};
  for (DType dt : kFloatTypes)
    for (Layout layout : kLayouts)
      for (const auto& dims : kDimSets)
        for (int64_t correction : {0, 1, 2}) {
          // An offset mean checks the two-pass formula: one-pass sums of squares would cancel.
          Tensor x = make_input(shape, dt, layout, rng, {1000.0, 1006.0});
          const Shape out_shape = reduced_shape(shape, dims, true, "test");
          Tensor v = make_out(out_shape, dt, true);
          var(x, dims, correction, true, v);
          const auto reduced = reduced_flags(3, dims);
          expect_matches(v, reference(x, reduced, [&](auto& g) { return ref_var(g, correction); }),
                         dt == kFloat32 ? 1e-5 : 1e-10, 1e-9,
                         "var " + std::string(dtype_name(dt)) + " " + layout_name(layout) + " " +
                             dims_str(dims) + " correction " + std::to_string(correction));
        }
}

TEST(CpuReduce, LargeReductionsTakeEachParallelPlan) {
  std::mt19937_64 rng(3);
  struct Case {
    Shape shape;
    std::vector<int64_t> dims;
    Layout layout;
  };
  const Case cases[] = {
      {{2, 40001}, {1}, Layout::Contiguous},    // few outputs: split the reduced dim
      {{40001, 3}, {0}, Layout::Contiguous},    // column sums: rows added into accumulators
      {{40001, 3}, {1}, Layout::Narrowed},      // many short strided rows
      {{301, 257}, {}, Layout::Transposed},     // a full sum of a transposed view
      {{301, 257}, {0}, Layout::Transposed},    // the reduced dim is x's contiguous one
      {{5, 91, 97}, {0, 2}, Layout::Expanded},  // expanded, two dims
  };
  for (DType dt : kFloatTypes)
    for (const Case& c : cases) {
      Tensor x = make_input(c.shape, dt, c.layout, rng);
      const auto reduced = reduced_flags(static_cast<int64_t>(c.shape.size()), c.dims);
      const Shape out_shape = reduced_shape(c.shape, c.dims, false, "test");
      const std::string what = std::string(dtype_name(dt)) + " " + shape_str(c.shape) + " " +
                               layout_name(c.layout) + " " + dims_str(c.dims);
      Tensor s = make_out(out_shape, dt);
      sum(x, c.dims, false, s);
      expect_matches(s, reference(x, reduced, ref_sum), rtol_for(dt), 1e-5, "sum " + what);
      Tensor v = make_out(out_shape, dt);
      var(x, c.dims, 1, false, v);
      expect_matches(v, reference(x, reduced, [](auto& g) { return ref_var(g, 1); }),
                     dt == kFloat32 ? 1e-5 : 1e-10, 1e-9, "var " + what);
    }
}

TEST(CpuReduce, Float32SumsAccumulateInDouble) {
  // 10^6 copies of 0.1f: a float32 running sum drifts by ~1% (to ~100958); double stays exact
  // to the output's rounding.
  Tensor x = full({1000, 1000}, 0.1, kFloat32);
  const double exact = 1e6 * static_cast<double>(0.1f);
  Tensor s = make_out({}, kFloat32);
  sum(x, {}, false, s);
  EXPECT_NEAR(s.item(), exact, 0.02);
  Tensor rows = make_out({1}, kFloat32);
  sum(raw::view(x, {1, 1000000}), {1}, false, rows);
  EXPECT_NEAR(rows.item(), exact, 0.02);
  Tensor m = make_out({}, kFloat32);
  mean(x, {}, false, m);
  EXPECT_NEAR(m.item(), 0.1, 1e-8);
}

TEST(CpuReduce, EmptyDimsGiveZeroSumsAndNaNMeans) {
  Tensor x = zeros({3, 0, 4});
  Tensor s = make_out({3, 4}, kFloat32);
  sum(x, {1}, false, s);
  for (float v : s.to_vector<float>())
    EXPECT_EQ(v, 0.0f);
  Tensor m = make_out({3, 1, 4}, kFloat32);
  mean(x, {1}, true, m);
  for (float v : m.to_vector<float>())
    EXPECT_TRUE(std::isnan(v));
  Tensor all = make_out({}, kFloat32);
  sum(x, {}, false, all);
  EXPECT_EQ(all.item(), 0.0);
  Tensor v = make_out({3, 4}, kFloat32);
  var(x, {1}, 1, false, v);
  for (float e : v.to_vector<float>())
    EXPECT_TRUE(std::isnan(e));
  // Keeping the empty dim: an empty output, nothing to do.
  Tensor e = make_out({0}, kFloat32);
  sum(x, {0, 2}, false, e);
}

TEST(CpuReduce, ZeroDimTensorsReduceToThemselves) {
  Tensor x = scalar_tensor(2.5, kFloat64);
  Tensor s = make_out({}, kFloat64);
  sum(x, {}, false, s);
  EXPECT_EQ(s.item(), 2.5);
  mean(x, {0}, true, s);
  EXPECT_EQ(s.item(), 2.5);
}

// ============================================================================================
// max, min, argmax, max_all, min_all
// ============================================================================================

namespace {

// Value and first index of the extreme of g (NaN wins, first NaN).
std::pair<double, int64_t> ref_extreme(const std::vector<double>& g, bool is_max) {
  for (size_t j = 0; j < g.size(); ++j)
    if (std::isnan(g[j])) return {g[j], static_cast<int64_t>(j)};
  size_t best = 0;
  for (size_t j = 1; j < g.size(); ++j)
    if (is_max ? g[j] > g[best] : g[j] < g[best]) best = j;
  return {g[best], static_cast<int64_t>(best)};
}

void check_extremes(const Tensor& x, int64_t dim, bool keepdim, const std::string& what) {
  const int64_t nd = x.dim();
  const Shape out_shape = reduced_shape(x.shape(), {dim}, keepdim, "test");
  const auto groups = group_by_kept(x, reduced_flags(nd, {dim}));
  for (bool is_max : {true, false}) {
    Tensor values = make_out(out_shape, x.dtype(), true);
    Tensor indices = make_out(out_shape, kInt64);
    if (is_max)
      max(x, dim, keepdim, values, indices);
    else
      min(x, dim, keepdim, values, indices);
    std::vector<double> ev, ei;
    for (const auto& g : groups) {
      auto [v, i] = ref_extreme(g, is_max);
      ev.push_back(v);
      ei.push_back(static_cast<double>(i));
    }
    expect_matches(values, ev, 0, 0, (is_max ? "max values " : "min values ") + what);
    expect_matches(indices, ei, 0, 0, (is_max ? "max indices " : "min indices ") + what);
    if (is_max) {
      Tensor am = make_out(out_shape, kInt64, true);
      argmax(x, dim, keepdim, am);
      expect_matches(am, ei, 0, 0, "argmax " + what);
    }
  }
}

}  // namespace

TEST(CpuReduce, MaxMinArgmaxReturnTheFirstExtreme) {
  std::mt19937_64 rng(4);
  const Values ties{-2.0, 2.0, true};  // whole numbers: each row has ties
  for (DType dt : {kFloat32, kFloat64, kInt64})
    for (Layout layout : kLayouts)
      for (int64_t dim : {0, 1, 2, -1})
        for (bool keepdim : {false, true}) {
          Tensor x = make_input({3, 5, 7}, dt, layout, rng, ties);
          check_extremes(x, dim, keepdim,
                         std::string(dtype_name(dt)) + " " + layout_name(layout) + " dim " +
                             std::to_string(dim) + (keepdim ? " keepdim" : ""));
        }
}

TEST(CpuReduce, LargeExtremesCrossBlocksAndThreads) {
  std::mt19937_64 rng(5);
  for (DType dt : kFloatTypes) {
    // dim 0 of [7, 2601]: the running-extremes sweep over three 1024-wide blocks.
    check_extremes(make_input({7, 2601}, dt, Layout::Contiguous, rng), 0, false, "[7, 2601] dim 0");
    // dim 1 of [20011, 3]: many short rows, split across threads.
    check_extremes(make_input({20011, 3}, dt, Layout::Narrowed, rng), 1, true, "[20011, 3] dim 1");
    check_extremes(make_input({40, 2003}, dt, Layout::Transposed, rng), 1, false,
                   "[40, 2003]^T dim 1");
  }
}

TEST(CpuReduce, ExtremesPropagateTheFirstNaN) {
  Tensor x = from_vector<double>({1, kNaN, 5, kNaN, /**/ 2, 3, 1, 0}, {2, 4});
  Tensor v = make_out({2}, kFloat64), i = make_out({2}, kInt64);
  max(x, 1, false, v, i);
  EXPECT_TRUE(std::isnan(v.to_vector<double>()[0]));
  EXPECT_EQ(i.to_vector<int64_t>(), (std::vector<int64_t>{1, 1}));
  min(x, 1, false, v, i);
  EXPECT_EQ(i.to_vector<int64_t>(), (std::vector<int64_t>{1, 3}));
  Tensor all = make_out({}, kFloat64);
  max_all(x, all);
  EXPECT_TRUE(std::isnan(all.item()));
}

TEST(CpuReduce, MaxAllAndMinAllMatchReference) {
  std::mt19937_64 rng(6);
  for (DType dt : {kFloat32, kFloat64, kInt64})
    for (Layout layout : kLayouts)
      for (const Shape& shape : {Shape{3, 5, 7}, Shape{401, 203}, Shape{}}) {
        Tensor x = make_input(shape, dt, layout, rng, {-1000.0, 1000.0, true});
        const auto v = x.to_vector<double>();
        Tensor hi = make_out({}, dt), lo = make_out({}, dt);
        max_all(x, hi);
        min_all(x, lo);
        const std::string what =
            std::string(dtype_name(dt)) + " " + shape_str(shape) + " " + layout_name(layout);
        EXPECT_EQ(hi.item(), *std::max_element(v.begin(), v.end())) << what;
        EXPECT_EQ(lo.item(), *std::min_element(v.begin(), v.end())) << what;
      }
}

// ============================================================================================
// sum_backward, sum_to
// ============================================================================================

TEST(CpuReduce, SumBackwardBroadcastsTheGradBack) {
  std::mt19937_64 rng(7);
  const Shape x_shape = {3, 5, 7};
  for (DType dt : kFloatTypes)
    for (const auto& dims : kDimSets)
      for (bool keepdim : {false, true})
        for (Layout layout : {Layout::Contiguous, Layout::Transposed, Layout::Narrowed}) {
          Tensor g = make_input(reduced_shape(x_shape, dims, keepdim, "test"), dt, layout, rng);
          Tensor gx = make_out(x_shape, dt, layout == Layout::Narrowed);
          sum_backward(g, x_shape, dims, gx);
          // Reference: grad_x[i] = g[kept coordinates of i].
          const auto reduced = reduced_flags(3, dims);
          const auto gv = g.to_vector<double>();
          std::vector<double> expected;
          for (int64_t i = 0; i < shape_numel(x_shape); ++i) {
            int64_t rem = i, k = 0, stride = 1;
            for (int64_t d = 2; d >= 0; --d) {
              const int64_t coord = rem % x_shape[d];
              rem /= x_shape[d];
              if (reduced[d]) continue;
              k += coord * stride;
              stride *= x_shape[d];
            }
            expected.push_back(gv[k]);
          }
          expect_matches(gx, expected, 0, 0,
                         std::string("sum_backward ") + dtype_name(dt) + " " + dims_str(dims) +
                             (keepdim ? " keepdim " : " ") + layout_name(layout));
        }
}

TEST(CpuReduce, SumToReducesBroadcastDims) {
  std::mt19937_64 rng(8);
  const Shape x_shape = {3, 5, 7};
  // Each target and the x dims it sums over.
  const std::pair<Shape, std::vector<int64_t>> targets[] = {
      {{5, 1}, {0, 2}},       {{3, 1, 7}, {1}}, {{7}, {0, 1}},    {{}, {0, 1, 2}},
      {{1, 1, 1}, {0, 1, 2}}, {{3, 5, 7}, {}},  {{1, 5, 7}, {0}},
  };
  for (DType dt : kFloatTypes)
    for (Layout layout : kLayouts)
      for (const auto& [shape, summed] : targets) {
        Tensor x = make_input(x_shape, dt, layout, rng);
        Tensor out = make_out(shape, dt, layout == Layout::Transposed);
        sum_to(x, shape, out);
        // An empty `summed` means nothing is reduced here, unlike reduced_flags({}).
        std::vector<bool> reduced(3, false);
        for (int64_t d : summed)
          reduced[d] = true;
        expect_matches(out, reference(x, reduced, ref_sum), rtol_for(dt), 1e-6,
                       std::string("sum_to ") + dtype_name(dt) + " " + shape_str(shape) + " " +
                           layout_name(layout));
      }
  // The bias gradient of a large [N, D] + [D]: column sums, parallel.
  Tensor x = make_input({20011, 13}, kFloat32, Layout::Contiguous, rng);
  Tensor out = make_out({13}, kFloat32);
  sum_to(x, {13}, out);
  expect_matches(out, reference(x, {true, false}, ref_sum), 1e-6, 1e-5, "sum_to bias grad");
}

// ============================================================================================
// Errors
// ============================================================================================

TEST(CpuReduce, BadArgumentsThrowNamedErrors) {
  Tensor x = zeros({3, 5, 7});
  expect_error(
      [&] {
        Tensor o = zeros({3, 5}, kInt64);
        sum(zeros({3, 5, 7}, kInt64), {2}, false, o);
      },
      "sum: expected a float32 or float64 tensor, got int64 of shape [3, 5, 7]");
  expect_error(
      [&] {
        Tensor o = zeros({3, 7});
        sum(x, {2}, false, o);
      },
      "sum: out has shape [3, 7] but the result for input [3, 5, 7] has shape [3, 5]");
  expect_error(
      [&] {
        Tensor o = zeros({3, 5}, kFloat64);
        mean(x, {2}, false, o);
      },
      "mean: out is float64 but the result is float32");
  expect_error(
      [&] {
        Tensor o = zeros({3, 5});
        sum(x, {3}, false, o);
      },
      "sum: dim 3 is out of range for a tensor with 3 dims");
  expect_error(
      [&] {
        Tensor o = zeros({3});
        var(x, {2, -1}, 1, false, o);
      },
      "var: a dim appears twice");
  expect_error(
      [&] {
        Tensor v = zeros({3, 7}), i = zeros({3, 7}, kInt64);
        max(zeros({3, 0, 7}), 1, false, v, i);
      },
      "max: dim 1 of the tensor of shape [3, 0, 7] is empty");
  expect_error(
      [&] {
        Tensor v = zeros({3, 5}), i = zeros({3, 5});
        min(x, 2, false, v, i);
      },
      "min: out is float32 but the result is int64");
  expect_error(
      [&] {
        Tensor o = zeros({}, kInt64);
        max_all(zeros({0, 4}), o);
      },
      "max_all: out is int64");
  expect_error(
      [&] {
        Tensor o = zeros({});
        min_all(zeros({0, 4}), o);
      },
      "min_all: the tensor of shape [0, 4] is empty");
  expect_error(
      [&] {
        Tensor gx = zeros({3, 5, 7});
        sum_backward(zeros({3, 7}), {3, 5, 7}, {2}, gx);
      },
      "sum_backward: grad of shape [3, 7] fits neither [3, 5] nor [3, 5, 1]");
  expect_error(
      [&] {
        Tensor o = zeros({5, 2});
        sum_to(x, {5, 2}, o);
      },
      "sum_to: cannot sum a tensor of shape [3, 5, 7] down to [5, 2]");
  expect_error(
      [&] {
        Tensor o = raw::expand(zeros({1}), {5});
        sum(zeros({3, 5}), {0}, false, o);
      },
      "sum: out of shape [5] has stride 0");
}
