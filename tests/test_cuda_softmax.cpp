// Softmax, log-softmax and cross-entropy on the GPU (kernels/cuda/softmax.h): every entry point
// against kernels/cpu/softmax on the same random inputs, float32 and float64, on awkward sizes
// (rows of 1, 7, 33, 129, 1000, 2500 elements; rows along the first, a middle and the last dim,
// so every kernel runs: a warp per row, a block per row, columns), transposed inputs and
// outputs, in place, -inf and NaN entries. Every output is poisoned (NaN) before the run, so an
// element the kernel fails to write fails the test. Cross-entropy: class-index targets (both the
// signature-kernel path and the general one) and soft targets, with and without the gradient,
// and the out-of-range target error. dispatch:: routes to the GPU and rejects mixed devices.
// Without a GPU the device tests skip; the argument checks still run.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "core/views.h"
#include "kernels/cpu/softmax.h"
#include "kernels/cuda/softmax.h"
#include "kernels/dispatch.h"
#include "tests/cuda_test_util.h"
#include "tests/tensor_test_util.h"

using namespace selfsup;
using namespace selfsup::test;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
const DType kFloatTypes[] = {kFloat32, kFloat64};

double rtol_for(DType dt) {
  return dt == kFloat32 ? 2e-5 : 1e-12;
}

std::string describe(const std::string& op, const Shape& shape, int64_t dim, DType dt) {
  return op + " " + shape_str(shape) + " dim " + std::to_string(dim) + " " + dtype_name(dt);
}

// ---- the four row-wise ops on one input: GPU vs CPU ----

using RowFn = std::function<void(const Tensor&, const Tensor*, int64_t, Tensor&)>;
struct RowOp {
  const char* name;
  RowFn cpu, gpu;
  bool backward;
};

std::vector<RowOp> row_ops() {
  return {
      {"softmax",
       [](const Tensor& a, const Tensor*, int64_t d, Tensor& o) { cpu::softmax(a, d, o); },
       [](const Tensor& a, const Tensor*, int64_t d, Tensor& o) { cuda::softmax(a, d, o); }, false},
      {"log_softmax",
       [](const Tensor& a, const Tensor*, int64_t d, Tensor& o) { cpu::log_softmax(a, d, o); },
       [](const Tensor& a, const Tensor*, int64_t d, Tensor& o) { cuda::log_softmax(a, d, o); },
       false},
      {"softmax_backward",
       [](const Tensor& a, const Tensor* b, int64_t d, Tensor& o) {
         cpu::softmax_backward(a, *b, d, o);
       },
       [](const Tensor& a, const Tensor* b, int64_t d, Tensor& o) {
         cuda::softmax_backward(a, *b, d, o);
       },
       true},
      {"log_softmax_backward",
       [](const Tensor& a, const Tensor* b, int64_t d, Tensor& o) {
         cpu::log_softmax_backward(a, *b, d, o);
       },
       [](const Tensor& a, const Tensor* b, int64_t d, Tensor& o) {
         cuda::log_softmax_backward(a, *b, d, o);
       },
       true},
  };
}

// Runs op on the CPU tensors (x, and for the backwards y = softmax / log_softmax of another
// random tensor) and on their GPU copies, and compares. view() makes the inputs' layout (the
// same on both sides); out_view the GPU output's.
void check_row_op(const RowOp& op, const Tensor& x, int64_t dim, std::mt19937_64& rng,
                  const std::string& what) {
  const DType dt = x.dtype();
  Tensor y;
  if (op.backward) {
    y = full(x.shape(), kNaN, dt);
    const Tensor z = random_tensor(x.shape(), dt, rng);
    if (std::string(op.name) == "softmax_backward")
      cpu::softmax(z, dim, y);
    else
      cpu::log_softmax(z, dim, y);
  }
  Tensor want = full(x.shape(), kNaN, dt);
  op.cpu(x, op.backward ? &y : nullptr, dim, want);
  const Tensor xg = to_gpu(x), yg = op.backward ? to_gpu(y) : Tensor();
  Tensor got = poisoned_gpu(x.shape(), dt);
  op.gpu(xg, op.backward ? &yg : nullptr, dim, got);
  expect_close(to_cpu(got), want, rtol_for(dt), rtol_for(dt) * (1 + max_abs(want)), what);
}

