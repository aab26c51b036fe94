// ============================================================================================
// Softmax, log-softmax, their backwards, and softmax cross-entropy (class-index and soft targets)
// ============================================================================================
//
// The GPU twin of kernels/cpu/softmax.cpp (the reference; same contract, see softmax.h). Every op
// works on "rows": the 1-d slices of a tensor along `dim`. Seen as [outer, len, inner]
// row-major, row r = (o, i) with r = o * inner + i starts at o * len * inner + i and steps by
// inner; with dim last (inner = 1) rows are contiguous spans.
//   softmax       y = exp(x - m) / sum exp(x - m)          m = max of the row
//   log_softmax   y = x - (m + log sum exp(x - m))
//   softmax_backward      gx = y * (gy - <gy, y>)
//   log_softmax_backward  gx = gy - exp(y) * sum gy
//   cross_entropy  logits [N, C]: loss = mean_i (lse_i - x_i,t_i),  grad = (softmax - onehot) / N
//   cross_entropy_soft     loss = mean_i (lse_i sum_c p_ic - sum_c p_ic x_ic),
//                          grad = (softmax * sum_c p_ic - p) / N
//
// The two numbers that bound it, per element: ~5 FLOPs and one exp, against one read of each
// input and one write (8-24 bytes for float32): ~0.3 FLOP per byte, bound by memory bandwidth.
// Each row is read twice (statistics, then the outputs; the second read mostly hits L1/L2) and
// written once.
//
// Numerics follow the CPU: exp in the tensor's dtype, row sums (of exp, of gy * y, of p and
// p * x) in double, the per-row constants rounded to the dtype before the element-wise pass.
// The statistics pass is online softmax (see softmax_xent.cu): a running maximum and the sum of
// exp(x - max), rescaled when the maximum grows, so partial rows held by different threads
// merge in any order. -inf entries add nothing (a row of only -inf has an empty sum and gives
// NaN, as on the CPU); a NaN poisons the sum and so the whole row.
//
// Three kernels, one template over the op (a compile-time switch inside small device functions):
//   1. a warp per row, for contiguous rows up to 1024 elements: shuffles only, no barrier;
//   2. a block of 256 threads per row, for longer contiguous rows;
//   3. columns, for rows along a dim that is not innermost (inner > 1): the 32 threads of a warp
//      take 32 neighbouring rows, so each load reads consecutive addresses, and 8 warps split the
//      row's length, merged through shared memory (8 KiB).
// Non-contiguous inputs are copied to contiguous ones first, and non-contiguous outputs are
// written through a contiguous buffer (kernels/out_buffer.h; the copies run on the
// device).
// The cross-entropy losses go through a [N] double vector that one block sums in a fixed order
// (deterministic). float32 contiguous class-index cross-entropy runs the signature kernel
// cuda::softmax_cross_entropy (softmax_xent.cu) after the target check below.
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <string>
#include <type_traits>

#include "core/error.h"
#include "core/shape.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/runtime.h"
#include "kernels/cuda/softmax.h"
#include "kernels/cuda/softmax_xent.h"
#include "kernels/out_buffer.h"
#include "kernels/softmax_plan.h"

