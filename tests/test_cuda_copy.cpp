// The on-device strided copy (kernels/cuda/copy.cu) through core's raw::copy_, clone,
// contiguous, to_dtype and to_device, against the same calls on the CPU: every dtype pair,
// non-contiguous sources (transposed, stepped, narrowed, expanded / broadcast) and destinations
// (transposed, narrowed) poisoned first, 0-d and empty tensors, and the errors. Without a GPU
// every test here skips.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "core/views.h"
#include "kernels/cuda/copy.h"
#include "tests/cuda_test_util.h"
#include "tests/tensor_test_util.h"

using namespace selfsup;
using namespace selfsup::test;

namespace {

const Device kGpu = Device::cuda();
const DType kAllDtypes[] = {kFloat32, kFloat64, kInt64, kUInt8};

// Whole numbers in [0, 100]: exact in every dtype, so every conversion is exact on both sides.
Tensor random_host(const Shape& shape, DType dtype, std::mt19937_64& rng) {
  std::uniform_int_distribution<int> u(0, 100);
  std::vector<double> data(shape_numel(shape));
  for (double& x : data)
    x = u(rng);
  return raw::to_dtype(from_vector<double>(data, shape), dtype);
}

// Exact equality, shapes included (every value is a small whole number).
void expect_equal(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  for (size_t i = 0; i < w.size(); ++i)
    ASSERT_EQ(g[i], w[i]) << what << ": element " << i;
}

// A source view and the shape it is copied into.
struct SourceCase {
  const char* name;
  Shape base;  // the tensor the view is taken of
  std::function<Tensor(const Tensor&)> view;
  Shape dst;  // the destination shape (src broadcasts to it)
};

std::vector<SourceCase> source_cases() {
  return {
      {"contiguous", {5, 7}, [](const Tensor& t) { return t; }, {5, 7}},
      {"transposed", {7, 5}, [](const Tensor& t) { return raw::transpose(t, 0, 1); }, {5, 7}},
      {"stepped", {5, 15}, [](const Tensor& t) { return raw::slice(t, 1, 1, 15, 2); }, {5, 7}},
      {"narrowed", {9, 7}, [](const Tensor& t) { return raw::narrow(t, 0, 3, 5); }, {5, 7}},
      {"row broadcast", {1, 7}, [](const Tensor& t) { return t; }, {5, 7}},
      {"expanded",
       {5, 1},
       [](const Tensor& t) {
         return raw::expand(t, {5, 7});
       },
       {5, 7}},
      {"3-d permuted",
       {3, 4, 6},
       [](const Tensor& t) {
         return raw::permute(t, {2, 0, 1});
       },
       {6, 3, 4}},
      {"new leading dims", {4}, [](const Tensor& t) { return t; }, {2, 3, 4}},
      {"0-d", {}, [](const Tensor& t) { return t; }, {}},
      {"scalar broadcast", {}, [](const Tensor& t) { return t; }, {3, 2}},
      {"empty", {0, 7}, [](const Tensor& t) { return t; }, {0, 7}},
  };
}

}  // namespace

TEST(CudaCopy, CopyMatchesCpuForEveryDtypePairAndLayout) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(11);
  for (const SourceCase& c : source_cases())
    for (DType sd : kAllDtypes)
      for (DType dd : kAllDtypes)
        for (bool dst_transposed : {false, true}) {
          if (dst_transposed && c.dst.size() != 2) continue;
          const std::string what = std::string(c.name) + " " + dtype_name(sd) + " -> " +
                                   dtype_name(dd) +
                                   (dst_transposed ? " into a transposed dst" : "");
          const Tensor base = random_host(c.base, sd, rng);
          const Tensor src_host = c.view(base);
          const Tensor src_dev = c.view(raw::to_device(base, kGpu));
          // dst: the destination shape itself, or a transpose of its transpose.
          Shape dbase = c.dst;
          if (dst_transposed) std::swap(dbase[0], dbase[1]);
          const Tensor dst_base_host = poisoned(dbase, dd);
          const Tensor dst_base_dev = raw::to_device(dst_base_host, kGpu);
          auto as_dst = [&](const Tensor& t) {
            return dst_transposed ? raw::transpose(t, 0, 1) : t;
          };
          Tensor dst_host = as_dst(dst_base_host), dst_dev = as_dst(dst_base_dev);
          const uint64_t version = dst_dev.version();
          raw::copy_(dst_host, src_host);
          raw::copy_(dst_dev, src_dev);
          EXPECT_GT(dst_dev.version(), version) << what;
          expect_equal(as_dst(raw::to_device(dst_base_dev, kCPU)), dst_host, what);
        }
}

TEST(CudaCopy, NarrowedDestinationLeavesTheRestUntouched) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(12);
  for (DType dd : {kFloat32, kInt64}) {
    const Tensor base_host = poisoned({6, 9}, dd);
    const Tensor base_dev = raw::to_device(base_host, kGpu);
    Tensor part_host = raw::narrow(raw::narrow(base_host, 0, 1, 4), 1, 2, 5);
    Tensor part_dev = raw::narrow(raw::narrow(base_dev, 0, 1, 4), 1, 2, 5);
    const Tensor src = random_host({5, 4}, kFloat64, rng);
    raw::copy_(part_host, raw::transpose(src, 0, 1));
    raw::copy_(part_dev, raw::transpose(raw::to_device(src, kGpu), 0, 1));
    expect_equal(raw::to_device(base_dev, kCPU), base_host, dtype_name(dd));
  }
}

