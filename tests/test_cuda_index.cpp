// kernels/cuda/index against the CPU reference (kernels/cpu/index): index_select, index_add_,
// gather, scatter_add_ and cat on the same random values on both sides, every dim (negative
// too), repeated indices, non-contiguous data, index and output tensors, outputs poisoned first
// (NaN, or 171 for integers), float32 / float64 / int64 (and uint8 for the copies), empty
// inputs, the out-of-range errors (the CPU's message, nothing written), and the dispatch
// layer's device check. Without a GPU every test here skips.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "core/views.h"
#include "kernels/cpu/index.h"
#include "kernels/cuda/index.h"
#include "kernels/dispatch.h"
#include "tests/cuda_test_util.h"
#include "tests/tensor_test_util.h"

using namespace selfsup;
using selfsup::test::error_of;
using selfsup::test::poisoned;
using selfsup::test::to_cpu;
using selfsup::test::to_gpu;

namespace {

const DType kCopyDtypes[] = {kFloat32, kFloat64, kInt64, kUInt8};
const DType kAddDtypes[] = {kFloat32, kFloat64, kInt64};

Tensor random_host(const Shape& shape, DType dtype, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0.0, 100.0);
  std::vector<double> data(shape_numel(shape));
  for (double& x : data)
    x = is_floating(dtype) ? u(rng) - 50.0 : std::floor(u(rng));
  return raw::to_dtype(from_vector<double>(data, shape), dtype);
}

// Indices in [0, size), repeats likely.
Tensor random_index(const Shape& shape, int64_t size, std::mt19937_64& rng) {
  std::uniform_int_distribution<int64_t> u(0, size - 1);
  std::vector<int64_t> data(shape_numel(shape));
  for (int64_t& x : data)
    x = u(rng);
  return from_vector<int64_t>(data, shape);
}

// A view with the last two dims swapped in memory (a transpose of a transposed copy), on the
// GPU; tensors of fewer than two dims are uploaded as they are.
Tensor gpu_transposed(const Tensor& host) {
  if (host.dim() < 2) return to_gpu(host);
  const int64_t a = host.dim() - 2, b = host.dim() - 1;
  return raw::transpose(to_gpu(raw::contiguous(raw::transpose(host, a, b))), a, b);
}
Tensor gpu_in(const Tensor& host, bool transposed) {
  return transposed ? gpu_transposed(host) : to_gpu(host);
}

// A poisoned GPU output of `shape`, contiguous or transposed.
Tensor gpu_out(const Shape& shape, DType dtype, bool transposed) {
  return gpu_in(poisoned(shape, dtype), transposed);
}

void expect_close(const Tensor& got_dev, const Tensor& want, double atol, const std::string& what) {
  const Tensor got = to_cpu(got_dev);
  ASSERT_EQ(got.shape(), want.shape()) << what;
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  const std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  for (size_t i = 0; i < w.size(); ++i) {
    ASSERT_FALSE(std::isnan(g[i])) << what << ": element " << i << " is NaN (unwritten?)";
    ASSERT_NEAR(g[i], w[i], atol * (1 + std::abs(w[i]))) << what << ": element " << i;
  }
}

// Copies are exact; float sums in another order are close.
double add_tol(DType d) {
  return d == kFloat32 ? 1e-5 : (d == kFloat64 ? 1e-12 : 0.0);
}

const Shape kX = {5, 7, 3};

}  // namespace

// ============================================================================================
// index_select / index_add_
// ============================================================================================

TEST(CudaIndex, IndexSelectMatchesCpu) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(1);
  for (DType dtype : kCopyDtypes)
    for (int64_t dim : {0, 1, 2, -1})
      for (bool t : {false, true})
        for (int64_t n : {9, 1, 0}) {
          const int64_t d = dim < 0 ? dim + 3 : dim;
          const std::string what = std::string(dtype_name(dtype)) + " dim " + std::to_string(dim) +
                                   " n " + std::to_string(n) + (t ? " transposed" : "");
          const Tensor x = random_host(kX, dtype, rng);
          // A stepped index (every other element of a longer one) when it is non-empty.
          const Tensor long_index = random_index({2 * n}, kX[d], rng);
          const Tensor index = raw::slice(long_index, 0, 1, 2 * n, 2);
          Shape os = kX;
          os[d] = n;
          Tensor out = empty(os, dtype);
          cpu::index_select(x, dim, index, out);
          Tensor dout = gpu_out(os, dtype, t);
          cuda::index_select(gpu_in(x, t), dim, raw::slice(to_gpu(long_index), 0, 1, 2 * n, 2),
                             dout);
          expect_close(dout, out, 0.0, what);
        }
}

