// The CUDA runtime glue: device allocation through the caching allocator and copies both ways.
// Skips (with the reason) where there is no GPU.
#include <gtest/gtest.h>

#include "core/random.h"
#include "core/tensor.h"
#include "core/views.h"
#include "kernels/cuda/device_info.h"
#include "kernels/cuda/runtime.h"
#include "tests/cuda_test_util.h"
#include "tests/tensor_test_util.h"

using namespace selfsup;

TEST(CudaRuntime, RoundTripThroughTheDevice) {
  SELFSUP_REQUIRE_GPU();
  Generator g(3);
  Tensor host = randn({37, 53}, kFloat32, &g);
  Tensor dev = raw::to_device(host, Device::cuda());
  EXPECT_TRUE(dev.device().is_cuda());
  Tensor back = raw::to_device(dev, kCPU);
  EXPECT_EQ(back.to_vector<float>(), host.to_vector<float>());
}

TEST(CudaRuntime, SteadyStateReusesCachedBlocks) {
  SELFSUP_REQUIRE_GPU();
  { Tensor warm = empty({1000, 1000}, Device::cuda()); }
  size_t mallocs = cuda::allocator_stats().device_allocs;
  for (int i = 0; i < 10; ++i) {
    Tensor t = empty({1000, 1000}, Device::cuda());
    EXPECT_GE(cuda::allocator_stats().bytes_in_use, 4000000u);
  }
  EXPECT_EQ(cuda::allocator_stats().device_allocs, mallocs);
  EXPECT_GE(cuda::allocator_stats().bytes_cached, 4000000u);
}

// Memory cached at one size must not make an allocation of another size fail: when cudaMalloc
// refuses, the allocator gives its cache back and tries again. Two blocks of 60% of the device
// (different rounded sizes) fit one after the other only that way.
TEST(CudaRuntime, AFailedAllocationReleasesTheCacheAndRetries) {
  SELFSUP_REQUIRE_GPU();
  cuda::empty_cache();
  const size_t total = cuda::query_devices().gpus.at(0).total_memory;
  const int64_t floats = static_cast<int64_t>(total / 4 * 6 / 10);
  { Tensor first = empty({floats}, Device::cuda()); }
  ASSERT_GE(cuda::allocator_stats().bytes_cached, static_cast<size_t>(floats) * 4);
  Tensor second = empty({floats + (8 << 20)}, Device::cuda());  // 32 MiB more: another bin
  EXPECT_EQ(cuda::allocator_stats().bytes_cached, 0u);
  second = Tensor();
  cuda::empty_cache();
}

// A failed CUDA call (here an allocation far beyond the device) is an Error naming the call,
// and it must not linger: the next kernel launch checks its own launch, not the old failure.
TEST(CudaRuntime, AFailedCallDoesNotPoisonTheNextLaunch) {
  SELFSUP_REQUIRE_GPU();
  cuda::empty_cache();
  EXPECT_NE(test::error_of([] { empty({int64_t{1} << 42}, Device::cuda()); }).find("cudaMalloc"),
            std::string::npos);
  Tensor t = zeros({1000}, Device::cuda());  // a fill kernel, launch-checked
  t.fill_(2.0);
  EXPECT_EQ(raw::to_device(t, kCPU).to_vector<float>(), std::vector<float>(1000, 2.0f));
}

// full / zeros / ones on the device fill in place (raw::set_device_fill), every dtype, with no
// pinned or host staging buffer; requires_grad is kept.
TEST(CudaRuntime, FactoriesFillOnTheDevice) {
  SELFSUP_REQUIRE_GPU();
  const size_t host_allocs = cuda::pinned_stats().host_allocs;
  Tensor z = zeros({333, 7}, TensorOptions(kFloat32).device(Device::cuda()).requires_grad());
  EXPECT_TRUE(z.requires_grad());
  for (float v : z.to_vector<float>())
    ASSERT_EQ(v, 0.f);
  for (DType dtype : {kFloat64, kInt64, kUInt8}) {
    Tensor t = full({5, 3}, 7.0, TensorOptions(dtype).device(Device::cuda()));
    EXPECT_EQ(t.dtype(), dtype);
    for (double v : t.to_vector<double>())
      ASSERT_EQ(v, 7.0) << dtype_name(dtype);
  }
  EXPECT_EQ(cuda::pinned_stats().host_allocs, host_allocs);
}

TEST(CudaRuntime, WithoutAGpuDeviceTensorsAreAClearError) {
  if (cuda::gpu_available()) GTEST_SKIP() << "a GPU is present; this checks the no-GPU path";
  EXPECT_THROW(empty({4}, Device::cuda()), Error);
}

// ---- pinned host memory (the data loader's batches) ----

TEST(CudaRuntime, EmptyPinnedIsPageLockedAndCached) {
  SELFSUP_REQUIRE_GPU();
  Tensor first = empty_pinned({3, 1, 29, 31}, kFloat32);
  ASSERT_TRUE(first.is_pinned());
  EXPECT_TRUE(first.device().is_cpu());
  EXPECT_TRUE(cuda::is_page_locked(first.raw_data_ptr()));
  first = Tensor();  // back to the cache
  size_t allocs = cuda::pinned_stats().host_allocs;
  for (int i = 0; i < 5; ++i) {
    Tensor again = empty_pinned({3, 1, 29, 31}, kFloat32);
    EXPECT_TRUE(cuda::is_page_locked(again.raw_data_ptr()));
  }
  EXPECT_EQ(cuda::pinned_stats().host_allocs, allocs) << "same-size requests must reuse blocks";
  EXPECT_GT(cuda::pinned_stats().bytes_cached, 0u);
}

TEST(CudaRuntime, PinnedTensorsUploadExactly) {
  SELFSUP_REQUIRE_GPU();
  Generator g(11);
  Tensor src = randn({41, 7}, kFloat32, &g);
  Tensor pinned = empty_pinned({41, 7}, kFloat32);
  raw::copy_(pinned, src);
  Tensor back = raw::to_device(raw::to_device(pinned, Device::cuda()), kCPU);
  EXPECT_EQ(back.to_vector<float>(), src.to_vector<float>());
}

TEST(CudaRuntime, OrdinaryHostMemoryIsNotPageLocked) {
  SELFSUP_REQUIRE_GPU();
  Tensor plain = empty({64}, kFloat32);
  EXPECT_FALSE(plain.is_pinned());
  EXPECT_FALSE(cuda::is_page_locked(plain.raw_data_ptr()));
}
