// ============================================================================================
// Fused softmax cross-entropy
// ============================================================================================
//
// For each of R rows of logits x [R, C] (row-major), with z = s * x:
//   lse_i       = max_j z_ij + log sum_j exp(z_ij - max_j z_ij)     (stable logsumexp)
//   loss        = (1/R) sum_i (lse_i - z_i,t_i)                        t_i the row's target
//   grad_ij     = (s/R) (exp(z_ij - lse_i) - [j == t_i])
// The targets are class indices (s = 1) or NT-Xent's layout: R = C = 2N, t_i = (i + N) mod 2N,
// the diagonal left out (z_ii = -inf: exp gives 0, so its probability and gradient are 0), and
// s = 1/temperature. See softmax_xent.h.
//
// The two numbers that bound it:
//   FLOPs      ~5 R C (scale, max, subtract, exp, add; an exp is a few more)
//   min bytes  4 R C read + 4 R C written (the gradient): 8 bytes per element
// ~0.6 FLOP per byte: bound by memory bandwidth. The goal is to touch each logit as few times
// as possible: the statistics of a row need one full pass before its first gradient element
// can be written, so the best is two reads (the second usually from L2) and one write.
//
// Online softmax: the running maximum m and the sum s = sum exp(z - m) are kept together; when
// a larger value arrives, s is rescaled by exp(m_old - m_new). One pass gives both, and two
// partial states merge the same way, so threads, warps and blocks can split a row freely
// (common.cuh: push_max_sum, merge_max_sum, warp_max_sum, block_max_sum).
//
// The per-row losses go to a scratch vector that one small kernel sums in a fixed order, so the
// loss is deterministic (no atomics).
#include <cuda_runtime.h>

#include <cstdint>

#include "core/error.h"
#include "core/views.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/runtime.h"
#include "kernels/cuda/softmax_xent.h"

namespace selfsup::cuda {

namespace {

struct XentArgs {
  const float* logits;  // [rows, cols] row-major
  int rows, cols;
  const int64_t* targets;       // [rows] class indices, or null for the NT-Xent layout
  float scale;                  // s: z = s * x
  bool mask_diagonal;           // NT-Xent: z_ii = -inf
  float* grad;                  // [rows, cols] or null (skip the gradient)
  float grad_scale;             // s / rows
  float* row_loss;              // [rows] scratch: lse_i - z_i,t_i
  unsigned long long* bad_row;  // the first row whose target is out of range (atomicMin), or null
};

__device__ __forceinline__ int target_of(const XentArgs& x, int row) {
  if (!x.targets) return (row + x.rows / 2) % x.rows;
  const int64_t t = x.targets[row];
  return t >= 0 && t < x.cols ? static_cast<int>(t) : -1;  // -1: out of range
}

// z_ij from the stored logit v = x_ij.
__device__ __forceinline__ float scaled(const XentArgs& x, int row, int col, float v) {
  return x.mask_diagonal && col == row ? -INFINITY : x.scale * v;
}

// The row's loss from its logsumexp; NaN (and a note in bad_row) for a target out of range.
__device__ __forceinline__ void write_row_loss(const XentArgs& x, int row, int t, float lse) {
  if (t < 0) {
    if (x.bad_row) atomicMin(x.bad_row, static_cast<unsigned long long>(row));
    x.row_loss[row] = NAN;
    return;
  }
  x.row_loss[row] = lse - scaled(x, row, t, x.logits[static_cast<int64_t>(row) * x.cols + t]);
}

__device__ __forceinline__ float grad_of(const XentArgs& x, float z, float lse, bool is_target) {
  return x.grad_scale * (expf(z - lse) - (is_target ? 1.f : 0.f));
}

// ============================================================================================
// Version 1: separate kernels
// ============================================================================================
// The textbook split, one kernel per formula: row statistics (one thread walks a whole row,
// twice: max, then sum), softmax (one thread per element, into the gradient buffer), the row
// losses, and the gradient (one thread per element, in place). The logits are read three times
// and the probabilities written and read once more, and the statistics kernel has only R
// threads, so with few rows most of the GPU idles. No shared memory.

__global__ void xent_v1_row_stats(XentArgs x, float* lse) {  // lse [rows]
  const int row = blockIdx.x * blockDim.x + threadIdx.x;
  if (row >= x.rows) return;
  const float* in = x.logits + static_cast<int64_t>(row) * x.cols;
  float m = -INFINITY;
  for (int c = 0; c < x.cols; ++c)
    m = fmaxf(m, scaled(x, row, c, in[c]));
  float s = 0.f;
  for (int c = 0; c < x.cols; ++c)
    s += expf(scaled(x, row, c, in[c]) - m);
  lse[row] = m + logf(s);
}

__global__ void xent_v1_softmax(XentArgs x, const float* lse, float* probs) {  // probs [rows, cols]
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<int64_t>(x.rows) * x.cols) return;
  const int row = static_cast<int>(i / x.cols), col = static_cast<int>(i % x.cols);
  probs[i] = expf(scaled(x, row, col, x.logits[i]) - lse[row]);
}

__global__ void xent_v1_loss(XentArgs x, const float* lse) {
  const int row = blockIdx.x * blockDim.x + threadIdx.x;
  if (row >= x.rows) return;
  write_row_loss(x, row, target_of(x, row), lse[row]);
}

__global__ void xent_v1_gradient(XentArgs x) {  // x.grad holds the probabilities on entry
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<int64_t>(x.rows) * x.cols) return;
  const int row = static_cast<int>(i / x.cols), col = static_cast<int>(i % x.cols);
  x.grad[i] = x.grad_scale * (x.grad[i] - (col == target_of(x, row) ? 1.f : 0.f));
}

