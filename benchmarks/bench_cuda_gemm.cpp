// Batched SGEMM on the GPU: every version of kernels/cuda/gemm.cu against cuBLAS, in GFLOP/s
// (2*B*M*N*K per product) and as a fraction of cuBLAS fp32 on the same shape ("vs_ref", with
// "ref_GFLOP/s"; TF32 versions are compared with cuBLAS TF32).
//
// Shapes (args B, M, N, K, layout 0 NN / 1 NT / 2 TN, version):
//   4096^3 and 1024^3          square, compute bound
//   256 x (64 x 64 x 64)       a batch of small products: latency and memory bound
//   512 x 128 x 2048 (K)       a SimCLR projection head layer, y = x W (batch 512, 2048 -> 128)
//   its backward: NT grad_x = grad_y W^T (M 512, N 2048, K 128) and
//                 TN grad_W = x^T grad_y (M 2048, N 128, K 512)
// Before timing, each run compares its result on its own shape with cuBLAS (fp32 1e-4, TF32
// 1e-2 relative to the largest value) and skips with an error if they differ.
//
//   ./build/bench_cuda_gemm --benchmark_filter=gemm/v6
#include <benchmark/benchmark.h>

#if SELFSUP_WITH_CUDA

#include <string>

#include "benchmarks/cuda_bench_util.h"
#include "core/random.h"
#include "kernels/cuda/gemm.h"

using namespace selfsup;

namespace {

cuda::GemmLayout layout_of(int64_t i) {
  return i == 0 ? cuda::GemmLayout::NN : i == 1 ? cuda::GemmLayout::NT : cuda::GemmLayout::TN;
}

void BM_Gemm(benchmark::State& state) {
  if (!bench::no_gpu_reason().empty()) {
    state.SkipWithError(bench::no_gpu_reason().c_str());
    return;
  }
  const int64_t batch = state.range(0), m = state.range(1), n = state.range(2), k = state.range(3);
  const cuda::GemmLayout layout = layout_of(state.range(4));
  const int version = static_cast<int>(state.range(5));
  const bool tf32 = version == 7 || version == cuda::kGemmCublasTf32;
  Generator gen(5);
  const Shape a_shape = layout == cuda::GemmLayout::TN ? Shape{batch, k, m} : Shape{batch, m, k};
  const Shape b_shape = layout == cuda::GemmLayout::NT ? Shape{batch, n, k} : Shape{batch, k, n};
  const Tensor a = raw::to_device(randn(a_shape, kFloat32, &gen), Device::cuda());
  const Tensor b = raw::to_device(randn(b_shape, kFloat32, &gen), Device::cuda());
  Tensor c = empty({batch, m, n}, Device::cuda()), ref = empty({batch, m, n}, Device::cuda());

  const int reference = tf32 ? cuda::kGemmCublasTf32 : cuda::kGemmCublas;
  cuda::gemm(layout, a, b, c, 1.f, 0.f, version);
  cuda::gemm(layout, a, b, ref, 1.f, 0.f, cuda::kGemmCublas);
  const double err = bench::relative_error(c, ref);
  if (!(err < (tf32 ? 1e-2 : 1e-4))) {
    const std::string msg =
        std::string("result differs from cuBLAS: relative error ") + std::to_string(err);
    state.SkipWithError(msg.c_str());
    return;
  }
  const double seconds =
      bench::time_on_device(state, [&] { cuda::gemm(layout, a, b, c, 1.f, 0.f, version); });
  const double flops = 2.0 * batch * m * n * k;
  const double ref_seconds =
      bench::mean_seconds([&] { cuda::gemm(layout, a, b, ref, 1.f, 0.f, reference); }, 10);
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["ref_GFLOP/s"] = flops * 1e-9 / ref_seconds;
  state.counters["vs_ref"] = seconds > 0 ? ref_seconds / seconds : 0.0;
  state.SetLabel(cuda::gemm_version_name(version));
}

void shapes(benchmark::internal::Benchmark* bm) {
  for (int v = 0; v < cuda::kGemmVersionCount; ++v) {
    bm->Args({1, 4096, 4096, 4096, 0, v});
    bm->Args({1, 1024, 1024, 1024, 0, v});
    bm->Args({256, 64, 64, 64, 0, v});
    bm->Args({1, 512, 128, 2048, 0, v});  // projection head forward
    bm->Args({1, 512, 2048, 128, 1, v});  // grad_x = grad_y W^T
    bm->Args({1, 2048, 128, 512, 2, v});  // grad_W = x^T grad_y
  }
}

}  // namespace

BENCHMARK(BM_Gemm)
    ->Name("gemm")
    ->ArgNames({"B", "M", "N", "K", "layout", "v"})
    ->Apply(shapes)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

#else

static void BM_NoCuda(benchmark::State& state) {
  state.SkipWithError("no GPU: this build has no CUDA backend");
}
BENCHMARK(BM_NoCuda);

#endif

BENCHMARK_MAIN();
