// ============================================================================================
// Multi-tensor updates: EMA, SGD with momentum, AdamW, LARS
// ============================================================================================
//
// A network's parameters are a list of tens to hundreds of tensors, many of them small (biases,
// norm weights). Updating them one kernel at a time costs a launch (~3-5 us) per tensor, more
// than the work for most of them. The multi-tensor pattern cuts every tensor into chunks of at
// most kChunk elements, puts a table of {pointers, length} for every chunk of every tensor in
// device memory, and launches one block per chunk: the whole list in one launch.
//
//   EMA      t = m t + (1 - m) s                  3 FLOPs,  12 bytes per element (r t, r s, w t)
//   SGD      momentum + weight decay              ~6 FLOPs, 16 bytes (r p, r g, r/w buf, w p)
//   AdamW    decoupled decay, moments             ~15 FLOPs, 28 bytes (r p g m v, w p m v)
//   LARS     per-tensor trust ratio, momentum     two passes: norms (8 bytes), update (20 bytes)
// All are a few FLOPs per 12-28 bytes: bound by memory bandwidth, so the kernels move 16 bytes
// per load and store (float4) wherever a chunk's pointers are 16-byte aligned, with a scalar
// tail for the last n % 4 elements.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/ema.h"
#include "kernels/cuda/runtime.h"

namespace selfsup::cuda {

namespace {

constexpr int64_t kChunk = 1 << 16;  // elements per chunk (a multiple of 4: chunks stay aligned)
constexpr int kThreads = 256;

// One chunk of one tensor: where it starts in each of the op's (up to 4) tensors.
struct Chunk {
  float* p[4];   // e.g. {param, grad, buf, -} ; unused slots null
  int64_t n;     // elements in this chunk (<= kChunk)
  int tensor;    // index of the tensor in the list
  bool aligned;  // every used p[] is 16-byte aligned: float4 accesses allowed
};

// Loads 4 consecutive elements [i, i+4) of p, in bounds of n: one float4 when aligned and whole
// (i is a multiple of 4), else scalars, with 0 past the end.
__device__ __forceinline__ void load4(const float* p, int64_t i, int64_t n, bool aligned,
                                      float (&v)[4]) {
  if (aligned && i + 3 < n) {
    const float4 q = load_float4(p + i);
    v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
    return;
  }
  for (int j = 0; j < 4; ++j)
    v[j] = i + j < n ? p[i + j] : 0.f;
}

// Stores the elements of [i, i+4) that are in bounds.
__device__ __forceinline__ void store4(float* p, int64_t i, int64_t n, bool aligned,
                                       const float (&v)[4]) {
  if (aligned && i + 3 < n) {
    store_float4(p + i, make_float4(v[0], v[1], v[2], v[3]));
    return;
  }
  for (int j = 0; j < 4; ++j)
    if (i + j < n) p[i + j] = v[j];
}

// ============================================================================================
// EMA version 1: one launch per tensor, one thread per element
// ============================================================================================
// The direct loop. Right for one big tensor; for a ResNet's ~160 tensors it is ~160 launches,
// most of which move a few KiB and are pure launch overhead.

__global__ void ema_v1_per_tensor(float* target, const float* source, int64_t n, float keep,
                                  float take) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) target[i] = keep * target[i] + take * source[i];
}

// ============================================================================================
// EMA version 2: multi-tensor, float4
// ============================================================================================
// One launch for the whole list: block b reads its chunk's entry from the table and strides
// over the chunk 4 elements per thread, as one 16-byte load of each operand when aligned.
// Cost: the table upload (one small host->device copy per call, 40 bytes per chunk).

__global__ void __launch_bounds__(kThreads)
    ema_v2_multi_tensor(const Chunk* chunks, float keep, float take) {
  const Chunk ch = chunks[blockIdx.x];
  for (int64_t i = 4 * static_cast<int64_t>(threadIdx.x); i < ch.n; i += 4 * kThreads) {
    float t[4], s[4];
    load4(ch.p[0], i, ch.n, ch.aligned, t);
    load4(ch.p[1], i, ch.n, ch.aligned, s);
    for (int j = 0; j < 4; ++j)
      t[j] = keep * t[j] + take * s[j];
    store4(ch.p[0], i, ch.n, ch.aligned, t);
  }
}

