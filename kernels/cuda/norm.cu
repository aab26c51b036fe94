// ============================================================================================
// Batch norm, layer norm and dropout
// ============================================================================================
//
// The GPU twin of kernels/cpu/norm.cpp (the reference; same contract, see norm.h).
//
// Batch norm, x [N, C, S] (S = the product of the dims after C; [N, C] has S = 1), per channel c
// over its M = N * S values:
//   mean_c = sum x / M,  var_c = sum (x - mean_c)^2 / M,  invstd_c = 1 / sqrt(var_c + eps)
//   y = x * scale_c + shift_c,   scale_c = invstd_c * w_c,  shift_c = b_c - mean_c * scale_c
//   running = (1 - momentum) running + momentum * batch   (var with the factor M / (M - 1))
//   backward: dx = k_c (g - sum g / M - (x - mean_c) invstd_c sum(g xhat) / M),  k_c = w_c invstd_c
//             dw_c = sum g xhat,  db_c = sum g                       (xhat = (x - mean) invstd)
// Layer norm, x [R, D] (the leading dims are rows, the last ones D): the same formulas per row,
// with an element-wise weight and bias [D]; dw and db are sums over the rows.
// Dropout: y = x * mask / (1 - p), mask from one Philox draw per element (core/random.h).
//
// The two numbers that bound them: a few FLOPs per element against 2-3 reads and one write of
// it (8-12 bytes for float32): all memory-bound. Batch norm reads x twice (statistics, then the
// output), layer norm reads each row three times (the second and third from L1/L2).
//
// Accuracy: every sum is accumulated in double, as on the CPU, so float32 results agree with it
// to the output's rounding. Batch norm's statistics take one pass over x: the sums of d and d^2
// with d = x - x_c0 (x_c0 the channel's first value, close to its mean in any real batch), from
// which mean = x_c0 + sum d / M and var = sum d^2 / M - (sum d / M)^2. The shift avoids the
// cancellation of the textbook sum of squares; in double it loses nothing a float32 keeps.
//
// The kernels:
//   per-channel sums (batch norm statistics and backward; layer norm's dw, db), two paths:
//     planes   S > 1: a 256-thread block per (channel, slice of its M values); consecutive
//              threads read consecutive s within a plane. Block reduction through shared memory.
//     columns  S = 1 ([N, C]), and layer norm's column sums over rows: the 32 lanes of a warp
//              take 32 neighbouring channels of one row (one 128-byte line per load), 8 warps
//              take interleaved rows, merged through shared memory (4 KiB).
//     Too few channels to fill the GPU: each channel's values split over several blocks, whose
//     partial sums a small per-channel kernel adds in a fixed order (deterministic, no atomics).
//   per-channel finalize: one thread per channel turns the sums into the coefficients.
//   apply: one grid-stride pass y = f(x, coefficients of channel (i / S) % C), with 32-bit index
//     math when the tensor has fewer than 2^31 elements (64-bit division is ~10x slower).
//   layer norm rows: a warp per row (D <= 1024) or a block per row, like the softmax rows.
//   dropout: one grid-stride pass, one Philox draw per element.
// Non-contiguous inputs are copied to contiguous ones first, and non-contiguous outputs are
// written through a contiguous buffer (kernels/out_buffer.h; the copies run on the
// device). The [C] vectors of batch norm are read and written through their stride.
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstdint>

#include "core/error.h"
#include "core/random.h"
#include "core/shape.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/norm.h"
#include "kernels/cuda/runtime.h"
#include "kernels/norm_plan.h"
#include "kernels/out_buffer.h"

namespace selfsup::cuda {

namespace {

constexpr int kThreads = 256;                         // every kernel's block size
constexpr int kWarps = kThreads / kWarpSize;          // 8
constexpr int kColumnLanes = kWarpSize;               // columns path: 32 columns per block ...
constexpr int kColumnRows = kThreads / kColumnLanes;  // ... times 8 row groups
constexpr int64_t kWarpRowMax = 1024;                 // layer norm: a warp per row up to this
constexpr int64_t kMaxGridBlocks = 4096;              // grid-stride kernels: enough to fill a GPU

// Two sums carried together (sum d and sum d^2; sum g and sum g xhat; ...).
struct Sum2 {
  double a, b;
};

__device__ __forceinline__ Sum2 operator+(Sum2 x, Sum2 y) {
  return {x.a + y.a, x.b + y.b};
}

// Sums over a group of kGroup threads (a warp, or the whole block); every thread of the group
// gets the total. For a block every thread must call it (it synchronises); scratch: __shared__
// [kWarps]. The same adds in the same order for every thread, so all see the same bits.
template <int kGroup>
__device__ Sum2 group_sum(Sum2 s, Sum2* scratch) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2)
    s = s + Sum2{__shfl_xor_sync(kFullMask, s.a, offset), __shfl_xor_sync(kFullMask, s.b, offset)};
  if constexpr (kGroup > kWarpSize) {
    const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
    if (lane == 0) scratch[warp] = s;
    __syncthreads();
    s = Sum2{0.0, 0.0};
    for (int w = 0; w < kGroup / kWarpSize; ++w)
      s = s + scratch[w];
    __syncthreads();
  }
  return s;
}

