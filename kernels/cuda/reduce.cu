// ============================================================================================
// Reductions: sum, mean, var, max / min / argmax, max_all / min_all, sum_backward, sum_to
// ============================================================================================
//
// The GPU twin of kernels/cpu/reduce.cpp (same contract, see reduce.h). With the input x of any
// shape and strides split into kept dims (one output element q each) and reduced dims (r):
//   sum    y_q = sum_r x_qr                     mean  y_q = sum_r x_qr / N
//   var    y_q = sum_r (x_qr - mean_q)^2 / (N - correction)        (two passes, see below)
//   max    y_q = max_r x_qr, i_q = the first r where it occurs (a NaN wins: the first NaN)
//   sum_backward  grad_x = grad_y broadcast back over the reduced dims (a strided copy)
//
// The two numbers that bound it: ~N adds per output (2-3N for var) against N * sizeof(T) bytes
// read: ~0.25 FLOP per byte, so every path is bound by memory bandwidth. The job is to read x
// once, in long coalesced runs, with enough blocks in flight to fill every SM.
//
// Accuracy: sums of float32 and float64 accumulate in double, as on the CPU, so results agree
// with it to the output's rounding (H100 runs double adds at half the float rate, far above
// what the memory feeds). The order of the additions differs from the CPU's; the tests allow
// for that with a tolerance that grows with N.
//
// How any reduction becomes one problem. The kept dims and the reduced dims each become a small
// loop nest (struct Nest, passed by value): size-1 dims dropped, dims ordered by x's stride and
// neighbours fused when every operand steps over them as one (as cpu/loops.h does). Output q
// (flat index over the kept nest) and element r (flat index over the reduced nest) then sit at
// x offset kept(q) + reduced(r), and q's output at out offset kept'(q). Each reduction is a
// small "op" (SumOp, ExtremeOp below): an accumulator type, push one element, merge two partial
// results (also across warp lanes), and emit the result; the kernels are written once for all.
//
// The paths, picked by the launcher:
//   1. rows, one warp per output: x's innermost dim is reduced and rows are short (N <= 1024):
//      a warp's lanes read consecutive elements of one row, then a shuffle butterfly merges.
//   2. rows, blocks per output: long rows. One 256-thread block per output, and when there are
//      too few outputs to fill the GPU (a full sum), each row is split across several blocks
//      whose partial results a small finalize kernel merges in a fixed order (deterministic).
//   3. columns: x's innermost dim is kept (e.g. sum over dim 0 of [N, D]), or rows of at most
//      16 elements with at least 32 of them (a warp per row would idle). The 32 lanes of a
//      warp take 32 neighbouring outputs, so each load instruction reads one 128-byte line; the
//      8 warps of a block take interleaved rows, merged through shared memory. The rows split
//      across blocks (grid.y) as in path 2 when there are few outputs.
// Variance runs a reduction twice: the means into a [outputs] double buffer, then the sums of
// squared deviations from them (one-pass sums of squares would cancel catastrophically when
// the mean is large against the spread). max / min keep (value, index) pairs; the merge takes
// the better value and, on a tie, the smaller index, so any merge order gives the first extreme.
// All indexing is 64-bit.
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "core/shape.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/reduce.h"
#include "kernels/cuda/runtime.h"
#include "kernels/reduce_plan.h"
#include "kernels/writable.h"