// ============================================================================================
// SGD with momentum, multi-tensor
// ============================================================================================
// p[0] param, p[1] grad, p[2] momentum buffer (null without momentum).

struct SgdArgs {
  float lr, momentum, dampening, weight_decay;
  bool nesterov, first_step;
};

__global__ void __launch_bounds__(kThreads) sgd_multi_tensor(const Chunk* chunks, SgdArgs a) {
  const Chunk ch = chunks[blockIdx.x];
  const bool has_buf = ch.p[2] != nullptr;
  for (int64_t i = 4 * static_cast<int64_t>(threadIdx.x); i < ch.n; i += 4 * kThreads) {
    float p[4], g[4], buf[4] = {};
    load4(ch.p[0], i, ch.n, ch.aligned, p);
    load4(ch.p[1], i, ch.n, ch.aligned, g);
    if (has_buf && !a.first_step) load4(ch.p[2], i, ch.n, ch.aligned, buf);
    for (int j = 0; j < 4; ++j) {
      float d = g[j] + a.weight_decay * p[j];
      if (has_buf) {
        buf[j] = a.first_step ? d : a.momentum * buf[j] + (1.f - a.dampening) * d;
        d = a.nesterov ? d + a.momentum * buf[j] : buf[j];
      }
      p[j] -= a.lr * d;
    }
    store4(ch.p[0], i, ch.n, ch.aligned, p);
    if (has_buf) store4(ch.p[2], i, ch.n, ch.aligned, buf);
  }
}

// ============================================================================================
// AdamW, multi-tensor
// ============================================================================================
// p[0] param, p[1] grad, p[2] first moment m, p[3] second moment v. The bias corrections are
// the same for every element and computed once on the host (in double).

struct AdamWArgs {
  float decay;  // 1 - lr * weight_decay
  float beta1, beta2, eps;
  float step_size;   // lr / (1 - beta1^t)
  float bias2_sqrt;  // sqrt(1 - beta2^t)
};

__global__ void __launch_bounds__(kThreads) adamw_multi_tensor(const Chunk* chunks, AdamWArgs a) {
  const Chunk ch = chunks[blockIdx.x];
  for (int64_t i = 4 * static_cast<int64_t>(threadIdx.x); i < ch.n; i += 4 * kThreads) {
    float p[4], g[4], m[4], v[4];
    load4(ch.p[0], i, ch.n, ch.aligned, p);
    load4(ch.p[1], i, ch.n, ch.aligned, g);
    load4(ch.p[2], i, ch.n, ch.aligned, m);
    load4(ch.p[3], i, ch.n, ch.aligned, v);
    for (int j = 0; j < 4; ++j) {
      p[j] *= a.decay;
      m[j] = a.beta1 * m[j] + (1.f - a.beta1) * g[j];
      v[j] = a.beta2 * v[j] + (1.f - a.beta2) * g[j] * g[j];
      p[j] -= a.step_size * m[j] / (sqrtf(v[j]) / a.bias2_sqrt + a.eps);
    }
    store4(ch.p[0], i, ch.n, ch.aligned, p);
    store4(ch.p[2], i, ch.n, ch.aligned, m);
    store4(ch.p[3], i, ch.n, ch.aligned, v);
  }
}

// ============================================================================================
// LARS, multi-tensor: norms, trust ratios, update
// ============================================================================================
// The trust ratio needs each tensor's ||p|| and ||g|| before any of its elements can move, so
// LARS takes three launches whatever the list length: (1) every chunk's sums of squares,
// (2) one thread per tensor adds its chunks' sums in order (deterministic) into q, (3) the
// update. p[0] param, p[1] grad, p[2] momentum buffer.

struct LarsTensor {
  int first_chunk, chunks;
  bool excluded;
};

