// Batched GEMM on the GPU (kernels/cuda/gemm.h): every version, in every layout, against the CPU
// product (cpu::bmm in float64) on awkward sizes, with C poisoned with NaN before the run.
// Without a GPU the device tests skip; the host-side rules and the argument checks still run.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <utility>

#include "core/random.h"
#include "core/tensor.h"
#include "core/views.h"
#include "kernels/cpu/linalg.h"
#include "kernels/cuda/gemm.h"
#include "tests/cuda_test_util.h"

using namespace selfsup;
using cuda::GemmLayout;

// ------------------------------------------------------------------------------------------
// Host-side rules (no GPU, no CUDA backend needed)
// ------------------------------------------------------------------------------------------

TEST(CudaGemmHost, Float4LoadsNeedAnAlignedBaseAndStridesOfFour) {
  EXPECT_TRUE(cuda::gemm_float4_ok(0x1000, 64, 4096));
  EXPECT_TRUE(cuda::gemm_float4_ok(0x1000, 64, 0));      // a shared (stride-0) operand
  EXPECT_FALSE(cuda::gemm_float4_ok(0x1004, 64, 4096));  // base 4 bytes off
  EXPECT_FALSE(cuda::gemm_float4_ok(0x1000, 33, 4096));  // odd row stride
  EXPECT_FALSE(cuda::gemm_float4_ok(0x1000, 64, 4098));  // batch stride breaks alignment
}

TEST(CudaGemmHost, ReadsInPlaceOnlyContiguousRowsThatDoNotOverlap) {
  EXPECT_TRUE(cuda::gemm_reads_in_place(4, 3, 3, 1));   // packed
  EXPECT_TRUE(cuda::gemm_reads_in_place(4, 3, 8, 1));   // narrowed: gaps between rows
  EXPECT_TRUE(cuda::gemm_reads_in_place(1, 3, 0, 1));   // one row: any row stride
  EXPECT_TRUE(cuda::gemm_reads_in_place(4, 1, 1, 7));   // one column: any column stride
  EXPECT_TRUE(cuda::gemm_reads_in_place(4, 0, 0, 1));   // rows of no columns
  EXPECT_FALSE(cuda::gemm_reads_in_place(4, 3, 0, 1));  // expanded: every row at one address
  EXPECT_FALSE(cuda::gemm_reads_in_place(4, 3, 2, 1));  // rows overlap
  EXPECT_FALSE(cuda::gemm_reads_in_place(4, 3, 1, 4));  // a transposed view, columns contiguous
}

TEST(CudaGemmHost, DefaultIsAnFp32HandWrittenVersion) {
  EXPECT_GE(cuda::kGemmDefault, 1);
  EXPECT_LE(cuda::kGemmDefault, 6);  // 7 and 8 are TF32, 0 is cuBLAS
  EXPECT_EQ(cuda::kGemmVersionCount, 9);
}

#if SELFSUP_WITH_CUDA

TEST(CudaGemmHost, VersionNames) {
  EXPECT_STREQ(cuda::gemm_version_name(0), "cublas");
  EXPECT_STREQ(cuda::gemm_version_name(1), "naive");
  EXPECT_STREQ(cuda::gemm_version_name(8), "cublas_tf32");
  EXPECT_STREQ(cuda::gemm_version_name(9), "?");
  EXPECT_STREQ(cuda::gemm_version_name(-1), "?");
}

// These throw before any CUDA call, so they run without a GPU.
TEST(CudaGemmHost, BadArgumentsAreErrorsNamingTheOp) {
  Tensor a = zeros({4, 3}), b = zeros({3, 5}), c = zeros({4, 5});
  try {
    cuda::gemm(GemmLayout::NN, a, b, c);
    FAIL() << "CPU tensors were accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("gemm: a [4, 3] is on"), std::string::npos) << e.what();
  }
  try {
    cuda::gemm(GemmLayout::NN, a, b, c, 1.f, 0.f, 9);
    FAIL() << "version 9 was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown version 9"), std::string::npos) << e.what();
  }
  EXPECT_THROW(cuda::gemm(GemmLayout::NN, a, b, c, 1.f, 0.f, -1), Error);
}

// ------------------------------------------------------------------------------------------
// Device tests
// ------------------------------------------------------------------------------------------