const Shape kShapes[] = {
    {1},          {7},         {33},      {129},      {1000},       {2500},
    {5, 7},       {13, 129},   {4, 1031}, {3, 2500},  {5, 129, 3},  {7, 1, 9},
    {3, 1500, 2}, {2, 33, 17}, {1, 1},    {37, 2, 1}, {2, 3, 4, 5},
};

// ---- cross-entropy helpers ----

Tensor random_targets(int64_t n, int64_t c, std::mt19937_64& rng) {
  std::uniform_int_distribution<int64_t> u(0, c - 1);
  std::vector<int64_t> t(n);
  for (int64_t& v : t)
    v = u(rng);
  return from_vector<int64_t>(t, {n});
}

// Rows of probabilities (softmax of random logits), scaled by a per-row mass in [0.5, 1.5].
Tensor soft_targets(int64_t n, int64_t c, DType dt, std::mt19937_64& rng) {
  Tensor p = full({n, c}, kNaN, dt);
  cpu::softmax(random_tensor({n, c}, dt, rng, {.lo = -2.0, .hi = 2.0}), 1, p);
  std::uniform_real_distribution<double> mass(0.5, 1.5);
  std::vector<double> v = p.to_vector<double>();
  for (int64_t i = 0; i < n; ++i) {
    const double m = mass(rng);
    for (int64_t j = 0; j < c; ++j)
      v[i * c + j] *= m;
  }
  return raw::to_dtype(from_vector<double>(v, {n, c}), dt);
}

}  // namespace

// ============================================================================================
// Softmax family
// ============================================================================================

TEST(CudaSoftmax, EveryOpMatchesTheCpuAlongEveryDim) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(1);
  for (DType dt : kFloatTypes)
    for (const Shape& shape : kShapes)
      for (int64_t dim = 0; dim < static_cast<int64_t>(shape.size()); ++dim)
        for (const RowOp& op : row_ops()) {
          const Tensor x = random_tensor(shape, dt, rng);
          check_row_op(op, x, dim, rng, describe(op.name, shape, dim, dt));
        }
}

TEST(CudaSoftmax, NegativeDimAndZeroDimTensors) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(2);
  for (DType dt : kFloatTypes)
    for (const RowOp& op : row_ops()) {
      check_row_op(op, random_tensor({6, 11}, dt, rng), -1, rng,
                   describe(op.name, {6, 11}, -1, dt));
      check_row_op(op, random_tensor({6, 11, 4}, dt, rng), -2, rng,
                   describe(op.name, {6, 11, 4}, -2, dt));
      check_row_op(op, random_tensor({}, dt, rng), 0, rng, describe(op.name, {}, 0, dt));
    }
}

TEST(CudaSoftmax, LargeValuesInfinitiesAndNaNs) {
  SELFSUP_REQUIRE_GPU();
  for (DType dt : kFloatTypes) {
    // Row 0: large values (stability); row 1: some -inf; row 2: all -inf (NaN on the CPU);
    // row 3: a NaN (poisons the row).
    std::vector<double> v = {80.0,  -70.0, 85.0,  10.0,  -kInf, 1.0,  -kInf, 2.0,
                             -kInf, -kInf, -kInf, -kInf, 0.5,   kNaN, 1.5,   -1.0};
    const Tensor x = raw::to_dtype(from_vector<double>(v, {4, 4}), dt);
    std::mt19937_64 rng(3);
    for (int i = 0; i < 2; ++i) {  // softmax, log_softmax
      const RowOp op = row_ops()[i];
      check_row_op(op, x, 1, rng, describe(op.name, {4, 4}, 1, dt));
      check_row_op(op, raw::transpose(x, 0, 1), 0, rng, describe(op.name, {4, 4}, 0, dt));
    }
  }
}

