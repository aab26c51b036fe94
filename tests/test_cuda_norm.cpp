// Batch norm, layer norm and dropout on the GPU (kernels/cuda/norm.h): every entry point against
// kernels/cpu/norm on the same random inputs, float32 and float64, on awkward sizes ([N, C] with
// few and many channels, [N, C, H, W] with odd H * W below and above a block, channels long
// enough to split over blocks), with and without the affine parameters and the optional outputs,
// transposed inputs and outputs, training and eval. Every output is poisoned (NaN) before the
// run, so an element the kernel fails to write fails the test. Dropout: the mask is bit-identical
// to the CPU's for the same seed and offset, and both generators advance alike.
// dispatch:: routes to the GPU and rejects mixed devices. Without a GPU the device tests skip;
// the argument checks still run.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/random.h"
#include "core/tensor.h"
#include "core/views.h"
#include "kernels/cpu/norm.h"
#include "kernels/cuda/norm.h"
#include "kernels/dispatch.h"
#include "tests/cuda_test_util.h"
#include "tests/tensor_test_util.h"

using namespace selfsup;
using selfsup::test::error_of;
using selfsup::test::max_abs;
using selfsup::test::poisoned;
using selfsup::test::poisoned_gpu;
using selfsup::test::to_cpu;
using selfsup::test::to_gpu;

namespace {

const DType kFloatTypes[] = {kFloat32, kFloat64};

// Uniform in [lo, hi): by default [-2, 2).
Tensor random_tensor(const Shape& shape, DType dtype, std::mt19937_64& rng, double lo = -2.0,
                     double hi = 2.0) {
  return test::random_tensor(shape, dtype, rng, {.lo = lo, .hi = hi});
}

// got (GPU, copied back) against want (CPU): NaN where want is NaN, else within
// rtol |want| + rtol * max|want| (sums over many values carry absolute, not relative, error).
void expect_close(const Tensor& got, const Tensor& want, double rtol, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const double atol = rtol * (1.0 + max_abs(want));
  const std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  int failures = 0;
  for (size_t i = 0; i < w.size() && failures < 5; ++i) {
    const bool ok =
        std::isnan(w[i]) ? std::isnan(g[i]) : std::abs(g[i] - w[i]) <= atol + rtol * std::abs(w[i]);
    if (!ok) {
      ++failures;
      ADD_FAILURE() << what << ": element " << i << " is " << g[i] << ", expected " << w[i];
    }
  }
}

double rtol_for(DType dt) {
  return dt == kFloat32 ? 1e-5 : 1e-11;
}

std::string describe(const std::string& op, const Shape& shape, DType dt) {
  return op + " " + shape_str(shape) + " " + dtype_name(dt);
}

// [N, C] with few and many channels and rows; [N, C, H, W] with odd H * W (below a warp, below a
// block, above a block); channels long enough to split over many blocks.
const Shape kBatchShapes[] = {{7, 33},      {129, 5},     {2, 1000},      {4099, 3},
                              {3, 7, 5, 5}, {5, 3, 7, 9}, {2, 4, 33, 33}, {16, 3, 65, 65},
                              {2, 6, 1, 1}, {3, 2, 7}};

// Running statistics, positive variances.
Tensor running_var(int64_t c, DType dt, std::mt19937_64& rng) {
  return random_tensor({c}, dt, rng, 0.5, 2.0);
}

}  // namespace

// ============================================================================================
// Batch norm
// ============================================================================================