namespace selfsup::cuda {

namespace {

constexpr int kThreads = 256;                 // every kernel's block size
constexpr int kWarps = kThreads / kWarpSize;  // warps per block (8)
constexpr int64_t kWarpRowMax = 1024;         // kernel 1 for contiguous rows up to this long
constexpr int kColumnRows = 32;               // kernel 3: rows per block ...
constexpr int kColumnSplit = kThreads / kColumnRows;  // ... and threads per row (8)

// ============================================================================================
// The ops: what a row accumulates and what each element becomes
// ============================================================================================

enum class RowOp {
  Softmax,
  LogSoftmax,
  SoftmaxBackward,
  LogSoftmaxBackward,
  CrossEntropy,
  CrossEntropySoft
};

// Ops whose statistics are the row's logsumexp (online max and sum of exp).
constexpr bool has_lse(RowOp op) {
  return op != RowOp::SoftmaxBackward && op != RowOp::LogSoftmaxBackward;
}
// Ops with a second input of the row's layout (y, or the soft targets).
constexpr bool reads_b(RowOp op) {
  return op == RowOp::SoftmaxBackward || op == RowOp::LogSoftmaxBackward ||
         op == RowOp::CrossEntropySoft;
}
constexpr bool is_loss(RowOp op) {
  return op == RowOp::CrossEntropy || op == RowOp::CrossEntropySoft;
}

// The pointers and geometry of one launch. All tensors are contiguous [outer, len, inner].
template <typename T>
struct RowArgs {
  const T* a;                // x, grad_y or logits
  const T* b;                // y (backward) or the soft targets; null when the op has none
  T* out;                    // y, grad_x or grad_logits; null: no output (loss only)
  const int64_t* targets;    // [rows] class indices (CrossEntropy), element r at r * stride
  int64_t target_stride;     //
  double* row_loss;          // [rows] per-row losses (cross-entropy), or null
  int64_t rows, len, inner;  // rows = outer * inner
  double n_rows;             // N, the divisor of the mean loss
};

// The state of a partial row. Lse ops keep (max, sum = sum exp(x - max)); the backwards keep
// sum = <gy, y> or sum gy; soft targets also mass = sum p and dot = sum p * x.
struct RowAcc {
  double max, sum, mass, dot;
};

__device__ __forceinline__ RowAcc empty_acc() {
  return {-INFINITY, 0.0, 0.0, 0.0};
}

__device__ __forceinline__ float d_exp(float v) {
  return expf(v);
}
__device__ __forceinline__ double d_exp(double v) {
  return exp(v);
}

template <RowOp kOp, typename T>
__device__ __forceinline__ T load_b(const RowArgs<T>& p, int64_t i) {
  if constexpr (reads_b(kOp))
    return p.b[i];
  else
    return T(0);
}

// Adds element (a, b) to the row state. For lse ops exp(a - max) is taken in T, as the CPU does;
// a new maximum rescales the sum so far (in double).
template <RowOp kOp, typename T>
__device__ __forceinline__ RowAcc push(RowAcc s, T a, T b) {
  if constexpr (kOp == RowOp::SoftmaxBackward) {
    s.sum += static_cast<double>(a) * b;
  } else if constexpr (kOp == RowOp::LogSoftmaxBackward) {
    s.sum += a;
  } else {
    if constexpr (kOp == RowOp::CrossEntropySoft) {
      s.mass += b;
      s.dot += static_cast<double>(b) * a;
    }
    if (a == -INFINITY) return s;  // exp(-inf - max) = 0
    if (a > s.max) {               // false for a NaN, which then poisons the sum below
      s.sum *= exp(s.max - static_cast<double>(a));
      s.max = a;
    }
    s.sum += d_exp(a - static_cast<T>(s.max));
  }
  return s;
}

// Merges two partial rows. Commutative bit for bit, so every lane of a butterfly ends equal. An
// lse state with sum 0 holds no element (a held element adds exp(0) = 1, or a NaN).
template <RowOp kOp>
__device__ __forceinline__ RowAcc merge(RowAcc x, RowAcc y) {
  RowAcc r{x.max, x.sum + y.sum, x.mass + y.mass, x.dot + y.dot};
  if constexpr (has_lse(kOp)) {
    if (y.sum == 0.0) {
      r.sum = x.sum;
    } else if (x.sum == 0.0) {
      r.max = y.max;
      r.sum = y.sum;
    } else {
      r.max = fmax(x.max, y.max);
      // __dmul_rn: never fused into an FMA, which would make the order matter.
      r.sum = __dmul_rn(x.sum, exp(x.max - r.max)) + __dmul_rn(y.sum, exp(y.max - r.max));
    }
  }
  return r;
}

__device__ __forceinline__ RowAcc shuffle_xor(RowAcc s, int mask) {
  return {__shfl_xor_sync(kFullMask, s.max, mask), __shfl_xor_sync(kFullMask, s.sum, mask),
          __shfl_xor_sync(kFullMask, s.mass, mask), __shfl_xor_sync(kFullMask, s.dot, mask)};
}

// Merges the states of a group of kGroup threads (a warp, or the whole block); every thread of
// the group gets the result. For a block every thread must call it (it synchronises);
// scratch: __shared__ [kWarps].
template <RowOp kOp, int kGroup>
__device__ RowAcc group_reduce(RowAcc s, RowAcc* scratch) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2)
    s = merge<kOp>(s, shuffle_xor(s, offset));
  if constexpr (kGroup > kWarpSize) {
    const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
    if (lane == 0) scratch[warp] = s;
    __syncthreads();
    s = lane < kGroup / kWarpSize ? scratch[lane] : empty_acc();
    for (int offset = kWarpSize / 2; offset > 0; offset /= 2)  // every warp: all get the total
      s = merge<kOp>(s, shuffle_xor(s, offset));
    __syncthreads();
  }
  return s;
}

