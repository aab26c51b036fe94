// ResNet training speed on the CPU: one forward + backward of a batch of 256 1x28x28 images
// (Fashion-MNIST sized), for resnet-small (~0.3M params) and resnet18 (11.2M), in images/s.
// A forward-only row (eval mode, no graph) shows what embedding / kNN evaluation costs.
//
// Work per 28x28 image, forward (multiply-adds x 2): resnet-small about 74 MFLOP, resnet18
// about 0.43 GFLOP; a backward costs about twice its forward. The convolutions (im2col +
// Eigen GEMM) dominate, so the numbers follow the machine's GEMM throughput.
//
// Before anything is timed, a float32 forward of each model is compared with the same model
// in float64 on two images; a mismatch skips the benchmarks with an error.
//
//   ./build/bench_cpu_resnet
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cmath>
#include <map>
#include <string>

#include "autograd/ops.h"
#include "nn/models/registry.h"

using namespace selfsup;

namespace {

constexpr int64_t kBatch = 256;

// Empty when the float32 and float64 forwards of `name` agree, else what differed.
std::string check_against_float64(const std::string& name) {
  Generator gen(1), gen64(1);
  auto model = nn::make_encoder(name, 1, 1.0, &gen).module;
  auto model64 = nn::make_encoder(name, 1, 1.0, &gen64).module;
  model64->to(kFloat64);
  Tensor x = randn({2, 1, 28, 28}, kFloat32, &gen);
  NoGradGuard no_grad;
  auto got = model->forward(x).to_vector<double>();
  auto want = model64->forward(x.to(kFloat64)).to_vector<double>();
  double err = 0, scale = 1e-30;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) return name + ": non-finite output";
    err = std::max(err, std::abs(got[i] - want[i]));
    scale = std::max(scale, std::abs(want[i]));
  }
  if (err / scale > 1e-4)
    return name + ": float32 forward differs from float64 (relative error " +
           std::to_string(err / scale) + ")";
  return {};
}

const std::string& mismatch(const std::string& name) {
  static std::map<std::string, std::string> results;
  auto it = results.find(name);
  if (it == results.end()) it = results.emplace(name, check_against_float64(name)).first;
  return it->second;
}

void set_counters(benchmark::State& state) {
  state.counters["images/s"] = benchmark::Counter(static_cast<double>(kBatch),
                                                  benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = omp_get_max_threads();
}

void BM_TrainStep(benchmark::State& state, const std::string& name) {
  if (!mismatch(name).empty()) {
    state.SkipWithError(mismatch(name).c_str());
    return;
  }
  Generator gen(2);
  auto model = nn::make_encoder(name, 1, 1.0, &gen).module;
  Tensor x = randn({kBatch, 1, 28, 28}, kFloat32, &gen);
  for (auto _ : state) {
    model->zero_grad();
    Tensor loss = model->forward(x).pow(2.0).mean();
    loss.backward();
    benchmark::DoNotOptimize(model->parameters().front().grad().raw_data_ptr());
  }
  set_counters(state);
}

void BM_Forward(benchmark::State& state, const std::string& name) {
  if (!mismatch(name).empty()) {
    state.SkipWithError(mismatch(name).c_str());
    return;
  }
  Generator gen(3);
  auto model = nn::make_encoder(name, 1, 1.0, &gen).module;
  model->eval();
  Tensor x = randn({kBatch, 1, 28, 28}, kFloat32, &gen);
  NoGradGuard no_grad;
  for (auto _ : state) {
    Tensor y = model->forward(x);
    benchmark::DoNotOptimize(y.raw_data_ptr());
  }
  set_counters(state);
}

}  // namespace

BENCHMARK_CAPTURE(BM_TrainStep, resnet_small, std::string("resnet-small"))
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_Forward, resnet_small, std::string("resnet-small"))
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_TrainStep, resnet18, std::string("resnet18"))
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_Forward, resnet18, std::string("resnet18"))
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1)
    ->UseRealTime();

BENCHMARK_MAIN();
