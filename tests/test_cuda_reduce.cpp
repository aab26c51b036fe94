// Reductions on the GPU (kernels/cuda/reduce.h): every entry point against kernels/cpu/reduce on
// the same random inputs, on awkward sizes (1, 7, 33 x 17, 5 x 129 x 3 over each dim and each
// pair of dims, a 1000003-element sum), contiguous, transposed, narrowed and expanded inputs,
// keepdim on and off, transposed outputs, ties and NaNs for the extremes, float32 and float64
// (and the integer dtypes the CPU's extremes take). Every output is poisoned before the run, so
// an element the kernel fails to write fails the test. Sizes are picked to take every launch
// path: a warp per row, blocks per row with and without splits, columns with and without splits.
// Without a GPU the device tests skip; the argument checks still run in a CUDA build.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <string>

#include "core/tensor.h"
#include "core/views.h"
#include "kernels/cpu/reduce.h"
#include "kernels/cuda/reduce.h"
#include "tests/cuda_test_util.h"
#include "tests/tensor_test_util.h"

using namespace selfsup;
using namespace selfsup::test;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
const DType kFloatTypes[] = {kFloat32, kFloat64};
const DType kAllTypes[] = {kFloat32, kFloat64, kInt64, kUInt8};

// ---- inputs: one random tensor, the same view of it on the CPU and on the GPU ----

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

// Small whole numbers for the extremes: every row has ties. uint8 stays non-negative.
Values ties_for(DType dt) {
  return dt == kUInt8 ? Values{0.0, 4.0, true} : Values{-2.0, 2.0, true};
}

struct Input {
  Tensor cpu, gpu;  // the same values and the same view geometry
};

Input upload(const Tensor& base, const std::function<Tensor(const Tensor&)>& view) {
  return {view(base), view(raw::to_device(base, Device::cuda()))};
}

// Transposed (the first two dims), narrowed (the last dim) or expanded (the first dim) views of
// a fresh random tensor; the layout falls back to contiguous where the shape does not allow it.
Input make_input(const Shape& shape, DType dtype, Layout layout, std::mt19937_64& rng,
                 Values v = {}) {
  const int64_t nd = static_cast<int64_t>(shape.size());
  Shape s = shape;
  if (layout == Layout::Transposed && nd >= 2) {
    std::swap(s[0], s[1]);
    return upload(random_tensor(s, dtype, rng, v),
                  [](const Tensor& t) { return raw::transpose(t, 0, 1); });
  }
  if (layout == Layout::Narrowed && nd >= 1) {
    s[nd - 1] += 3;
    return upload(random_tensor(s, dtype, rng, v),
                  [&](const Tensor& t) { return raw::narrow(t, nd - 1, 2, shape[nd - 1]); });
  }
  if (layout == Layout::Expanded && nd >= 1 && shape[0] > 1) {
    s[0] = 1;
    return upload(random_tensor(s, dtype, rng, v),
                  [&](const Tensor& t) { return raw::expand(t, shape); });
  }
  return upload(random_tensor(s, dtype, rng, v), [](const Tensor& t) { return t; });
}

// ---- outputs: poisoned, on the CPU (the reference) and on the GPU ----

double poison_for(DType dt) {
  if (is_floating(dt)) return kNaN;
  return dt == kUInt8 ? 77.0 : -77.0;
}

Tensor cpu_out(const Shape& shape, DType dt) {
  return full(shape, poison_for(dt), dt);
}

// A poisoned device output, contiguous or a transposed view (last two dims) of a contiguous
// buffer; host() copies the buffer back and takes the same view.
struct GpuOut {
  Tensor buffer, view;
  bool transposed = false;

  Tensor host() const {
    Tensor h = raw::to_device(buffer, kCPU);
    return transposed ? raw::transpose(h, h.dim() - 2, h.dim() - 1) : h;
  }
};

GpuOut gpu_out(const Shape& shape, DType dt, bool transposed = false) {
  GpuOut o;
  const int64_t nd = static_cast<int64_t>(shape.size());
  o.transposed = transposed && nd >= 2;
  Shape s = shape;
  if (o.transposed) std::swap(s[nd - 2], s[nd - 1]);
  o.buffer = raw::to_device(full(s, poison_for(dt), dt), Device::cuda());
  o.view = o.transposed ? raw::transpose(o.buffer, nd - 2, nd - 1) : o.buffer;
  return o;
}