__global__ void __launch_bounds__(kThreads) lars_chunk_norms(const Chunk* chunks, float* sums) {
  __shared__ float scratch[32];
  const Chunk ch = chunks[blockIdx.x];
  float sp = 0.f, sg = 0.f;
  for (int64_t i = 4 * static_cast<int64_t>(threadIdx.x); i < ch.n; i += 4 * kThreads) {
    float p[4], g[4];
    load4(ch.p[0], i, ch.n, ch.aligned, p);
    load4(ch.p[1], i, ch.n, ch.aligned, g);
    for (int j = 0; j < 4; ++j) {
      sp += p[j] * p[j];
      sg += g[j] * g[j];
    }
  }
  sp = block_sum(sp, scratch);
  sg = block_sum(sg, scratch);
  if (threadIdx.x == 0) {
    sums[2 * blockIdx.x] = sp;
    sums[2 * blockIdx.x + 1] = sg;
  }
}

__global__ void lars_trust_ratios(const LarsTensor* tensors, int count, const float* sums,
                                  float eta, float weight_decay, float* trust) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= count) return;
  const LarsTensor info = tensors[t];
  double sp = 0, sg = 0;
  for (int c = info.first_chunk; c < info.first_chunk + info.chunks; ++c) {
    sp += sums[2 * c];
    sg += sums[2 * c + 1];
  }
  const double w_norm = sqrt(sp), g_norm = sqrt(sg);
  double q = 1.0;
  if (!info.excluded && w_norm > 0 && g_norm > 0)
    q = eta * w_norm / (g_norm + weight_decay * w_norm);
  trust[t] = static_cast<float>(q);
}

__global__ void __launch_bounds__(kThreads)
    lars_update(const Chunk* chunks, const LarsTensor* tensors, const float* trust, float lr,
                float momentum, float weight_decay) {
  const Chunk ch = chunks[blockIdx.x];
  const float q = trust[ch.tensor];
  const float wd = tensors[ch.tensor].excluded ? 0.f : weight_decay;
  for (int64_t i = 4 * static_cast<int64_t>(threadIdx.x); i < ch.n; i += 4 * kThreads) {
    float p[4], g[4], buf[4];
    load4(ch.p[0], i, ch.n, ch.aligned, p);
    load4(ch.p[1], i, ch.n, ch.aligned, g);
    load4(ch.p[2], i, ch.n, ch.aligned, buf);
    for (int j = 0; j < 4; ++j) {
      buf[j] = momentum * buf[j] + q * (g[j] + wd * p[j]);
      p[j] -= lr * buf[j];
    }
    store4(ch.p[0], i, ch.n, ch.aligned, p);
    store4(ch.p[2], i, ch.n, ch.aligned, buf);
  }
}

// ============================================================================================
// Host side: checks, the chunk table, launchers
// ============================================================================================

// Count and shapes first, for every list, so a mismatch is reported as such wherever the
// tensors live; then check_device.
void check_list(const char* op, const char* name, const std::vector<Tensor>& list,
                const std::vector<Tensor>& reference) {
  SELFSUP_CHECK(list.size() == reference.size(), op, ": ", reference.size(), " tensors but ",
                list.size(), " ", name);
  for (size_t i = 0; i < list.size(); ++i) {
    SELFSUP_CHECK(list[i].defined() && reference[i].defined(), op, ": tensor ", i, " of ", name,
                  " is undefined");
    SELFSUP_CHECK(list[i].shape() == reference[i].shape(), op, ": tensor ", i, ": ", name,
                  " shape ", shape_str(list[i].shape()), " and shape ",
                  shape_str(reference[i].shape()), " differ");
  }
}

void check_device(const char* op, const char* name, const std::vector<Tensor>& list) {
  for (size_t i = 0; i < list.size(); ++i) {
    const Tensor& t = list[i];
    SELFSUP_CHECK(t.device().is_cuda() && t.dtype() == kFloat32 && t.is_contiguous(), op,
                  ": tensor ", i, " of ", name, " ", shape_str(t.shape()),
                  " must be contiguous float32 on the CUDA device");
  }
}

// The chunk table of `lists` (all the same shapes), uploaded to the device. The Tensor holding
// it must outlive the launch; the caching allocator returns it only after queued work on the
// one stream.
struct ChunkTable {
  Tensor device_table;  // uint8 bytes
  std::vector<Chunk> host;
  const Chunk* data() const { return static_cast<const Chunk*>(device_table.raw_data_ptr()); }
};