// An optional [C] vector (weight, bias, running stats, saved stats, their gradients) read or
// written through its stride; p is null when the tensor is undefined.
template <typename T>
struct ChannelVec {
  T* p;
  int64_t stride;
  __device__ T& operator[](int64_t c) const { return p[c * stride]; }
  __device__ T get_or(int64_t c, T fallback) const { return p ? p[c * stride] : fallback; }
};

template <typename T>
ChannelVec<T> channel_vec(const Tensor& t) {
  if (!t.defined()) return {nullptr, 0};
  return {t.data_ptr<T>(), t.stride(0)};
}

// ============================================================================================
// Per-channel sums: planes and columns
// ============================================================================================
// A "term" gives the two values that element (n, c, s) adds to channel c's sums.

// Batch norm, x [N, C, S]. Statistics (g null): d = x - center_c gives (d, d^2), with center_c
// the channel's first value. Backward: d = x - mean_c gives (g, g d).
template <typename T>
struct ChannelTerm {
  const T* x;            // [N, C, S]
  const T* g;            // [N, C, S] grad_out, or null for the statistics
  ChannelVec<T> center;  // [C]: x itself with stride S (its first value), or save_mean
  int64_t C, S;
  __device__ Sum2 at(int64_t n, int64_t c, int64_t s) const {
    const int64_t i = (n * C + c) * S + s;
    const double d = static_cast<double>(x[i]) - static_cast<double>(center[c]);
    if (!g) return {d, d * d};
    return {static_cast<double>(g[i]), g[i] * d};
  }
};

// Layer norm's weight and bias gradients, x [R, D] as rows n and columns c:
// (g * xhat, g) with xhat = (x - mean_n) * rstd_n in T, as on the CPU.
template <typename T>
struct LayerNormWbTerm {
  const T* x;     // [R, D]
  const T* g;     // [R, D] grad_out
  const T* mean;  // [R]
  const T* rstd;  // [R]
  int64_t D;
  __device__ Sum2 at(int64_t n, int64_t c, int64_t) const {
    const int64_t i = n * D + c;
    const T xhat = (x[i] - mean[n]) * rstd[n];
    return {static_cast<double>(g[i] * xhat), static_cast<double>(g[i])};
  }
};

// Planes: block b sums slice k = b % splits of channel c = b / splits, i.e. the flat indices
// m = n * S + s in [M k / splits, M (k + 1) / splits). Each thread steps by 256 and carries
// (n, s) along instead of dividing: s += 256 % S, n += 256 / S, plus one carry.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    channel_sums_planes(ChannelTerm<T> term, int64_t N, int splits,
                        Sum2* partial /* [C, splits] */) {
  __shared__ Sum2 scratch[kWarps];
  const int64_t c = blockIdx.x / splits;
  const int k = static_cast<int>(blockIdx.x % splits);
  const int64_t S = term.S, M = N * S;
  const int64_t end = M * (k + 1) / splits;
  int64_t m = M * k / splits + threadIdx.x;
  int64_t n = m / S, s = m % S;
  const int64_t dn = kThreads / S, ds = kThreads % S;
  Sum2 acc{0.0, 0.0};
  for (; m < end; m += kThreads) {
    acc = acc + term.at(n, c, s);
    n += dn;
    s += ds;
    if (s >= S) {
      s -= S;
      ++n;
    }
  }
  acc = group_sum<kThreads>(acc, scratch);
  if (threadIdx.x == 0) partial[c * splits + k] = acc;
}

// Columns: thread (x, y) of a 32 x 8 block sums column c = blockIdx.x * 32 + x over the rows
// y, y + 8, ... of slice k = blockIdx.y of the rows; the 8 partials meet in shared memory and
// thread y = 0 adds them in order. Threads past the last column still reach the barrier.
template <typename Term>
__global__ void __launch_bounds__(kThreads)
    column_sums(Term term, int64_t rows, int64_t cols, Sum2* partial /* [cols, splits] */) {
  __shared__ Sum2 scratch[kColumnRows][kColumnLanes];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kColumnLanes + threadIdx.x;
  const int k = blockIdx.y, splits = gridDim.y;
  const int64_t end = rows * (k + 1) / splits;
  Sum2 acc{0.0, 0.0};
  if (c < cols)
    for (int64_t n = rows * k / splits + threadIdx.y; n < end; n += kColumnRows)
      acc = acc + term.at(n, c, 0);
  scratch[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y != 0 || c >= cols) return;
  for (int j = 1; j < kColumnRows; ++j)
    acc = acc + scratch[j][threadIdx.x];
  partial[c * splits + k] = acc;
}