std::string dims_str(const std::vector<int64_t>& dims) {
  return "dims " + shape_str(dims);
}

// ---- sum, mean, var: GPU vs CPU ----

enum class Kind { Sum, Mean, Var };

// Both sides accumulate in double; they add in different orders, so they differ by about
// n * eps(double) * max|x| before the final rounding to the output dtype.
void check_sum_like(Kind kind, const Input& in, const std::vector<int64_t>& dims, bool keepdim,
                    bool transposed_out, const std::string& what, int64_t correction = 1) {
  const DType dt = in.cpu.dtype();
  const Shape shape = reduced_shape(in.cpu.shape(), dims, keepdim, "test");
  const int64_t outputs = shape_numel(shape);
  const double n = outputs > 0 ? static_cast<double>(in.cpu.numel()) / outputs : 0.0;
  const double scale = max_abs(in.cpu, /*finite_only=*/false);  // infinities included
  Tensor want = cpu_out(shape, dt);
  GpuOut got = gpu_out(shape, dt, transposed_out);
  std::string name;
  double rtol = dt == kFloat32 ? 1e-6 : 1e-12, atol = 1e-14 * (n + 1) * scale;
  switch (kind) {
    case Kind::Sum:
      name = "sum ";
      cpu::sum(in.cpu, dims, keepdim, want);
      cuda::sum(in.gpu, dims, keepdim, got.view);
      break;
    case Kind::Mean:
      name = "mean ";
      cpu::mean(in.cpu, dims, keepdim, want);
      cuda::mean(in.gpu, dims, keepdim, got.view);
      break;
    case Kind::Var:
      name = "var (correction " + std::to_string(correction) + ") ";
      cpu::var(in.cpu, dims, correction, keepdim, want);
      cuda::var(in.gpu, dims, correction, keepdim, got.view);
      rtol = dt == kFloat32 ? 1e-5 : 1e-10;
      atol = 1e-16 * (n + 1) * scale * scale;
      break;
  }
  expect_close(got.host(), want, rtol, atol, name + what);
}

void check_all_sum_like(const Input& in, const std::vector<int64_t>& dims, bool keepdim,
                        bool transposed_out, const std::string& what) {
  for (Kind k : {Kind::Sum, Kind::Mean, Kind::Var})
    check_sum_like(k, in, dims, keepdim, transposed_out, what);
}

// ---- max, min, argmax: GPU vs CPU, exactly ----

void check_extremes(const Input& in, int64_t dim, bool keepdim, const std::string& what) {
  const DType dt = in.cpu.dtype();
  const Shape shape = reduced_shape(in.cpu.shape(), {dim}, keepdim, "test");
  for (bool is_max : {true, false}) {
    Tensor want_v = cpu_out(shape, dt), want_i = cpu_out(shape, kInt64);
    GpuOut got_v = gpu_out(shape, dt, true), got_i = gpu_out(shape, kInt64);
    if (is_max) {
      cpu::max(in.cpu, dim, keepdim, want_v, want_i);
      cuda::max(in.gpu, dim, keepdim, got_v.view, got_i.view);
    } else {
      cpu::min(in.cpu, dim, keepdim, want_v, want_i);
      cuda::min(in.gpu, dim, keepdim, got_v.view, got_i.view);
    }
    const std::string name = is_max ? "max " : "min ";
    expect_close(got_v.host(), want_v, 0, 0, name + "values " + what);
    expect_close(got_i.host(), want_i, 0, 0, name + "indices " + what);
  }
  Tensor want = cpu_out(shape, kInt64);
  GpuOut got = gpu_out(shape, kInt64, true);
  cpu::argmax(in.cpu, dim, keepdim, want);
  cuda::argmax(in.gpu, dim, keepdim, got.view);
  expect_close(got.host(), want, 0, 0, "argmax " + what);
}

