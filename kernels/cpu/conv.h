// 2-d convolution on the CPU by im2col + GEMM (Eigen), NCHW layout, float32/float64.
//   out[n, o, y, x] = bias[o] + sum_{c, i, j} w[o, c, i, j] * in[n, c, y*s + i - p, x*s + j - p]
// Dilation 1, groups 1.
#pragma once

#include "core/tensor.h"

namespace selfsup::cpu {

struct Conv2dParams {
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
};

// Output size of one spatial dim: (in + 2 * pad - kernel) / stride + 1.
int64_t conv_out_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad);

// x [N, C, H, W], w [O, C, KH, KW], bias [O] or undefined; out [N, O, OH, OW] from the caller.
void conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& p,
            Tensor& out);
// Gradients of conv2d. Any of grad_x, grad_w, grad_b may be undefined to skip it; defined ones
// are overwritten (not accumulated).
void conv2d_backward(const Tensor& grad_out, const Tensor& x, const Tensor& w,
                     const Conv2dParams& p, Tensor& grad_x, Tensor& grad_w, Tensor& grad_b);

// The building blocks, exposed for tests and benchmarks.
// cols [C*KH*KW, OH*OW] from one image img [C, H, W] (contiguous pointers).
template <typename T>
void im2col(const T* img, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
            const Conv2dParams& p, T* cols);
// Adds cols back into img (the adjoint of im2col); img must be zeroed by the caller.
template <typename T>
void col2im(const T* cols, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
            const Conv2dParams& p, T* img);

}  // namespace selfsup::cpu