// The total of channel c's partial sums, added in split order.
__device__ __forceinline__ Sum2 total_of(const Sum2* partial, int64_t c, int splits) {
  Sum2 t{0.0, 0.0};
  for (int k = 0; k < splits; ++k)
    t = t + partial[c * splits + k];
  return t;
}

// ============================================================================================
// Batch norm: per-channel finalize and the element-wise apply
// ============================================================================================

// The arguments of the forward finalize, one thread per channel.
template <typename T>
struct BatchNormFinal {
  const Sum2* partial;  // [C, splits] sums of (d, d^2), or null: eval mode (running stats)
  int splits;
  ChannelVec<T> first;  // the centers the sums used: x's first value of each channel
  int64_t C;
  double M, momentum, eps;
  ChannelVec<T> weight, bias, running_mean, running_var, save_mean, save_invstd;
  T* coef;  // [2, C]: scale_c, then shift_c
};

template <typename T>
__global__ void batch_norm_finalize(BatchNormFinal<T> f) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= f.C) return;
  double mean, var;
  if (f.partial) {
    const Sum2 t = total_of(f.partial, c, f.splits);
    const double d = t.a / f.M;  // mean of x - first
    mean = static_cast<double>(f.first[c]) + d;
    var = fmax(t.b / f.M - d * d, 0.0);
    if (f.running_mean.p) {
      T& rm = f.running_mean[c];
      T& rv = f.running_var[c];
      rm = static_cast<T>((1 - f.momentum) * rm + f.momentum * mean);
      rv = static_cast<T>((1 - f.momentum) * rv + f.momentum * var * (f.M / (f.M - 1)));
    }
  } else {
    mean = f.running_mean[c];
    var = f.running_var[c];
  }
  const double invstd = 1.0 / sqrt(var + f.eps);
  const double scale = invstd * f.weight.get_or(c, T(1));
  f.coef[c] = static_cast<T>(scale);
  f.coef[f.C + c] = static_cast<T>(f.bias.get_or(c, T(0)) - mean * scale);
  if (f.save_mean.p) f.save_mean[c] = static_cast<T>(mean);
  if (f.save_invstd.p) f.save_invstd[c] = static_cast<T>(invstd);
}

// Backward: the sums of (g, g (x - mean)) become db, dw and dx's four coefficients.
template <typename T>
struct BatchNormBackwardFinal {
  const Sum2* partial;  // [C, splits]
  int splits;
  int64_t C;
  double M;
  ChannelVec<T> weight, save_mean, save_invstd, grad_w, grad_b;
  T* coef;  // [4, C]: k, mean of g, the coefficient of (x - mean), mean; or null (no dx)
};

template <typename T>
__global__ void batch_norm_backward_finalize(BatchNormBackwardFinal<T> f) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= f.C) return;
  const Sum2 t = total_of(f.partial, c, f.splits);
  const double invstd = f.save_invstd[c];
  const double sum_g_xhat = t.b * invstd;
  if (f.grad_b.p) f.grad_b[c] = static_cast<T>(t.a);
  if (f.grad_w.p) f.grad_w[c] = static_cast<T>(sum_g_xhat);
  if (!f.coef) return;
  f.coef[c] = static_cast<T>(f.weight.get_or(c, T(1)) * invstd);
  f.coef[f.C + c] = static_cast<T>(t.a / f.M);
  f.coef[2 * f.C + c] = static_cast<T>(invstd * sum_g_xhat / f.M);
  f.coef[3 * f.C + c] = f.save_mean[c];
}

// Eval mode's backward is per-channel affine: scale_c = w_c * invstd_c (in T), shift 0.
template <typename T>
__global__ void batch_norm_eval_coef(int64_t C, ChannelVec<T> weight, ChannelVec<T> invstd,
                                     T* coef /* [2, C] */) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= C) return;
  coef[c] = weight.get_or(c, T(1)) * invstd[c];
  coef[C + c] = T(0);
}

