// Fused softmax cross-entropy on the GPU: every version of kernels/cuda/softmax_xent.cu, in GB/s
// of the minimum traffic (read the logits, write the gradient: 8 bytes per element) and as a
// fraction of the device's measured copy bandwidth ("vs_copy"; device_copy is in the table).
// The target check (a device->host copy) is off while timing.
//
// Shapes (args rows, cols, layout 0 class targets / 1 NT-Xent, version; 0 = auto):
//   4096 x 1000     ImageNet-sized classifier head on a big batch
//   65536 x 10      Fashion-MNIST classes: very short rows
//   512 x 512       NT-Xent of a 256-image batch;   8192 x 8192: of a 4096-image batch
//   256 x 65536     a MoCo-style queue: few, very long rows
// Before timing, each run checks its loss and gradient against version 1 (the separate
// kernels) on the same input, 1e-5 relative.
#include <benchmark/benchmark.h>

#if SELFSUP_WITH_CUDA

#include <string>

#include "benchmarks/cuda_bench_util.h"
#include "core/random.h"
#include "kernels/cuda/softmax_xent.h"

using namespace selfsup;

namespace {

void BM_SoftmaxXent(benchmark::State& state) {
  if (!bench::no_gpu_reason().empty()) {
    state.SkipWithError(bench::no_gpu_reason().c_str());
    return;
  }
  const int64_t rows = state.range(0), cols = state.range(1);
  const bool nt_xent = state.range(2) != 0;
  const int version = static_cast<int>(state.range(3));
  Generator gen(6);
  const Tensor logits = raw::to_device(randn({rows, cols}, kFloat32, &gen), Device::cuda());
  const Tensor targets = raw::to_device(randint(0, cols, {rows}, kInt64, &gen), Device::cuda());
  Tensor loss = empty({}, Device::cuda()), grad = empty({rows, cols}, Device::cuda());
  Tensor ref_loss = empty({}, Device::cuda()), ref_grad = empty({rows, cols}, Device::cuda());
  auto run = [&](int v, Tensor& l, Tensor& g) {
    if (nt_xent)
      cuda::nt_xent(logits, 0.1, l, g, v);
    else
      cuda::softmax_cross_entropy(logits, targets, l, g, v, /*check_targets=*/false);
  };
  run(version, loss, grad);
  run(1, ref_loss, ref_grad);
  const double err =
      std::max(bench::relative_error(loss, ref_loss), bench::relative_error(grad, ref_grad));
  if (!(err < 1e-5)) {
    const std::string msg = "result differs from version 1: relative error " + std::to_string(err);
    state.SkipWithError(msg.c_str());
    return;
  }
  const double seconds = bench::time_on_device(state, [&] { run(version, loss, grad); });
  bench::set_bandwidth_counters(state, 8.0 * rows * cols, seconds);
}

void shapes(benchmark::internal::Benchmark* bm) {
  for (int v = 0; v <= cuda::kSoftmaxXentVersions; ++v) {
    bm->Args({4096, 1000, 0, v});
    bm->Args({65536, 10, 0, v});
    bm->Args({256, 65536, 0, v});
    bm->Args({512, 512, 1, v});
    bm->Args({8192, 8192, 1, v});
  }
}

}  // namespace

BENCHMARK(BM_SoftmaxXent)
    ->Name("softmax_xent")
    ->ArgNames({"rows", "cols", "ntxent", "v"})
    ->Apply(shapes)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(bench::BM_DeviceCopy)
    ->Name("device_copy")
    ->Arg(64 << 20)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

#else

static void BM_NoCuda(benchmark::State& state) {
  state.SkipWithError("no GPU: this build has no CUDA backend");
}
BENCHMARK(BM_NoCuda);

#endif

BENCHMARK_MAIN();
