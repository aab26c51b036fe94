// 2-d convolution on the GPU (kernels/cuda/conv.cu), for C++ callers: plain C++, no CUDA types.
// The contract is kernels/cpu/conv.h's: NCHW, dilation 1, groups 1, stride and padding per dim,
// bias optional; in conv2d_backward any of grad_x, grad_w, grad_b may be undefined to skip it,
// and defined ones are overwritten.
//
//   x [N, C, H, W], w [O, C, KH, KW], bias [O] or undefined, out [N, O, OH, OW]
//
// Every tensor lives on the CUDA device and is contiguous; float32 takes every version, float64
// runs the direct kernels (version 1) whatever version is asked, and cuDNN when version 0.
#pragma once

#include "core/tensor.h"
#include "kernels/cpu/conv.h"

namespace selfsup::cuda {

using cpu::Conv2dParams;

// The versions (see conv.cu for what each changes), the same numbers for the forward pass, the
// gradient of the input (backward data) and the gradient of the weight (backward weight):
//   0 cuDNN (cudnnConvolutionForward / BackwardData / BackwardFilter), FMA math (no TF32):
//     the reference; only in builds with SELFSUP_WITH_CUDNN (conv_cudnn_available())
//   1 direct          one thread per output element, loops straight over global memory
//   2 implicit GEMM   32 x 32 shared-memory tiles, the im2col gather done while loading them
//   3 implicit GEMM   64 x 64 tiles, 4 x 4 register block per thread (+ split-K for grad_w)
// grad_b has one kernel (a block reduction per output channel) for every hand-written version.
inline constexpr int kConvCudnn = 0;
inline constexpr int kConvVersionCount = 4;  // 0..3
inline constexpr int kConvDefault = 3;

// "cudnn", "direct", ..., for benchmark names and messages; "?" for an unknown version.
const char* conv_version_name(int version);
// Whether this build has the cuDNN version (configured with SELFSUP_CUDNN and cuDNN found).
bool conv_cudnn_available();

// The contract of kernels/cpu/conv.h, running kConvDefault.
void conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& p,
            Tensor& out);
void conv2d_backward(const Tensor& grad_out, const Tensor& x, const Tensor& w,
                     const Conv2dParams& p, Tensor& grad_x, Tensor& grad_w, Tensor& grad_b);

// The same with the version named, for tests and benchmarks. Throws selfsup::Error (before
// touching the GPU) for an unknown version, cuDNN in a build without it, tensors off the CUDA
// device, of mixed or non-float dtypes, non-contiguous, or of mismatched shapes.
void conv2d_forward_version(const Tensor& x, const Tensor& w, const Tensor& bias,
                            const Conv2dParams& p, Tensor& out, int version);
void conv2d_backward_version(const Tensor& grad_out, const Tensor& x, const Tensor& w,
                             const Conv2dParams& p, Tensor& grad_x, Tensor& grad_w, Tensor& grad_b,
                             int version);

}  // namespace selfsup::cuda