// y = x * coef[c] + coef[C + c] over [N, C, S] with c = (i / S) % C. Index: uint32_t when the
// tensor has fewer than 2^31 elements (i + the grid stride then cannot wrap), else int64_t.
template <typename T, typename Index>
__global__ void __launch_bounds__(kThreads)
    channel_affine(const T* x, Index total, Index C, Index S, const T* coef, T* y) {
  for (Index i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
    const Index c = (i / S) % C;
    y[i] = x[i] * coef[c] + coef[C + c];
  }
}

// dx = k_c (g - mean_g_c - (x - mean_c) xhat_coef_c), the coefficients from the finalize.
template <typename T, typename Index>
__global__ void __launch_bounds__(kThreads)
    batch_norm_grad_input(const T* g, const T* x, Index total, Index C, Index S, const T* coef,
                          T* dx) {
  for (Index i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
    const Index c = (i / S) % C;
    dx[i] = coef[c] * (g[i] - coef[C + c] - (x[i] - coef[3 * C + c]) * coef[2 * C + c]);
  }
}

// ============================================================================================
// Layer norm rows
// ============================================================================================
// A group of kGroup threads (a warp, or the whole block) per row of D values: the sum, then the
// sum of squared deviations (two reductions, as the CPU's two passes), then the output. The
// backward: the sums of g w and g w xhat, then dx.

template <typename T>
struct LayerNormArgs {
  const T* x;       // [R, D]
  const T* g;       // [R, D] grad_out (backward)
  const T* weight;  // [D] or null
  const T* bias;    // [D] or null (forward)
  T* out;           // [R, D] y or dx
  T* mean;          // [R]: written (forward, may be null) or read (backward)
  T* rstd;          // [R]: as mean
  int64_t R, D;
  double eps;
};

template <typename T, int kGroup>
__global__ void __launch_bounds__(kThreads) layer_norm_rows(LayerNormArgs<T> p) {
  __shared__ Sum2 scratch[kWarps];
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (kThreads / kGroup) + threadIdx.x / kGroup;
  const int lane = threadIdx.x % kGroup;
  if (row >= p.R) return;  // the same for the whole group
  const T* x = p.x + row * p.D;
  Sum2 s{0.0, 0.0};
  for (int64_t j = lane; j < p.D; j += kGroup)
    s.a += x[j];
  const double mu = group_sum<kGroup>(s, scratch).a / static_cast<double>(p.D);
  s = Sum2{0.0, 0.0};
  for (int64_t j = lane; j < p.D; j += kGroup)
    s.a += (x[j] - mu) * (x[j] - mu);
  const double var = group_sum<kGroup>(s, scratch).a / static_cast<double>(p.D);
  const double inv = 1.0 / sqrt(var + p.eps);
  if (lane == 0 && p.mean) p.mean[row] = static_cast<T>(mu);
  if (lane == 0 && p.rstd) p.rstd[row] = static_cast<T>(inv);
  const T mu_t = static_cast<T>(mu), inv_t = static_cast<T>(inv);
  T* y = p.out + row * p.D;
  for (int64_t j = lane; j < p.D; j += kGroup) {
    const T xhat = (x[j] - mu_t) * inv_t;
    y[j] = (p.weight ? xhat * p.weight[j] : xhat) + (p.bias ? p.bias[j] : T(0));
  }
}

// dx = rstd (g w - mean(g w) - xhat mean(g w xhat)), as the CPU writes it.
template <typename T, int kGroup>
__global__ void __launch_bounds__(kThreads) layer_norm_backward_rows(LayerNormArgs<T> p) {
  __shared__ Sum2 scratch[kWarps];
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (kThreads / kGroup) + threadIdx.x / kGroup;
  const int lane = threadIdx.x % kGroup;
  if (row >= p.R) return;
  const T* x = p.x + row * p.D;
  const T* g = p.g + row * p.D;
  const T mu = p.mean[row], inv = p.rstd[row];
  Sum2 s{0.0, 0.0};
  for (int64_t j = lane; j < p.D; j += kGroup) {
    const double gw = p.weight ? g[j] * p.weight[j] : g[j];
    s.a += gw;
    s.b += gw * ((x[j] - mu) * inv);
  }
  s = group_sum<kGroup>(s, scratch);
  const T mean_gw = static_cast<T>(s.a / static_cast<double>(p.D));
  const T mean_gw_xhat = static_cast<T>(s.b / static_cast<double>(p.D));
  T* dx = p.out + row * p.D;
  for (int64_t j = lane; j < p.D; j += kGroup) {
    const T gw = p.weight ? g[j] * p.weight[j] : g[j];
    dx[j] = inv * (gw - mean_gw - (x[j] - mu) * inv * mean_gw_xhat);
  }
}