ChunkTable build_table(const std::vector<const std::vector<Tensor>*>& lists) {
  ChunkTable table;
  const std::vector<Tensor>& first = *lists.front();
  for (size_t t = 0; t < first.size(); ++t) {
    const int64_t n = first[t].numel();
    for (int64_t start = 0; start < n; start += kChunk) {
      Chunk ch{};
      ch.n = std::min(kChunk, n - start);
      ch.tensor = static_cast<int>(t);
      ch.aligned = true;
      for (size_t l = 0; l < lists.size(); ++l) {
        ch.p[l] = static_cast<float*>((*lists[l])[t].raw_data_ptr()) + start;
        ch.aligned = ch.aligned && aligned16(ch.p[l]);
      }
      table.host.push_back(ch);
    }
  }
  if (table.host.empty()) return table;
  const int64_t bytes = static_cast<int64_t>(table.host.size() * sizeof(Chunk));
  table.device_table = empty({bytes}, TensorOptions(kUInt8).device(Device::cuda()));
  check(cudaMemcpy(table.device_table.raw_data_ptr(), table.host.data(), bytes,
                   cudaMemcpyHostToDevice),
        "multi-tensor chunk table upload");
  return table;
}

unsigned grid_of(const ChunkTable& table) {
  return static_cast<unsigned>(table.host.size());
}

}  // namespace

void ema_update(const std::vector<Tensor>& targets, const std::vector<Tensor>& sources,
                double momentum, int version) {
  const char* op = "ema_update (cuda)";
  SELFSUP_CHECK(version >= 1 && version <= kEmaVersions, op, ": unknown version ", version, " (1..",
                kEmaVersions, ")");
  check_list(op, "sources", sources, targets);
  check_device(op, "targets", targets);
  check_device(op, "sources", sources);
  const float keep = static_cast<float>(momentum), take = static_cast<float>(1.0 - momentum);
  if (version == 1) {
    for (size_t i = 0; i < targets.size(); ++i) {
      const int64_t n = targets[i].numel();
      if (n == 0) continue;
      ema_v1_per_tensor<<<static_cast<unsigned>(ceil_div(n, kThreads)), kThreads>>>(
          targets[i].data_ptr<float>(), sources[i].data_ptr<float>(), n, keep, take);
      check_launch(op);
    }
  } else {
    const ChunkTable table = build_table({&targets, &sources});
    if (table.host.empty()) return;
    ema_v2_multi_tensor<<<grid_of(table), kThreads>>>(table.data(), keep, take);
    check_launch(op);
  }
  for (const Tensor& t : targets)
    t.bump_version();
}

void sgd_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
              const std::vector<Tensor>& momentum_buffers, const SgdStep& step) {
  const char* op = "sgd_step (cuda)";
  check_list(op, "grads", grads, params);
  const bool momentum = step.momentum != 0;
  if (momentum) check_list(op, "momentum_buffers", momentum_buffers, params);
  check_device(op, "params", params);
  check_device(op, "grads", grads);
  if (momentum) check_device(op, "momentum_buffers", momentum_buffers);
  std::vector<const std::vector<Tensor>*> lists{&params, &grads};
  if (momentum) lists.push_back(&momentum_buffers);
  const ChunkTable table = build_table(lists);
  if (table.host.empty()) return;
  const SgdArgs a{static_cast<float>(step.lr),
                  static_cast<float>(step.momentum),
                  static_cast<float>(step.dampening),
                  static_cast<float>(step.weight_decay),
                  step.nesterov,
                  step.first_step};
  sgd_multi_tensor<<<grid_of(table), kThreads>>>(table.data(), a);
  check_launch(op);
  for (const Tensor& t : params)
    t.bump_version();
}