void check_extreme_all(const Input& in, const std::string& what) {
  const DType dt = in.cpu.dtype();
  Tensor want_hi = cpu_out({}, dt), want_lo = cpu_out({}, dt);
  GpuOut got_hi = gpu_out({}, dt), got_lo = gpu_out({}, dt);
  cpu::max_all(in.cpu, want_hi);
  cpu::min_all(in.cpu, want_lo);
  cuda::max_all(in.gpu, got_hi.view);
  cuda::min_all(in.gpu, got_lo.view);
  expect_close(got_hi.host(), want_hi, 0, 0, "max_all " + what);
  expect_close(got_lo.host(), want_lo, 0, 0, "min_all " + what);
}

// A device copy of a CPU tensor built from explicit values (for NaN placement).
Input from_values(const std::vector<double>& v, const Shape& shape, DType dt) {
  return upload(raw::to_dtype(from_vector<double>(v, shape), dt),
                [](const Tensor& t) { return t; });
}

const std::vector<std::vector<int64_t>> kDimSets = {{},     {0},    {1},    {2},   {-1},
                                                    {0, 1}, {0, 2}, {1, 2}, {2, 0}};

}  // namespace

// ============================================================================================
// sum, mean, var
// ============================================================================================

TEST(CudaReduce, SumMeanVarOverEveryDimAndPairOfDims) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(11);
  const Shape shape = {5, 129, 3};
  for (DType dt : kFloatTypes)
    for (Layout layout : kLayouts)
      for (const auto& dims : kDimSets)
        for (bool keepdim : {false, true}) {
          const Input in = make_input(shape, dt, layout, rng);
          check_all_sum_like(in, dims, keepdim, keepdim && layout != Layout::Contiguous,
                             std::string(dtype_name(dt)) + " [5, 129, 3] " + layout_name(layout) +
                                 " " + dims_str(dims) + (keepdim ? " keepdim" : ""));
        }
}

TEST(CudaReduce, SmallAndOddShapes) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(12);
  struct Case {
    Shape shape;
    std::vector<std::vector<int64_t>> dim_sets;
  };
  const Case cases[] = {
      {{}, {{}, {0}, {-1}}},  // 0-d: dim 0 names no real dim
      {{1}, {{}, {0}}},
      {{7}, {{}, {0}, {-1}}},
      {{33, 17}, {{}, {0}, {1}, {-1}, {1, 0}}},
      {{1, 17, 1}, {{}, {0}, {1}, {0, 2}}},
  };
  for (DType dt : kFloatTypes)
    for (const Case& c : cases)
      for (Layout layout : kLayouts)
        for (const auto& dims : c.dim_sets)
          for (bool keepdim : {false, true}) {
            const Input in = make_input(c.shape, dt, layout, rng);
            check_all_sum_like(in, dims, keepdim, keepdim,
                               std::string(dtype_name(dt)) + " " + shape_str(c.shape) + " " +
                                   layout_name(layout) + " " + dims_str(dims) +
                                   (keepdim ? " keepdim" : ""));
          }
}

TEST(CudaReduce, LongReductionsTakeEveryPath) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(13);
  struct Case {
    Shape shape;
    std::vector<int64_t> dims;
    Layout layout;
  };
  const Case cases[] = {
      {{1000003}, {}, Layout::Contiguous},      // one output: blocks per row, split
      {{3, 1000003}, {1}, Layout::Narrowed},    // few long rows: blocks per row, split
      {{1000003, 3}, {0}, Layout::Contiguous},  // three long columns: columns, split
      {{300, 2000}, {1}, Layout::Contiguous},   // a block per row, no split
      {{2000, 300}, {0}, Layout::Contiguous},   // columns, split 15 ways
      {{4097}, {0}, Layout::Contiguous},        // just past a block's 1024: split in 4
      {{40000, 3}, {1}, Layout::Narrowed},      // many rows of 3: the column path
      {{4000, 37}, {1}, Layout::Narrowed},      // many short strided rows: a warp per row
      {{301, 257}, {}, Layout::Transposed},     // a full sum of a transposed view (fuses)
      {{301, 257}, {0}, Layout::Transposed},    // the reduced dim is x's contiguous one
      {{301, 257}, {1}, Layout::Transposed},    // the kept dim is x's contiguous one
      {{5, 91, 97}, {0, 2}, Layout::Expanded},  // expanded, two dims
      {{3000, 5, 7}, {0, 2}, Layout::Transposed},
  };
  for (DType dt : kFloatTypes)
    for (const Case& c : cases) {
      const Input in = make_input(c.shape, dt, c.layout, rng);
      check_all_sum_like(in, c.dims, false, false,
                         std::string(dtype_name(dt)) + " " + shape_str(c.shape) + " " +
                             layout_name(c.layout) + " " + dims_str(c.dims));
    }
}