// ============================================================================================
// Version 2: fused, one block per row
// ============================================================================================
// One kernel: a block of 256 threads strides over its row once, each thread keeping an online
// (max, sum); a block reduction merges them into the row's logsumexp; then the same threads
// stride again to write the gradient. Logits are read twice (the second time mostly from L2),
// the gradient written once, and every row gets 256 threads however few rows there are.
// Cost: 256 bytes of shared memory for the reduction; two __syncthreads per reduction.

constexpr int kRowBlock = 256;

__global__ void __launch_bounds__(kRowBlock) xent_v2_block_per_row(XentArgs x) {
  __shared__ float scratch_max[32], scratch_sum[32];
  const int row = blockIdx.x;
  const float* in = x.logits + static_cast<int64_t>(row) * x.cols;
  MaxSum st{-INFINITY, 0.f};
  for (int c = threadIdx.x; c < x.cols; c += blockDim.x)
    st = push_max_sum(st, scaled(x, row, c, in[c]));
  st = block_max_sum(st, scratch_max, scratch_sum);
  const float lse = st.max + logf(st.sum);
  const int t = target_of(x, row);
  if (threadIdx.x == 0) write_row_loss(x, row, t, lse);
  if (!x.grad) return;
  float* out = x.grad + static_cast<int64_t>(row) * x.cols;
  for (int c = threadIdx.x; c < x.cols; c += blockDim.x)
    out[c] = grad_of(x, scaled(x, row, c, in[c]), lse, c == t);
}

// ============================================================================================
// Version 3: fused, one warp per row, float4 loads
// ============================================================================================
// For short rows (a few hundred classes, or NT-Xent with a batch of a few hundred) a 256-thread
// block per row is mostly idle and pays for its __syncthreads. Here a warp owns a row: the
// reduction is 5 shuffles and needs no shared memory or barrier, 8 rows share a block, and
// each lane moves 16 bytes per load and store when the rows are 16-byte aligned (cols a
// multiple of 4 and aligned buffers); otherwise it falls back to scalar accesses.

constexpr int kRowsPerBlock = 8;  // warps per block

__global__ void __launch_bounds__(kRowsPerBlock* kWarpSize)
    xent_v3_warp_per_row(XentArgs x, bool vec_ok) {
  const int row = blockIdx.x * kRowsPerBlock + threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;
  if (row >= x.rows) return;  // a whole warp leaves together, so the shuffles stay full
  const float* in = x.logits + static_cast<int64_t>(row) * x.cols;
  const int nvec = vec_ok ? x.cols / 4 : 0;  // float4 groups; the scalar loop takes the rest
  MaxSum st{-INFINITY, 0.f};
  for (int v = lane; v < nvec; v += kWarpSize) {
    const float4 q = load_float4(in + 4 * v);
    st = push_max_sum(st, scaled(x, row, 4 * v, q.x));
    st = push_max_sum(st, scaled(x, row, 4 * v + 1, q.y));
    st = push_max_sum(st, scaled(x, row, 4 * v + 2, q.z));
    st = push_max_sum(st, scaled(x, row, 4 * v + 3, q.w));
  }
  for (int c = 4 * nvec + lane; c < x.cols; c += kWarpSize)
    st = push_max_sum(st, scaled(x, row, c, in[c]));
  st = warp_max_sum(st);
  const float lse = st.max + logf(st.sum);
  const int t = target_of(x, row);
  if (lane == 0) write_row_loss(x, row, t, lse);
  if (!x.grad) return;
  float* out = x.grad + static_cast<int64_t>(row) * x.cols;
  for (int v = lane; v < nvec; v += kWarpSize) {
    const float4 q = load_float4(in + 4 * v);
    const int c = 4 * v;
    store_float4(out + c, make_float4(grad_of(x, scaled(x, row, c, q.x), lse, c == t),
                                      grad_of(x, scaled(x, row, c + 1, q.y), lse, c + 1 == t),
                                      grad_of(x, scaled(x, row, c + 2, q.z), lse, c + 2 == t),
                                      grad_of(x, scaled(x, row, c + 3, q.w), lse, c + 3 == t)));
  }
  for (int c = 4 * nvec + lane; c < x.cols; c += kWarpSize)
    out[c] = grad_of(x, scaled(x, row, c, in[c]), lse, c == t);
}