TEST(CudaBatchNorm, TrainingMatchesTheCpu) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(1);
  for (DType dt : kFloatTypes)
    for (const Shape& shape : kBatchShapes)
      for (bool affine : {true, false}) {
        const int64_t C = shape[1];
        // A channel mean far from 0 checks the one-pass statistics for cancellation.
        const Tensor x = random_tensor(shape, dt, rng, 3.0, 7.0);
        const Tensor w = affine ? random_tensor({C}, dt, rng) : Tensor();
        const Tensor b = affine ? random_tensor({C}, dt, rng) : Tensor();
        Tensor rm = random_tensor({C}, dt, rng), rv = running_var(C, dt, rng);
        Tensor rm_g = to_gpu(rm), rv_g = to_gpu(rv);
        Tensor out = poisoned(shape, dt), sm = poisoned({C}, dt), si = poisoned({C}, dt);
        cpu::batch_norm(x, w, b, rm, rv, true, 0.1, 1e-5, out, sm, si);
        Tensor out_g = poisoned_gpu(shape, dt), sm_g = poisoned_gpu({C}, dt),
               si_g = poisoned_gpu({C}, dt);
        cuda::batch_norm(to_gpu(x), to_gpu(w), to_gpu(b), rm_g, rv_g, true, 0.1, 1e-5, out_g, sm_g,
                         si_g);
        const std::string what = describe(affine ? "batch_norm affine" : "batch_norm", shape, dt);
        const double rtol = rtol_for(dt);
        expect_close(to_cpu(out_g), out, rtol, what + " out");
        expect_close(to_cpu(sm_g), sm, rtol, what + " save_mean");
        expect_close(to_cpu(si_g), si, rtol, what + " save_invstd");
        expect_close(to_cpu(rm_g), rm, rtol, what + " running_mean");
        expect_close(to_cpu(rv_g), rv, rtol, what + " running_var");
      }
}

TEST(CudaBatchNorm, EvalAndOptionalOutputsMatchTheCpu) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(2);
  for (DType dt : kFloatTypes)
    for (const Shape& shape : kBatchShapes) {
      const int64_t C = shape[1];
      const Tensor x = random_tensor(shape, dt, rng);
      const Tensor w = random_tensor({C}, dt, rng), b = random_tensor({C}, dt, rng);
      Tensor rm = random_tensor({C}, dt, rng), rv = running_var(C, dt, rng);
      Tensor rm_g = to_gpu(rm), rv_g = to_gpu(rv);
      Tensor out = poisoned(shape, dt), sm = poisoned({C}, dt), si = poisoned({C}, dt);
      cpu::batch_norm(x, w, b, rm, rv, false, 0.1, 1e-3, out, sm, si);
      Tensor out_g = poisoned_gpu(shape, dt), sm_g = poisoned_gpu({C}, dt),
             si_g = poisoned_gpu({C}, dt);
      cuda::batch_norm(to_gpu(x), to_gpu(w), to_gpu(b), rm_g, rv_g, false, 0.1, 1e-3, out_g, sm_g,
                       si_g);
      const std::string what = describe("batch_norm eval", shape, dt);
      expect_close(to_cpu(out_g), out, rtol_for(dt), what + " out");
      expect_close(to_cpu(sm_g), sm, rtol_for(dt), what + " save_mean");
      expect_close(to_cpu(si_g), si, rtol_for(dt), what + " save_invstd");
      expect_close(to_cpu(rm_g), rm, 0, what + " running_mean untouched");

      // Training without running statistics or saved outputs.
      Tensor none, out2 = poisoned(shape, dt), out2_g = poisoned_gpu(shape, dt);
      cpu::batch_norm(x, Tensor(), Tensor(), none, none, true, 0.1, 1e-5, out2, none, none);
      cuda::batch_norm(to_gpu(x), Tensor(), Tensor(), none, none, true, 0.1, 1e-5, out2_g, none,
                       none);
      expect_close(to_cpu(out2_g), out2, rtol_for(dt), what + " training, no running stats");
    }
}