namespace selfsup::cuda {

namespace {

constexpr int kThreads = 256;                 // every kernel's block size
constexpr int kWarps = kThreads / kWarpSize;  // warps per block (8)
constexpr int kColumnRows = kWarps;           // path 3: blocks of 32 outputs x 8 row groups
constexpr int64_t kWarpRowMax = 1024;         // path 1 for rows up to this long
constexpr int64_t kTinyRow = 16;              // shorter rows take path 3 when there are many
constexpr int kMaxDims = 8;                   // dims per nest after fusing
constexpr int kMaxGridY = 65535;

// ============================================================================================
// Geometry: the loop nests and the offsets of a flat index
// ============================================================================================

// Operand slots of a nest: x, the output (sums, or max's values) and max's indices.
constexpr int kX = 0, kOut = 1, kIdx = 2;

// A loop nest of up to kMaxDims dims, outermost first, walked by up to three operands. Unused
// dims have size 1 and stride 0, so a nest of 0 dims is one element at offset 0.
struct Nest {
  int ndim;
  int64_t size[kMaxDims];
  int64_t stride[3][kMaxDims];  // [operand][dim], in elements
};

struct Offsets {
  int64_t x, out, idx;
};

// Offset of operand k at flat (row-major) index i of the nest. Dim 0 needs no modulo: when
// the loop is done, i is already the index along it.
__device__ __forceinline__ int64_t offset_of(const Nest& n, int k, int64_t i) {
  int64_t off = 0;
#pragma unroll
  for (int d = kMaxDims - 1; d > 0; --d) {
    if (d < n.ndim) {
      off += (i % n.size[d]) * n.stride[k][d];
      i /= n.size[d];
    }
  }
  return off + i * n.stride[k][0];
}

// The three operands' offsets at flat index i, sharing the divisions.
__device__ __forceinline__ Offsets offsets_of(const Nest& n, int64_t i) {
  Offsets o{0, 0, 0};
#pragma unroll
  for (int d = kMaxDims - 1; d > 0; --d) {
    if (d < n.ndim) {
      const int64_t c = i % n.size[d];
      o.x += c * n.stride[kX][d];
      o.out += c * n.stride[kOut][d];
      o.idx += c * n.stride[kIdx][d];
      i /= n.size[d];
    }
  }
  o.x += i * n.stride[kX][0];
  o.out += i * n.stride[kOut][0];
  o.idx += i * n.stride[kIdx][0];
  return o;
}

// ============================================================================================
// The ops: what is accumulated, how partial results merge, where the result goes
// ============================================================================================
// Each op gives: Acc (the partial result), identity(), push(acc, element, r) for elements in
// increasing r, merge(a, b), shuffle_xor(acc, mask) (a __shfl_xor_sync of every field),
// for_output(q) (the op with q's per-output data loaded) and emit(q, offsets, acc).

// Sums in double. With `mean` set it sums squared deviations (var's second pass).
template <typename T>
struct SumOp {
  using Acc = double;
  T* out;              // the result tensor at the kept offsets, or null when `dense` is set
  double* dense;       // [outputs] in nest order (var's means), or null
  double divisor;      // 1 (sum), N (mean), N - correction (var)
  const double* mean;  // [outputs] in nest order: sum (x - mean)^2 instead of x; or null
  double mu;           // this output's mean (for_output)

  __device__ static Acc identity() { return 0.0; }
  __device__ static Acc merge(Acc a, Acc b) { return a + b; }
  __device__ static Acc shuffle_xor(Acc a, int mask) { return __shfl_xor_sync(kFullMask, a, mask); }
  __device__ SumOp for_output(int64_t q) const {
    SumOp o = *this;
    o.mu = mean ? mean[q] : 0.0;
    return o;
  }
  __device__ Acc push(Acc a, T v, int64_t) const {
    const double d = static_cast<double>(v);
    if (!mean) return a + d;
    return a + (d - mu) * (d - mu);
  }
  __device__ void emit(int64_t q, const Offsets& off, Acc a) const {
    const double v = a / divisor;  // 0 / 0 = NaN: the mean of nothing
    if (dense)
      dense[q] = v;
    else
      out[off.out] = static_cast<T>(v);
  }
};

// __shfl_xor_sync has no 8-bit overload: uint8 travels as an int.
template <typename T>
__device__ __forceinline__ T shuffle_value(T v, int mask) {
  if constexpr (sizeof(T) < sizeof(int))
    return static_cast<T>(__shfl_xor_sync(kFullMask, static_cast<int>(v), mask));
  else
    return __shfl_xor_sync(kFullMask, v, mask);
}

// The max (kMax) or min and the index of its first occurrence.
template <typename T, bool kMax>
struct ExtremeOp {
  struct Acc {
    T value;
    int64_t index;  // -1: no element yet
  };
  T* values;         // at the kept offsets (out slot), or null (argmax)
  int64_t* indices;  // at the kept offsets (idx slot), or null (max_all)