TEST(CudaReduce, VarMatchesTheCpuForEachCorrection) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(14);
  for (DType dt : kFloatTypes)
    for (Layout layout : {Layout::Contiguous, Layout::Transposed})
      for (const auto& dims : kDimSets)
        for (int64_t correction : {0, 1, 2}) {
          // An offset mean checks the two-pass formula: one-pass sums of squares would cancel.
          const Input in = make_input({5, 129, 3}, dt, layout, rng, {1000.0, 1006.0});
          check_sum_like(
              Kind::Var, in, dims, true, true,
              std::string(dtype_name(dt)) + " " + layout_name(layout) + " " + dims_str(dims),
              correction);
        }
  // correction >= n: the CPU divides by 0 (inf, or NaN for 0 / 0); so must the GPU.
  for (DType dt : kFloatTypes) {
    const Input in = make_input({4, 3}, dt, Layout::Contiguous, rng);
    check_sum_like(Kind::Var, in, {1}, false, false, "correction 3 of 3", 3);
    check_sum_like(Kind::Var, in, {1}, false, false, "correction 5 of 3", 5);
    const Input one = make_input({4, 1}, dt, Layout::Contiguous, rng);
    check_sum_like(Kind::Var, one, {1}, false, false, "one element, correction 1", 1);
  }
}

TEST(CudaReduce, Float32SumsAccumulateInDouble) {
  SELFSUP_REQUIRE_GPU();
  // 10^6 copies of 0.1f: a float32 running sum drifts by ~1%; double stays exact to the
  // output's rounding, whichever path runs.
  const Tensor x = raw::to_device(full({1000, 1000}, 0.1, kFloat32), Device::cuda());
  const double exact = 1e6 * static_cast<double>(0.1f);
  GpuOut all = gpu_out({}, kFloat32);
  cuda::sum(x, {}, false, all.view);
  EXPECT_NEAR(all.host().item(), exact, 0.02);
  GpuOut row = gpu_out({1}, kFloat32);
  cuda::sum(raw::view(x, {1, 1000000}), {1}, false, row.view);
  EXPECT_NEAR(row.host().item(), exact, 0.02);
  GpuOut column = gpu_out({1}, kFloat32);
  cuda::sum(raw::view(x, {1000000, 1}), {0}, false, column.view);
  EXPECT_NEAR(column.host().item(), exact, 0.02);
  GpuOut m = gpu_out({}, kFloat32);
  cuda::mean(x, {}, false, m.view);
  EXPECT_NEAR(m.host().item(), 0.1, 1e-8);
}

TEST(CudaReduce, EmptyDimsGiveZeroSumsAndNaNMeans) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(15);
  const Input in = make_input({3, 0, 4}, kFloat32, Layout::Contiguous, rng);
  for (bool keepdim : {false, true}) {
    check_all_sum_like(in, {1}, keepdim, false,
                       std::string("[3, 0, 4] dim 1") + (keepdim ? " keepdim" : ""));
    check_all_sum_like(in, {}, keepdim, false, "[3, 0, 4] all dims");
    check_all_sum_like(in, {0, 2}, keepdim, false, "[3, 0, 4] dims 0, 2 (empty output)");
  }
  GpuOut s = gpu_out({3, 4}, kFloat32);
  cuda::sum(in.gpu, {1}, false, s.view);
  for (float v : s.host().to_vector<float>())
    EXPECT_EQ(v, 0.0f);
}

// ============================================================================================
// max, min, argmax, max_all, min_all
// ============================================================================================

