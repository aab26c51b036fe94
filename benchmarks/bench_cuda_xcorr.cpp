// The Barlow Twins cross-correlation loss on the GPU: both forward versions of
// kernels/cuda/xcorr.cu and the backward, in GFLOP/s (forward 2 N D^2, backward 4 N D^2) and
// against the cuBLAS product that dominates them ("vs_ref": the time of cuBLAS's C = A^T B / N
// on already standardised inputs over ours, i.e. 1.0 means the whole loss costs one cuBLAS GEMM).
//
// Shapes (args N, D, version; version 0 = the backward):
//   256 x 2048     the Barlow Twins recipe on a small projector
//   512 x 8192     the paper's projector (D = 8192)
//   100 x 300      awkward sizes (tails everywhere)
// Before timing, each forward compares C with cuBLAS's product of the CPU-standardised views
// (1e-4 relative) and skips with an error if they differ.
#include <benchmark/benchmark.h>

#if SELFSUP_WITH_CUDA

#include <cmath>
#include <string>

#include "benchmarks/cuda_bench_util.h"
#include "core/random.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/xcorr.h"

using namespace selfsup;

namespace {

constexpr double kEps = 1e-5, kLambda = 5e-3;

// zhat of a CPU [N, D] tensor, in float32 (two passes per column, in double).
Tensor standardised(const Tensor& z) {
  const int64_t n = z.size(0), d = z.size(1);
  Tensor out = empty({n, d});
  const float* in = z.data_ptr<float>();
  float* o = out.data_ptr<float>();
  for (int64_t j = 0; j < d; ++j) {
    double mean = 0, sq = 0;
    for (int64_t i = 0; i < n; ++i)
      mean += in[i * d + j];
    mean /= n;
    for (int64_t i = 0; i < n; ++i)
      sq += (in[i * d + j] - mean) * (in[i * d + j] - mean);
    const double r = 1.0 / std::sqrt(sq / n + kEps);
    for (int64_t i = 0; i < n; ++i)
      o[i * d + j] = static_cast<float>((in[i * d + j] - mean) * r);
  }
  return out;
}

void BM_Xcorr(benchmark::State& state) {
  if (!bench::no_gpu_reason().empty()) {
    state.SkipWithError(bench::no_gpu_reason().c_str());
    return;
  }
  const int64_t n = state.range(0), d = state.range(1);
  const int version = static_cast<int>(state.range(2));
  Generator gen(8);
  const Tensor za_host = randn({n, d}, kFloat32, &gen), zb_host = randn({n, d}, kFloat32, &gen);
  const Tensor za = raw::to_device(za_host, Device::cuda());
  const Tensor zb = raw::to_device(zb_host, Device::cuda());
  const Tensor zahat = raw::to_device(standardised(za_host), Device::cuda());
  const Tensor zbhat = raw::to_device(standardised(zb_host), Device::cuda());
  Tensor c = empty({d, d}, Device::cuda()), loss = empty({}, Device::cuda());
  Tensor ma = empty({d}, Device::cuda()), ra = empty({d}, Device::cuda());
  Tensor mb = empty({d}, Device::cuda()), rb = empty({d}, Device::cuda());
  Tensor ga = empty({n, d}, Device::cuda()), gb = empty({n, d}, Device::cuda());
  Tensor c_ref = empty({d, d}, Device::cuda());
  const float inv_n = 1.f / static_cast<float>(n);
  auto reference = [&] {
    cuda::gemm(cuda::GemmLayout::TN, zahat, zbhat, c_ref, inv_n, 0.f, cuda::kGemmCublas);
  };

  cuda::barlow_xcorr_forward(za, zb, kEps, kLambda, c, loss, ma, ra, mb, rb,
                             version == 0 ? cuda::kXcorrDefault : version);
  reference();
  const double err = bench::relative_error(c, c_ref);
  if (!(err < 1e-4)) {
    const std::string msg = "C differs from cuBLAS: relative error " + std::to_string(err);
    state.SkipWithError(msg.c_str());
    return;
  }
  double seconds = 0, flops = 0;
  if (version == 0) {
    seconds = bench::time_on_device(
        state, [&] { cuda::barlow_xcorr_backward(za, zb, c, ma, ra, mb, rb, kLambda, ga, gb); });
    flops = 4.0 * n * d * d;
    state.SetLabel("backward");
  } else {
    seconds = bench::time_on_device(state, [&] {
      cuda::barlow_xcorr_forward(za, zb, kEps, kLambda, c, loss, ma, ra, mb, rb, version);
    });
    flops = 2.0 * n * d * d;
    state.SetLabel(version == 1 ? "v1_three_kernels" : "v2_fused");
  }
  const double ref_seconds = bench::mean_seconds(reference, 10) * (version == 0 ? 2 : 1);
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["vs_ref"] = seconds > 0 ? ref_seconds / seconds : 0.0;
}

void shapes(benchmark::internal::Benchmark* bm) {
  for (int v : {1, 2, 0}) {
    bm->Args({256, 2048, v});
    bm->Args({512, 8192, v});
    bm->Args({100, 300, v});
  }
}

}  // namespace

BENCHMARK(BM_Xcorr)
    ->Name("xcorr")
    ->ArgNames({"N", "D", "v"})
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