// The per-row numbers every element of a finished row needs, rounded to T as on the CPU.
template <typename T>
struct RowConst {
  T max;   // lse ops: the row maximum
  T coef;  // softmax 1/sum; log_softmax lse; backward <gy,y> or sum gy; losses mass/(sum N)
};

template <RowOp kOp, typename T>
__device__ __forceinline__ RowConst<T> finish(const RowAcc& s, double n_rows) {
  const T m = static_cast<T>(s.max);
  switch (kOp) {
    case RowOp::Softmax:
      return {m, static_cast<T>(1.0 / s.sum)};
    case RowOp::LogSoftmax:
      return {m, static_cast<T>(static_cast<double>(m) + log(s.sum))};
    case RowOp::CrossEntropy:
      return {m, static_cast<T>(1.0 / (s.sum * n_rows))};
    case RowOp::CrossEntropySoft:
      return {m, static_cast<T>(s.mass / (s.sum * n_rows))};
    default:  // the backwards
      return {T(0), static_cast<T>(s.sum)};
  }
}

// Output element from the inputs (a, b) at class k of its row; target: the row's class index.
template <RowOp kOp, typename T>
__device__ __forceinline__ T element(const RowConst<T>& c, T a, T b, bool is_target, T inv_n) {
  switch (kOp) {
    case RowOp::Softmax:
      return d_exp(a - c.max) * c.coef;
    case RowOp::LogSoftmax:
      return a - c.coef;
    case RowOp::SoftmaxBackward:
      return b * (a - c.coef);
    case RowOp::LogSoftmaxBackward:
      return a - d_exp(b) * c.coef;
    case RowOp::CrossEntropy:
      return d_exp(a - c.max) * c.coef - (is_target ? inv_n : T(0));
    case RowOp::CrossEntropySoft:
      return d_exp(a - c.max) * c.coef - b * inv_n;
  }
  return T(0);
}

// The loss of a finished row (cross-entropy), written by one thread of the row.
template <RowOp kOp, typename T>
__device__ void write_row_loss(const RowArgs<T>& p, int64_t row, int64_t start, const RowAcc& s) {
  const double lse = s.max + log(s.sum);
  if constexpr (kOp == RowOp::CrossEntropy)
    p.row_loss[row] = lse - p.a[start + p.targets[row * p.target_stride]];
  else
    p.row_loss[row] = lse * s.mass - s.dot;
}

// ============================================================================================
// Kernels 1 and 2: a group of kGroup threads per contiguous row (a warp, or the whole block)
// ============================================================================================
// The group strides over its row once to build the state (lane l takes elements l, l + kGroup,
// ...: consecutive lanes, consecutive addresses), merges it (shuffles; for a block also 8
// partials through shared memory), then strides again to write. With kGroup = 32 a block holds
// 8 rows and a warp past the last row leaves as a whole; with 256, one row per block.