TEST(CudaBatchNorm, NonContiguousInputsAndOutputs) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(3);
  for (DType dt : kFloatTypes) {
    // x [4, 3, 5, 7] as a permuted view of a [4, 5, 7, 3] (channels-last) tensor.
    const Tensor base = random_tensor({4, 5, 7, 3}, dt, rng);
    const Tensor x = raw::permute(base, {0, 3, 1, 2});
    const Tensor xg = raw::permute(to_gpu(base), {0, 3, 1, 2});
    const Tensor w = random_tensor({3}, dt, rng), b = random_tensor({3}, dt, rng);
    Tensor rm = random_tensor({3}, dt, rng), rv = running_var(3, dt, rng);
    Tensor rm_g = to_gpu(rm), rv_g = to_gpu(rv);
    Tensor out = poisoned(x.shape(), dt), sm = poisoned({3}, dt), si = poisoned({3}, dt);
    cpu::batch_norm(x, w, b, rm, rv, true, 0.2, 1e-5, out, sm, si);
    Tensor out_buffer = poisoned_gpu({4, 5, 7, 3}, dt);
    Tensor out_g = raw::permute(out_buffer, {0, 3, 1, 2});
    // Saved statistics as strided [3] views of a [6] buffer.
    Tensor sm_buffer = poisoned_gpu({6}, dt), si_buffer = poisoned_gpu({6}, dt);
    Tensor sm_g = raw::slice(sm_buffer, 0, 0, 6, 2), si_g = raw::slice(si_buffer, 0, 0, 6, 2);
    cuda::batch_norm(xg, to_gpu(w), to_gpu(b), rm_g, rv_g, true, 0.2, 1e-5, out_g, sm_g, si_g);
    const std::string what = describe("batch_norm permuted", x.shape(), dt);
    expect_close(raw::permute(to_cpu(out_buffer), {0, 3, 1, 2}), out, rtol_for(dt), what);
    expect_close(raw::slice(to_cpu(sm_buffer), 0, 0, 6, 2), sm, rtol_for(dt), what + " save_mean");
    expect_close(raw::slice(to_cpu(si_buffer), 0, 0, 6, 2), si, rtol_for(dt),
                 what + " save_invstd");

    // The backward on the same views.
    const Tensor gbase = random_tensor({4, 5, 7, 3}, dt, rng);
    const Tensor g = raw::permute(gbase, {0, 3, 1, 2});
    Tensor dx = poisoned(x.shape(), dt), dw = poisoned({3}, dt), db = poisoned({3}, dt);
    cpu::batch_norm_backward(g, x, w, sm, si, dx, dw, db);
    Tensor dx_buffer = poisoned_gpu({4, 5, 7, 3}, dt);
    Tensor dx_g = raw::permute(dx_buffer, {0, 3, 1, 2});
    Tensor dw_g = poisoned_gpu({3}, dt), db_g = poisoned_gpu({3}, dt);
    cuda::batch_norm_backward(raw::permute(to_gpu(gbase), {0, 3, 1, 2}), xg, to_gpu(w), sm_g, si_g,
                              dx_g, dw_g, db_g);
    expect_close(raw::permute(to_cpu(dx_buffer), {0, 3, 1, 2}), dx, rtol_for(dt), what + " dx");
    expect_close(to_cpu(dw_g), dw, rtol_for(dt), what + " dw");
    expect_close(to_cpu(db_g), db, rtol_for(dt), what + " db");
  }
}