TEST(CudaReduce, MaxMinArgmaxReturnTheFirstExtreme) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(16);
  for (DType dt : kAllTypes)
    for (Layout layout : kLayouts)
      for (int64_t dim : {0, 1, 2, -1, -3})
        for (bool keepdim : {false, true}) {
          const Input in = make_input({5, 129, 3}, dt, layout, rng, ties_for(dt));
          check_extremes(in, dim, keepdim,
                         std::string(dtype_name(dt)) + " " + layout_name(layout) + " dim " +
                             std::to_string(dim) + (keepdim ? " keepdim" : ""));
        }
  for (DType dt : kAllTypes) {
    check_extremes(make_input({}, dt, Layout::Contiguous, rng, ties_for(dt)), 0, false, "0-d");
    check_extremes(make_input({1}, dt, Layout::Contiguous, rng, ties_for(dt)), 0, true, "[1]");
    check_extremes(make_input({7}, dt, Layout::Contiguous, rng, ties_for(dt)), -1, false, "[7]");
    for (int64_t dim : {0, 1})
      check_extremes(make_input({33, 17}, dt, Layout::Transposed, rng, ties_for(dt)), dim, false,
                     "[33, 17] transposed dim " + std::to_string(dim));
  }
}

TEST(CudaReduce, LargeExtremesTakeEveryPath) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(17);
  struct Case {
    Shape shape;
    int64_t dim;
    Layout layout;
  };
  const Case cases[] = {
      {{7, 2601}, 0, Layout::Contiguous},    // columns
      {{2003, 40}, 0, Layout::Contiguous},   // columns, split
      {{3, 5000}, 1, Layout::Contiguous},    // blocks per row, split
      {{1000003}, 0, Layout::Contiguous},    // one long row, split
      {{40, 2003}, 1, Layout::Transposed},   // the reduced dim is strided
      {{20011, 3}, 1, Layout::Narrowed},     // rows of 3: the column path
      {{2001, 37}, 1, Layout::Narrowed},     // a warp per row
      {{300, 2000}, 1, Layout::Contiguous},  // a block per row
  };
  for (DType dt : kAllTypes)
    for (const Case& c : cases) {
      // Whole numbers in a small range: the extremes tie many times in every row.
      const Values v = dt == kUInt8 ? Values{0.0, 255.0, true} : Values{-50.0, 50.0, true};
      check_extremes(make_input(c.shape, dt, c.layout, rng, v), c.dim, false,
                     std::string(dtype_name(dt)) + " " + shape_str(c.shape) + " " +
                         layout_name(c.layout) + " dim " + std::to_string(c.dim));
    }
}

TEST(CudaReduce, ExtremesPropagateTheFirstNaN) {
  SELFSUP_REQUIRE_GPU();
  for (DType dt : kFloatTypes) {
    const Input small =
        from_values({1, kNaN, 5, kNaN, /**/ 2, 3, 1, 0, /**/ kNaN, 7, kNaN, 9}, {3, 4}, dt);
    check_extremes(small, 1, false, "[3, 4] with NaNs, dim 1");
    check_extremes(small, 0, true, "[3, 4] with NaNs, dim 0");
    check_extreme_all(small, "[3, 4] with NaNs");

    // Long rows (split across blocks) and long columns with NaNs far apart.
    const int64_t n = 1000003;
    std::vector<double> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i)
      v[i] = static_cast<double>(i % 1000);
    v[900000] = kNaN;
    v[700001] = kNaN;
    check_extremes(from_values(v, {n}, dt), 0, false, "[1000003] NaNs at 700001, 900000");
    const std::vector<double> head(v.begin(), v.begin() + 142857 * 7);  // both NaNs inside
    check_extremes(from_values(head, {142857, 7}, dt), 0, false, "[142857, 7] NaNs, dim 0");
    check_extreme_all(from_values(v, {n}, dt), "[1000003] with NaNs");
  }
}

TEST(CudaReduce, MaxAllAndMinAllMatchTheCpu) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(18);
  struct Case {
    Shape shape;
    Layout layout;
  };
  const Case cases[] = {{{}, Layout::Contiguous},         {{1}, Layout::Contiguous},
                        {{7}, Layout::Contiguous},        {{33, 17}, Layout::Transposed},
                        {{5, 129, 3}, Layout::Expanded},  {{5, 129, 3}, Layout::Narrowed},
                        {{1000003}, Layout::Contiguous},  {{401, 203}, Layout::Transposed},
                        {{3000, 700}, Layout::Contiguous}};
  for (DType dt : kAllTypes)
    for (const Case& c : cases) {
      const Values v = dt == kUInt8 ? Values{0.0, 255.0, true} : Values{-1000.0, 1000.0, true};
      check_extreme_all(
          make_input(c.shape, dt, c.layout, rng, v),
          std::string(dtype_name(dt)) + " " + shape_str(c.shape) + " " + layout_name(c.layout));
    }
}