template <RowOp kOp, int kGroup, typename T>
__global__ void __launch_bounds__(kThreads) rows_kernel(RowArgs<T> p) {
  __shared__ RowAcc scratch[kWarps];
  constexpr int kRowsPerBlock = kThreads / kGroup;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kGroup;
  const int lane = threadIdx.x % kGroup;
  if (row >= p.rows) return;  // the same for the whole group
  const int64_t start = row * p.len;
  RowAcc s = empty_acc();
  for (int64_t k = lane; k < p.len; k += kGroup)
    s = push<kOp>(s, p.a[start + k], load_b<kOp>(p, start + k));
  s = group_reduce<kOp, kGroup>(s, scratch);
  if constexpr (is_loss(kOp)) {
    if (lane == 0) write_row_loss<kOp>(p, row, start, s);
  }
  if (!p.out) return;
  const RowConst<T> c = finish<kOp, T>(s, p.n_rows);
  const T inv_n = static_cast<T>(1.0 / p.n_rows);
  const int64_t target = kOp == RowOp::CrossEntropy ? p.targets[row * p.target_stride] : -1;
  for (int64_t k = lane; k < p.len; k += kGroup)
    p.out[start + k] =
        element<kOp>(c, p.a[start + k], load_b<kOp>(p, start + k), k == target, inv_n);
}

// ============================================================================================
// Kernel 3: columns (rows along a dim that is not innermost)
// ============================================================================================
// Thread (x, y) of a 32 x 8 block takes row blockIdx.x * 32 + x and its elements y, y + 8, ...
// Row r + 1 starts one element after row r (same o, next i), so the 32 lanes of a warp read 32
// consecutive addresses per step. The 8 partial states of a row meet in shared memory, where
// thread y = 0 merges them in a fixed order. Inactive threads (past the last row) still reach
// both barriers.

template <RowOp kOp, typename T>
__global__ void __launch_bounds__(kThreads) columns_kernel(RowArgs<T> p) {
  __shared__ RowAcc scratch[kColumnSplit][kColumnRows];
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kColumnRows + threadIdx.x;
  const bool active = row < p.rows;
  const int64_t start = active ? (row / p.inner) * p.len * p.inner + row % p.inner : 0;
  RowAcc s = empty_acc();
  if (active)
    for (int64_t k = threadIdx.y; k < p.len; k += kColumnSplit)
      s = push<kOp>(s, p.a[start + k * p.inner], load_b<kOp>(p, start + k * p.inner));
  scratch[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0) {
    for (int j = 1; j < kColumnSplit; ++j)
      s = merge<kOp>(s, scratch[j][threadIdx.x]);
    scratch[0][threadIdx.x] = s;
  }
  __syncthreads();
  if (!active) return;
  const RowConst<T> c = finish<kOp, T>(scratch[0][threadIdx.x], p.n_rows);
  for (int64_t k = threadIdx.y; k < p.len; k += kColumnSplit) {
    const int64_t i = start + k * p.inner;
    p.out[i] = element<kOp>(c, p.a[i], load_b<kOp>(p, i), false, T(0));
  }
}

// ============================================================================================
// Cross-entropy helpers: the target check and the mean over rows
// ============================================================================================

// Notes the first row whose target lies outside [0, classes) (atomicMin; ~0 when none).
__global__ void find_bad_target(const int64_t* targets, int64_t stride, int64_t rows,
                                int64_t classes, unsigned long long* first_bad) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < rows;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = targets[i * stride];
    if (t < 0 || t >= classes) atomicMin(first_bad, static_cast<unsigned long long>(i));
  }
}

// One block sums the per-row losses (double) in a fixed order and writes their mean.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    mean_of_rows(const double* row_loss, int64_t rows, T* loss) {
  __shared__ double scratch[kWarps];
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < rows; i += kThreads)
    s += row_loss[i];
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2)
    s += __shfl_xor_sync(kFullMask, s, offset);
  if (threadIdx.x % kWarpSize == 0) scratch[threadIdx.x / kWarpSize] = s;
  __syncthreads();
  if (threadIdx.x == 0) {
    double total = 0.0;
    for (int w = 0; w < kWarps; ++w)
      total += scratch[w];
    *loss = static_cast<T>(total / static_cast<double>(rows));
  }
}

// ============================================================================================
// Host side: layouts, checks, launchers
// ============================================================================================

using kernels::dense;
using kernels::OutBuffer;

