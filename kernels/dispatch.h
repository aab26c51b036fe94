// The single CPU/CUDA switch of the kernel layer: one function per kernel entry point, with the
// signature of the CPU kernel it stands for. Each checks that every tensor argument (inputs and
// outputs) is on one device, then calls cpu:: or cuda::. Code above the kernels (autograd, nn)
// calls dispatch::, never a backend directly, so an op runs wherever its tensors live.
//
// A mismatch is an Error naming the op and both devices: "add: tensors on cpu and cuda:0".
// In a CPU-only build the cuda:: functions are stubs (kernels/cuda/no_cuda*.cpp); no CUDA tensor
// can exist there, so only CPU calls ever arrive.
//
// Adding a family means one more section below with the CPU header's signatures, bodies in
// kernels/dispatch_<family>.cpp (or dispatch.cpp) that follow the same two lines:
//   if (detail::common_device(name, {&x, &out}).is_cuda()) return cuda::op(...);
//   cpu::op(...);
// and the CUDA stubs in kernels/cuda/no_cuda_<family>.cpp.
#pragma once

#include <initializer_list>
#include <vector>

#include "core/random.h"
#include "core/tensor.h"
#include "kernels/cpu/conv.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/optim.h"
#include "kernels/cpu/pool.h"

namespace selfsup::dispatch {

namespace detail {
// The device of the defined tensors in `ts`; throws "<op>: tensors on <d1> and <d2>" when two
// differ. Undefined tensors are skipped (optional arguments).
Device common_device(const char* op, std::initializer_list<const Tensor*> ts);
}  // namespace detail

// ============================================================================================
// Element-wise (kernels/cpu/elementwise.h, kernels/cuda/elementwise.h)
// ============================================================================================

using cpu::BinaryOp;
using cpu::UnaryOp;

void unary(UnaryOp op, const Tensor& x, Tensor& out);
void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out);
void binary_scalar(BinaryOp op, const Tensor& x, double s, Tensor& out);
void axpby(double alpha, const Tensor& a, double beta, const Tensor& b, Tensor& out);
void clamp(const Tensor& x, double lo, double hi, Tensor& out);
void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out);
void fill(Tensor& out, double value);

void relu_backward(const Tensor& grad_y, const Tensor& x, Tensor& grad_x);
void gelu_backward(const Tensor& grad_y, const Tensor& x, Tensor& grad_x);
void sigmoid_backward(const Tensor& grad_y, const Tensor& y, Tensor& grad_x);
void tanh_backward(const Tensor& grad_y, const Tensor& y, Tensor& grad_x);
void clamp_backward(const Tensor& grad_y, const Tensor& x, double lo, double hi, Tensor& grad_x);

// ============================================================================================
// Reductions (kernels/cpu/reduce.h, kernels/cuda/reduce.h); bodies in dispatch.cpp
// ============================================================================================

void sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, Tensor& out);
void mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, Tensor& out);
void var(const Tensor& x, const std::vector<int64_t>& dims, int64_t correction, bool keepdim,
         Tensor& out);
void max(const Tensor& x, int64_t dim, bool keepdim, Tensor& values, Tensor& indices);
void min(const Tensor& x, int64_t dim, bool keepdim, Tensor& values, Tensor& indices);
void argmax(const Tensor& x, int64_t dim, bool keepdim, Tensor& out);
void max_all(const Tensor& x, Tensor& out);
void min_all(const Tensor& x, Tensor& out);
void sum_backward(const Tensor& grad_y, const Shape& x_shape, const std::vector<int64_t>& dims,
                  Tensor& grad_x);
void sum_to(const Tensor& x, const Shape& shape, Tensor& out);

// ============================================================================================
// Matrix products (kernels/cpu/linalg.h, kernels/cuda/gemm.h); bodies in dispatch.cpp.
// On the GPU: float32 through cuda::gemm's default (hand-written) version; an operand whose
// last dim is not contiguous but whose second-to-last is (a transposed view) is read in place
// through gemm's NT / TN layouts; anything else is copied contiguous first.
// ============================================================================================

void matmul(const Tensor& a, const Tensor& b, Tensor& out);
void bmm(const Tensor& a, const Tensor& b, Tensor& out);

// ============================================================================================
// Optimizer steps and EMA (kernels/cpu/optim.h, kernels/cpu/ema.h, kernels/cuda/ema.h);
// bodies in dispatch.cpp. The GPU steps take float32.
// ============================================================================================

using cpu::AdamWStep;
using cpu::LarsStep;
using cpu::SgdStep;

void sgd_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
              const std::vector<Tensor>& momentum_buffers, const SgdStep& step);
void adamw_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                const std::vector<Tensor>& exp_avg, const std::vector<Tensor>& exp_avg_sq,
                const AdamWStep& step);
void lars_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
               const std::vector<Tensor>& momentum_buffers, const std::vector<bool>& excluded,
               const LarsStep& step);
void ema_update(const std::vector<Tensor>& targets, const std::vector<Tensor>& sources,
                double momentum);
// The squared L2 norm of x (all elements, any strides), accumulated in double, on the host.
double sum_of_squares(const Tensor& x);

// ============================================================================================
// Softmax and cross-entropy (kernels/cpu/softmax.h, kernels/cuda/softmax.h);
// bodies in dispatch_softmax.cpp
// ============================================================================================

