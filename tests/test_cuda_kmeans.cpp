// k-means assignment on the GPU (kernels/cuda/kmeans.h), both versions, against
// cpu::kmeans_assign on random awkward sizes (D not a multiple of the warp, K below and above
// it, several GEMM row blocks), with the outputs poisoned before the run. The argmin may differ
// from the CPU's only between near-ties, so the test checks that the chosen centroid's distance
// is the minimum. Without a GPU the device tests skip; the argument checks still run.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>

#include "core/random.h"
#include "core/tensor.h"
#include "core/views.h"
#include "kernels/cpu/kmeans.h"
#include "kernels/cuda/kmeans.h"
#include "tests/cuda_test_util.h"
#include "tests/tensor_test_util.h"

using namespace selfsup;
using namespace selfsup::test;

#if SELFSUP_WITH_CUDA

// These throw before any CUDA call, so they run without a GPU.
TEST(CudaKMeansHost, BadArgumentsAreErrorsNamingTheOp) {
  Tensor x = zeros({5, 3}), c = zeros({2, 3}), a = zeros({5}, kInt64), d = zeros({5});
  EXPECT_NE(error_of([&] { cuda::kmeans_assign(x, c, a, d); })
                .find("kmeans_assign: x must be a contiguous float32 [5, 3] tensor on the CUDA "
                      "device, got float32 [5, 3] on cpu"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              cuda::kmeans_assign(x, zeros({2, 4}), a, d);
            }).find("centroids must be [K, 3] with K >= 1 for x [5, 3], got [2, 4]"),
            std::string::npos);
  EXPECT_NE(error_of([&] { cuda::kmeans_assign(x, c, a, d, 3); }).find("unknown version 3"),
            std::string::npos);
}

class CudaKMeans : public ::testing::TestWithParam<int> {};

TEST_P(CudaKMeans, AssignmentMatchesTheCpuPath) {
  SELFSUP_REQUIRE_GPU();
  struct Case {
    int64_t n, k, d;
  };
  // 20011 x 301: version 2 runs its GEMM in blocks of 2^22 / 301 = 13934 rows, so two blocks.
  const std::vector<Case> cases = {
      {1, 1, 1}, {37, 5, 3}, {129, 33, 47}, {1000, 100, 128}, {20011, 301, 19}};
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string("n ") + std::to_string(c.n) + " k " + std::to_string(c.k) + " d " +
                 std::to_string(c.d));
    Generator g(c.n + c.k + c.d);
    const Tensor x = randn({c.n, c.d}, kFloat32, &g), cen = randn({c.k, c.d}, kFloat32, &g);
    // The CPU path in float64: exact distances to compare against.
    const Tensor x64 = raw::to_dtype(x, kFloat64), c64 = raw::to_dtype(cen, kFloat64);
    Tensor want_a = empty({c.n}, kInt64), want_d = empty({c.n}, kFloat64);
    cpu::kmeans_assign(x64, c64, want_a, want_d);
    Tensor a = raw::to_device(full({c.n}, -7, kInt64), Device::cuda());
    Tensor d = raw::to_device(full({c.n}, NAN), Device::cuda());
    cuda::kmeans_assign(raw::to_device(x, Device::cuda()), raw::to_device(cen, Device::cuda()), a,
                        d, GetParam());
    const auto got_a = raw::to_device(a, kCPU).to_vector<int64_t>();
    const auto got_d = raw::to_device(d, kCPU).to_vector<float>();
    const auto best = want_d.to_vector<double>();
    const auto xs = x64.to_vector<double>(), cs = c64.to_vector<double>();
    for (int64_t i = 0; i < c.n; ++i) {
      ASSERT_GE(got_a[i], 0) << "row " << i;
      ASSERT_LT(got_a[i], c.k) << "row " << i;
      double chosen = 0;
      for (int64_t j = 0; j < c.d; ++j) {
        const double diff = xs[i * c.d + j] - cs[got_a[i] * c.d + j];
        chosen += diff * diff;
      }
      const double tol = 1e-4 * (1 + best[i]) + 1e-5 * c.d;
      ASSERT_NEAR(chosen, best[i], tol) << "row " << i;
      ASSERT_NEAR(got_d[i], best[i], tol) << "row " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Versions, CudaKMeans, ::testing::Values(1, 2),
                         [](const ::testing::TestParamInfo<int>& info) {
                           std::string name = "v";
                           name += std::to_string(info.param);
                           return name;
                         });

#else

TEST(CudaKMeans, NeedsTheCudaBackend) {
  GTEST_SKIP() << "this build has no CUDA backend";
}

#endif