// The input on a CUDA device, every other tensor on the input's (the argument checks themselves
// are in kernels/softmax_plan.h).
void check_input_on_cuda(const char* op, const Tensor& x) {
  SELFSUP_CHECK(x.device().is_cuda(), op, ": input ", shape_str(x.shape()), " is on ",
                x.device().str(), ", expected the CUDA device");
}
void check_on_input_device(const char* op, const char* what, const Tensor& x, const Tensor& t) {
  SELFSUP_CHECK(t.device() == x.device(), op, ": ", what, " is on ", t.device().str(),
                " but the input is on ", x.device().str());
}
bool on_input_device(const Tensor& t, const Tensor& x) {
  return t.device() == x.device();
}
std::string tensor_on_input_device(const Tensor& x) {
  return "tensor on " + x.device().str();
}
constexpr softmax_plan::Devices kCuda{check_input_on_cuda, check_on_input_device, on_input_device,
                                      tensor_on_input_device};

unsigned grid_size(const char* op, int64_t blocks) {
  SELFSUP_CHECK(blocks <= INT32_MAX, op, ": ", blocks, " blocks exceed the CUDA grid limit");
  return static_cast<unsigned>(blocks);
}

// Picks the kernel for the geometry (see the file comment) and launches it.
template <RowOp kOp, typename T>
void launch_rows(const char* op, const RowArgs<T>& p) {
  if (p.rows == 0) return;
  if (p.inner == 1 && p.len <= kWarpRowMax) {
    rows_kernel<kOp, kWarpSize, T><<<grid_size(op, ceil_div(p.rows, kWarps)), kThreads>>>(p);
  } else if (p.inner == 1) {
    rows_kernel<kOp, kThreads, T><<<grid_size(op, p.rows), kThreads>>>(p);
  } else if constexpr (!is_loss(kOp)) {
    columns_kernel<kOp, T>
        <<<grid_size(op, ceil_div(p.rows, kColumnRows)), dim3(kColumnRows, kColumnSplit)>>>(p);
  }
  check_launch(op);
}

// The four row-wise ops: in1 (y for the backwards) may be null.
template <RowOp kOp>
void rowwise(const char* op, const Tensor& in0, const Tensor* in1, Tensor& out, int64_t dim) {
  dim = softmax_plan::check_rowwise(op, in0, in1, out, dim, kCuda);
  if (in0.numel() == 0) return;
  const int64_t len = in0.dim() == 0 ? 1 : in0.size(dim);
  int64_t inner = 1;
  for (int64_t d = dim + 1; d < in0.dim(); ++d)
    inner *= in0.size(d);
  const Tensor a = dense(in0), b = in1 ? dense(*in1) : Tensor();
  OutBuffer y(out);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    RowArgs<T> p{};
    p.a = a.data_ptr<T>();
    p.b = b.defined() ? b.data_ptr<T>() : nullptr;
    p.out = y.data<T>();
    p.rows = in0.numel() / len;
    p.len = len;
    p.inner = inner;
    p.n_rows = 1.0;
    launch_rows<kOp, T>(op, p);
  };
  if (in0.dtype() == kFloat32)
    run(float{});
  else
    run(double{});
  y.commit();
}

// Throws, as the CPU does, for the first row whose target is outside [0, classes): one small
// kernel, then a device->host copy of the flag (a synchronisation).
void check_targets(const char* op, const Tensor& targets, int64_t classes) {
  const int64_t rows = targets.size(0), stride = targets.stride(0);
  const int64_t* t = targets.data_ptr<int64_t>();
  Tensor flag = empty({1}, TensorOptions(kInt64).device(targets.device()));
  auto* first_bad = static_cast<unsigned long long*>(flag.raw_data_ptr());
  check(cudaMemset(first_bad, 0xff, sizeof(unsigned long long)), "cross_entropy: cudaMemset");
  find_bad_target<<<grid_size(op, std::min<int64_t>(ceil_div(rows, kThreads), 1024)), kThreads>>>(
      t, stride, rows, classes, first_bad);
  check_launch(op);
  unsigned long long row = 0;
  check(cudaMemcpy(&row, first_bad, sizeof row, cudaMemcpyDeviceToHost),
        "cross_entropy: reading the target check");
  if (row == ~0ull) return;
  int64_t value = 0;
  check(cudaMemcpy(&value, t + static_cast<int64_t>(row) * stride, sizeof value,
                   cudaMemcpyDeviceToHost),
        "cross_entropy: reading the bad target");
  softmax_plan::check_target_value(op, value, static_cast<int64_t>(row), classes);
}