// Layer norm's dw, db from the column sums: one thread per column.
template <typename T>
__global__ void layer_norm_wb_finalize(const Sum2* partial, int splits, int64_t D, T* grad_w,
                                       T* grad_b) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= D) return;
  const Sum2 t = total_of(partial, j, splits);
  if (grad_w) grad_w[j] = static_cast<T>(t.a);
  if (grad_b) grad_b[j] = static_cast<T>(t.b);
}

// ============================================================================================
// Dropout
// ============================================================================================
// Element i keeps when the first word of Philox(seed, first + i), as a uniform float, is at
// least float(p): the same host/device function as the CPU's, so the same mask bit for bit.

template <typename T>
__global__ void __launch_bounds__(kThreads)
    dropout_kernel(const T* x, int64_t n, uint64_t seed, uint64_t first, float threshold, T scale,
                   T* y, uint8_t* mask) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const bool keep =
        uniform_float(philox4x32(seed, first + static_cast<uint64_t>(i)).v[0]) >= threshold;
    mask[i] = keep ? 1 : 0;
    y[i] = keep ? x[i] * scale : T(0);
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    dropout_backward_kernel(const T* g, const uint8_t* mask, int64_t n, T scale, T* dx) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    dx[i] = mask[i] ? g[i] * scale : T(0);
}

// ============================================================================================
// Host side: layouts, checks, launchers
// ============================================================================================

using kernels::dense;
using kernels::OutBuffer;

template <typename Fn>
void dispatch_float(DType dtype, Fn&& fn) {
  if (dtype == kFloat32)
    fn(float{});
  else
    fn(double{});
}

unsigned grid_size(const char* op, int64_t blocks) {
  SELFSUP_CHECK(blocks <= INT32_MAX, op, ": ", blocks, " blocks exceed the CUDA grid limit");
  return static_cast<unsigned>(blocks);
}

// Blocks for a grid-stride loop over n elements.
unsigned stride_blocks(int64_t n) {
  return static_cast<unsigned>(std::clamp<int64_t>(ceil_div(n, kThreads), 1, kMaxGridBlocks));
}

// Blocks that fill the GPU: 8 resident 256-thread blocks per SM.
int64_t target_blocks() {
  static const int64_t blocks = [] {
    int device = 0, sms = 0;
    check(cudaGetDevice(&device), "norm: cudaGetDevice");
    check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device),
          "norm: cudaDeviceGetAttribute(multiprocessor count)");
    return int64_t{8} * std::max(sms, 1);
  }();
  return blocks;
}

// ---- where the tensors must be (the argument checks themselves are in kernels/norm_plan.h) ----

void check_on_cuda(const Tensor& t, const char* op, const char* name) {
  SELFSUP_CHECK(t.device().is_cuda(), op, ": ", name, " must be on the CUDA device, got ",
                t.device().str());
}

void check_on_input_device(const Tensor& t, const Device& device, const char* op,
                           const char* name) {
  SELFSUP_CHECK(t.device() == device, op, ": ", name, " is on ", t.device().str(),
                " but the input is on ", device.str());
}

constexpr norm_plan::Devices kCuda{check_on_cuda, check_on_input_device};

using norm_plan::ChannelGeometry;
using norm_plan::keep_scale;
using norm_plan::RowGeometry;

// ---- launchers ----

// The per-channel sums of a ChannelTerm, split over enough blocks to fill the GPU. Returns the
// [C, splits] Sum2 buffer (as bytes) and sets splits.
template <typename T>
Tensor channel_sums(const char* op, const ChannelTerm<T>& term, const ChannelGeometry& g,
                    const Device& device, int& splits) {
  const int64_t target = target_blocks();
  int64_t s = 1;
  if (g.S > 1) {
    s = std::clamp<int64_t>(ceil_div(target, g.C), 1,
                            std::max<int64_t>(1, g.count() / (4 * kThreads)));
  } else {
    s = std::clamp<int64_t>(
        ceil_div(target, ceil_div(g.C, kColumnLanes)), 1,
        std::min<int64_t>(65535, std::max<int64_t>(1, g.N / (4 * kColumnRows))));
  }
  splits = static_cast<int>(s);
  Tensor buf =
      empty({g.C * s * static_cast<int64_t>(sizeof(Sum2))}, TensorOptions(kUInt8).device(device));
  Sum2* partial = static_cast<Sum2*>(buf.raw_data_ptr());
  if (g.S > 1) {
    channel_sums_planes<T><<<grid_size(op, g.C * s), kThreads>>>(term, g.N, splits, partial);
  } else {
    const dim3 grid(grid_size(op, ceil_div(g.C, kColumnLanes)), static_cast<unsigned>(s));
    column_sums<ChannelTerm<T>><<<grid, dim3(kColumnLanes, kColumnRows)>>>(term, g.N, g.C, partial);
  }
  check_launch(op);
  return buf;
}