// ============================================================================================
// sum_backward, sum_to
// ============================================================================================

TEST(CudaReduce, SumBackwardBroadcastsTheGradBack) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(19);
  const Shape x_shape = {5, 129, 3};
  for (DType dt : kFloatTypes)
    for (const auto& dims : kDimSets)
      for (bool keepdim : {false, true})
        for (bool transposed : {false, true}) {
          const Shape g_shape = reduced_shape(x_shape, dims, keepdim, "test");
          const Input g =
              make_input(g_shape, dt, transposed ? Layout::Transposed : Layout::Contiguous, rng);
          Tensor want = cpu_out(x_shape, dt);
          GpuOut got = gpu_out(x_shape, dt, transposed);
          cpu::sum_backward(g.cpu, x_shape, dims, want);
          cuda::sum_backward(g.gpu, x_shape, dims, got.view);
          expect_close(got.host(), want, 0, 0,
                       std::string("sum_backward ") + dtype_name(dt) + " " + dims_str(dims) +
                           (keepdim ? " keepdim" : "") + (transposed ? " transposed" : ""));
        }
}

TEST(CudaReduce, SumToUndoesBroadcasting) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(20);
  const Shape targets[] = {{5, 129, 3}, {129, 3}, {1, 3}, {5, 1, 1},  {1, 129, 1},
                           {3},         {1},      {},     {5, 129, 1}};
  for (DType dt : kFloatTypes)
    for (Layout layout : kLayouts)
      for (const Shape& target : targets) {
        const Input in = make_input({5, 129, 3}, dt, layout, rng);
        Tensor want = cpu_out(target, dt);
        GpuOut got = gpu_out(target, dt, layout == Layout::Narrowed);
        cpu::sum_to(in.cpu, target, want);
        cuda::sum_to(in.gpu, target, got.view);
        const double n =
            static_cast<double>(in.cpu.numel()) / std::max<int64_t>(1, shape_numel(target));
        expect_close(got.host(), want, dt == kFloat32 ? 1e-6 : 1e-12, 1e-14 * (n + 1) * 3.0,
                     std::string("sum_to ") + dtype_name(dt) + " " + layout_name(layout) + " -> " +
                         shape_str(target));
      }
}

// ============================================================================================
// Argument checks: these throw before any CUDA call, so they run without a GPU
// ============================================================================================

#if SELFSUP_WITH_CUDA

TEST(CudaReduceHost, BadArgumentsAreErrorsNamingTheOp) {
  Tensor x = zeros({4, 3}), out = zeros({4}), idx = zeros({4}, kInt64), scalar = zeros({});
  EXPECT_PRED2(mentions, error_of([&] { cuda::sum(x, {1}, false, out); }),
               "sum: expected the input on the CUDA device, got one on cpu");
  EXPECT_PRED2(mentions, error_of([&] { cuda::mean(x, {1}, false, out); }), "mean: expected");
  EXPECT_PRED2(mentions, error_of([&] { cuda::var(x, {1}, 1, false, out); }), "var: expected");
  EXPECT_PRED2(mentions, error_of([&] { cuda::max(x, 1, false, out, idx); }), "max: expected");
  EXPECT_PRED2(mentions, error_of([&] { cuda::min(x, 1, false, out, idx); }), "min: expected");
  EXPECT_PRED2(mentions, error_of([&] { cuda::argmax(x, 1, false, idx); }), "argmax: expected");
  EXPECT_PRED2(mentions, error_of([&] { cuda::max_all(x, scalar); }), "max_all: expected");
  EXPECT_PRED2(mentions, error_of([&] { cuda::min_all(x, scalar); }), "min_all: expected");
  EXPECT_PRED2(mentions, error_of([&] {
                 cuda::sum_backward(out, {4, 3}, {1}, x);
               }),
               "sum_backward: expected");
  EXPECT_PRED2(mentions, error_of([&] { cuda::sum_to(x, {3}, out); }), "sum_to: expected");
}

#endif