TEST(CudaIndex, IndexSelectWithAZeroDimIndex) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(2);
  const Tensor x = random_host(kX, kFloat64, rng);
  const Tensor index = scalar_tensor(4.0, kInt64);
  Tensor out = empty({5, 1, 3}, kFloat64);
  cpu::index_select(x, 1, index, out);
  Tensor dout = gpu_out({5, 1, 3}, kFloat64, false);
  cuda::index_select(to_gpu(x), 1, to_gpu(index), dout);
  expect_close(dout, out, 0.0, "0-d index");
}

TEST(CudaIndex, IndexAddMatchesCpuWithRepeatedIndices) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(3);
  for (DType dtype : kAddDtypes)
    for (int64_t dim : {0, 1, 2, -2})
      for (bool t : {false, true}) {
        const int64_t d = dim < 0 ? dim + 3 : dim;
        const std::string what = std::string(dtype_name(dtype)) + " dim " + std::to_string(dim) +
                                 (t ? " transposed" : "");
        const int64_t n = 11;  // more indices than slots: repeats guaranteed
        const Tensor index = random_index({n}, kX[d], rng);
        Shape ss = kX;
        ss[d] = n;
        const Tensor src = random_host(ss, dtype, rng);
        Tensor out = random_host(kX, dtype, rng);
        Tensor dout = gpu_in(out, t);
        const uint64_t version = dout.version();
        cpu::index_add_(out, dim, index, src);
        cuda::index_add_(dout, dim, to_gpu(index), gpu_in(src, !t));
        EXPECT_GT(dout.version(), version) << what;
        expect_close(dout, out, add_tol(dtype), what);
      }
}

// ============================================================================================
// gather / scatter_add_
// ============================================================================================

TEST(CudaIndex, GatherMatchesCpu) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(4);
  const Shape xs = {6, 5, 4};
  for (DType dtype : kCopyDtypes)
    for (int64_t dim : {0, 1, 2, -1})
      for (bool t : {false, true})
        for (bool smaller : {false, true}) {
          const int64_t d = dim < 0 ? dim + 3 : dim;
          const std::string what = std::string(dtype_name(dtype)) + " dim " + std::to_string(dim) +
                                   (t ? " transposed" : "") + (smaller ? " smaller index" : "");
          // index: as large as x off dim (or smaller), and 7 long along dim (more than x).
          Shape is = smaller ? Shape{4, 3, 2} : xs;
          is[d] = 7;
          const Tensor x = random_host(xs, dtype, rng);
          const Tensor index = random_index(is, xs[d], rng);
          Tensor out = empty(is, dtype);
          cpu::gather(x, dim, index, out);
          Tensor dout = gpu_out(is, dtype, t);
          cuda::gather(gpu_in(x, t), dim, gpu_in(index, !t), dout);
          expect_close(dout, out, 0.0, what);
        }
}

TEST(CudaIndex, ScatterAddMatchesCpu) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(5);
  const Shape os = {6, 5, 4};
  for (DType dtype : kAddDtypes)
    for (int64_t dim : {0, 1, 2, -3})
      for (bool t : {false, true})
        for (bool smaller : {false, true}) {
          const int64_t d = dim < 0 ? dim + 3 : dim;
          const std::string what = std::string(dtype_name(dtype)) + " dim " + std::to_string(dim) +
                                   (t ? " transposed" : "") + (smaller ? " smaller index" : "");
          Shape is = smaller ? Shape{4, 3, 2} : os;
          is[d] = 9;
          const Tensor index = random_index(is, os[d], rng);
          const Tensor src = random_host(is, dtype, rng);
          Tensor out = random_host(os, dtype, rng);
          Tensor dout = gpu_in(out, t);
          cpu::scatter_add_(out, dim, index, src);
          cuda::scatter_add_(dout, dim, gpu_in(index, t), gpu_in(src, !t));
          expect_close(dout, out, add_tol(dtype), what);
        }
}