// The fused loss (and gradient) of either target kind: a group per row, then the mean.
template <RowOp kOp>
void run_cross_entropy(const char* op, const Tensor& logits, const Tensor& targets, Tensor& loss,
                       Tensor& grad) {
  const int64_t n = logits.size(0), c = logits.size(1);
  const Tensor a = dense(logits);
  const Tensor b = kOp == RowOp::CrossEntropySoft ? dense(targets) : Tensor();
  OutBuffer g(grad);
  Tensor row_loss = empty({n}, TensorOptions(kFloat64).device(logits.device()));
  auto run = [&](auto tag) {
    using T = decltype(tag);
    RowArgs<T> p{};
    p.a = a.data_ptr<T>();
    p.b = b.defined() ? b.data_ptr<T>() : nullptr;
    p.out = g.data<T>();
    if (kOp == RowOp::CrossEntropy) {
      p.targets = targets.data_ptr<int64_t>();
      p.target_stride = targets.stride(0);
    }
    p.row_loss = row_loss.data_ptr<double>();
    p.rows = n;
    p.len = c;
    p.inner = 1;
    p.n_rows = static_cast<double>(n);
    launch_rows<kOp, T>(op, p);
    mean_of_rows<T><<<1, kThreads>>>(p.row_loss, n, loss.data_ptr<T>());
    check_launch(op);
  };
  if (logits.dtype() == kFloat32)
    run(float{});
  else
    run(double{});
  loss.bump_version();
  g.commit();
}

}  // namespace

// ============================================================================================
// Public entry points
// ============================================================================================

void softmax(const Tensor& x, int64_t dim, Tensor& out) {
  rowwise<RowOp::Softmax>("softmax", x, nullptr, out, dim);
}

void log_softmax(const Tensor& x, int64_t dim, Tensor& out) {
  rowwise<RowOp::LogSoftmax>("log_softmax", x, nullptr, out, dim);
}

void softmax_backward(const Tensor& grad_y, const Tensor& y, int64_t dim, Tensor& grad_x) {
  rowwise<RowOp::SoftmaxBackward>("softmax_backward", grad_y, &y, grad_x, dim);
}

void log_softmax_backward(const Tensor& grad_y, const Tensor& y, int64_t dim, Tensor& grad_x) {
  rowwise<RowOp::LogSoftmaxBackward>("log_softmax_backward", grad_y, &y, grad_x, dim);
}

void cross_entropy(const Tensor& logits, const Tensor& targets, Tensor& loss, Tensor& grad_logits) {
  const char* op = "cross_entropy";
  softmax_plan::check_cross_entropy(op, logits, loss, grad_logits, kCuda);
  softmax_plan::check_class_targets(op, logits, targets, kCuda);
  const int64_t n = logits.size(0), c = logits.size(1);
  check_targets(op, targets, c);
  // The signature kernel takes float32, contiguous [N, C] with 32-bit sizes and a 0-d loss.
  const bool signature = logits.dtype() == kFloat32 && logits.is_contiguous() &&
                         targets.is_contiguous() && loss.dim() == 0 &&
                         (!grad_logits.defined() || grad_logits.is_contiguous()) &&
                         n <= INT32_MAX && c <= INT32_MAX;
  if (signature)
    return softmax_cross_entropy(logits, targets, loss, grad_logits, kSoftmaxXentAuto, false);
  run_cross_entropy<RowOp::CrossEntropy>(op, logits, targets, loss, grad_logits);
}

void cross_entropy_soft(const Tensor& logits, const Tensor& targets, Tensor& loss,
                        Tensor& grad_logits) {
  const char* op = "cross_entropy_soft";
  softmax_plan::check_cross_entropy(op, logits, loss, grad_logits, kCuda);
  softmax_plan::check_same(op, "targets", logits, targets, kCuda);
  run_cross_entropy<RowOp::CrossEntropySoft>(op, logits, targets, loss, grad_logits);
}

}  // namespace selfsup::cuda