void adamw_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                const std::vector<Tensor>& exp_avg, const std::vector<Tensor>& exp_avg_sq,
                const AdamWStep& step) {
  const char* op = "adamw_step (cuda)";
  SELFSUP_CHECK(step.step >= 1, op, ": step must be >= 1 (counted after incrementing), got ",
                step.step);
  check_list(op, "grads", grads, params);
  check_list(op, "exp_avg", exp_avg, params);
  check_list(op, "exp_avg_sq", exp_avg_sq, params);
  check_device(op, "params", params);
  check_device(op, "grads", grads);
  check_device(op, "exp_avg", exp_avg);
  check_device(op, "exp_avg_sq", exp_avg_sq);
  const ChunkTable table = build_table({&params, &grads, &exp_avg, &exp_avg_sq});
  if (table.host.empty()) return;
  // Mirror nn/optim.cpp's float32 arithmetic: the corrections in the parameter's precision.
  const float b1 = static_cast<float>(step.beta1), b2 = static_cast<float>(step.beta2);
  const float lr = static_cast<float>(step.lr), wd = static_cast<float>(step.weight_decay);
  const float t = static_cast<float>(step.step);
  AdamWArgs a{};
  a.decay = 1.f - lr * wd;
  a.beta1 = b1;
  a.beta2 = b2;
  a.eps = static_cast<float>(step.eps);
  a.step_size = lr / (1.f - std::pow(b1, t));
  a.bias2_sqrt = std::sqrt(1.f - std::pow(b2, t));
  adamw_multi_tensor<<<grid_of(table), kThreads>>>(table.data(), a);
  check_launch(op);
  for (const Tensor& p : params)
    p.bump_version();
}

void lars_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
               const std::vector<Tensor>& momentum_buffers, const std::vector<bool>& excluded,
               const LarsStep& step) {
  const char* op = "lars_step (cuda)";
  check_list(op, "grads", grads, params);
  check_list(op, "momentum_buffers", momentum_buffers, params);
  check_device(op, "params", params);
  check_device(op, "grads", grads);
  check_device(op, "momentum_buffers", momentum_buffers);
  SELFSUP_CHECK(excluded.empty() || excluded.size() == params.size(), op, ": ", params.size(),
                " tensors but ", excluded.size(), " exclusion flags");
  const ChunkTable table = build_table({&params, &grads, &momentum_buffers});
  if (table.host.empty()) return;

  std::vector<LarsTensor> info(params.size());
  for (const Chunk& ch : table.host) {  // chunks are in tensor order
    LarsTensor& t = info[ch.tensor];
    if (t.chunks == 0) t.first_chunk = static_cast<int>(&ch - table.host.data());
    ++t.chunks;
  }
  for (size_t i = 0; i < info.size(); ++i)
    info[i].excluded = !excluded.empty() && excluded[i];
  const int64_t info_bytes = static_cast<int64_t>(info.size() * sizeof(LarsTensor));
  Tensor info_dev = empty({info_bytes}, TensorOptions(kUInt8).device(Device::cuda()));
  check(cudaMemcpy(info_dev.raw_data_ptr(), info.data(), info_bytes, cudaMemcpyHostToDevice),
        "lars_step: tensor table upload");
  const auto* info_ptr = static_cast<const LarsTensor*>(info_dev.raw_data_ptr());
  const int count = static_cast<int>(params.size());

  Tensor sums = empty({2 * static_cast<int64_t>(table.host.size())}, Device::cuda());
  Tensor trust = empty({count}, Device::cuda());
  lars_chunk_norms<<<grid_of(table), kThreads>>>(table.data(), sums.data_ptr<float>());
  check_launch("lars_step: norms");
  lars_trust_ratios<<<static_cast<unsigned>(ceil_div(count, kThreads)), kThreads>>>(
      info_ptr, count, sums.data_ptr<float>(), static_cast<float>(step.eta),
      static_cast<float>(step.weight_decay), trust.data_ptr<float>());
  check_launch("lars_step: trust ratios");
  lars_update<<<grid_of(table), kThreads>>>(
      table.data(), info_ptr, trust.data_ptr<float>(), static_cast<float>(step.lr),
      static_cast<float>(step.momentum), static_cast<float>(step.weight_decay));
  check_launch("lars_step: update");
  for (const Tensor& p : params)
    p.bump_version();
}

}  // namespace selfsup::cuda