TEST(CudaIndex, AddsRejectUInt8) {
  SELFSUP_REQUIRE_GPU();
  Tensor out = to_gpu(zeros({3, 2}, kUInt8));
  const Tensor index = to_gpu(from_vector<int64_t>({0, 2}, {2}));
  const Tensor src = to_gpu(zeros({2, 2}, kUInt8));
  EXPECT_NE(error_of([&] { cuda::index_add_(out, 0, index, src); }).find("uint8"),
            std::string::npos);
  const Tensor index2 = to_gpu(from_vector<int64_t>({0, 2, 1, 1}, {2, 2}));
  EXPECT_NE(error_of([&] { cuda::scatter_add_(out, 0, index2, src); }).find("uint8"),
            std::string::npos);
}

// ============================================================================================
// cat
// ============================================================================================

TEST(CudaIndex, CatMatchesCpu) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(6);
  const std::vector<int64_t> sizes = {3, 0, 1, 5};  // an empty input among them
  for (DType dtype : kCopyDtypes)
    for (int64_t dim : {0, 1, 2, -1})
      for (bool t : {false, true}) {
        const int64_t d = dim < 0 ? dim + 3 : dim;
        const std::string what = std::string(dtype_name(dtype)) + " dim " + std::to_string(dim) +
                                 (t ? " transposed" : "");
        std::vector<Tensor> xs, dxs;
        Shape os = {4, 3, 6};
        os[d] = 0;
        for (size_t i = 0; i < sizes.size(); ++i) {
          Shape s = {4, 3, 6};
          s[d] = sizes[i];
          xs.push_back(random_host(s, dtype, rng));
          dxs.push_back(gpu_in(xs.back(), t && i % 2 == 0));  // mixed layouts
          os[d] += sizes[i];
        }
        Tensor out = empty(os, dtype);
        cpu::cat(xs, dim, out);
        Tensor dout = gpu_out(os, dtype, t);
        cuda::cat(dxs, dim, dout);
        expect_close(dout, out, 0.0, what);
      }
}

// ============================================================================================
// Errors
// ============================================================================================

// Each op with one bad index (and a later one): the GPU's message is the CPU's, and no output
// is written.
TEST(CudaIndex, OutOfRangeIndicesGiveTheCpuErrorAndWriteNothing) {
  SELFSUP_REQUIRE_GPU();
  for (int64_t bad : {5, -1, 1000}) {
    const Tensor x = zeros({5, 3});
    const Tensor index = from_vector<int64_t>({0, 4, bad, 7, 1}, {5});
    const Tensor dindex = to_gpu(index);
    {
      Tensor out = zeros({5, 3});
      Tensor dout = gpu_out({5, 3}, kFloat32, false);
      const std::string want = error_of([&] { cpu::index_select(x, 0, index, out); });
      EXPECT_EQ(want, "index_select: index " + std::to_string(bad) +
                          " is out of range for dim 0 with size 5");
      EXPECT_EQ(error_of([&] { cuda::index_select(to_gpu(x), 0, dindex, dout); }), want);
      for (double v : to_cpu(dout).to_vector<double>())
        ASSERT_TRUE(std::isnan(v)) << "index_select wrote its output";
    }
    {
      Tensor out = zeros({5, 3});
      Tensor dout = to_gpu(zeros({5, 3}));
      const Tensor src = ones({5, 3});
      const std::string want = error_of([&] { cpu::index_add_(out, 0, index, src); });
      EXPECT_EQ(error_of([&] { cuda::index_add_(dout, 0, dindex, to_gpu(src)); }), want);
      for (double v : to_cpu(dout).to_vector<double>())
        ASSERT_EQ(v, 0.0) << "index_add_ wrote its output";
    }
    {
      const Tensor index2 = raw::view(index, {5, 1});
      Tensor out = zeros({5, 1});
      Tensor dout = gpu_out({5, 1}, kFloat32, false);
      const std::string want = error_of([&] { cpu::gather(x, 0, index2, out); });
      EXPECT_EQ(want,
                "gather: index " + std::to_string(bad) + " is out of range for dim 0 with size 5");
      EXPECT_EQ(error_of([&] { cuda::gather(to_gpu(x), 0, to_gpu(index2), dout); }), want);
      Tensor sout = zeros({5, 3});
      Tensor dsout = to_gpu(zeros({5, 3}));
      const std::string want_scatter = error_of([&] {
        cpu::scatter_add_(sout, 0, index2, ones({5, 1}));
      });
      EXPECT_EQ(error_of([&] {
                  cuda::scatter_add_(dsout, 0, to_gpu(index2), to_gpu(ones({5, 1})));
                }),
                want_scatter);
      for (double v : to_cpu(dsout).to_vector<double>())
        ASSERT_EQ(v, 0.0) << "scatter_add_ wrote its output";
    }
  }
}