// ============================================================================================
// The mean over rows (every version)
// ============================================================================================
// One block sums the row losses in a fixed order: deterministic, and R is small next to R*C.

__global__ void __launch_bounds__(kRowBlock)
    xent_mean_of_rows(const float* row_loss, int rows, float* loss) {
  __shared__ float scratch[32];
  float s = 0.f;
  for (int i = threadIdx.x; i < rows; i += blockDim.x)
    s += row_loss[i];
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) *loss = s / static_cast<float>(rows);
}

// ============================================================================================
// Launcher
// ============================================================================================

void check_float_matrix(const char* op, const char* name, const Tensor& t, int64_t rows,
                        int64_t cols) {
  SELFSUP_CHECK(t.defined(), op, ": ", name, " is undefined");
  SELFSUP_CHECK(t.device().is_cuda(), op, ": ", name, " ", shape_str(t.shape()), " is on ",
                t.device().str(), ", expected the CUDA device");
  SELFSUP_CHECK(t.dtype() == kFloat32, op, ": ", name, " is ", dtype_name(t.dtype()),
                ", expected float32");
  SELFSUP_CHECK(t.shape() == Shape({rows, cols}), op, ": ", name, " has shape ",
                shape_str(t.shape()), ", expected ", shape_str({rows, cols}));
  SELFSUP_CHECK(t.is_contiguous(), op, ": ", name, " ", shape_str(t.shape()),
                " must be contiguous");
}

void check_loss(const char* op, const Tensor& loss) {
  SELFSUP_CHECK(
      loss.defined() && loss.device().is_cuda() && loss.dtype() == kFloat32 && loss.dim() == 0, op,
      ": loss must be a 0-d float32 tensor on the CUDA device");
}

void run(const char* op, XentArgs x, int version, float* loss) {
  Tensor row_loss = empty({x.rows}, Device::cuda());  // the caching allocator makes this cheap
  x.row_loss = row_loss.data_ptr<float>();
  if (version == kSoftmaxXentAuto) version = softmax_xent_auto_version(x.cols);
  const int64_t elements = static_cast<int64_t>(x.rows) * x.cols;
  const unsigned row_blocks = static_cast<unsigned>(ceil_div(x.rows, 256));
  const unsigned element_blocks = static_cast<unsigned>(ceil_div(elements, 256));
  switch (version) {
    case 1: {
      Tensor lse = empty({x.rows}, Device::cuda());
      float* l = lse.data_ptr<float>();
      xent_v1_row_stats<<<row_blocks, 256>>>(x, l);
      check_launch(op);
      xent_v1_loss<<<row_blocks, 256>>>(x, l);
      check_launch(op);
      if (x.grad) {
        xent_v1_softmax<<<element_blocks, 256>>>(x, l, x.grad);
        check_launch(op);
        xent_v1_gradient<<<element_blocks, 256>>>(x);
        check_launch(op);
      }
      break;
    }
    case 2:
      xent_v2_block_per_row<<<static_cast<unsigned>(x.rows), kRowBlock>>>(x);
      check_launch(op);
      break;
    case 3: {
      const bool vec_ok = x.cols % 4 == 0 && aligned16(x.logits) && (!x.grad || aligned16(x.grad));
      const unsigned blocks = static_cast<unsigned>(ceil_div(x.rows, kRowsPerBlock));
      xent_v3_warp_per_row<<<blocks, kRowsPerBlock * kWarpSize>>>(x, vec_ok);
      check_launch(op);
      break;
    }
  }
  xent_mean_of_rows<<<1, kRowBlock>>>(x.row_loss, x.rows, loss);
  check_launch(op);
}