// y = x * coef[c] + coef[C + c] over [N, C, S] (contiguous x and y).
template <typename T>
void launch_channel_affine(const char* op, const T* x, const ChannelGeometry& g, const T* coef,
                           T* y) {
  const int64_t n = g.numel();
  if (n < INT32_MAX)
    channel_affine<T, uint32_t>
        <<<stride_blocks(n), kThreads>>>(x, static_cast<uint32_t>(n), static_cast<uint32_t>(g.C),
                                         static_cast<uint32_t>(g.S), coef, y);
  else
    channel_affine<T, int64_t><<<stride_blocks(n), kThreads>>>(x, n, g.C, g.S, coef, y);
  check_launch(op);
}

template <typename T>
void launch_grad_input(const char* op, const T* gp, const T* xp, const ChannelGeometry& g,
                       const T* coef, T* dx) {
  const int64_t n = g.numel();
  if (n < INT32_MAX)
    batch_norm_grad_input<T, uint32_t><<<stride_blocks(n), kThreads>>>(
        gp, xp, static_cast<uint32_t>(n), static_cast<uint32_t>(g.C), static_cast<uint32_t>(g.S),
        coef, dx);
  else
    batch_norm_grad_input<T, int64_t>
        <<<stride_blocks(n), kThreads>>>(gp, xp, n, g.C, g.S, coef, dx);
  check_launch(op);
}

// A group per row: a warp for rows up to 1024 values, else a block.
template <typename T, template <typename, int> class Kernel>
void launch_layer_norm_rows(const char* op, const LayerNormArgs<T>& p) {
  if (p.R == 0) return;
  if (p.D <= kWarpRowMax)
    Kernel<T, kWarpSize>::launch(grid_size(op, ceil_div(p.R, kWarps)), p);
  else
    Kernel<T, kThreads>::launch(grid_size(op, p.R), p);
  check_launch(op);
}

template <typename T, int kGroup>
struct ForwardRows {
  static void launch(unsigned blocks, const LayerNormArgs<T>& p) {
    layer_norm_rows<T, kGroup><<<blocks, kThreads>>>(p);
  }
};

template <typename T, int kGroup>
struct BackwardRows {
  static void launch(unsigned blocks, const LayerNormArgs<T>& p) {
    layer_norm_backward_rows<T, kGroup><<<blocks, kThreads>>>(p);
  }
};

}  // namespace

// ============================================================================================
// Public entry points
// ============================================================================================

void batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& running_mean,
                Tensor& running_var, bool training, double momentum, double eps, Tensor& out,
                Tensor& save_mean, Tensor& save_invstd) {
  const char* op = "batch_norm";
  const ChannelGeometry g =
      norm_plan::check_batch_norm(op, x, weight, bias, running_mean, running_var, training, eps,
                                  out, save_mean, save_invstd, kCuda);
  if (g.C == 0) return;
  const Tensor xd = dense(x);
  OutBuffer y(out);
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xp = xd.data_ptr<T>();                                               // [N, C, S]
    Tensor coef = empty({2 * g.C}, TensorOptions(x.dtype()).device(x.device()));  // [2, C]
    Tensor partial;  // [C, splits] Sum2, training only
    BatchNormFinal<T> f{};
    if (training && g.numel() > 0) {
      // The centers: each channel's first value, x[0, c, 0], i.e. xp[c * S].
      f.first = ChannelVec<T>{const_cast<T*>(xp), g.S};
      const ChannelTerm<T> term{xp, nullptr, f.first, g.C, g.S};
      partial = channel_sums(op, term, g, x.device(), f.splits);
      f.partial = static_cast<const Sum2*>(partial.raw_data_ptr());
    }
    f.C = g.C;
    f.M = static_cast<double>(g.count());
    f.momentum = momentum;
    f.eps = eps;
    f.weight = channel_vec<T>(weight);
    f.bias = channel_vec<T>(bias);
    f.running_mean = channel_vec<T>(running_mean);
    f.running_var = channel_vec<T>(running_var);
    f.save_mean = channel_vec<T>(save_mean);
    f.save_invstd = channel_vec<T>(save_invstd);
    f.coef = coef.data_ptr<T>();
    batch_norm_finalize<T><<<grid_size(op, ceil_div(g.C, kThreads)), kThreads>>>(f);
    check_launch(op);
    launch_channel_affine(op, xp, g, f.coef, y.data<T>());
  });
  y.commit();
  if (training && running_mean.defined()) {
    running_mean.bump_version();
    running_var.bump_version();
  }
  if (save_mean.defined()) save_mean.bump_version();
  if (save_invstd.defined()) save_invstd.bump_version();
}