TEST(CudaIndex, ShapeErrorsNameTheOp) {
  SELFSUP_REQUIRE_GPU();
  const Tensor x = to_gpu(zeros({5, 3}));
  const Tensor index = to_gpu(from_vector<int64_t>({0, 1}, {2}));
  Tensor wrong = to_gpu(zeros({3, 3}));
  EXPECT_EQ(error_of([&] { cuda::index_select(x, 0, index, wrong); }),
            "index_select: out has shape [3, 3], expected [2, 3]");
  const Tensor findex = to_gpu(zeros({2}));
  Tensor out = to_gpu(zeros({2, 3}));
  EXPECT_EQ(error_of([&] { cuda::index_select(x, 0, findex, out); }),
            "index_select: index must be int64, got float32");
  std::vector<Tensor> xs = {x, to_gpu(zeros({5, 2}))};
  Tensor cat_out = to_gpu(zeros({10, 3}));
  EXPECT_NE(error_of([&] { cuda::cat(xs, 0, cat_out); }).find("cat: tensor 1 has shape [5, 2]"),
            std::string::npos);
}

TEST(CudaIndex, DispatchRoutesByDeviceAndRejectsMixedDevices) {
  SELFSUP_REQUIRE_GPU();
  const Tensor x = zeros({5, 3});
  const Tensor dx = to_gpu(x);
  const Tensor index = from_vector<int64_t>({0, 4}, {2});
  const Tensor dindex = to_gpu(index);
  Tensor out = zeros({2, 3});
  Tensor dout = to_gpu(out);
  dispatch::index_select(dx, 0, dindex, dout);  // runs on the GPU
  EXPECT_EQ(error_of([&] { dispatch::index_select(dx, 0, index, dout); }),
            "index_select: tensors on cuda:0 and cpu");
  Tensor dbig = to_gpu(zeros({5, 3}));
  EXPECT_EQ(error_of([&] { dispatch::index_add_(dbig, 0, index, dout); }),
            "index_add_: tensors on cuda:0 and cpu");
  const Tensor index2 = zeros({2, 3}, kInt64);
  EXPECT_EQ(error_of([&] { dispatch::gather(x, 0, to_gpu(index2), out); }),
            "gather: tensors on cpu and cuda:0");
  EXPECT_EQ(error_of([&] { dispatch::scatter_add_(dbig, 0, to_gpu(index2), out); }),
            "scatter_add_: tensors on cuda:0 and cpu");
  Tensor dcat = to_gpu(zeros({10, 3}));
  EXPECT_EQ(error_of([&] { dispatch::cat({dx, x}, 0, dcat); }), "cat: tensors on cuda:0 and cpu");
  Tensor cat_out = zeros({10, 3});
  EXPECT_EQ(error_of([&] { dispatch::cat({x, x}, 0, dcat); }), "cat: tensors on cpu and cuda:0");
  dispatch::cat({x, x}, 0, cat_out);  // all on the CPU
  dispatch::cat({dx, dx}, 0, dcat);   // all on the GPU
  expect_close(dcat, cat_out, 0.0, "dispatch::cat");
}
