// One SimCLR training step on the CPU, exactly as `selfsup train --method simclr` runs it:
// two views of a batch of 256 1x28x28 images through resnet-small and the projector
// (128 -> 512 -> 128), NT-Xent at temperature 0.5, backward, and an SGD step (momentum 0.9).
// Reported as views/s (512 views per step). benchmarks/torch_simclr_step.py is the same model
// and step in PyTorch; tools/compare_torch runs the two side by side.
//
//   ./build/bench_cpu_simclr_step --benchmark_min_time=10
#include <benchmark/benchmark.h>
#include <omp.h>

#include "autograd/ops.h"
#include "nn/optim.h"
#include "ssl/methods/method.h"

using namespace selfsup;

namespace {

constexpr int64_t kBatch = 256;

void BM_SimCLRStep(benchmark::State& state) {
  ssl::MethodOptions options;
  options.model = "resnet-small";
  options.in_channels = 1;
  auto method = ssl::make_method("simclr", options);
  method->train();
  optim::SGD sgd(method->parameters(), optim::SgdOptions{0.3, 0.9, 0.0, 1e-6, false});
  Generator gen(5);
  std::vector<Tensor> views = {rand({kBatch, 1, 28, 28}, kFloat32, &gen),
                               rand({kBatch, 1, 28, 28}, kFloat32, &gen)};
  double loss = 0;
  for (auto _ : state) {
    ssl::StepOutput out = method->step(views);
    sgd.zero_grad();
    out.loss.backward();
    sgd.step();
    loss = out.loss.item();
  }
  if (!std::isfinite(loss)) state.SkipWithError("the SimCLR loss is not finite");
  state.counters["views/s"] =
      benchmark::Counter(2.0 * kBatch, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = omp_get_max_threads();
  state.counters["loss"] = loss;
}

}  // namespace

BENCHMARK(BM_SimCLRStep)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