void batch_norm_backward(const Tensor& grad_out, const Tensor& x, const Tensor& weight,
                         const Tensor& save_mean, const Tensor& save_invstd, Tensor& grad_x,
                         Tensor& grad_w, Tensor& grad_b) {
  const char* op = "batch_norm_backward";
  const ChannelGeometry g = norm_plan::check_batch_norm_backward(
      op, grad_out, x, weight, save_mean, save_invstd, grad_x, grad_w, grad_b, kCuda);
  if (g.C == 0) return;
  const Tensor xd = dense(x), gd = dense(grad_out);
  OutBuffer dx(grad_x);
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xp = xd.data_ptr<T>();  // [N, C, S]
    const T* gp = gd.data_ptr<T>();  // [N, C, S]
    BatchNormBackwardFinal<T> f{};
    f.C = g.C;
    f.M = static_cast<double>(g.count());
    f.weight = channel_vec<T>(weight);
    f.save_mean = channel_vec<T>(save_mean);
    f.save_invstd = channel_vec<T>(save_invstd);
    f.grad_w = channel_vec<T>(grad_w);
    f.grad_b = channel_vec<T>(grad_b);
    Tensor partial;
    if (g.numel() > 0) {
      partial =
          channel_sums(op, ChannelTerm<T>{xp, gp, f.save_mean, g.C, g.S}, g, x.device(), f.splits);
    } else {  // no values: every sum is 0
      f.splits = 1;
      partial = zeros({g.C * static_cast<int64_t>(sizeof(Sum2))},
                      TensorOptions(kUInt8).device(x.device()));
    }
    f.partial = static_cast<const Sum2*>(partial.raw_data_ptr());
    Tensor coef;  // [4, C]
    if (grad_x.defined()) {
      coef = empty({4 * g.C}, TensorOptions(x.dtype()).device(x.device()));
      f.coef = coef.data_ptr<T>();
    }
    batch_norm_backward_finalize<T><<<grid_size(op, ceil_div(g.C, kThreads)), kThreads>>>(f);
    check_launch(op);
    if (grad_x.defined() && g.numel() > 0) launch_grad_input(op, gp, xp, g, f.coef, dx.data<T>());
  });
  dx.commit();
  if (grad_w.defined()) grad_w.bump_version();
  if (grad_b.defined()) grad_b.bump_version();
}

void batch_norm_eval_backward(const Tensor& grad_out, const Tensor& weight,
                              const Tensor& save_invstd, Tensor& grad_x) {
  const char* op = "batch_norm_eval_backward";
  const ChannelGeometry g =
      norm_plan::check_batch_norm_eval_backward(op, grad_out, weight, save_invstd, grad_x, kCuda);
  if (g.numel() == 0) return;
  const Tensor gd = dense(grad_out);
  OutBuffer dx(grad_x);
  dispatch_float(grad_out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    Tensor coef = empty({2 * g.C}, TensorOptions(grad_out.dtype()).device(grad_out.device()));
    batch_norm_eval_coef<T><<<grid_size(op, ceil_div(g.C, kThreads)), kThreads>>>(
        g.C, channel_vec<T>(weight), channel_vec<T>(save_invstd), coef.data_ptr<T>());
    check_launch(op);
    launch_channel_affine(op, gd.data_ptr<T>(), g, coef.data_ptr<T>(), dx.data<T>());
  });
  dx.commit();
}

void layer_norm(const Tensor& x, int64_t normalized_ndim, const Tensor& weight, const Tensor& bias,
                double eps, Tensor& out, Tensor& mean, Tensor& rstd) {
  const char* op = "layer_norm";
  const RowGeometry g = norm_plan::check_layer_norm(op, x, normalized_ndim, weight, bias, eps, out,
                                                    mean, rstd, kCuda);
  const Tensor xd = dense(x), wd = dense(weight), bd = dense(bias);
  OutBuffer y(out), mb(mean), rb(rstd);
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    LayerNormArgs<T> p{};
    p.x = xd.data_ptr<T>();
    p.weight = wd.defined() ? wd.data_ptr<T>() : nullptr;
    p.bias = bd.defined() ? bd.data_ptr<T>() : nullptr;
    p.out = y.data<T>();
    p.mean = mb.data<T>();
    p.rstd = rb.data<T>();
    p.R = g.M;
    p.D = g.D;
    p.eps = eps;
    launch_layer_norm_rows<T, ForwardRows>(op, p);
  });
  y.commit();
  mb.commit();
  rb.commit();
}