TEST(CudaBatchNorm, BackwardMatchesTheCpu) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(4);
  for (DType dt : kFloatTypes)
    for (const Shape& shape : kBatchShapes)
      for (int outputs = 0; outputs < 3; ++outputs) {  // all; dx only; dw and db only
        const int64_t C = shape[1];
        const Tensor x = random_tensor(shape, dt, rng), g = random_tensor(shape, dt, rng);
        const Tensor w = outputs == 1 ? Tensor() : random_tensor({C}, dt, rng);
        Tensor none, sm = poisoned({C}, dt), si = poisoned({C}, dt), out = poisoned(shape, dt);
        cpu::batch_norm(x, w, Tensor(), none, none, true, 0.1, 1e-5, out, sm, si);
        const bool want_dx = outputs != 2, want_wb = outputs != 1;
        Tensor dx = want_dx ? poisoned(shape, dt) : Tensor();
        Tensor dw = want_wb ? poisoned({C}, dt) : Tensor();
        Tensor db = want_wb ? poisoned({C}, dt) : Tensor();
        cpu::batch_norm_backward(g, x, w, sm, si, dx, dw, db);
        Tensor dx_g = want_dx ? poisoned_gpu(shape, dt) : Tensor();
        Tensor dw_g = want_wb ? poisoned_gpu({C}, dt) : Tensor();
        Tensor db_g = want_wb ? poisoned_gpu({C}, dt) : Tensor();
        cuda::batch_norm_backward(to_gpu(g), to_gpu(x), to_gpu(w), to_gpu(sm), to_gpu(si), dx_g,
                                  dw_g, db_g);
        const std::string what = describe("batch_norm_backward", shape, dt);
        if (want_dx) expect_close(to_cpu(dx_g), dx, rtol_for(dt), what + " dx");
        if (want_wb) {
          expect_close(to_cpu(dw_g), dw, rtol_for(dt), what + " dw");
          expect_close(to_cpu(db_g), db, rtol_for(dt), what + " db");
        }

        Tensor dx_eval = poisoned(shape, dt), dx_eval_g = poisoned_gpu(shape, dt);
        cpu::batch_norm_eval_backward(g, w, si, dx_eval);
        cuda::batch_norm_eval_backward(to_gpu(g), to_gpu(w), to_gpu(si), dx_eval_g);
        expect_close(to_cpu(dx_eval_g), dx_eval, rtol_for(dt), what + " eval dx");
      }
}

// ============================================================================================
// Layer norm
// ============================================================================================

namespace {

struct LayerNormCase {
  Shape shape;
  int64_t normalized_ndim;
};

// Rows of 1, 7, 33, 129, 1000 and 2500 values (a warp per row up to 1024, then a block), many
// rows of few values (dw, db split over blocks), two and three normalised dims.
const LayerNormCase kLayerNormCases[] = {
    {{5, 1}, 1},       {{9, 7}, 1},    {{7, 33}, 1},      {{5, 129}, 1},
    {{3, 1000}, 1},    {{2, 2500}, 1}, {{4000, 9}, 1},    {{4, 3, 5, 7}, 2},
    {{2, 3, 5, 7}, 3}, {{33}, 1},      {{3, 2, 1100}, 1},
};

}  // namespace

