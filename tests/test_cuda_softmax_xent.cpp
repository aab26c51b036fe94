// Fused softmax cross-entropy on the GPU (kernels/cuda/softmax_xent.h): every version against
// cpu::cross_entropy (in float64) on awkward sizes, with the loss and gradient poisoned with NaN
// before the run; the NT-Xent layout against the same CPU loss on masked, scaled logits.
// Without a GPU the device tests skip; the host-side rule and the argument checks still run.
#include <gtest/gtest.h>

#include <cfloat>

#include <cmath>
#include <functional>
#include <string>

#include "core/random.h"
#include "core/tensor.h"
#include "core/views.h"
#include "kernels/cpu/softmax.h"
#include "kernels/cuda/softmax_xent.h"
#include "tests/cuda_test_util.h"
#include "tests/tensor_test_util.h"

using namespace selfsup;
using namespace selfsup::test;

TEST(CudaSoftmaxXentHost, AutoPicksAWarpPerRowForShortRows) {
  EXPECT_EQ(cuda::softmax_xent_auto_version(1), 3);
  EXPECT_EQ(cuda::softmax_xent_auto_version(1024), 3);
  EXPECT_EQ(cuda::softmax_xent_auto_version(1025), 2);
  EXPECT_EQ(cuda::softmax_xent_auto_version(50000), 2);
}

#if SELFSUP_WITH_CUDA

// These throw before any CUDA call, so they run without a GPU.
TEST(CudaSoftmaxXentHost, BadArgumentsAreErrorsNamingTheOp) {
  Tensor logits = zeros({4, 3}), targets = zeros({4}, kInt64), loss = zeros({});
  Tensor grad;
  EXPECT_NE(error_of([&] {
              cuda::softmax_cross_entropy(logits, targets, loss, grad);
            }).find("softmax_cross_entropy: logits [4, 3] is on"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              cuda::softmax_cross_entropy(logits, targets, loss, grad, 4);
            }).find("unknown version 4"),
            std::string::npos);
  Tensor sim = zeros({3, 3});
  EXPECT_NE(error_of([&] { cuda::nt_xent(sim, 0.5, loss, grad); }).find("nt_xent: sim must be"),
            std::string::npos);
  Tensor sim4 = zeros({4, 4});
  EXPECT_NE(error_of([&] { cuda::nt_xent(sim4, 0.0, loss, grad); }).find("temperature"),
            std::string::npos);
}

namespace {

// Loss and gradient from the GPU, copied back.
struct Result {
  double loss;
  std::vector<double> grad;
};

Result run_class_targets(const Tensor& logits, const Tensor& targets, int version, bool grad) {
  Tensor loss = poisoned_gpu({});
  Tensor g = grad ? poisoned_gpu(logits.shape()) : Tensor();
  cuda::softmax_cross_entropy(raw::to_device(logits, Device::cuda()),
                              raw::to_device(targets, Device::cuda()), loss, g, version);
  Result r{raw::to_device(loss, kCPU).item(), {}};
  if (grad) r.grad = raw::to_device(g, kCPU).to_vector<double>();
  return r;
}

Result cpu_reference(const Tensor& logits64, const Tensor& targets) {
  Tensor loss = empty({}, kFloat64), grad = empty(logits64.shape(), kFloat64);
  cpu::cross_entropy(logits64, targets, loss, grad);
  return {loss.item(), grad.to_vector<double>()};
}

// grad_floor: an absolute error every gradient element may have. A float32 log-sum-exp is
// within a few ulps of |lse| (it rounds to the row's maximum when the others are tiny), so a
// softmax probability near 1 can be off by ~4 eps (1 + |lse|), and its gradient by that / N.
void expect_close(const Result& got, const Result& want, bool grad, double tol,
                  double grad_floor = 0) {
  EXPECT_NEAR(got.loss, want.loss, tol * (1 + std::abs(want.loss)));
  if (!grad) return;
  ASSERT_EQ(got.grad.size(), want.grad.size());
  for (size_t i = 0; i < want.grad.size(); ++i)
    ASSERT_NEAR(got.grad[i], want.grad[i], tol * (1e-3 + std::abs(want.grad[i])) + grad_floor)
        << "element " << i;
}

// The grad_floor above for float32 logits [N, C] whose largest magnitude is max_abs.
double lse_rounding_floor(int64_t rows, double max_abs) {
  return 4.0 * FLT_EPSILON * (1.0 + max_abs) / static_cast<double>(rows);
}

class CudaSoftmaxXent : public ::testing::TestWithParam<int> {};

}  // namespace