  // Does v beat best? Strictly better, or v is a NaN and best is not (cpu::beats).
  __device__ static bool beats(T v, T best) {
    if constexpr (std::is_floating_point_v<T>) {
      if (v != v) return best == best;
    }
    return kMax ? v > best : v < best;
  }
  __device__ static Acc identity() { return {T{}, -1}; }
  // Commutative: the better value, on a tie (equal, or both NaN) the smaller index.
  __device__ static Acc merge(Acc a, Acc b) {
    if (a.index < 0) return b;
    if (b.index < 0) return a;
    if (beats(b.value, a.value)) return b;
    if (beats(a.value, b.value)) return a;
    return b.index < a.index ? b : a;
  }
  __device__ static Acc shuffle_xor(Acc a, int mask) {
    return {shuffle_value(a.value, mask), __shfl_xor_sync(kFullMask, a.index, mask)};
  }
  __device__ ExtremeOp for_output(int64_t) const { return *this; }
  __device__ Acc push(Acc a, T v, int64_t r) const { return merge(a, Acc{v, r}); }
  __device__ void emit(int64_t, const Offsets& off, Acc a) const {
    if (values) values[off.out] = a.value;
    if (indices) indices[off.idx] = a.index;
  }
};

// Butterfly over the 32 lanes: afterwards every lane holds the merge of all. All 32 lanes of
// the warp must call it (full mask).
template <typename Op>
__device__ __forceinline__ typename Op::Acc warp_reduce(typename Op::Acc a) {
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2)
    a = Op::merge(a, Op::shuffle_xor(a, offset));
  return a;
}

// Every thread of a kThreads-thread block must call it (it synchronises); the result is valid
// in thread 0. scratch: __shared__ [kWarps]. Called once per kernel, so no trailing sync.
template <typename Op>
__device__ typename Op::Acc block_reduce(typename Op::Acc a, typename Op::Acc* scratch) {
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  a = warp_reduce<Op>(a);
  if (lane == 0) scratch[warp] = a;
  __syncthreads();
  if (warp == 0) {  // a whole warp: the shuffles see all 32 lanes
    a = lane < kWarps ? scratch[lane] : Op::identity();
    a = warp_reduce<Op>(a);
  }
  return a;
}

// ============================================================================================
// Path 1: rows, one warp per output
// ============================================================================================
// For short rows along x's innermost dim (softmax-sized): lane l reads elements l, l+32, ...
// of its output's row, so a warp's loads are consecutive; a block of 8 warps takes 8 outputs.
// No shared memory, no __syncthreads: a warp past the last output leaves as a whole.

template <typename T, typename Op>
__global__ void __launch_bounds__(kThreads)
    reduce_rows_warp(const T* __restrict__ x, Nest kept, Nest red, int64_t outputs, int64_t count,
                     Op op) {
  const int lane = threadIdx.x % kWarpSize;
  const int64_t q = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / kWarpSize;
  if (q >= outputs) return;  // the same for every lane of the warp
  const Offsets off = offsets_of(kept, q);
  const Op o = op.for_output(q);
  typename Op::Acc a = Op::identity();
  for (int64_t r = lane; r < count; r += kWarpSize)
    a = o.push(a, x[off.x + offset_of(red, kX, r)], r);
  a = warp_reduce<Op>(a);
  if (lane == 0) o.emit(q, off, a);
}

// ============================================================================================
// Path 2: rows, blocks per output
// ============================================================================================
// For long rows. Block b owns output q = b / splits and the s = b % splits-th slice of its row;
// 256 threads stride through the slice, then a block reduction (shuffles, 8 partials through
// shared memory). With one split the block writes the output; with more, a partial result
// [q, s] that reduce_finalize merges. Shared memory: 8 accumulators (<= 128 bytes).

template <typename T, typename Op>
__global__ void __launch_bounds__(kThreads)
    reduce_rows_block(const T* __restrict__ x, Nest kept, Nest red, int64_t count, int splits,
                      Op op, typename Op::Acc* partial /* [outputs, splits] or null */) {
  __shared__ typename Op::Acc scratch[kWarps];
  const int64_t q = blockIdx.x / splits;
  const int s = static_cast<int>(blockIdx.x % splits);
  const int64_t begin = count * s / splits, end = count * (s + 1) / splits;
  const Offsets off = offsets_of(kept, q);
  const Op o = op.for_output(q);
  typename Op::Acc a = Op::identity();
  for (int64_t r = begin + threadIdx.x; r < end; r += kThreads)
    a = o.push(a, x[off.x + offset_of(red, kX, r)], r);
  a = block_reduce<Op>(a, scratch);
  if (threadIdx.x != 0) return;
  if (splits == 1)
    o.emit(q, off, a);
  else
    partial[q * splits + s] = a;
}

// ============================================================================================
// Path 3: columns
// ============================================================================================
// For reductions over dims other than x's innermost one. Block (32, 8): lane tx owns output
// q = 32 * blockIdx.x + tx, so a warp's 32 loads are 32 neighbouring outputs of one row (the
// kept nest is ordered innermost-last, so they are neighbours in memory when x allows); row
// group ty takes rows ty, ty + 8, ... of the slice blockIdx.y. The 8 partials of each output
// meet in shared memory (8 x 32 accumulators, <= 4 KiB) and row group 0 merges them in order.
// Threads past the last output carry the identity to the barrier.

template <typename T, typename Op>
__global__ void __launch_bounds__(kThreads)
    reduce_columns(const T* __restrict__ x, Nest kept, Nest red, int64_t outputs, int64_t count,
                   Op op, typename Op::Acc* partial /* [outputs, splits] or null */) {
  __shared__ typename Op::Acc part[kColumnRows][kWarpSize];
  const int splits = static_cast<int>(gridDim.y), s = static_cast<int>(blockIdx.y);
  const int64_t q = static_cast<int64_t>(blockIdx.x) * kWarpSize + threadIdx.x;
  const int64_t begin = count * s / splits, end = count * (s + 1) / splits;
  const bool active = q < outputs;
  Offsets off{0, 0, 0};
  Op o = op;
  typename Op::Acc a = Op::identity();
  if (active) {
    off = offsets_of(kept, q);
    o = op.for_output(q);
    for (int64_t r = begin + threadIdx.y; r < end; r += kColumnRows)
      a = o.push(a, x[off.x + offset_of(red, kX, r)], r);
  }
  part[threadIdx.y][threadIdx.x] = a;
  __syncthreads();
  if (threadIdx.y != 0 || !active) return;
  for (int j = 1; j < kColumnRows; ++j)
    a = Op::merge(a, part[j][threadIdx.x]);
  if (splits == 1)
    o.emit(q, off, a);
  else
    partial[q * splits + s] = a;
}

// ============================================================================================
// Finalize: merge the splits of paths 2 and 3
// ============================================================================================
// One thread per output merges its `splits` partial results in split order (deterministic).

template <typename Op>
__global__ void __launch_bounds__(kThreads)
    reduce_finalize(Nest kept, int64_t outputs, int splits,
                    const typename Op::Acc* __restrict__ partial /* [outputs, splits] */, Op op) {
  const int64_t q = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (q >= outputs) return;
  const typename Op::Acc* p = partial + q * splits;
  typename Op::Acc a = p[0];
  for (int s = 1; s < splits; ++s)
    a = Op::merge(a, p[s]);
  op.emit(q, offsets_of(kept, q), a);
}

// ============================================================================================
// sum_backward: the broadcast back
// ============================================================================================
// grad_x[i] = grad_y[g(i)] with g's stride 0 along the reduced dims: a strided copy, one
// element per thread in a grid-stride loop. The nest is ordered by grad_x's strides, so the
// writes are coalesced; the reads hit the (smaller, cached) grad_y. Slots: kX = grad_y,
// kOut = grad_x. Moves numel * (sizeof(T) written + at most sizeof(T) read).

template <typename T>
__global__ void __launch_bounds__(kThreads)
    broadcast_back(const T* __restrict__ grad_y, Nest nest, int64_t numel, T* __restrict__ grad_x) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < numel;
       i += step) {
    const Offsets o = offsets_of(nest, i);
    grad_x[o.out] = grad_y[o.x];
  }
}