TEST(CudaLayerNorm, ForwardAndBackwardMatchTheCpu) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(5);
  for (DType dt : kFloatTypes)
    for (const LayerNormCase& c : kLayerNormCases)
      for (bool affine : {true, false}) {
        const int64_t nd = static_cast<int64_t>(c.shape.size());
        const Shape row_shape(c.shape.end() - c.normalized_ndim, c.shape.end());
        const Shape stat_shape(c.shape.begin(), c.shape.end() - c.normalized_ndim);
        const Tensor x = random_tensor(c.shape, dt, rng, 1.0, 4.0);
        const Tensor w = affine ? random_tensor(row_shape, dt, rng) : Tensor();
        const Tensor b = affine ? random_tensor(row_shape, dt, rng) : Tensor();
        Tensor out = poisoned(c.shape, dt), mean = poisoned(stat_shape, dt),
               rstd = poisoned(stat_shape, dt);
        cpu::layer_norm(x, c.normalized_ndim, w, b, 1e-5, out, mean, rstd);
        Tensor out_g = poisoned_gpu(c.shape, dt), mean_g = poisoned_gpu(stat_shape, dt),
               rstd_g = poisoned_gpu(stat_shape, dt);
        cuda::layer_norm(to_gpu(x), c.normalized_ndim, to_gpu(w), to_gpu(b), 1e-5, out_g, mean_g,
                         rstd_g);
        const std::string what = describe("layer_norm", c.shape, dt) + " over " +
                                 std::to_string(c.normalized_ndim) + " of " + std::to_string(nd) +
                                 " dims" + (affine ? " affine" : "");
        expect_close(to_cpu(out_g), out, rtol_for(dt), what + " out");
        expect_close(to_cpu(mean_g), mean, rtol_for(dt), what + " mean");
        expect_close(to_cpu(rstd_g), rstd, rtol_for(dt), what + " rstd");

        // Without the optional mean / rstd outputs.
        Tensor none, out2_g = poisoned_gpu(c.shape, dt);
        cuda::layer_norm(to_gpu(x), c.normalized_ndim, to_gpu(w), to_gpu(b), 1e-5, out2_g, none,
                         none);
        expect_close(to_cpu(out2_g), out, rtol_for(dt), what + " out, no stats");

        const Tensor g = random_tensor(c.shape, dt, rng);
        Tensor dx = poisoned(c.shape, dt);
        Tensor dw = affine ? poisoned(row_shape, dt) : Tensor();
        Tensor db = affine ? poisoned(row_shape, dt) : Tensor();
        cpu::layer_norm_backward(g, x, c.normalized_ndim, w, mean, rstd, dx, dw, db);
        Tensor dx_g = poisoned_gpu(c.shape, dt);
        Tensor dw_g = affine ? poisoned_gpu(row_shape, dt) : Tensor();
        Tensor db_g = affine ? poisoned_gpu(row_shape, dt) : Tensor();
        cuda::layer_norm_backward(to_gpu(g), to_gpu(x), c.normalized_ndim, to_gpu(w), to_gpu(mean),
                                  to_gpu(rstd), dx_g, dw_g, db_g);
        expect_close(to_cpu(dx_g), dx, rtol_for(dt), what + " dx");
        if (affine) {
          expect_close(to_cpu(dw_g), dw, rtol_for(dt), what + " dw");
          expect_close(to_cpu(db_g), db, rtol_for(dt), what + " db");
        }
      }
}

TEST(CudaLayerNorm, WeightGradientsAloneAndTransposedInput) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(6);
  for (DType dt : kFloatTypes) {
    const Tensor base = random_tensor({37, 129}, dt, rng);
    const Tensor x = raw::transpose(base, 0, 1);  // [129, 37], non-contiguous
    const Tensor w = random_tensor({37}, dt, rng), b = random_tensor({37}, dt, rng);
    Tensor out = poisoned({129, 37}, dt), mean = poisoned({129}, dt), rstd = poisoned({129}, dt);
    cpu::layer_norm(x, 1, w, b, 1e-5, out, mean, rstd);
    Tensor out_buffer = poisoned_gpu({37, 129}, dt);
    Tensor out_g = raw::transpose(out_buffer, 0, 1);
    Tensor mean_g = poisoned_gpu({129}, dt), rstd_g = poisoned_gpu({129}, dt);
    const Tensor xg = raw::transpose(to_gpu(base), 0, 1);
    cuda::layer_norm(xg, 1, to_gpu(w), to_gpu(b), 1e-5, out_g, mean_g, rstd_g);
    expect_close(raw::transpose(to_cpu(out_buffer), 0, 1), out, rtol_for(dt),
                 describe("layer_norm transposed", x.shape(), dt));

    const Tensor g = random_tensor({129, 37}, dt, rng);
    Tensor none, dw = poisoned({37}, dt), db = poisoned({37}, dt);
    cpu::layer_norm_backward(g, x, 1, w, mean, rstd, none, dw, db);
    Tensor dw_g = poisoned_gpu({37}, dt), db_g = poisoned_gpu({37}, dt);
    cuda::layer_norm_backward(to_gpu(g), xg, 1, to_gpu(w), mean_g, rstd_g, none, dw_g, db_g);
    expect_close(to_cpu(dw_g), dw, rtol_for(dt), describe("layer_norm_backward dw", x.shape(), dt));
    expect_close(to_cpu(db_g), db, rtol_for(dt), describe("layer_norm_backward db", x.shape(), dt));
  }
}