TEST_P(CudaSoftmaxXent, ClassTargetsOnAwkwardSizes) {
  SELFSUP_REQUIRE_GPU();
  Generator gen(11);
  const int64_t sizes[][2] = {{67, 45}, {1, 1}, {129, 257}, {64, 128}, {3, 2051}, {5, 1000}};
  for (const auto& s : sizes) {
    SCOPED_TRACE("N " + std::to_string(s[0]) + " C " + std::to_string(s[1]));
    for (double spread : {1.0, 30.0}) {  // 30: large logits test the running max
      Tensor logits = randn({s[0], s[1]}, kFloat32, &gen);
      Tensor scaled = raw::to_dtype(logits, kFloat64);
      for (double* p = scaled.data_ptr<double>(); p != scaled.data_ptr<double>() + scaled.numel();
           ++p)
        *p *= spread;
      logits = raw::to_dtype(scaled, kFloat32);
      const Tensor targets = randint(0, s[1], {s[0]}, kInt64, &gen);
      const Result want = cpu_reference(raw::to_dtype(logits, kFloat64), targets);
      const double floor = lse_rounding_floor(s[0], test::max_abs(logits));
      for (bool grad : {true, false})
        expect_close(run_class_targets(logits, targets, GetParam(), grad), want, grad, 2e-5, floor);
    }
  }
}

TEST_P(CudaSoftmaxXent, OutOfRangeTargetNamesRowAndValue) {
  SELFSUP_REQUIRE_GPU();
  Tensor logits = zeros({4, 3});
  const Tensor targets = from_vector<int64_t>({0, 2, 7, -1}, {4});
  const std::string msg = error_of([&] { run_class_targets(logits, targets, GetParam(), true); });
  EXPECT_NE(msg.find("target 7 of row 2 is out of range [0, 3)"), std::string::npos) << msg;
}

// NT-Xent: the CPU reference is cross_entropy on sim / T with the diagonal at -1e30 (its
// softmax weight is exactly 0) and targets (i + N) mod 2N; d/dsim = d/dlogits / T.
TEST_P(CudaSoftmaxXent, NtXentLayout) {
  SELFSUP_REQUIRE_GPU();
  Generator gen(12);
  for (int64_t n : {1, 5, 67, 128, 600}) {
    for (double temperature : {0.1, 0.5}) {
      SCOPED_TRACE("N " + std::to_string(n) + " T " + std::to_string(temperature));
      const int64_t rows = 2 * n;
      const Tensor sim = rand({rows, rows}, kFloat32, &gen);  // cosine-like values in [0, 1)
      Tensor logits = raw::to_dtype(sim, kFloat64);
      Tensor targets = empty({rows}, kInt64);
      double* z = logits.data_ptr<double>();
      for (int64_t i = 0; i < rows; ++i) {
        for (int64_t j = 0; j < rows; ++j)
          z[i * rows + j] = i == j ? -1e30 : z[i * rows + j] / temperature;
        targets.data_ptr<int64_t>()[i] = (i + n) % rows;
      }
      Result want = cpu_reference(logits, targets);
      for (double& g : want.grad)
        g /= temperature;

      Tensor loss = poisoned_gpu({}), grad = poisoned_gpu({rows, rows});
      cuda::nt_xent(raw::to_device(sim, Device::cuda()), temperature, loss, grad, GetParam());
      const Result got{raw::to_device(loss, kCPU).item(),
                       raw::to_device(grad, kCPU).to_vector<double>()};
      expect_close(got, want, true, 5e-5);
      for (int64_t i = 0; i < rows; ++i)
        EXPECT_EQ(got.grad[i * rows + i], 0.0) << "diagonal " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Versions, CudaSoftmaxXent, ::testing::Values(0, 1, 2, 3),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return info.param == 0 ? std::string("auto")
                                                  : std::string("v") + std::to_string(info.param);
                         });

#else

TEST(CudaSoftmaxXent, NeedsTheCudaBackend) {
  GTEST_SKIP() << "this build has no CUDA backend";
}

#endif