namespace {

struct Case {
  GemmLayout layout;
  int64_t batch, m, n, k;
  bool shared_b = false;  // b is one matrix expanded over the batch (batch stride 0)
  float alpha = 1.f, beta = 0.f;
};

std::string describe(const Case& c) {
  const char* l = c.layout == GemmLayout::NN ? "NN" : c.layout == GemmLayout::NT ? "NT" : "TN";
  return std::string(l) + " batch " + std::to_string(c.batch) + " m " + std::to_string(c.m) +
         " n " + std::to_string(c.n) + " k " + std::to_string(c.k) +
         (c.shared_b ? " shared b" : "") + " alpha " + std::to_string(c.alpha) + " beta " +
         std::to_string(c.beta);
}

// The stored shapes of a and b for a layout.
Shape a_shape(const Case& c, int64_t batch) {
  return c.layout == GemmLayout::TN ? Shape{batch, c.k, c.m} : Shape{batch, c.m, c.k};
}
Shape b_shape(const Case& c, int64_t batch) {
  return c.layout == GemmLayout::NT ? Shape{batch, c.n, c.k} : Shape{batch, c.k, c.n};
}

// alpha * op(a) op(b) + beta * c0 in float64 on the CPU: [B, M, N].
std::vector<double> reference(const Case& cs, const Tensor& a, const Tensor& b, const Tensor& c0) {
  Tensor a64 = raw::to_dtype(a, kFloat64), b64 = raw::to_dtype(b, kFloat64);
  if (cs.layout == GemmLayout::TN) a64 = raw::transpose(a64, 1, 2);
  if (cs.layout == GemmLayout::NT) b64 = raw::transpose(b64, 1, 2);
  Tensor prod = empty({cs.batch, cs.m, cs.n}, kFloat64);
  cpu::bmm(a64, b64, prod);
  std::vector<double> out = prod.to_vector<double>();
  const std::vector<double> before = c0.to_vector<double>();
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = cs.alpha * out[i] + (cs.beta != 0 ? cs.beta * before[i] : 0.0);
  return out;
}

bool is_tf32(int version) {
  return version == 7 || version == cuda::kGemmCublasTf32;
}

// Runs one case on the GPU and compares with the reference. Errors are measured against the
// largest reference value; fp32 sums of K terms get a tolerance growing with K, TF32 ~1e-2.
void check_case(int version, const Case& cs, uint64_t seed) {
  SCOPED_TRACE(describe(cs) + ", version " + std::to_string(version));
  Generator gen(seed);
  const Tensor a = randn(a_shape(cs, cs.batch), kFloat32, &gen);
  const Tensor b_one = randn(b_shape(cs, 1), kFloat32, &gen);
  const Tensor b = cs.shared_b ? raw::expand(b_one, b_shape(cs, cs.batch))
                               : randn(b_shape(cs, cs.batch), kFloat32, &gen);
  const Tensor c0 = cs.beta != 0 ? randn({cs.batch, cs.m, cs.n}, kFloat32, &gen)
                                 : full({cs.batch, cs.m, cs.n}, NAN);  // poison
  const std::vector<double> want = reference(cs, a, b, c0);

  const Tensor a_dev = raw::to_device(a, Device::cuda());
  const Tensor b_dev =
      cs.shared_b ? raw::expand(raw::to_device(b_one, Device::cuda()), b_shape(cs, cs.batch))
                  : raw::to_device(b, Device::cuda());
  Tensor c_dev = raw::to_device(c0, Device::cuda());
  cuda::gemm(cs.layout, a_dev, b_dev, c_dev, cs.alpha, cs.beta, version);
  const std::vector<double> got = raw::to_device(c_dev, kCPU).to_vector<double>();

  double scale = 1.0, err = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_TRUE(std::isfinite(got[i])) << "element " << i << " is " << got[i];
    scale = std::max(scale, std::abs(want[i]));
    err = std::max(err, std::abs(got[i] - want[i]));
  }
  const double tol = is_tf32(version) ? 1e-2 : 2e-6 * static_cast<double>(cs.k + 8);
  EXPECT_LE(err / scale, tol);
}

class CudaGemm : public ::testing::TestWithParam<int> {};

}  // namespace

TEST_P(CudaGemm, AwkwardSizesInEveryLayout) {
  SELFSUP_REQUIRE_GPU();
  uint64_t seed = 100;
  for (GemmLayout layout : {GemmLayout::NN, GemmLayout::NT, GemmLayout::TN}) {
    check_case(GetParam(), {layout, 1, 67, 45, 33}, ++seed);
    check_case(GetParam(), {layout, 1, 1, 1, 1}, ++seed);
    check_case(GetParam(), {layout, 1, 129, 257, 65}, ++seed);
    check_case(GetParam(), {layout, 1, 128, 128, 128}, ++seed);  // whole tiles, float4 path
    check_case(GetParam(), {layout, 2, 3, 130, 5}, ++seed);      // thin: every tail at once
    // Leading dimensions that are multiples of 4 (16-byte loads allowed) with partial tiles:
    // the edge tests that pick one float4 load or four scalar ones, each way round.
    check_case(GetParam(), {layout, 2, 100, 132, 36}, ++seed);
    check_case(GetParam(), {layout, 1, 132, 68, 20}, ++seed);
  }
}