// ============================================================================================
// Host side: nests, the launcher, checks
// ============================================================================================

// The nest of the dims d of `shape` with take[d], operand k stepping strides[k][d]. With
// lead >= 0 the dims are ordered by operand lead's stride, largest first (its innermost dim
// last); with lead < 0 they stay in row-major order, so the flat index is the row-major one.
// Neighbours that every operand steps over as one dim are fused.
Nest make_nest(const char* op, const Shape& shape, const std::vector<bool>& take,
               const std::array<Shape, 3>& strides, int lead) {
  std::vector<size_t> dims;
  for (size_t d = 0; d < shape.size(); ++d)
    if (take[d] && shape[d] != 1) dims.push_back(d);
  if (lead >= 0)
    std::stable_sort(dims.begin(), dims.end(),
                     [&](size_t a, size_t b) { return strides[lead][a] > strides[lead][b]; });
  std::vector<int64_t> size;
  std::array<std::vector<int64_t>, 3> step;
  for (size_t d : dims) {
    bool fuses = !size.empty();
    for (int k = 0; k < 3 && fuses; ++k)
      fuses = step[k].back() == strides[k][d] * shape[d];
    if (fuses) {  // the previous dim steps exactly over this one: one longer dim
      size.back() *= shape[d];
      for (int k = 0; k < 3; ++k)
        step[k].back() = strides[k][d];
      continue;
    }
    size.push_back(shape[d]);
    for (int k = 0; k < 3; ++k)
      step[k].push_back(strides[k][d]);
  }
  SELFSUP_CHECK(size.size() <= static_cast<size_t>(kMaxDims), op, ": the tensor of shape ",
                shape_str(shape), " has ", size.size(), " dims that cannot be merged (at most ",
                kMaxDims, " on the GPU)");
  Nest n{};
  n.ndim = static_cast<int>(size.size());
  for (int d = 0; d < kMaxDims; ++d) {
    const bool used = d < n.ndim;
    n.size[d] = used ? size[d] : 1;
    for (int k = 0; k < 3; ++k)
      n.stride[k][d] = used ? step[k][d] : 0;
  }
  return n;
}

