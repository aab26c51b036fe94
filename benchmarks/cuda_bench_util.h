// Shared by the CUDA benchmarks: skip without a GPU, time device work with CUDA events after a
// warm-up (manual time), and measure the device's copy bandwidth, the reference of the
// memory-bound kernels. Only included under SELFSUP_WITH_CUDA.
#pragma once

#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "core/views.h"
#include "kernels/cuda/device_info.h"
#include "kernels/cuda/runtime.h"

namespace selfsup::bench {

// Empty when a GPU answers (and registers the CUDA backend), else "no GPU: <why>".
inline const std::string& no_gpu_reason() {
  static const std::string reason = [] {
    const cuda::DeviceReport r = cuda::query_devices();
    return r.gpus.empty() ? "no GPU: " + r.reason : std::string();
  }();
  return reason;
}

// Times each call of fn on the device with CUDA events, after one warm-up call, as the
// benchmark's manual time. Returns the mean seconds per call.
template <typename Fn>
double time_on_device(benchmark::State& state, Fn&& fn) {
  fn();
  cuda::check(cudaDeviceSynchronize(), "benchmark warm-up");
  cudaEvent_t start, stop;
  cuda::check(cudaEventCreate(&start), "cudaEventCreate");
  cuda::check(cudaEventCreate(&stop), "cudaEventCreate");
  double total = 0;
  int64_t calls = 0;
  for (auto _ : state) {
    cudaEventRecord(start);
    fn();
    cudaEventRecord(stop);
    cuda::check(cudaEventSynchronize(stop), "cudaEventSynchronize");
    float ms = 0;
    cudaEventElapsedTime(&ms, start, stop);
    state.SetIterationTime(ms * 1e-3);
    total += ms * 1e-3;
    ++calls;
  }
  cuda::check_launch("benchmark loop");
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return calls ? total / calls : 0.0;
}

// Mean seconds per call over `reps` calls (one warm-up first): for reference timings that feed
// a ratio counter.
template <typename Fn>
double mean_seconds(Fn&& fn, int reps = 20) {
  fn();
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  cudaEventRecord(start);
  for (int i = 0; i < reps; ++i)
    fn();
  cudaEventRecord(stop);
  cuda::check(cudaEventSynchronize(stop), "reference timing");
  float ms = 0;
  cudaEventElapsedTime(&ms, start, stop);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ms * 1e-3 / reps;
}

// Device-to-device cudaMemcpy of 256 MiB, in GB/s counting the read and the write: the
// bandwidth a memory-bound kernel can hope for. Measured once.
inline double copy_bandwidth_gbs() {
  static const double gbs = [] {
    const int64_t n = 64 << 20;  // floats
    Tensor a = empty({n}, Device::cuda()), b = empty({n}, Device::cuda());
    const double s = mean_seconds([&] {
      cudaMemcpy(b.raw_data_ptr(), a.raw_data_ptr(), n * sizeof(float), cudaMemcpyDeviceToDevice);
    });
    return 2.0 * n * sizeof(float) / s * 1e-9;
  }();
  return gbs;
}

// The copy benchmark itself, so the table shows the reference next to the kernels.
inline void BM_DeviceCopy(benchmark::State& state) {
  if (!no_gpu_reason().empty()) {
    state.SkipWithError(no_gpu_reason().c_str());
    return;
  }
  const int64_t n = state.range(0);
  Tensor a = empty({n}, Device::cuda()), b = empty({n}, Device::cuda());
  time_on_device(state, [&] {
    cudaMemcpy(b.raw_data_ptr(), a.raw_data_ptr(), n * sizeof(float), cudaMemcpyDeviceToDevice);
  });
  state.counters["GB/s"] = benchmark::Counter(2.0 * n * sizeof(float) * 1e-9,
                                              benchmark::Counter::kIsIterationInvariantRate);
}

// Sets the rate counter "GB/s" (bytes moved per call) and "vs_copy", the fraction of the
// device's copy bandwidth that rate reaches.
inline void set_bandwidth_counters(benchmark::State& state, double bytes, double seconds) {
  state.counters["GB/s"] =
      benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  if (seconds > 0) state.counters["vs_copy"] = bytes / seconds * 1e-9 / copy_bandwidth_gbs();
}

// Largest |got - want| over the largest |want| (both copied from the device).
inline double relative_error(const Tensor& got_dev, const Tensor& want_dev) {
  const std::vector<double> got = raw::to_device(got_dev, kCPU).to_vector<double>();
  const std::vector<double> want = raw::to_device(want_dev, kCPU).to_vector<double>();
  double err = 0, scale = 1e-30;
  for (size_t i = 0; i < want.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    err = std::max(err, std::abs(got[i] - want[i]));
    scale = std::max(scale, std::abs(want[i]));
  }
  return err / scale;
}

}  // namespace selfsup::bench
