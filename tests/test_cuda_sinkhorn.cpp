// Sinkhorn-Knopp on the GPU (kernels/cuda/sinkhorn.h) against cpu::sinkhorn on random awkward
// sizes (the column and row kernels' tails, several partial-max blocks), with the output
// poisoned with NaN before the run; the non-finite check. Without a GPU the device tests skip;
// the argument checks still run.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>

#include "autograd/ops.h"
#include "core/random.h"
#include "core/tensor.h"
#include "core/views.h"
#include "kernels/cpu/sinkhorn.h"
#include "kernels/cuda/sinkhorn.h"
#include "tests/cuda_test_util.h"
#include "tests/tensor_test_util.h"

using namespace selfsup;
using namespace selfsup::test;

#if SELFSUP_WITH_CUDA

// These throw before any CUDA call, so they run without a GPU.
TEST(CudaSinkhornHost, BadArgumentsAreErrorsNamingTheOp) {
  Tensor s = zeros({4, 3}), out = zeros({4, 3});
  EXPECT_NE(error_of([&] { cuda::sinkhorn(s, 0.05, 3, out); })
                .find("sinkhorn: scores must be a contiguous float32 [4, 3] tensor on the CUDA "
                      "device, got float32 [4, 3] on cpu"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              cuda::sinkhorn(zeros({4}), 0.05, 3, out);
            }).find("sinkhorn: scores must be a non-empty [B, K], got [4]"),
            std::string::npos);
}

namespace {

Tensor random_scores(int64_t b, int64_t k, uint64_t seed) {
  Generator g(seed);
  return rand({b, k}, kFloat32, &g) * 2.0 - 1.0;  // cosine-like, in [-1, 1]
}

}  // namespace

TEST(CudaSinkhorn, MatchesTheCpuPath) {
  SELFSUP_REQUIRE_GPU();
  struct Case {
    int64_t b, k;
    double eps;
    int64_t iterations;
  };
  // 1 x 1; a row shorter than a warp; K not a multiple of 32; 513 x 3001 spans all 256
  // partial-max blocks with a grid-stride remainder.
  const std::vector<Case> cases = {{1, 1, 0.05, 3},   {37, 13, 0.05, 3},    {5, 101, 0.05, 1},
                                   {257, 33, 0.3, 7}, {513, 3001, 0.05, 3}, {1000, 7, 1.0, 2}};
  for (const Case& c : cases) {
    SCOPED_TRACE(shape_str({c.b, c.k}));
    const Tensor s = random_scores(c.b, c.k, 7 * c.b + c.k);
    Tensor want = empty(s.shape());
    cpu::sinkhorn(s, c.eps, c.iterations, want);
    Tensor out = poisoned_gpu(s.shape());
    cuda::sinkhorn(raw::to_device(s, Device::cuda()), c.eps, c.iterations, out);
    const std::vector<float> got = raw::to_device(out, kCPU).to_vector<float>();
    const std::vector<float> ref = want.to_vector<float>();
    ASSERT_EQ(got.size(), ref.size());
    for (size_t i = 0; i < ref.size(); ++i)
      ASSERT_NEAR(got[i], ref[i], 1e-5 + 1e-4 * std::abs(ref[i])) << "element " << i;
  }
}

TEST(CudaSinkhorn, RowsSumToOne) {
  SELFSUP_REQUIRE_GPU();
  const Tensor s = random_scores(301, 77, 5);
  Tensor out = poisoned_gpu(s.shape());
  cuda::sinkhorn(raw::to_device(s, Device::cuda()), 0.05, 3, out);
  const std::vector<float> q = raw::to_device(out, kCPU).to_vector<float>();
  for (int64_t i = 0; i < 301; ++i) {
    double sum = 0;
    for (int64_t j = 0; j < 77; ++j)
      sum += q[i * 77 + j];
    ASSERT_NEAR(sum, 1.0, 1e-5) << "row " << i;
  }
}

TEST(CudaSinkhorn, NonFiniteScoresAreAnError) {
  SELFSUP_REQUIRE_GPU();
  Tensor s = random_scores(9, 5, 6);
  s.data_ptr<float>()[17] = INFINITY;
  Tensor out = poisoned_gpu(s.shape());
  EXPECT_NE(error_of([&] {
              cuda::sinkhorn(raw::to_device(s, Device::cuda()), 0.05, 3, out);
            }).find("sinkhorn: scores [9, 5] contain a non-finite value"),
            std::string::npos);
  Tensor good = raw::to_device(random_scores(9, 5, 6), Device::cuda());
  EXPECT_NE(error_of([&] { cuda::sinkhorn(good, 0.0, 3, out); }).find("epsilon must be > 0"),
            std::string::npos);
  EXPECT_NE(error_of([&] { cuda::sinkhorn(good, 0.05, 0, out); }).find("iterations must be >= 1"),
            std::string::npos);
}

#else

TEST(CudaSinkhorn, NeedsTheCudaBackend) {
  GTEST_SKIP() << "this build has no CUDA backend";
}

#endif