int64_t nest_numel(const Nest& n) {
  int64_t count = 1;
  for (int d = 0; d < n.ndim; ++d)
    count *= n.size[d];
  return count;
}

// The smallest |stride| of x in the nest (INT64_MAX for no dims): where x's innermost dim is.
int64_t innermost_x_stride(const Nest& n) {
  int64_t s = INT64_MAX;
  for (int d = 0; d < n.ndim; ++d)
    s = std::min(s, n.stride[kX][d] < 0 ? -n.stride[kX][d] : n.stride[kX][d]);
  return s;
}

// A reduction: the kept nest (one output per element) and the reduced nest (one x element per
// element of it).
struct Problem {
  Nest kept, red;
  int64_t outputs, count;
};

// kept dims ordered by x's stride; reduced dims too (sum_order) or in row-major order (max/min,
// whose indices and tie-breaks count in row-major order). out_strides / idx_strides: the
// outputs' strides along x's dims (0 along the reduced ones; zeros for an absent output).
Problem make_problem(const char* op, const Tensor& x, const std::vector<bool>& reduced,
                     const Shape& out_strides, const Shape& idx_strides, bool sum_order) {
  const Shape zero(x.dim(), 0);
  std::vector<bool> kept(x.dim());
  for (int64_t d = 0; d < x.dim(); ++d)
    kept[d] = !reduced[d];
  Problem p;
  p.kept = make_nest(op, x.shape(), kept, {x.strides(), out_strides, idx_strides}, kX);
  p.red = make_nest(op, x.shape(), reduced, {x.strides(), zero, zero}, sum_order ? kX : -1);
  p.outputs = nest_numel(p.kept);
  p.count = nest_numel(p.red);
  return p;
}

// Enough blocks to fill the GPU: 8 resident 256-thread blocks per SM (2048 threads).
int64_t target_blocks() {
  static const int64_t blocks = [] {
    int device = 0, sms = 0;
    check(cudaGetDevice(&device), "reduce: cudaGetDevice");
    check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device),
          "reduce: cudaDeviceGetAttribute(multiprocessor count)");
    return int64_t{8} * std::max(sms, 1);
  }();
  return blocks;
}

unsigned grid_size(const char* op, int64_t blocks) {
  SELFSUP_CHECK(blocks <= INT32_MAX, op, ": ", blocks, " blocks exceed the CUDA grid limit");
  return static_cast<unsigned>(blocks);
}