TEST(CudaSoftmax, TransposedInputsAndOutputs) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(4);
  for (DType dt : kFloatTypes)
    for (int64_t dim : {0, 1}) {
      const Tensor base = random_tensor({33, 17}, dt, rng),
                   y_base = random_tensor({33, 17}, dt, rng);
      const Tensor x = raw::transpose(base, 0, 1);  // [17, 33] non-contiguous
      Tensor y = full({17, 33}, kNaN, dt);
      cpu::softmax(raw::transpose(y_base, 0, 1), dim, y);
      Tensor want = full({17, 33}, kNaN, dt);
      cpu::softmax_backward(x, y, dim, want);
      // GPU: the same views of device copies, into a transposed view of a poisoned buffer.
      const Tensor xg = raw::transpose(to_gpu(base), 0, 1);
      const Tensor yg = raw::transpose(to_gpu(raw::transpose(y, 0, 1)), 0, 1);
      Tensor buffer = poisoned_gpu({33, 17}, dt);
      Tensor got = raw::transpose(buffer, 0, 1);
      cuda::softmax_backward(xg, yg, dim, got);
      const std::string what = describe("transposed softmax_backward", {17, 33}, dim, dt);
      expect_close(raw::transpose(to_cpu(buffer), 0, 1), want, rtol_for(dt), rtol_for(dt), what);

      Tensor want_f = full({17, 33}, kNaN, dt);
      cpu::log_softmax(x, dim, want_f);
      Tensor buffer_f = poisoned_gpu({33, 17}, dt);
      Tensor got_f = raw::transpose(buffer_f, 0, 1);
      cuda::log_softmax(xg, dim, got_f);
      expect_close(raw::transpose(to_cpu(buffer_f), 0, 1), want_f, rtol_for(dt), rtol_for(dt),
                   describe("transposed log_softmax", {17, 33}, dim, dt));
    }
}

TEST(CudaSoftmax, InPlace) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(5);
  for (DType dt : kFloatTypes)
    for (int64_t dim : {0, 1}) {
      const Tensor x = random_tensor({9, 1100}, dt, rng);
      Tensor want = full(x.shape(), kNaN, dt);
      cpu::softmax(x, dim, want);
      Tensor xg = to_gpu(x);
      cuda::softmax(xg, dim, xg);
      expect_close(to_cpu(xg), want, rtol_for(dt), rtol_for(dt),
                   describe("in-place softmax", x.shape(), dim, dt));
    }
}

// ============================================================================================
// Cross-entropy
// ============================================================================================

namespace {

const Shape kLogitShapes[] = {{1, 1}, {7, 33}, {129, 7}, {33, 1000}, {5, 2500}, {1001, 3}};

// Compares the loss (0-d or a one-element [1] tensor) and, when with_grad, the gradient.
void check_cross_entropy(const Tensor& logits, const Tensor& targets, bool soft, bool with_grad,
                         bool loss_1d, const std::string& what) {
  const DType dt = logits.dtype();
  const Shape loss_shape = loss_1d ? Shape{1} : Shape{};
  Tensor want_loss = full(loss_shape, kNaN, dt), want_grad;
  Tensor got_loss = poisoned_gpu(loss_shape, dt), got_grad;
  if (with_grad) {
    want_grad = full(logits.shape(), kNaN, dt);
    got_grad = poisoned_gpu(logits.shape(), dt);
  }
  const Tensor lg = to_gpu(logits), tg = to_gpu(targets);
  if (soft) {
    cpu::cross_entropy_soft(logits, targets, want_loss, want_grad);
    cuda::cross_entropy_soft(lg, tg, got_loss, got_grad);
  } else {
    cpu::cross_entropy(logits, targets, want_loss, want_grad);
    cuda::cross_entropy(lg, tg, got_loss, got_grad);
  }
  // float32 class-index losses may run the signature kernel, which sums in float.
  const double rtol = dt == kFloat32 ? 1e-5 : 1e-12;
  expect_close(to_cpu(got_loss), want_loss, rtol, rtol, what + " loss");
  if (with_grad)
    expect_close(to_cpu(got_grad), want_grad, rtol, rtol * max_abs(want_grad), what + " grad");
}

}  // namespace