// ============================================================================================
// Dropout
// ============================================================================================

TEST(CudaDropout, MaskIsBitIdenticalToTheCpuAndTheGeneratorsAdvanceAlike) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(7);
  for (DType dt : kFloatTypes)
    for (const Shape& shape : {Shape{1}, Shape{7}, Shape{33, 129}, Shape{1000003}})
      for (double p : {0.0, 0.3, 0.5, 1.0}) {
        const Tensor x = random_tensor(shape, dt, rng);
        Generator gen_cpu(1234), gen_gpu(1234);
        gen_cpu.set_offset(77);
        gen_gpu.set_offset(77);
        const std::string what = describe("dropout p=" + std::to_string(p), shape, dt);
        for (int round = 0; round < 2; ++round) {  // the second draw starts where the first ended
          Tensor out = poisoned(shape, dt), mask = full(shape, 9, kUInt8);
          cpu::dropout(x, p, gen_cpu, out, mask);
          Tensor out_g = poisoned_gpu(shape, dt), mask_g = to_gpu(full(shape, 9, kUInt8));
          cuda::dropout(to_gpu(x), p, gen_gpu, out_g, mask_g);
          EXPECT_EQ(gen_gpu.offset(), gen_cpu.offset()) << what;
          EXPECT_EQ(to_cpu(mask_g).to_vector<uint8_t>(), mask.to_vector<uint8_t>()) << what;
          expect_close(to_cpu(out_g), out, 0, what + " out");

          const Tensor g = random_tensor(shape, dt, rng);
          Tensor dx = poisoned(shape, dt), dx_g = poisoned_gpu(shape, dt);
          cpu::dropout_backward(g, mask, p, dx);
          cuda::dropout_backward(to_gpu(g), mask_g, p, dx_g);
          expect_close(to_cpu(dx_g), dx, 0, what + " backward");
        }
      }
}

TEST(CudaDropout, StridedOutputsAndMask) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(8);
  for (DType dt : kFloatTypes) {
    const Tensor base = random_tensor({17, 40}, dt, rng);
    const Tensor x = raw::transpose(base, 0, 1);  // [40, 17]
    Generator gen_cpu(99), gen_gpu(99);
    Tensor out = poisoned({40, 17}, dt), mask = full({40, 17}, 9, kUInt8);
    cpu::dropout(x, 0.4, gen_cpu, out, mask);
    Tensor out_buffer = poisoned_gpu({17, 40}, dt);
    Tensor mask_buffer = to_gpu(full({17, 40}, 9, kUInt8));
    Tensor out_g = raw::transpose(out_buffer, 0, 1), mask_g = raw::transpose(mask_buffer, 0, 1);
    cuda::dropout(raw::transpose(to_gpu(base), 0, 1), 0.4, gen_gpu, out_g, mask_g);
    EXPECT_EQ(gen_gpu.offset(), gen_cpu.offset());
    EXPECT_EQ(raw::transpose(to_cpu(mask_buffer), 0, 1).to_vector<uint8_t>(),
              mask.to_vector<uint8_t>());
    expect_close(raw::transpose(to_cpu(out_buffer), 0, 1), out, 0, "strided dropout");

    // The backward reads the strided mask.
    const Tensor g = random_tensor({40, 17}, dt, rng);
    Tensor dx = poisoned({40, 17}, dt), dx_g = poisoned_gpu({40, 17}, dt);
    cpu::dropout_backward(g, mask, 0.4, dx);
    cuda::dropout_backward(to_gpu(g), mask_g, 0.4, dx_g);
    expect_close(to_cpu(dx_g), dx, 0, "strided dropout backward");
  }
}

// ============================================================================================
// Dispatch and argument checks
// ============================================================================================