// Picks the path (see the file comment) and launches it, plus the finalize kernel when the
// reduced elements are split across blocks.
template <typename T, typename Op>
void launch(const char* name, const T* x, const Device& device, const Problem& p, const Op& op) {
  using Acc = typename Op::Acc;
  if (p.outputs == 0) return;
  const int64_t target = target_blocks();
  // Rows of a few elements (e.g. the 3 channels of [N, 3]) would leave most of a warp idle:
  // many of them go down the column path instead, where every lane has an output.
  const bool tiny_rows = p.count <= kTinyRow && p.outputs >= kWarpSize;
  const bool rows = p.red.ndim > 0 && !tiny_rows &&
                    (p.kept.ndim == 0 || innermost_x_stride(p.red) < innermost_x_stride(p.kept));

  if (rows && p.count <= kWarpRowMax) {
    reduce_rows_warp<T, Op><<<grid_size(name, ceil_div(p.outputs, kWarps)), kThreads>>>(
        x, p.kept, p.red, p.outputs, p.count, op);
    check_launch(name);
    return;
  }

  // Split the rows when there are too few outputs to fill the GPU, keeping >= 4 elements per
  // thread (path 2) or >= 16 rows per row group (path 3) in every split.
  int64_t splits = 1, column_blocks = 0;
  if (rows) {
    splits = std::clamp<int64_t>(ceil_div(target, p.outputs), 1,
                                 std::max<int64_t>(1, p.count / (4 * kThreads)));
  } else {
    column_blocks = ceil_div(p.outputs, kWarpSize);
    splits = std::clamp<int64_t>(
        ceil_div(target, column_blocks), 1,
        std::min<int64_t>(kMaxGridY, std::max<int64_t>(1, p.count / (16 * kColumnRows))));
  }
  Tensor partial_buffer;  // [outputs, splits] Acc; freed after the launches are queued
  Acc* partial = nullptr;
  if (splits > 1) {
    partial_buffer = empty({p.outputs * splits * static_cast<int64_t>(sizeof(Acc))},
                           TensorOptions(kUInt8).device(device));
    partial = static_cast<Acc*>(partial_buffer.raw_data_ptr());
  }

  if (rows) {
    reduce_rows_block<T, Op><<<grid_size(name, p.outputs * splits), kThreads>>>(
        x, p.kept, p.red, p.count, static_cast<int>(splits), op, partial);
  } else {
    const dim3 grid(grid_size(name, column_blocks), static_cast<unsigned>(splits));
    reduce_columns<T, Op>
        <<<grid, dim3(kWarpSize, kColumnRows)>>>(x, p.kept, p.red, p.outputs, p.count, op, partial);
  }
  check_launch(name);
  if (splits > 1) {
    reduce_finalize<Op><<<grid_size(name, ceil_div(p.outputs, kThreads)), kThreads>>>(
        p.kept, p.outputs, static_cast<int>(splits), partial, op);
    check_launch(name);
  }
}

// ---- argument checks (the CPU's, for device tensors) ----

void check_on_gpu(const char* op, const char* name, const Tensor& t) {
  SELFSUP_CHECK(t.defined(), op, ": ", name, " is undefined");
  SELFSUP_CHECK(t.device().is_cuda(), op, ": expected ", name, " on the CUDA device, got one on ",
                t.device().str(), " of shape ", shape_str(t.shape()));
}

void check_float_input(const char* op, const Tensor& x) {
  check_on_gpu(op, "the input", x);
  SELFSUP_CHECK(is_floating(x.dtype()), op, ": expected a float32 or float64 tensor, got ",
                dtype_name(x.dtype()), " of shape ", shape_str(x.shape()));
}

// out must be on x's device, of the result's shape and dtype, and write no element twice.
void check_out(const char* op, const Tensor& out, const Shape& shape, DType dtype,
               const Tensor& x) {
  check_on_gpu(op, "out", out);
  SELFSUP_CHECK(out.device() == x.device(), op, ": out is on ", out.device().str(),
                " but the input is on ", x.device().str());
  kernels::check_not_expanded(op, "out", out);
  reduce_plan::check_result(op, out, shape, dtype, x);
}

std::vector<bool> reduced_mask(const Tensor& x, const std::vector<int64_t>& dims, const char* op) {
  return reduce_plan::reduced_mask(x.dim(), dims, op);
}

