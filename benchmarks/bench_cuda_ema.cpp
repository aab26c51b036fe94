// Multi-tensor updates on the GPU (kernels/cuda/ema.cu) over a ResNet-shaped parameter list
// (4 stages of 64..512 channels: 16 3x3 convolutions and 32 norm vectors, ~12.5 M floats), in
// GB/s of the minimum traffic and as a fraction of the device's measured copy bandwidth
// ("vs_copy"; device_copy is in the table):
//   ema v1 / v2   12 bytes per element (read target and source, write target)
//   sgd           20 (read p, g, buf; write p, buf)
//   adamw         28 (read p, g, m, v; write p, m, v)
//   lars          28 (norms: read p, g; update: read p, g, buf, write p, buf)
// Before timing, EMA checks one update against cpu::ema_update on the same list (1e-6) and
// skips with an error if they differ; the optimizer steps are checked against nn/optim.h by
// tests/test_cuda_ema.cpp.
#include <benchmark/benchmark.h>

#if SELFSUP_WITH_CUDA

#include <string>
#include <vector>

#include "benchmarks/cuda_bench_util.h"
#include "core/random.h"
#include "kernels/cpu/ema.h"
#include "kernels/cuda/ema.h"

using namespace selfsup;

namespace {

std::vector<Shape> resnet_shapes() {
  std::vector<Shape> shapes;
  for (int64_t c : {64, 128, 256, 512})
    for (int i = 0; i < 4; ++i) {
      shapes.push_back({c, c, 3, 3});
      shapes.push_back({c});  // norm weight
      shapes.push_back({c});  // norm bias
    }
  return shapes;
}

struct Lists {
  std::vector<Tensor> host_a, host_b, a, b, c, d;  // a, b, c, d on the device
  int64_t elements = 0;
};

Lists make_lists() {
  Lists l;
  Generator gen(9);
  for (const Shape& s : resnet_shapes()) {
    l.host_a.push_back(randn(s, kFloat32, &gen));
    l.host_b.push_back(randn(s, kFloat32, &gen));
    l.a.push_back(raw::to_device(l.host_a.back(), Device::cuda()));
    l.b.push_back(raw::to_device(l.host_b.back(), Device::cuda()));
    l.c.push_back(raw::to_device(zeros(s), Device::cuda()));
    l.d.push_back(raw::to_device(zeros(s), Device::cuda()));
    l.elements += shape_numel(s);
  }
  return l;
}

// Empty when EMA version `version` matches cpu::ema_update on the list, else what differed.
std::string check_ema(Lists& l, int version) {
  std::vector<Tensor> want;
  for (const Tensor& t : l.host_a)
    want.push_back(raw::clone(t));
  cpu::ema_update(want, l.host_b, 0.99);
  cuda::ema_update(l.a, l.b, 0.99, version);
  for (size_t i = 0; i < want.size(); ++i) {
    const auto got = raw::to_device(l.a[i], kCPU).to_vector<float>();
    const auto ref = want[i].to_vector<float>();
    for (size_t j = 0; j < ref.size(); ++j)
      if (!(std::abs(got[j] - ref[j]) <= 1e-6f * (1 + std::abs(ref[j]))))
        return "ema differs from cpu::ema_update at tensor " + std::to_string(i) + " element " +
               std::to_string(j);
  }
  return {};
}

enum Op { kEmaV1, kEmaV2, kSgd, kAdamW, kLars };

void BM_MultiTensor(benchmark::State& state) {
  if (!bench::no_gpu_reason().empty()) {
    state.SkipWithError(bench::no_gpu_reason().c_str());
    return;
  }
  const Op op = static_cast<Op>(state.range(0));
  Lists l = make_lists();
  if (op == kEmaV1 || op == kEmaV2) {
    const std::string problem = check_ema(l, op == kEmaV1 ? 1 : 2);
    if (!problem.empty()) {
      state.SkipWithError(problem.c_str());
      return;
    }
  }
  double bytes_per_element = 0, seconds = 0;
  switch (op) {
    case kEmaV1:
    case kEmaV2:
      bytes_per_element = 12;
      seconds = bench::time_on_device(
          state, [&] { cuda::ema_update(l.a, l.b, 0.996, op == kEmaV1 ? 1 : 2); });
      state.SetLabel(op == kEmaV1 ? "ema_v1_per_tensor" : "ema_v2_multi_tensor");
      break;
    case kSgd:
      bytes_per_element = 20;
      seconds = bench::time_on_device(state, [&] {
        cuda::sgd_step(l.a, l.b, l.c, {.lr = 1e-4, .momentum = 0.9, .weight_decay = 1e-4});
      });
      state.SetLabel("sgd_momentum");
      break;
    case kAdamW:
      bytes_per_element = 28;
      seconds = bench::time_on_device(
          state, [&] { cuda::adamw_step(l.a, l.b, l.c, l.d, {.lr = 1e-5, .step = 10}); });
      state.SetLabel("adamw");
      break;
    case kLars:
      bytes_per_element = 28;
      seconds =
          bench::time_on_device(state, [&] { cuda::lars_step(l.a, l.b, l.c, {}, {.lr = 1e-4}); });
      state.SetLabel("lars");
      break;
  }
  bench::set_bandwidth_counters(state, bytes_per_element * l.elements, seconds);
  state.counters["tensors"] = static_cast<double>(l.a.size());
}

}  // namespace

BENCHMARK(BM_MultiTensor)
    ->Name("multi_tensor")
    ->ArgName("op")
    ->DenseRange(kEmaV1, kLars)
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