TEST(CudaNorm, DispatchRunsOnTheGpuAndRejectsMixedDevices) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(9);
  const Tensor x = random_tensor({6, 4, 3}, kFloat32, rng);
  Tensor none, out = poisoned(x.shape(), kFloat32);
  cpu::layer_norm(x, 1, Tensor(), Tensor(), 1e-5, out, none, none);
  const Tensor xg = to_gpu(x);
  Tensor out_g = poisoned_gpu(x.shape(), kFloat32);
  dispatch::layer_norm(xg, 1, Tensor(), Tensor(), 1e-5, out_g, none, none);
  expect_close(to_cpu(out_g), out, 1e-5, "dispatch::layer_norm");

  Tensor cpu_out = poisoned(x.shape(), kFloat32);
  EXPECT_NE(error_of([&] {
              dispatch::batch_norm(xg, Tensor(), Tensor(), none, none, true, 0.1, 1e-5, cpu_out,
                                   none, none);
            }).find("batch_norm: tensors on"),
            std::string::npos);
  const Tensor w_cpu = ones({4});
  Tensor out2 = poisoned_gpu(x.shape(), kFloat32);
  EXPECT_NE(error_of([&] {
              dispatch::batch_norm(xg, w_cpu, Tensor(), none, none, true, 0.1, 1e-5, out2, none,
                                   none);
            }).find("batch_norm: tensors on"),
            std::string::npos);
  Generator gen(1);
  Tensor mask_cpu = zeros(x.shape(), kUInt8);
  EXPECT_NE(error_of([&] {
              dispatch::dropout(xg, 0.5, gen, out2, mask_cpu);
            }).find("dropout: tensors on"),
            std::string::npos);
  EXPECT_EQ(gen.offset(), 0u);  // rejected before any draw
}

// No GPU needed: these checks fire before any launch (or in a CPU-only build, the stub says
// there is no backend). Either way the error names the op.
TEST(CudaNormHost, BadArgumentsAreErrorsNamingTheOp) {
  const Tensor x = zeros({4, 3});
  Tensor none, out = zeros({4, 3}), mask = zeros({4, 3}, kUInt8);
  EXPECT_EQ(error_of([&] {
              cuda::batch_norm(x, Tensor(), Tensor(), none, none, true, 0.1, 1e-5, out, none, none);
            }).rfind("batch_norm:", 0),
            0u);
  EXPECT_EQ(error_of([&] {
              cuda::layer_norm(x, 1, Tensor(), Tensor(), 1e-5, out, none, none);
            }).rfind("layer_norm:", 0),
            0u);
  Generator gen(1);
  EXPECT_EQ(error_of([&] { cuda::dropout(x, 0.5, gen, out, mask); }).rfind("dropout:", 0), 0u);
  EXPECT_EQ(
      error_of([&] { cuda::dropout_backward(x, mask, 0.5, out); }).rfind("dropout_backward:", 0),
      0u);
}

TEST(CudaNormHost, DispatchOnCpuTensorsIsTheCpuKernel) {
  std::mt19937_64 rng(10);
  for (DType dt : kFloatTypes) {
    const Tensor x = random_tensor({5, 3, 7}, dt, rng);
    Tensor none, want = poisoned(x.shape(), dt), got = poisoned(x.shape(), dt);
    cpu::batch_norm(x, Tensor(), Tensor(), none, none, true, 0.1, 1e-5, want, none, none);
    dispatch::batch_norm(x, Tensor(), Tensor(), none, none, true, 0.1, 1e-5, got, none, none);
    expect_close(got, want, 0, "dispatch::batch_norm on the CPU");
    Generator g1(5), g2(5);
    Tensor m1 = zeros(x.shape(), kUInt8), m2 = zeros(x.shape(), kUInt8);
    cpu::dropout(x, 0.5, g1, want, m1);
    dispatch::dropout(x, 0.5, g2, got, m2);
    EXPECT_EQ(m1.to_vector<uint8_t>(), m2.to_vector<uint8_t>());
    EXPECT_EQ(g1.offset(), g2.offset());
  }
}