void softmax(const Tensor& x, int64_t dim, Tensor& out);
void log_softmax(const Tensor& x, int64_t dim, Tensor& out);
void softmax_backward(const Tensor& grad_y, const Tensor& y, int64_t dim, Tensor& grad_x);
void log_softmax_backward(const Tensor& grad_y, const Tensor& y, int64_t dim, Tensor& grad_x);
void cross_entropy(const Tensor& logits, const Tensor& targets, Tensor& loss, Tensor& grad_logits);
void cross_entropy_soft(const Tensor& logits, const Tensor& targets, Tensor& loss,
                        Tensor& grad_logits);

// ============================================================================================
// Batch norm, layer norm, dropout (kernels/cpu/norm.h, kernels/cuda/norm.h);
// bodies in dispatch_norm.cpp
// ============================================================================================

void batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& running_mean,
                Tensor& running_var, bool training, double momentum, double eps, Tensor& out,
                Tensor& save_mean, Tensor& save_invstd);
void batch_norm_backward(const Tensor& grad_out, const Tensor& x, const Tensor& weight,
                         const Tensor& save_mean, const Tensor& save_invstd, Tensor& grad_x,
                         Tensor& grad_w, Tensor& grad_b);
void batch_norm_eval_backward(const Tensor& grad_out, const Tensor& weight,
                              const Tensor& save_invstd, Tensor& grad_x);
void layer_norm(const Tensor& x, int64_t normalized_ndim, const Tensor& weight, const Tensor& bias,
                double eps, Tensor& out, Tensor& mean, Tensor& rstd);
void layer_norm_backward(const Tensor& grad_out, const Tensor& x, int64_t normalized_ndim,
                         const Tensor& weight, const Tensor& mean, const Tensor& rstd,
                         Tensor& grad_x, Tensor& grad_w, Tensor& grad_b);
void dropout(const Tensor& x, double p, Generator& gen, Tensor& out, Tensor& mask);
void dropout_backward(const Tensor& grad_out, const Tensor& mask, double p, Tensor& grad_x);

// ============================================================================================
// Pooling (kernels/cpu/pool.h, kernels/cuda/pool.h); bodies in dispatch_pool.cpp
// ============================================================================================

using cpu::Pool2dParams;

void max_pool2d(const Tensor& x, const Pool2dParams& p, Tensor& out, Tensor& indices);
void max_pool2d_backward(const Tensor& grad_out, const Tensor& indices, Tensor& grad_x);
void avg_pool2d(const Tensor& x, const Pool2dParams& p, Tensor& out);
void avg_pool2d_backward(const Tensor& grad_out, const Pool2dParams& p, Tensor& grad_x);
void adaptive_avg_pool2d(const Tensor& x, Tensor& out);
void adaptive_avg_pool2d_backward(const Tensor& grad_out, Tensor& grad_x);

// ============================================================================================
// Indexing and joining (kernels/cpu/index.h, kernels/cuda/index.h); bodies in dispatch_index.cpp
// ============================================================================================

void index_select(const Tensor& x, int64_t dim, const Tensor& index, Tensor& out);
void index_add_(Tensor& out, int64_t dim, const Tensor& index, const Tensor& src);
void gather(const Tensor& x, int64_t dim, const Tensor& index, Tensor& out);
void scatter_add_(Tensor& out, int64_t dim, const Tensor& index, const Tensor& src);
void cat(const std::vector<Tensor>& xs, int64_t dim, Tensor& out);

// ============================================================================================
// 2-d convolution (kernels/cpu/conv.h, kernels/cuda/conv.h); bodies in dispatch_conv.cpp
// ============================================================================================

using cpu::Conv2dParams;

void conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& p,
            Tensor& out);
void conv2d_backward(const Tensor& grad_out, const Tensor& x, const Tensor& w,
                     const Conv2dParams& p, Tensor& grad_x, Tensor& grad_w, Tensor& grad_b);

// ============================================================================================
// The Barlow Twins loss, fused (kernels/cpu/xcorr.h, kernels/cuda/xcorr.h); bodies in
// dispatch_xcorr.cpp
// ============================================================================================

// What the loss's backward needs. Each backend fills its own fields: the CPU the standardised
// views and inverse deviations of cpu::cross_correlation; the GPU C and the column statistics of
// cuda::barlow_xcorr_forward (its backward recomputes zhat from them).
struct BarlowSaved {
  Tensor c, za_hat, zb_hat, mean_a, mean_b, inv_std_a, inv_std_b;
};
// loss (0-d) = sum_i (1 - C_ii)^2 + lambda sum_{i != j} C_ij^2 for C = corr(za, zb) [D, D] of the
// two views' embeddings [N, D], standardised per column with eps. Fills `saved`. On the GPU:
// float32, contiguous (one fused kernel).
void barlow_twins_loss(const Tensor& za, const Tensor& zb, double eps, double lambda, Tensor& loss,
                       BarlowSaved& saved);
// grad_za, grad_zb [N, D] = grad_loss (0-d) times d loss / d za, zb.
void barlow_twins_loss_backward(const Tensor& grad_loss, const Tensor& za, const Tensor& zb,
                                const BarlowSaved& saved, double lambda, Tensor& grad_za,
                                Tensor& grad_zb);

}  // namespace selfsup::dispatch
