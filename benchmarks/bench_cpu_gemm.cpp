// CPU GEMM: selfsup's Eigen path (cpu::matmul / cpu::bmm) against the readable triple-loop
// reference, in GFLOP/s (2*M*N*K floating-point operations per product).
//
// Shapes: squares 64..1024, and shapes from SSL training:
//   512 x 2048 x 128   a SimCLR projection head layer: batch 512, 2048 -> 128
//   256 x 128 x 128    a small MLP layer
//   2048 x 256 x 2048  Barlow Twins' C = zahat^T zbhat (batch 256, D = 2048), A transposed
//   64 x (64x64x64)    a batch of small products (attention-sized), bmm
// The reference runs only up to 256 so the whole binary stays quick.
//
// Before anything is timed, the Eigen result is compared once with the reference on a small,
// awkward size (plain and transposed A); a mismatch skips every benchmark with an error.
//
//   ./build/bench_cpu_gemm --benchmark_min_time=0.05
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cmath>
#include <string>

#include "core/random.h"
#include "core/views.h"
#include "kernels/cpu/linalg.h"

using namespace selfsup;

namespace {

// ------------------------------------------------------------------------------------------
// The one-time correctness check
// ------------------------------------------------------------------------------------------

// Largest |eigen - reference| relative to the largest |reference| value.
double relative_error(const Tensor& got, const Tensor& want) {
  const auto g = got.to_vector<double>(), w = want.to_vector<double>();
  double err = 0, scale = 1e-30;
  for (size_t i = 0; i < g.size(); ++i) {
    err = std::max(err, std::abs(g[i] - w[i]));
    scale = std::max(scale, std::abs(w[i]));
  }
  return err / scale;
}

// Empty when matmul agrees with matmul_reference, else what differed.
std::string check_against_reference() {
  Generator gen(42);
  for (DType dt : {kFloat32, kFloat64}) {
    const int64_t m = 67, k = 45, n = 33;
    const Tensor a = randn({m, k}, dt, &gen), b = randn({k, n}, dt, &gen);
    const Tensor a_t = raw::transpose(randn({k, m}, dt, &gen), 0, 1);
    for (const Tensor& lhs : {a, a_t}) {
      Tensor fast = empty({m, n}, dt), ref = empty({m, n}, dt);
      cpu::matmul(lhs, b, fast);
      cpu::matmul_reference(lhs, b, ref);
      const double err = relative_error(fast, ref);
      if (!(err < (dt == kFloat32 ? 1e-5 : 1e-12)))
        return std::string("matmul differs from the reference (") + dtype_name(dt) +
               ", relative error " + std::to_string(err) + ")";
    }
  }
  return {};
}

const std::string& reference_mismatch() {
  static const std::string result = check_against_reference();
  return result;
}

// ------------------------------------------------------------------------------------------
// Benchmarks
// ------------------------------------------------------------------------------------------

void set_counters(benchmark::State& state, double flops_per_product) {
  // Per-iteration GFLOP, turned into a rate by the iteration count and the elapsed time.
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops_per_product * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = omp_get_max_threads();
}

enum class Path { Eigen, Reference };

// args: M, K, N, and 1 when A is handed over transposed (a [K, M] tensor viewed as [M, K]).
template <typename T, Path path>
void BM_Matmul(benchmark::State& state) {
  if (!reference_mismatch().empty()) {
    state.SkipWithError(reference_mismatch().c_str());
    return;
  }
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  const bool transposed_a = state.range(3) != 0;
  Generator gen(7);
  const DType dt = dtype_of<T>();
  const Tensor a =
      transposed_a ? raw::transpose(randn({k, m}, dt, &gen), 0, 1) : randn({m, k}, dt, &gen);
  const Tensor b = randn({k, n}, dt, &gen);
  Tensor out = empty({m, n}, dt);
  for (auto _ : state) {
    if constexpr (path == Path::Eigen)
      cpu::matmul(a, b, out);
    else
      cpu::matmul_reference(a, b, out);
    benchmark::DoNotOptimize(out.data_ptr<T>());
    benchmark::ClobberMemory();
  }
  set_counters(state, 2.0 * m * n * k);
}

// args: B, M, K, N.
template <typename T, Path path>
void BM_Bmm(benchmark::State& state) {
  if (!reference_mismatch().empty()) {
    state.SkipWithError(reference_mismatch().c_str());
    return;
  }
  const int64_t nb = state.range(0), m = state.range(1), k = state.range(2), n = state.range(3);
  Generator gen(9);
  const DType dt = dtype_of<T>();
  const Tensor a = randn({nb, m, k}, dt, &gen), b = randn({nb, k, n}, dt, &gen);
  Tensor out = empty({nb, m, n}, dt);
  for (auto _ : state) {
    if constexpr (path == Path::Eigen)
      cpu::bmm(a, b, out);
    else
      cpu::bmm_reference(a, b, out);
    benchmark::DoNotOptimize(out.data_ptr<T>());
    benchmark::ClobberMemory();
  }
  set_counters(state, 2.0 * nb * m * n * k);
}

void square_sizes(benchmark::internal::Benchmark* b, int64_t max_size) {
  for (int64_t s = 64; s <= max_size; s *= 2)
    b->Args({s, s, s, 0});
}

void eigen_shapes(benchmark::internal::Benchmark* b) {
  square_sizes(b, 1024);
  b->Args({512, 2048, 128, 0});   // projection head layer
  b->Args({256, 128, 128, 0});    // small MLP layer
  b->Args({512, 512, 512, 1});    // square with A transposed (a backward's x^T g)
  b->Args({2048, 256, 2048, 1});  // Barlow Twins C = zahat^T zbhat
}

void reference_shapes(benchmark::internal::Benchmark* b) {
  square_sizes(b, 256);
  b->Args({256, 128, 128, 0});
}

}  // namespace

BENCHMARK(BM_Matmul<float, Path::Eigen>)
    ->Name("matmul/eigen/f32")
    ->ArgNames({"M", "K", "N", "At"})
    ->Apply(eigen_shapes)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_Matmul<double, Path::Eigen>)
    ->Name("matmul/eigen/f64")
    ->ArgNames({"M", "K", "N", "At"})
    ->Args({256, 256, 256, 0})
    ->Args({512, 512, 512, 0})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_Matmul<float, Path::Reference>)
    ->Name("matmul/reference/f32")
    ->ArgNames({"M", "K", "N", "At"})
    ->Apply(reference_shapes)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_Bmm<float, Path::Eigen>)
    ->Name("bmm/eigen/f32")
    ->ArgNames({"B", "M", "K", "N"})
    ->Args({64, 64, 64, 64})
    ->Args({4, 256, 256, 256})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_Bmm<float, Path::Reference>)
    ->Name("bmm/reference/f32")
    ->ArgNames({"B", "M", "K", "N"})
    ->Args({64, 64, 64, 64})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

BENCHMARK_MAIN();