TEST_P(CudaGemm, BatchesWithASharedOperandAndBeta) {
  SELFSUP_REQUIRE_GPU();
  uint64_t seed = 200;
  for (GemmLayout layout : {GemmLayout::NN, GemmLayout::NT, GemmLayout::TN}) {
    check_case(GetParam(), {layout, 3, 67, 45, 33, /*shared_b=*/true}, ++seed);
    check_case(GetParam(), {layout, 3, 33, 20, 17, false, 0.5f, -1.5f}, ++seed);
    check_case(GetParam(), {layout, 5, 64, 64, 64, true, 2.f, 1.f}, ++seed);
  }
}

TEST_P(CudaGemm, EmptyDepthScalesC) {
  SELFSUP_REQUIRE_GPU();
  check_case(GetParam(), {GemmLayout::NN, 2, 7, 9, 0, false, 1.f, 0.5f}, 300);
  check_case(GetParam(), {GemmLayout::TN, 2, 7, 9, 0}, 301);  // beta 0: C becomes 0, not NaN
}

// A narrowed, misaligned a: rows 37 floats apart, first element 4 bytes past a boundary, so
// versions 5-7 must take their scalar path.
TEST_P(CudaGemm, NarrowedMisalignedOperand) {
  SELFSUP_REQUIRE_GPU();
  Generator gen(400);
  // {stored columns, first column}: rows 37 floats apart from column 1 (misaligned: the scalar
  // path), then 40 apart from column 0 (aligned, 16-byte loads, with a depth tail of 33).
  const std::pair<int64_t, int64_t> layouts[] = {{37, 1}, {40, 0}};
  for (const auto& [cols, first] : layouts) {
    SCOPED_TRACE("row stride " + std::to_string(cols) + ", offset " + std::to_string(first));
    const Tensor wide = randn({50, cols}, kFloat32, &gen);
    const Tensor b = randn({33, 21}, kFloat32, &gen);
    const Tensor a = raw::narrow(wide, 1, first, 33);  // [50, 33]
    Tensor want = empty({50, 21}, kFloat32);
    cpu::matmul(a, b, want);
    const Tensor a_dev = raw::narrow(raw::to_device(wide, Device::cuda()), 1, first, 33);
    Tensor c_dev = raw::to_device(full({50, 21}, NAN), Device::cuda());
    cuda::gemm(GemmLayout::NN, a_dev, raw::to_device(b, Device::cuda()), c_dev, 1.f, 0.f,
               GetParam());
    const auto got = raw::to_device(c_dev, kCPU).to_vector<float>();
    const auto ref = want.to_vector<float>();
    const double tol = is_tf32(GetParam()) ? 5e-2 : 1e-4;
    for (size_t i = 0; i < ref.size(); ++i)
      ASSERT_NEAR(got[i], ref[i], tol * (1 + std::abs(ref[i]))) << "element " << i;
  }
}

// More products than gridDim.z allows (65535): gemm launches them in chunks.
TEST_P(CudaGemm, BatchesBeyondTheGridLimit) {
  SELFSUP_REQUIRE_GPU();
  check_case(GetParam(), {GemmLayout::NN, 65537, 2, 3, 5}, 500);
}

TEST(CudaGemmDevice, ShapeMismatchNamesBothShapes) {
  SELFSUP_REQUIRE_GPU();
  Tensor a = empty({4, 3}, Device::cuda()), b = empty({4, 5}, Device::cuda());
  Tensor c = empty({4, 5}, Device::cuda());
  try {
    cuda::gemm(GemmLayout::NN, a, b, c);
    FAIL() << "mismatched shapes were accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[4, 3] x [4, 5]"), std::string::npos) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(Versions, CudaGemm, ::testing::Range(0, cuda::kGemmVersionCount),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return std::string("v") + std::to_string(info.param) + "_" +
                                  cuda::gemm_version_name(info.param);
                         });

#else

TEST(CudaGemm, NeedsTheCudaBackend) {
  GTEST_SKIP() << "this build has no CUDA backend";
}

#endif
