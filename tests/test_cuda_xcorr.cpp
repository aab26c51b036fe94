// The Barlow Twins cross-correlation loss on the GPU (kernels/cuda/xcorr.h): both forward
// versions and the backward against cpu::cross_correlation / cross_correlation_backward (in
// float64) on awkward sizes, outputs poisoned with NaN before the run. Without a GPU the device
// tests skip; the argument checks still run.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>

#include "core/random.h"
#include "core/tensor.h"
#include "core/views.h"
#include "kernels/cpu/xcorr.h"
#include "kernels/cuda/xcorr.h"
#include "tests/cuda_test_util.h"
#include "tests/tensor_test_util.h"

using namespace selfsup;
using namespace selfsup::test;

TEST(CudaXcorrHost, DefaultIsTheFusedVersion) {
  EXPECT_EQ(cuda::kXcorrDefault, cuda::kXcorrVersions);
}

#if SELFSUP_WITH_CUDA

// These throw before any CUDA call, so they run without a GPU.
TEST(CudaXcorrHost, BadArgumentsAreErrorsNamingTheOp) {
  Tensor za = zeros({8, 5}), zb = zeros({8, 6}), c = zeros({5, 5}), loss = zeros({});
  Tensor ma = zeros({5}), ra = zeros({5}), mb = zeros({5}), rb = zeros({5});
  EXPECT_NE(error_of([&] {
              cuda::barlow_xcorr_forward(za, zb, 1e-5, 5e-3, c, loss, ma, ra, mb, rb);
            }).find("za and zb must both be [N, D], got [8, 5] and [8, 6]"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              cuda::barlow_xcorr_forward(za, za, 1e-5, 5e-3, c, loss, ma, ra, mb, rb);
            }).find("barlow_xcorr_forward: za [8, 5] is on"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              cuda::barlow_xcorr_forward(za, za, 1e-5, 5e-3, c, loss, ma, ra, mb, rb, 3);
            }).find("unknown version 3"),
            std::string::npos);
}

namespace {

std::vector<double> host(const Tensor& t) {
  return raw::to_device(t, kCPU).to_vector<double>();
}

// Largest |got - want| over the largest |want| (at least 1e-3 of scale).
double relative_error(const std::vector<double>& got, const std::vector<double>& want) {
  double err = 0, scale = 1e-3;
  for (size_t i = 0; i < want.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    err = std::max(err, std::abs(got[i] - want[i]));
    scale = std::max(scale, std::abs(want[i]));
  }
  return err / scale;
}

class CudaXcorr : public ::testing::TestWithParam<int> {};

}  // namespace

TEST_P(CudaXcorr, ForwardAndBackwardMatchTheCpu) {
  SELFSUP_REQUIRE_GPU();
  const double eps = 1e-5, lambda = 5e-3;
  Generator gen(21);
  const int64_t sizes[][2] = {{67, 45}, {1, 1}, {129, 257}, {256, 128}, {5, 300}};
  for (const auto& s : sizes) {
    const int64_t n = s[0], d = s[1];
    SCOPED_TRACE("N " + std::to_string(n) + " D " + std::to_string(d));
    const Tensor za = randn({n, d}, kFloat32, &gen);
    // zb: za plus noise plus an offset, so C's diagonal is large and the mean must be removed.
    Tensor zb = randn({n, d}, kFloat32, &gen);
    {
      float* p = zb.data_ptr<float>();
      const float* q = za.data_ptr<float>();
      for (int64_t i = 0; i < n * d; ++i)
        p[i] = q[i] + 0.5f * p[i] + 3.f;
    }

    // CPU reference in float64.
    const Tensor a64 = raw::to_dtype(za, kFloat64), b64 = raw::to_dtype(zb, kFloat64);
    Tensor c64 = empty({d, d}, kFloat64), ah = empty({n, d}, kFloat64),
           bh = empty({n, d}, kFloat64);
    Tensor ra64 = empty({d}, kFloat64), rb64 = empty({d}, kFloat64);
    cpu::cross_correlation(a64, b64, eps, c64, ah, bh, ra64, rb64);
    const std::vector<double> c_want = c64.to_vector<double>();
    double loss_want = 0;
    Tensor g64 = empty({d, d}, kFloat64);
    for (int64_t i = 0; i < d; ++i)
      for (int64_t j = 0; j < d; ++j) {
        const double cij = c_want[i * d + j];
        loss_want += i == j ? (1 - cij) * (1 - cij) : lambda * cij * cij;
        g64.data_ptr<double>()[i * d + j] = i == j ? -2 * (1 - cij) : 2 * lambda * cij;
      }
    Tensor ga64 = empty({n, d}, kFloat64), gb64 = empty({n, d}, kFloat64);
    cpu::cross_correlation_backward(g64, ah, bh, ra64, rb64, ga64, gb64);

    // GPU.
    const Tensor za_dev = raw::to_device(za, Device::cuda());
    const Tensor zb_dev = raw::to_device(zb, Device::cuda());
    Tensor c = poisoned_gpu({d, d}), loss = poisoned_gpu({});
    Tensor ma = poisoned_gpu({d}), ra = poisoned_gpu({d}), mb = poisoned_gpu({d}),
           rb = poisoned_gpu({d});
    cuda::barlow_xcorr_forward(za_dev, zb_dev, eps, lambda, c, loss, ma, ra, mb, rb, GetParam());
    EXPECT_LE(relative_error(host(c), c_want), 1e-5 * std::sqrt(static_cast<double>(n)) + 1e-5);
    EXPECT_LE(relative_error(host(ra), ra64.to_vector<double>()), 1e-5);
    EXPECT_LE(relative_error(host(rb), rb64.to_vector<double>()), 1e-5);
    EXPECT_NEAR(host(loss)[0], loss_want, 1e-4 * (1 + loss_want));

    Tensor ga = poisoned_gpu({n, d}), gb = poisoned_gpu({n, d});
    cuda::barlow_xcorr_backward(za_dev, zb_dev, c, ma, ra, mb, rb, lambda, ga, gb);
    EXPECT_LE(relative_error(host(ga), ga64.to_vector<double>()), 1e-4);
    EXPECT_LE(relative_error(host(gb), gb64.to_vector<double>()), 1e-4);
  }
}

INSTANTIATE_TEST_SUITE_P(Versions, CudaXcorr, ::testing::Values(1, 2),
                         [](const ::testing::TestParamInfo<int>& info) {
                           std::string name = "v";
                           name += std::to_string(info.param);
                           return name;
                         });

#else

TEST(CudaXcorr, NeedsTheCudaBackend) {
  GTEST_SKIP() << "this build has no CUDA backend";
}

#endif
