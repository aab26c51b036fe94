// Built instead of kernels/cuda/*.cu when the CUDA backend is off (-DSELFSUP_CUDA=OFF or no nvcc).
#include "kernels/cuda/device_info.h"

namespace selfsup::cuda {

DeviceReport query_devices() {
  DeviceReport r;
  r.compiled = false;
  r.reason = "this build has no CUDA backend (configured with SELFSUP_CUDA=OFF or nvcc not found)";
  return r;
}

}  // namespace selfsup::cuda

// The runtime entry points exist in a CPU-only build too, so code that calls them links; they
// report that there is no backend.
#include "core/error.h"
#include "kernels/cuda/runtime.h"

namespace selfsup::cuda {

void check(int status, const char* what) {
  if (status != 0) throw Error(std::string(what) + ": this build has no CUDA backend");
}
void check_launch(const char*) {}
void register_backend() {}
AllocatorStats allocator_stats() {
  return {};
}
void empty_cache() {}
PinnedStats pinned_stats() {
  return {};
}
bool is_page_locked(const void*) {
  return false;
}

}  // namespace selfsup::cuda

// The clustering kernels of SwAV and DeepCluster (sinkhorn.h, kmeans.h) exist too, so a caller
// that picks the device at run time links; called, they say there is no backend.
#include "kernels/cuda/kmeans.h"
#include "kernels/cuda/sinkhorn.h"

namespace selfsup::cuda {

void sinkhorn(const Tensor&, double, int64_t, Tensor&) {
  throw Error("sinkhorn: this build has no CUDA backend");
}
void kmeans_assign(const Tensor&, const Tensor&, Tensor&, Tensor&, int) {
  throw Error("kmeans_assign: this build has no CUDA backend");
}

}  // namespace selfsup::cuda

// ============================================================================================
// Element-wise kernels (kernels/cuda/elementwise.h): stubs, so kernels/dispatch.cpp links in a
// CPU-only build. No CUDA tensor can exist there, so dispatch never reaches them in practice.
// ============================================================================================
#include "kernels/cuda/elementwise.h"

namespace selfsup::cuda {

namespace {
[[noreturn]] void no_elementwise_backend(const char* name) {
  throw Error(std::string(name) + ": this build has no CUDA backend");
}
}  // namespace

void unary(UnaryOp op, const Tensor&, Tensor&) {
  no_elementwise_backend(cpu::unary_op_name(op));
}
void binary(BinaryOp op, const Tensor&, const Tensor&, Tensor&) {
  no_elementwise_backend(cpu::binary_op_name(op));
}
void binary_scalar(BinaryOp op, const Tensor&, double, Tensor&) {
  no_elementwise_backend(cpu::binary_op_name(op));
}
void axpby(double, const Tensor&, double, const Tensor&, Tensor&) {
  no_elementwise_backend("axpby");
}
void clamp(const Tensor&, double, double, Tensor&) {
  no_elementwise_backend("clamp");
}
void where(const Tensor&, const Tensor&, const Tensor&, Tensor&) {
  no_elementwise_backend("where");
}
void fill(Tensor&, double) {
  no_elementwise_backend("fill");
}
void relu_backward(const Tensor&, const Tensor&, Tensor&) {
  no_elementwise_backend("relu_backward");
}
void gelu_backward(const Tensor&, const Tensor&, Tensor&) {
  no_elementwise_backend("gelu_backward");
}
void sigmoid_backward(const Tensor&, const Tensor&, Tensor&) {
  no_elementwise_backend("sigmoid_backward");
}
void tanh_backward(const Tensor&, const Tensor&, Tensor&) {
  no_elementwise_backend("tanh_backward");
}
void clamp_backward(const Tensor&, const Tensor&, double, double, Tensor&) {
  no_elementwise_backend("clamp_backward");
}

}  // namespace selfsup::cuda
// ---- end of element-wise stubs ----

// ============================================================================================
// Reduction stubs (kernels/cuda/reduce.h): called in a CPU-only build, they say there is no
// backend.
// ============================================================================================
#include "kernels/cuda/reduce.h"

namespace selfsup::cuda {

namespace {
[[noreturn]] void no_reduce_backend(const char* op) {
  throw Error(std::string(op) + ": this build has no CUDA backend");
}
}  // namespace

void sum(const Tensor&, const std::vector<int64_t>&, bool, Tensor&) {
  no_reduce_backend("sum");
}
void mean(const Tensor&, const std::vector<int64_t>&, bool, Tensor&) {
  no_reduce_backend("mean");
}
void var(const Tensor&, const std::vector<int64_t>&, int64_t, bool, Tensor&) {
  no_reduce_backend("var");
}
void max(const Tensor&, int64_t, bool, Tensor&, Tensor&) {
  no_reduce_backend("max");
}
void min(const Tensor&, int64_t, bool, Tensor&, Tensor&) {
  no_reduce_backend("min");
}
void argmax(const Tensor&, int64_t, bool, Tensor&) {
  no_reduce_backend("argmax");
}
void max_all(const Tensor&, Tensor&) {
  no_reduce_backend("max_all");
}
void min_all(const Tensor&, Tensor&) {
  no_reduce_backend("min_all");
}
void sum_backward(const Tensor&, const Shape&, const std::vector<int64_t>&, Tensor&) {
  no_reduce_backend("sum_backward");
}
void sum_to(const Tensor&, const Shape&, Tensor&) {
  no_reduce_backend("sum_to");
}

}  // namespace selfsup::cuda
// ---- end of reduction stubs ----

// ============================================================================================
// GEMM stub (kernels/cuda/gemm.h), so dispatch::matmul links in a CPU-only build.
// ============================================================================================
#include "kernels/cuda/gemm.h"

namespace selfsup::cuda {

void gemm(GemmLayout, const Tensor&, const Tensor&, Tensor&, float, float, int) {
  throw Error("gemm: this build has no CUDA backend");
}

}  // namespace selfsup::cuda

// ============================================================================================
// Optimizer step and EMA stubs (kernels/cuda/ema.h), so dispatch links in a CPU-only build.
// ============================================================================================
#include "kernels/cuda/ema.h"

namespace selfsup::cuda {

void ema_update(const std::vector<Tensor>&, const std::vector<Tensor>&, double, int) {
  throw Error("ema_update: this build has no CUDA backend");
}
void sgd_step(const std::vector<Tensor>&, const std::vector<Tensor>&, const std::vector<Tensor>&,
              const SgdStep&) {
  throw Error("sgd_step: this build has no CUDA backend");
}
void adamw_step(const std::vector<Tensor>&, const std::vector<Tensor>&, const std::vector<Tensor>&,
                const std::vector<Tensor>&, const AdamWStep&) {
  throw Error("adamw_step: this build has no CUDA backend");
}
void lars_step(const std::vector<Tensor>&, const std::vector<Tensor>&, const std::vector<Tensor>&,
               const std::vector<bool>&, const LarsStep&) {
  throw Error("lars_step: this build has no CUDA backend");
}

}  // namespace selfsup::cuda