// out's strides along x's dims (0 along the reduced ones). out has one dim per dim of x
// (keepdim) or one per kept dim.
Shape strides_along_x(const Tensor& x, const std::vector<bool>& reduced, const Tensor& out) {
  Shape s(x.dim(), 0);
  const bool keepdim = out.dim() == x.dim();
  for (int64_t d = 0, j = 0; d < x.dim(); ++d) {
    if (reduced[d]) continue;
    s[d] = out.stride(keepdim ? d : j);
    ++j;
  }
  return s;
}

// out = (sum over the flagged dims) / divisor: sum (1), mean (N), sum_to (1).
void sum_into(const char* op, const Tensor& x, const std::vector<bool>& reduced,
              const Shape& out_strides, bool divide, Tensor& out) {
  const Problem p = make_problem(op, x, reduced, out_strides, Shape(x.dim(), 0), true);
  const double divisor = divide ? static_cast<double>(p.count) : 1.0;
  auto run = [&](auto tag) {
    using T = decltype(tag);
    launch(op, x.data_ptr<T>(), x.device(), p,
           SumOp<T>{out.data_ptr<T>(), nullptr, divisor, nullptr, 0.0});
  };
  if (x.dtype() == kFloat32)
    run(float{});
  else
    run(double{});
  out.bump_version();
}

// Values (optional) and indices of the max (kMax) or min along `dim`.
template <bool kMax>
void extreme_dim(const char* op, const Tensor& x, int64_t dim, bool keepdim, Tensor* values,
                 Tensor& indices) {
  check_on_gpu(op, "the input", x);
  const int64_t d = normalize_dim(dim, x.dim(), op);
  const Shape shape = reduced_shape(x.shape(), {d}, keepdim, op);
  if (values) check_out(op, *values, shape, x.dtype(), x);
  check_out(op, indices, shape, kInt64, x);
  const int64_t n = x.dim() == 0 ? 1 : x.size(d);
  SELFSUP_CHECK(n > 0, op, ": dim ", d, " of the tensor of shape ", shape_str(x.shape()),
                " is empty, so it has no ", kMax ? "maximum" : "minimum");
  std::vector<bool> reduced(x.dim(), false);
  if (x.dim() > 0) reduced[d] = true;
  const Shape value_strides = values ? strides_along_x(x, reduced, *values) : Shape(x.dim(), 0);
  const Problem p =
      make_problem(op, x, reduced, value_strides, strides_along_x(x, reduced, indices), false);
  dispatch_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    launch(
        op, x.data_ptr<T>(), x.device(), p,
        ExtremeOp<T, kMax>{values ? values->data_ptr<T>() : nullptr, indices.data_ptr<int64_t>()});
  });
  if (values) values->bump_version();
  indices.bump_version();
}

// The max (kMax) or min of all elements into a 0-d tensor.
template <bool kMax>
void extreme_all(const char* op, const Tensor& x, Tensor& out) {
  check_on_gpu(op, "the input", x);
  check_out(op, out, Shape{}, x.dtype(), x);
  SELFSUP_CHECK(x.numel() > 0, op, ": the tensor of shape ", shape_str(x.shape()),
                " is empty, so it has no ", kMax ? "maximum" : "minimum");
  const Shape zero(x.dim(), 0);
  const Problem p = make_problem(op, x, std::vector<bool>(x.dim(), true), zero, zero, false);
  dispatch_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    launch(op, x.data_ptr<T>(), x.device(), p, ExtremeOp<T, kMax>{out.data_ptr<T>(), nullptr});
  });
  out.bump_version();
}

}  // namespace

// ============================================================================================
// Public entry points
// ============================================================================================

void sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, Tensor& out) {
  const char* op = "sum";
  check_float_input(op, x);
  check_out(op, out, reduced_shape(x.shape(), dims, keepdim, op), x.dtype(), x);
  const std::vector<bool> reduced = reduced_mask(x, dims, op);
  sum_into(op, x, reduced, strides_along_x(x, reduced, out), false, out);
}

void mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, Tensor& out) {
  const char* op = "mean";
  check_float_input(op, x);
  check_out(op, out, reduced_shape(x.shape(), dims, keepdim, op), x.dtype(), x);
  const std::vector<bool> reduced = reduced_mask(x, dims, op);
  sum_into(op, x, reduced, strides_along_x(x, reduced, out), true, out);
}