void check_version(const char* op, int version) {
  SELFSUP_CHECK(version >= 0 && version <= kSoftmaxXentVersions, op, ": unknown version ", version,
                " (0 = auto, 1..", kSoftmaxXentVersions, ")");
}

}  // namespace

void softmax_cross_entropy(const Tensor& logits, const Tensor& targets, Tensor& loss,
                           Tensor& grad_logits, int version, bool check_targets) {
  const char* op = "softmax_cross_entropy";
  check_version(op, version);
  SELFSUP_CHECK(logits.defined() && logits.dim() == 2, op, ": logits must be [N, C]");
  const int64_t rows = logits.size(0), cols = logits.size(1);
  SELFSUP_CHECK(rows > 0 && cols > 0, op, ": empty logits ", shape_str(logits.shape()));
  SELFSUP_CHECK(rows <= INT32_MAX && cols <= INT32_MAX, op, ": logits ", shape_str(logits.shape()),
                " are too large for 32-bit indices");
  check_float_matrix(op, "logits", logits, rows, cols);
  SELFSUP_CHECK(targets.defined() && targets.device().is_cuda() && targets.dtype() == kInt64 &&
                    targets.shape() == Shape({rows}) && targets.is_contiguous(),
                op, ": targets must be a contiguous int64 [", rows, "] tensor on the CUDA device",
                " for logits ", shape_str(logits.shape()));
  check_loss(op, loss);
  if (grad_logits.defined()) check_float_matrix(op, "grad_logits", grad_logits, rows, cols);

  XentArgs x{};
  x.logits = logits.data_ptr<float>();
  x.rows = static_cast<int>(rows);
  x.cols = static_cast<int>(cols);
  x.targets = targets.data_ptr<int64_t>();
  x.scale = 1.f;
  x.grad = grad_logits.defined() ? grad_logits.data_ptr<float>() : nullptr;
  x.grad_scale = 1.f / static_cast<float>(rows);
  Tensor bad;  // [1] holding the first bad row, or all ones (no bad row)
  if (check_targets) {
    bad = empty({1}, TensorOptions(kInt64).device(Device::cuda()));
    check(cudaMemset(bad.raw_data_ptr(), 0xff, sizeof(int64_t)), "softmax_cross_entropy memset");
    x.bad_row = static_cast<unsigned long long*>(bad.raw_data_ptr());
  }
  run(op, x, version, loss.data_ptr<float>());
  if (!check_targets) return;
  unsigned long long first_bad = 0;
  check(cudaMemcpy(&first_bad, x.bad_row, sizeof first_bad, cudaMemcpyDeviceToHost),
        "softmax_cross_entropy: reading the target check");
  if (first_bad == ~0ull) return;
  int64_t value = 0;
  check(cudaMemcpy(&value, x.targets + first_bad, sizeof value, cudaMemcpyDeviceToHost),
        "softmax_cross_entropy: reading the bad target");
  SELFSUP_CHECK(false, op, ": target ", value, " of row ", first_bad, " is out of range [0, ", cols,
                ")");
}

void nt_xent(const Tensor& sim, double temperature, Tensor& loss, Tensor& grad_sim, int version) {
  const char* op = "nt_xent";
  check_version(op, version);
  SELFSUP_CHECK(sim.defined() && sim.dim() == 2 && sim.size(0) == sim.size(1) &&
                    sim.size(0) % 2 == 0 && sim.size(0) > 0,
                op, ": sim must be [2N, 2N] with N > 0, got ",
                sim.defined() ? shape_str(sim.shape()) : std::string("undefined"));
  SELFSUP_CHECK(temperature > 0, op, ": temperature must be > 0, got ", temperature);
  const int64_t rows = sim.size(0);
  SELFSUP_CHECK(rows <= INT32_MAX, op, ": sim ", shape_str(sim.shape()), " is too large");
  check_float_matrix(op, "sim", sim, rows, rows);
  check_loss(op, loss);
  if (grad_sim.defined()) check_float_matrix(op, "grad_sim", grad_sim, rows, rows);

  XentArgs x{};
  x.logits = sim.data_ptr<float>();
  x.rows = x.cols = static_cast<int>(rows);
  x.targets = nullptr;
  x.scale = static_cast<float>(1.0 / temperature);
  x.mask_diagonal = true;
  x.grad = grad_sim.defined() ? grad_sim.data_ptr<float>() : nullptr;
  x.grad_scale = static_cast<float>(1.0 / temperature / static_cast<double>(rows));
  run(op, x, version, loss.data_ptr<float>());
}

}  // namespace selfsup::cuda