TEST(CudaCopy, LargeTransposeUsesEveryThreadOfTheGridStrideLoop) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(13);
  const Tensor base = random_host({1031, 1999}, kFloat32, rng);  // > 4096 blocks of 256
  const Tensor want = raw::to_dtype(raw::transpose(base, 0, 1), kFloat64);
  const Tensor got = raw::to_dtype(raw::transpose(raw::to_device(base, kGpu), 0, 1), kFloat64);
  EXPECT_TRUE(got.is_contiguous());
  EXPECT_EQ(got.device(), kGpu);
  expect_equal(raw::to_device(got, kCPU), want, "1999x1031 transpose to float64");
}

TEST(CudaCopy, CloneContiguousToDtypeAndToDeviceOfCudaViews) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(14);
  for (const SourceCase& c : source_cases())
    for (DType dtype : kAllDtypes) {
      const std::string what = std::string(c.name) + " " + dtype_name(dtype);
      const Tensor base = random_host(c.base, dtype, rng);
      const Tensor host = c.view(base);
      const Tensor dev = c.view(raw::to_device(base, kGpu));

      const Tensor cloned = raw::clone(dev);
      EXPECT_TRUE(cloned.is_contiguous()) << what;
      EXPECT_EQ(cloned.device(), kGpu) << what;
      EXPECT_FALSE(cloned.shares_storage_with(dev)) << what;
      expect_equal(raw::to_device(cloned, kCPU), host, what + " clone");

      const Tensor cont = raw::contiguous(dev);
      EXPECT_TRUE(cont.is_contiguous()) << what;
      if (dev.is_contiguous()) {
        EXPECT_TRUE(cont.shares_storage_with(dev)) << what;
      }
      expect_equal(raw::to_device(cont, kCPU), host, what + " contiguous");

      // to_device of a view: made contiguous on the GPU first.
      expect_equal(raw::to_device(dev, kCPU), host, what + " to cpu");

      for (DType to : kAllDtypes) {
        const Tensor converted = raw::to_dtype(dev, to);
        EXPECT_EQ(converted.dtype(), to) << what;
        EXPECT_EQ(converted.device(), kGpu) << what;
        EXPECT_TRUE(converted.is_contiguous()) << what;
        expect_equal(raw::to_device(converted, kCPU), raw::to_dtype(host, to),
                     what + " to " + dtype_name(to));
      }
    }
}

TEST(CudaCopy, FloatToIntegerTruncatesTowardZeroLikeTheCpu) {
  SELFSUP_REQUIRE_GPU();
  const Tensor host =
      from_vector<double>({-2.75, -1.5, -0.25, 0.0, 0.5, 1.99, 2.5, 254.9, 100.0}, {9});
  const Tensor dev = raw::to_device(host, kGpu);
  expect_equal(raw::to_device(raw::to_dtype(dev, kInt64), kCPU), raw::to_dtype(host, kInt64),
               "float64 -> int64");
  const Tensor non_negative = raw::narrow(host, 0, 3, 6);
  expect_equal(raw::to_device(raw::to_dtype(raw::narrow(dev, 0, 3, 6), kUInt8), kCPU),
               raw::to_dtype(non_negative, kUInt8), "float64 -> uint8");
  expect_equal(raw::to_device(raw::to_dtype(raw::to_dtype(dev, kFloat32), kFloat64), kCPU),
               raw::to_dtype(raw::to_dtype(host, kFloat32), kFloat64), "float64 -> float32");
}

TEST(CudaCopy, Errors) {
  SELFSUP_REQUIRE_GPU();
  const Tensor src = raw::to_device(zeros({3}), kGpu);
  Tensor expanded = raw::expand(raw::to_device(zeros({1}), kGpu), {3});
  EXPECT_NE(error_of([&] { raw::copy_(expanded, src); }).find("stride 0 along dim 0"),
            std::string::npos);
  Tensor small = raw::to_device(zeros({2}), kGpu);
  EXPECT_NE(error_of([&] { raw::copy_(small, src); }).find("cannot be broadcast"),
            std::string::npos);
  EXPECT_NE(error_of([&] { cuda::strided_copy(small, src); }).find("cannot be broadcast"),
            std::string::npos);
  // Across devices copy_ still moves bytes only.
  Tensor host = zeros({3, 2});
  const Tensor dev_t = raw::transpose(raw::to_device(zeros({2, 3}), kGpu), 0, 1);
  EXPECT_NE(error_of([&] { raw::copy_(host, dev_t); }).find("needs contiguous tensors"),
            std::string::npos);
  Tensor cpu_dst = zeros({3});
  EXPECT_NE(error_of([&] { cuda::strided_copy(cpu_dst, src); }).find("one CUDA device"),
            std::string::npos);
}
