// The user-facing, differentiable tensor API:
//   auto y = relu(matmul(x, w)); y.sum().backward(); w.grad();
// Every function here computes with the kernels of kernels/ and, when an input requires grad,
// records its backward on the output (autograd/graph.h). Argument conventions follow PyTorch.
#pragma once

#include <utility>
#include <vector>

#include "autograd/graph.h"
#include "core/random.h"
#include "core/tensor.h"

namespace selfsup {

// ---- element-wise, broadcasting ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, double s);
Tensor mul(const Tensor& a, double s);
Tensor pow(const Tensor& a, double exponent);
Tensor pow(const Tensor& a, const Tensor& exponent);  // a > 0 where exponent gets a gradient
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor square(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor gelu(const Tensor& x);  // exact (erf) form
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor clamp(const Tensor& x, double lo, double hi);
Tensor clamp_min(const Tensor& x, double lo);
// cond != 0 ? a : b (cond gets no gradient)
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);

// Comparisons give uint8 masks and no gradient.
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, double s);
Tensor lt(const Tensor& a, double s);

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& x);
Tensor operator+(const Tensor& a, double s);
Tensor operator+(double s, const Tensor& a);
Tensor operator-(const Tensor& a, double s);
Tensor operator-(double s, const Tensor& a);
Tensor operator*(const Tensor& a, double s);
Tensor operator*(double s, const Tensor& a);
Tensor operator/(const Tensor& a, double s);
Tensor operator/(double s, const Tensor& a);

// ---- reductions ----
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
// Variance with `correction` (1 = unbiased, PyTorch's default).
Tensor var(const Tensor& x, const std::vector<int64_t>& dims = {}, int64_t correction = 1,
           bool keepdim = false);
Tensor std(const Tensor& x, const std::vector<int64_t>& dims = {}, int64_t correction = 1,
           bool keepdim = false);
// (values, int64 indices) along dim; the gradient flows to the selected elements.
std::pair<Tensor, Tensor> max(const Tensor& x, int64_t dim, bool keepdim = false);
std::pair<Tensor, Tensor> min(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor amax(const Tensor& x);  // max of all elements (no gradient)
Tensor amin(const Tensor& x);  // min of all elements (no gradient)
// x / max(||x||_2 along dim, eps): cosine-similarity normalisation.
Tensor normalize(const Tensor& x, int64_t dim = -1, double eps = 1e-12);

// ---- linear algebra ----
// [M, K] @ [K, N]; [B, M, K] @ [B, K, N]; [..., M, K] @ [K, N] (leading dims folded).
Tensor matmul(const Tensor& a, const Tensor& b);
Tensor bmm(const Tensor& a, const Tensor& b);
// x @ w^T + b for x [..., in], w [out, in], b [out] or undefined.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b = Tensor());

// ---- softmax and losses ----
Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);
// Mean softmax cross-entropy of logits [N, C] against int64 class indices [N] (fused kernel).
Tensor cross_entropy(const Tensor& logits, const Tensor& targets);
// Against soft targets [N, C] (rows of probabilities; the targets get no gradient).
Tensor cross_entropy_soft(const Tensor& logits, const Tensor& targets);
// The Barlow Twins cross-correlation matrix of za, zb [N, D], each standardised over the batch.
Tensor cross_correlation(const Tensor& za, const Tensor& zb, double eps = 1e-5);
// The Barlow Twins loss on that matrix C as one op (0-d):
//   sum_i (1 - C_ii)^2 + lambda sum_{i != j} C_ij^2
// On a GPU (float32) one fused kernel forward and one backward (kernels/cuda/xcorr.cu).
Tensor cross_correlation_loss(const Tensor& za, const Tensor& zb, double lambda, double eps = 1e-5);
Tensor mse_loss(const Tensor& a, const Tensor& b);

// ---- indexing and joining ----
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
// x with src added at index along dim (out of place).
Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
Tensor cat(const std::vector<Tensor>& xs, int64_t dim = 0);
Tensor stack(const std::vector<Tensor>& xs, int64_t dim = 0);
// Pieces of (at most) split_size along dim, as views.
std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim = 0);
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim = 0);

// ---- views (graph-recording versions of core/views.h) ----
Tensor view(const Tensor& x, const Shape& shape);
Tensor reshape(const Tensor& x, const Shape& shape);
Tensor flatten(const Tensor& x, int64_t start_dim = 0, int64_t end_dim = -1);
Tensor permute(const Tensor& x, const Shape& dims);
Tensor transpose(const Tensor& x, int64_t d0, int64_t d1);
Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length);
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
Tensor select(const Tensor& x, int64_t dim, int64_t index);
Tensor expand(const Tensor& x, const Shape& shape);
Tensor squeeze(const Tensor& x);
Tensor squeeze(const Tensor& x, int64_t dim);
Tensor unsqueeze(const Tensor& x, int64_t dim);
Tensor contiguous(const Tensor& x);
Tensor clone(const Tensor& x);
Tensor to_dtype(const Tensor& x, DType dtype);

// ---- convolution, pooling, normalisation, dropout (NCHW) ----
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b = Tensor(), int64_t stride = 1,
              int64_t padding = 0);
Tensor max_pool2d(const Tensor& x, int64_t kernel, int64_t stride = -1, int64_t padding = 0);
Tensor avg_pool2d(const Tensor& x, int64_t kernel, int64_t stride = -1, int64_t padding = 0);
Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w);
// Batch norm over [N, C, *]. In training the running statistics (if defined) are updated in
// place; in eval they normalise.
Tensor batch_norm(const Tensor& x, Tensor running_mean, Tensor running_var, const Tensor& weight,
                  const Tensor& bias, bool training, double momentum = 0.1, double eps = 1e-5);
// Layer norm over the last normalized_ndim dims.
Tensor layer_norm(const Tensor& x, int64_t normalized_ndim, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);
Tensor dropout(const Tensor& x, double p, bool training, Generator* gen = nullptr);

// ---- in-place, no gradient ----
// target_k = momentum * target_k + (1 - momentum) * source_k for every pair (fused kernel).
void ema_update_(const std::vector<Tensor>& targets, const std::vector<Tensor>& sources,
                 double momentum);

}  // namespace selfsup
