// 2-d convolution on the GPU: every version of kernels/cuda/conv.cu for the forward pass, the
// input gradient (bwd_data) and the weight gradient (bwd_weight), in GFLOP/s (2*N*O*C*KH*KW*OH*OW
// per pass) and, in builds with cuDNN, as a fraction of cuDNN on the same shape ("vs_ref", with
// "ref_GFLOP/s").
//
// Shapes (arg "shape"), the layers of the small ResNets selfsup trains:
//   0  x [256, 64, 16, 16]  w [64, 64, 3, 3]    stride 1, pad 1   a residual block's conv
//   1  x [256, 1, 28, 28]   w [64, 1, 3, 3]     stride 1, pad 1   first layer, Fashion-MNIST
//   2  x [256, 3, 32, 32]   w [64, 3, 3, 3]     stride 1, pad 1   first layer, CIFAR
//   3  x [256, 64, 16, 16]  w [128, 64, 3, 3]   stride 2, pad 1   downsampling conv
//   4  x [256, 64, 16, 16]  w [128, 64, 1, 1]   stride 2, pad 0   1x1 projection shortcut
// Before timing, each run compares its result with the reference (cuDNN where built, else the
// direct version 1, which the tests compare with the CPU) at 1e-4 relative to the largest value,
// and skips with an error if they differ.
//
//   ./build/bench_cuda_conv --benchmark_filter='conv/shape:0/pass:0'
#include <benchmark/benchmark.h>

#if SELFSUP_WITH_CUDA

#include <string>

#include "benchmarks/cuda_bench_util.h"
#include "core/random.h"
#include "kernels/cuda/conv.h"

using namespace selfsup;

namespace {

struct ConvBenchShape {
  int64_t N, C, H, W, O, K, stride, pad;
};
const ConvBenchShape kShapes[] = {
    {256, 64, 16, 16, 64, 3, 1, 1},  {256, 1, 28, 28, 64, 3, 1, 1},   {256, 3, 32, 32, 64, 3, 1, 1},
    {256, 64, 16, 16, 128, 3, 2, 1}, {256, 64, 16, 16, 128, 1, 2, 0},
};
constexpr int kShapeCount = sizeof(kShapes) / sizeof(kShapes[0]);

enum Pass { kForward = 0, kBackwardData = 1, kBackwardWeight = 2 };
const char* pass_name(int p) {
  return p == kForward ? "forward" : p == kBackwardData ? "bwd_data" : "bwd_weight";
}

// The operands of one shape on the device and a runner for (pass, version) writing into a
// result tensor of that pass.
struct ConvBench {
  ConvBenchShape sh;
  cuda::Conv2dParams p;
  Tensor x, w, grad_out;

  explicit ConvBench(const ConvBenchShape& s) : sh(s) {
    p.stride_h = p.stride_w = s.stride;
    p.pad_h = p.pad_w = s.pad;
    const int64_t oh = cpu::conv_out_size(s.H, s.K, s.stride, s.pad);
    const int64_t ow = cpu::conv_out_size(s.W, s.K, s.stride, s.pad);
    Generator gen(11);
    x = raw::to_device(randn({s.N, s.C, s.H, s.W}, kFloat32, &gen), Device::cuda());
    w = raw::to_device(randn({s.O, s.C, s.K, s.K}, kFloat32, &gen), Device::cuda());
    grad_out = raw::to_device(randn({s.N, s.O, oh, ow}, kFloat32, &gen), Device::cuda());
  }
  double flops() const {
    return 2.0 * sh.N * sh.O * sh.C * sh.K * sh.K * grad_out.size(2) * grad_out.size(3);
  }
  Tensor result(int pass) const {
    const Shape s = pass == kForward        ? grad_out.shape()
                    : pass == kBackwardData ? x.shape()
                                            : w.shape();
    return empty(s, Device::cuda());
  }
  void run(int pass, int version, Tensor& r) const {
    Tensor none;
    if (pass == kForward)
      cuda::conv2d_forward_version(x, w, none, p, r, version);
    else if (pass == kBackwardData)
      cuda::conv2d_backward_version(grad_out, x, w, p, r, none, none, version);
    else
      cuda::conv2d_backward_version(grad_out, x, w, p, none, r, none, version);
  }
};

void BM_Conv(benchmark::State& state) {
  if (!bench::no_gpu_reason().empty()) {
    state.SkipWithError(bench::no_gpu_reason().c_str());
    return;
  }
  const ConvBench b(kShapes[state.range(0)]);
  const int pass = static_cast<int>(state.range(1)), version = static_cast<int>(state.range(2));
  if (version == cuda::kConvCudnn && !cuda::conv_cudnn_available()) {
    state.SkipWithError("this build has no cuDNN (configure with SELFSUP_CUDNN=ON)");
    return;
  }
  const int reference = cuda::conv_cudnn_available() ? cuda::kConvCudnn : 1;
  Tensor got = b.result(pass), want = b.result(pass);
  b.run(pass, version, got);
  b.run(pass, reference, want);
  const double err = bench::relative_error(got, want);
  if (!(err < 1e-4)) {
    const std::string msg = std::string("result differs from ") +
                            cuda::conv_version_name(reference) + ": relative error " +
                            std::to_string(err);
    state.SkipWithError(msg.c_str());
    return;
  }
  const double seconds = bench::time_on_device(state, [&] { b.run(pass, version, got); });
  state.counters["GFLOP/s"] =
      benchmark::Counter(b.flops() * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  if (cuda::conv_cudnn_available()) {
    const double ref_seconds =
        bench::mean_seconds([&] { b.run(pass, cuda::kConvCudnn, want); }, 10);
    state.counters["ref_GFLOP/s"] = b.flops() * 1e-9 / ref_seconds;
    state.counters["vs_ref"] = seconds > 0 ? ref_seconds / seconds : 0.0;
  }
  state.SetLabel(std::string(pass_name(pass)) + " " + cuda::conv_version_name(version));
}

void shapes(benchmark::internal::Benchmark* bm) {
  for (int s = 0; s < kShapeCount; ++s)
    for (int pass = 0; pass < 3; ++pass)
      for (int v = 0; v < cuda::kConvVersionCount; ++v)
        bm->Args({s, pass, v});
}

}  // namespace

BENCHMARK(BM_Conv)
    ->Name("conv")
    ->ArgNames({"shape", "pass", "v"})
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