TEST(CudaCrossEntropy, ClassTargetsMatchTheCpu) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(6);
  for (DType dt : kFloatTypes)
    for (const Shape& shape : kLogitShapes)
      for (bool with_grad : {true, false})
        for (bool loss_1d : {false, true}) {
          const Tensor x = random_tensor(shape, dt, rng, {.lo = -5.0, .hi = 5.0});
          const Tensor t = random_targets(shape[0], shape[1], rng);
          check_cross_entropy(x, t, false, with_grad, loss_1d,
                              describe("cross_entropy", shape, 1, dt) +
                                  (with_grad ? " +grad" : "") + (loss_1d ? " loss[1]" : ""));
        }
}

TEST(CudaCrossEntropy, TransposedLogitsTakeTheGeneralPath) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(7);
  for (DType dt : kFloatTypes) {
    const Tensor base = random_tensor({40, 13}, dt, rng);
    const Tensor x = raw::transpose(base, 0, 1);  // [13, 40]
    const Tensor t = random_targets(13, 40, rng);
    Tensor want_loss = full({}, kNaN, dt), want_grad = full({13, 40}, kNaN, dt);
    cpu::cross_entropy(x, t, want_loss, want_grad);
    Tensor got_loss = poisoned_gpu({}, dt);
    Tensor grad_buffer = poisoned_gpu({40, 13}, dt);
    Tensor got_grad = raw::transpose(grad_buffer, 0, 1);
    cuda::cross_entropy(raw::transpose(to_gpu(base), 0, 1), to_gpu(t), got_loss, got_grad);
    expect_close(to_cpu(got_loss), want_loss, rtol_for(dt), rtol_for(dt), "transposed loss");
    expect_close(raw::transpose(to_cpu(grad_buffer), 0, 1), want_grad, rtol_for(dt), rtol_for(dt),
                 "transposed grad");
  }
}

TEST(CudaCrossEntropy, SoftTargetsMatchTheCpu) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(8);
  for (DType dt : kFloatTypes)
    for (const Shape& shape : kLogitShapes)
      for (bool with_grad : {true, false}) {
        const Tensor x = random_tensor(shape, dt, rng, {.lo = -5.0, .hi = 5.0});
        const Tensor p = soft_targets(shape[0], shape[1], dt, rng);
        check_cross_entropy(
            x, p, true, with_grad, false,
            describe("cross_entropy_soft", shape, 1, dt) + (with_grad ? " +grad" : ""));
      }
}

TEST(CudaCrossEntropy, OutOfRangeTargetIsTheCpuError) {
  SELFSUP_REQUIRE_GPU();
  for (DType dt : kFloatTypes)
    for (int64_t bad : {int64_t{7}, int64_t{-1}, int64_t{1000}}) {
      const Tensor x = zeros({5, 7}, dt);
      const Tensor t = from_vector<int64_t>({0, 6, 3, bad, bad}, {5});
      Tensor cpu_loss = zeros({}, dt), cpu_grad = zeros({5, 7}, dt);
      const std::string want = error_of([&] { cpu::cross_entropy(x, t, cpu_loss, cpu_grad); });
      ASSERT_NE(want.find("at row 3"), std::string::npos) << want;
      Tensor loss = to_gpu(zeros({}, dt)), grad = to_gpu(zeros({5, 7}, dt));
      const Tensor xg = to_gpu(x), tg = to_gpu(t);
      EXPECT_EQ(error_of([&] { cuda::cross_entropy(xg, tg, loss, grad); }), want);
      Tensor no_grad;
      EXPECT_EQ(error_of([&] { cuda::cross_entropy(xg, tg, loss, no_grad); }), want);
    }
}