void var(const Tensor& x, const std::vector<int64_t>& dims, int64_t correction, bool keepdim,
         Tensor& out) {
  const char* op = "var";
  check_float_input(op, x);
  check_out(op, out, reduced_shape(x.shape(), dims, keepdim, op), x.dtype(), x);
  SELFSUP_CHECK(correction >= 0, "var: correction must be >= 0, got ", correction);
  const std::vector<bool> reduced = reduced_mask(x, dims, op);
  const Problem p =
      make_problem(op, x, reduced, strides_along_x(x, reduced, out), Shape(x.dim(), 0), true);
  if (p.outputs == 0) return;
  const double count = static_cast<double>(p.count);
  const double denom = static_cast<double>(std::max<int64_t>(p.count - correction, 0));
  // Pass 1 writes the means (double, in nest order) that pass 2 subtracts.
  Tensor means = empty({p.outputs}, TensorOptions(kFloat64).device(x.device()));
  double* pm = means.data_ptr<double>();
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data_ptr<T>();
    launch(op, px, x.device(), p, SumOp<T>{nullptr, pm, count, nullptr, 0.0});
    launch(op, px, x.device(), p, SumOp<T>{out.data_ptr<T>(), nullptr, denom, pm, 0.0});
  };
  if (x.dtype() == kFloat32)
    run(float{});
  else
    run(double{});
  out.bump_version();
}

void max(const Tensor& x, int64_t dim, bool keepdim, Tensor& values, Tensor& indices) {
  extreme_dim<true>("max", x, dim, keepdim, &values, indices);
}

void min(const Tensor& x, int64_t dim, bool keepdim, Tensor& values, Tensor& indices) {
  extreme_dim<false>("min", x, dim, keepdim, &values, indices);
}

void argmax(const Tensor& x, int64_t dim, bool keepdim, Tensor& out) {
  extreme_dim<true>("argmax", x, dim, keepdim, nullptr, out);
}

void max_all(const Tensor& x, Tensor& out) {
  extreme_all<true>("max_all", x, out);
}

void min_all(const Tensor& x, Tensor& out) {
  extreme_all<false>("min_all", x, out);
}

// ============================================================================================
// Backward helpers
// ============================================================================================

void sum_backward(const Tensor& grad_y, const Shape& x_shape, const std::vector<int64_t>& dims,
                  Tensor& grad_x) {
  const char* op = "sum_backward";
  check_float_input(op, grad_y);
  check_out(op, grad_x, x_shape, grad_y.dtype(), grad_y);
  const int64_t nd = static_cast<int64_t>(x_shape.size());
  const Shape gstrides = reduce_plan::sum_backward_grad_strides(grad_y, x_shape, dims, op);
  const int64_t numel = shape_numel(x_shape);
  if (numel == 0) return;
  const Nest nest = make_nest(op, x_shape, std::vector<bool>(nd, true),
                              {gstrides, grad_x.strides(), Shape(nd, 0)}, kOut);
  const unsigned blocks =
      grid_size(op, std::min<int64_t>(ceil_div(numel, kThreads), 4 * target_blocks()));
  auto run = [&](auto tag) {
    using T = decltype(tag);
    broadcast_back<T>
        <<<blocks, kThreads>>>(grad_y.data_ptr<T>(), nest, numel, grad_x.data_ptr<T>());
    check_launch(op);
  };
  if (grad_y.dtype() == kFloat32)
    run(float{});
  else
    run(double{});
  grad_x.bump_version();
}

void sum_to(const Tensor& x, const Shape& shape, Tensor& out) {
  const char* op = "sum_to";
  check_float_input(op, x);
  check_out(op, out, shape, x.dtype(), x);
  // Sum the leading dims that broadcasting added and the dims it stretched from 1.
  const std::vector<bool> reduced = reduce_plan::sum_to_reduced_dims(x.shape(), shape, op);
  const int64_t lead = x.dim() - static_cast<int64_t>(shape.size());
  Shape out_strides(x.dim(), 0);
  for (int64_t d = 0; d < x.dim(); ++d)
    if (!reduced[d]) out_strides[d] = out.stride(d - lead);
  sum_into(op, x, reduced, out_strides, false, out);
}

}  // namespace selfsup::cuda