void layer_norm_backward(const Tensor& grad_out, const Tensor& x, int64_t normalized_ndim,
                         const Tensor& weight, const Tensor& mean, const Tensor& rstd,
                         Tensor& grad_x, Tensor& grad_w, Tensor& grad_b) {
  const char* op = "layer_norm_backward";
  const RowGeometry g = norm_plan::check_layer_norm_backward(
      op, grad_out, x, normalized_ndim, weight, mean, rstd, grad_x, grad_w, grad_b, kCuda);
  const Tensor xd = dense(x), gd = dense(grad_out), wd = dense(weight);
  const Tensor md = dense(mean), rd = dense(rstd);
  OutBuffer dx(grad_x), dw(grad_w), db(grad_b);
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    LayerNormArgs<T> p{};
    p.x = xd.data_ptr<T>();
    p.g = gd.data_ptr<T>();
    p.weight = wd.defined() ? wd.data_ptr<T>() : nullptr;
    p.mean = md.data_ptr<T>();
    p.rstd = rd.data_ptr<T>();
    p.out = dx.data<T>();
    p.R = g.M;
    p.D = g.D;
    // dw and db first: they re-read grad_out, which dx may overwrite when the caller hands the
    // same memory for both (the CPU kernel allows it).
    if (grad_w.defined() || grad_b.defined()) {
      // dw, db: column sums over the R rows, split over blocks when there are few columns.
      const int64_t col_blocks = ceil_div(g.D, kColumnLanes);
      const int64_t splits = std::clamp<int64_t>(
          ceil_div(target_blocks(), col_blocks), 1,
          std::min<int64_t>(65535, std::max<int64_t>(1, g.M / (4 * kColumnRows))));
      const Shape bytes{g.D * splits * static_cast<int64_t>(sizeof(Sum2))};
      const TensorOptions opts = TensorOptions(kUInt8).device(x.device());
      Tensor partial = g.M > 0 ? empty(bytes, opts) : zeros(bytes, opts);  // no rows: sums of 0
      Sum2* part = static_cast<Sum2*>(partial.raw_data_ptr());
      if (g.M > 0) {
        const LayerNormWbTerm<T> term{p.x, p.g, p.mean, p.rstd, g.D};
        const dim3 grid(grid_size(op, col_blocks), static_cast<unsigned>(splits));
        column_sums<LayerNormWbTerm<T>>
            <<<grid, dim3(kColumnLanes, kColumnRows)>>>(term, g.M, g.D, part);
        check_launch(op);
      }
      layer_norm_wb_finalize<T><<<grid_size(op, ceil_div(g.D, kThreads)), kThreads>>>(
          part, static_cast<int>(splits), g.D, dw.data<T>(), db.data<T>());
      check_launch(op);
    }
    if (p.out) launch_layer_norm_rows<T, BackwardRows>(op, p);
  });
  dx.commit();
  dw.commit();
  db.commit();
}

void dropout(const Tensor& x, double p, Generator& gen, Tensor& out, Tensor& mask) {
  const char* op = "dropout";
  norm_plan::check_dropout(op, x, p, out, mask, kCuda);
  // As on the CPU: the draw consumes numel counters whatever p.
  const uint64_t seed = gen.seed();
  const uint64_t first = gen.advance(static_cast<uint64_t>(x.numel()));
  const int64_t n = x.numel();
  if (n == 0) return;
  const Tensor xd = dense(x);
  OutBuffer y(out), m(mask);
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    dropout_kernel<T><<<stride_blocks(n), kThreads>>>(
        xd.data_ptr<T>(), n, seed, first, static_cast<float>(p), static_cast<T>(keep_scale(p)),
        y.data<T>(), m.data<uint8_t>());
    check_launch(op);
  });
  y.commit();
  m.commit();
}

void dropout_backward(const Tensor& grad_out, const Tensor& mask, double p, Tensor& grad_x) {
  const char* op = "dropout_backward";
  norm_plan::check_dropout_backward(op, grad_out, mask, p, grad_x, kCuda);
  const int64_t n = grad_out.numel();
  if (n == 0) return;
  const Tensor gd = dense(grad_out), md = dense(mask);
  OutBuffer dx(grad_x);
  dispatch_float(grad_out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    dropout_backward_kernel<T><<<stride_blocks(n), kThreads>>>(
        gd.data_ptr<T>(), md.data_ptr<uint8_t>(), n, static_cast<T>(keep_scale(p)), dx.data<T>());
    check_launch(op);
  });
  dx.commit();
}

}  // namespace selfsup::cuda