// ============================================================================================
// Dispatch and argument checks
// ============================================================================================

TEST(CudaSoftmax, DispatchRunsOnTheGpuAndRejectsMixedDevices) {
  SELFSUP_REQUIRE_GPU();
  std::mt19937_64 rng(9);
  const Tensor x = random_tensor({6, 40}, kFloat32, rng);
  Tensor want = full(x.shape(), kNaN, kFloat32);
  cpu::softmax(x, 1, want);
  const Tensor xg = to_gpu(x);
  Tensor got = poisoned_gpu(x.shape(), kFloat32);
  dispatch::softmax(xg, 1, got);
  expect_close(to_cpu(got), want, 2e-5, 1e-7, "dispatch::softmax");

  Tensor cpu_out = full(x.shape(), kNaN, kFloat32);
  EXPECT_NE(error_of([&] { dispatch::softmax(xg, 1, cpu_out); }).find("softmax: tensors on"),
            std::string::npos);
  Tensor loss = zeros({}, kFloat32), no_grad;
  const Tensor t_cpu = random_targets(6, 40, rng);
  EXPECT_NE(error_of([&] {
              dispatch::cross_entropy(xg, t_cpu, loss, no_grad);
            }).find("cross_entropy: tensors on"),
            std::string::npos);
  Tensor gpu_loss = to_gpu(zeros({}, kFloat32));
  EXPECT_NE(error_of([&] {
              dispatch::cross_entropy_soft(x, x, gpu_loss, no_grad);
            }).find("cross_entropy_soft: tensors on"),
            std::string::npos);
}

// No GPU needed: these checks fire before any launch (or in a CPU-only build, the stub says
// there is no backend). Either way the error names the op.
TEST(CudaSoftmaxHost, BadArgumentsAreErrorsNamingTheOp) {
  const Tensor x = zeros({3, 4});
  Tensor out = zeros({3, 4});
  EXPECT_EQ(error_of([&] { cuda::softmax(x, 1, out); }).rfind("softmax:", 0), 0u);
  EXPECT_EQ(
      error_of([&] { cuda::log_softmax_backward(x, x, 0, out); }).rfind("log_softmax_backward:", 0),
      0u);
  Tensor loss = zeros({}), no_grad;
  const Tensor t = zeros({3}, kInt64);
  EXPECT_EQ(error_of([&] { cuda::cross_entropy(x, t, loss, no_grad); }).rfind("cross_entropy:", 0),
            0u);
  EXPECT_EQ(error_of([&] {
              cuda::cross_entropy_soft(x, x, loss, no_grad);
            }).rfind("cross_entropy_soft:", 0),
            0u);
}

TEST(CudaSoftmaxHost, DispatchOnCpuTensorsIsTheCpuKernel) {
  std::mt19937_64 rng(10);
  for (DType dt : kFloatTypes) {
    const Tensor x = random_tensor({5, 9, 3}, dt, rng);
    Tensor want = full(x.shape(), kNaN, dt), got = full(x.shape(), kNaN, dt);
    cpu::log_softmax(x, 1, want);
    dispatch::log_softmax(x, 1, got);
    expect_close(got, want, 0, 0, "dispatch::log_softmax on the CPU");
    const Tensor t = random_targets(5, 27, rng);
    const Tensor logits = raw::reshape(x, {5, 27});
    Tensor want_loss = zeros({}, dt), got_loss = zeros({}, dt);
    Tensor want_grad = full({5, 27}, kNaN, dt), got_grad = full({5, 27}, kNaN, dt);
    cpu::cross_entropy(logits, t, want_loss, want_grad);
    dispatch::cross_entropy(logits, t, got_loss, got_grad);
    expect_close(got_loss, want_loss, 0, 0, "dispatch::cross_entropy loss on the CPU");
    expect_close(got_grad, want_grad, 0, 0, "dispatch::cross_entropy grad on the CPU");
  }
}
