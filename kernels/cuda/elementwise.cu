// ============================================================================================
// Element-wise kernels: out[i] = f(a[i], b[i], ...) with NumPy broadcasting
// ============================================================================================
//
// The CUDA twin of kernels/cpu/elementwise.cpp (the reference; same ops, dtypes, formulas).
//
//   unary     out = f(x)                 x, out: shape S
//   binary    out = f(a, b)              a, b broadcast to out's shape S
//   scalar    out = f(x, s)              s a host double, cast like the CPU does
//   where     out = cond ? a : b         cond, a, b broadcast to S
//   fill      out = v
//   backward  grad_x = grad_y * f'(.)    grad_y, saved (x or y), grad_x: shape S
//
// Bounds per element: 1 FLOP (add) to ~30 (erf, exp) against 2-4 loads/stores of 1-8 bytes,
// i.e. for float32 binary ops 12 bytes per FLOP-or-so. An H100 streams ~3 TB/s and computes
// ~60 TFLOP/s of float32, so every op here is memory-bound (GELU included, just): the only goal
// is to touch each byte once with coalesced accesses.
//
// Two kernel shapes per arity, picked by the launcher:
//  1. contiguous: out and every input are contiguous with out's shape, so element i of each is
//     at p[i]. A grid-stride loop over i; neighbouring threads touch neighbouring addresses.
//  2. strided: anything else (broadcast, transposed, narrowed, expanded). Each thread turns its
//     flat row-major index i into one element offset per operand with a div/mod per dim. The
//     shape and strides travel by value as a kernel argument (Walk<K>, kernels/cuda/strided.cuh),
//     simplified on the host first: size-1 dims dropped, and neighbouring dims that every operand
//     walks as one fused, so a broadcast [N, C, H, W] + [C, 1, 1] is a 3-dim walk and a transposed
//     2-d tensor is a 2-dim one. All index math is 64-bit.
// The op itself is a small functor holding the op code (a switch inside it is uniform across the
// grid, so costs no divergence): one kernel per dtype combination rather than per op.
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "core/error.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/runtime.h"
#include "kernels/cuda/strided.cuh"
#include "kernels/writable.h"

namespace selfsup::cuda {

namespace {

constexpr int kThreads = 256;
// A grid-stride loop needs only enough blocks to fill the GPU (an H100 holds 132 SMs x 8 blocks
// of 256 threads); beyond this each thread takes several elements.
constexpr int64_t kMaxBlocks = 4096;

static_assert(kMaxElementwiseDims == kMaxWalkDims, "elementwise.h promises the walk's dims");

// ============================================================================================
// Device math: one name per function for float and double
// ============================================================================================
// Explicit float (expf) and double (exp) overloads, so a float op never silently runs in
// double. All are the IEEE-accurate versions (no fast-math intrinsics): within a couple of ulp
// of the CPU's libm, with the same special values (pow(0, -1) = inf, pow(-2, 0.5) = NaN, ...).

__device__ __forceinline__ float d_exp(float x) {
  return expf(x);
}
__device__ __forceinline__ double d_exp(double x) {
  return exp(x);
}
__device__ __forceinline__ float d_log(float x) {
  return logf(x);
}
__device__ __forceinline__ double d_log(double x) {
  return log(x);
}
__device__ __forceinline__ float d_sqrt(float x) {
  return sqrtf(x);
}
__device__ __forceinline__ double d_sqrt(double x) {
  return sqrt(x);
}
__device__ __forceinline__ float d_abs(float x) {
  return fabsf(x);
}
__device__ __forceinline__ double d_abs(double x) {
  return fabs(x);
}
__device__ __forceinline__ float d_tanh(float x) {
  return tanhf(x);
}
__device__ __forceinline__ double d_tanh(double x) {
  return tanh(x);
}
__device__ __forceinline__ float d_erf(float x) {
  return erff(x);
}
__device__ __forceinline__ double d_erf(double x) {
  return erf(x);
}
__device__ __forceinline__ float d_pow(float x, float y) {
  return powf(x, y);
}
__device__ __forceinline__ double d_pow(double x, double y) {
  return pow(x, y);
}

// NaN-propagating maximum / minimum (a NaN on either side gives NaN), the CPU's formula.
template <typename T>
__device__ __forceinline__ T nan_max(T a, T b) {
  return (a > b || a != a) ? a : b;
}
template <typename T>
__device__ __forceinline__ T nan_min(T a, T b) {
  return (a < b || a != a) ? a : b;
}

// Logistic function without overflow: exp is only taken of a non-positive number.
template <typename T>
__device__ __forceinline__ T sigmoid_of(T x) {
  if (x >= T(0)) return T(1) / (T(1) + d_exp(-x));
  const T e = d_exp(x);
  return e / (T(1) + e);
}

// Exact GELU x * Phi(x), Phi the standard normal CDF, and its derivative Phi(x) + x * phi(x).
template <typename T>
__device__ __forceinline__ T gelu_of(T x) {
  const T inv_sqrt2 = T(0.70710678118654752440);
  return T(0.5) * x * (T(1) + d_erf(x * inv_sqrt2));
}
template <typename T>
__device__ __forceinline__ T gelu_grad_of(T x) {
  const T inv_sqrt2 = T(0.70710678118654752440), inv_sqrt2pi = T(0.39894228040143267794);
  const T cdf = T(0.5) * (T(1) + d_erf(x * inv_sqrt2));
  return cdf + x * inv_sqrt2pi * d_exp(T(-0.5) * x * x);
}

// ============================================================================================
// The ops as functors (op code + scalars, passed by value into the kernels)
// ============================================================================================

template <typename T>
struct UnaryFn {
  UnaryOp op;
  __device__ T operator()(T v) const {
    switch (op) {
      case UnaryOp::Neg:
        return -v;
      case UnaryOp::Exp:
        return d_exp(v);
      case UnaryOp::Log:
        return d_log(v);
      case UnaryOp::Sqrt:
        return d_sqrt(v);
      case UnaryOp::Abs:
        return d_abs(v);
      case UnaryOp::Relu:  // `v < 0 ? 0 : v` keeps NaN as NaN
        return v < T(0) ? T(0) : v;
      case UnaryOp::Gelu:
        return gelu_of(v);
      case UnaryOp::Sigmoid:
        return sigmoid_of(v);
      case UnaryOp::Tanh:
        return d_tanh(v);
      case UnaryOp::Square:
        return v * v;
      case UnaryOp::Reciprocal:
        return T(1) / v;
      case UnaryOp::Sign:  // 0 and NaN are their own sign
        return v > T(0) ? T(1) : (v < T(0) ? T(-1) : v);
    }
    return v;
  }
};

template <typename T>
__device__ __forceinline__ T arithmetic(BinaryOp op, T x, T y) {
  switch (op) {
    case BinaryOp::Add:
      return x + y;
    case BinaryOp::Sub:
      return x - y;
    case BinaryOp::Mul:
      return x * y;
    case BinaryOp::Div:
      return x / y;
    case BinaryOp::Pow:
      return d_pow(x, y);
    case BinaryOp::Maximum:
      return nan_max(x, y);
    case BinaryOp::Minimum:
      return nan_min(x, y);
    default:
      break;
  }
  return x;
}

// x and y of one type (the CPU compares int64 with int64, float with float; a scalar against
// an integer tensor is compared in double, both sides converted as C++ does).
template <typename X, typename Y>
__device__ __forceinline__ bool compares(BinaryOp op, X x, Y y) {
  switch (op) {
    case BinaryOp::Eq:
      return x == y;
    case BinaryOp::Ne:
      return x != y;
    case BinaryOp::Lt:
      return x < y;
    case BinaryOp::Le:
      return x <= y;
    case BinaryOp::Gt:
      return x > y;
    case BinaryOp::Ge:
      return x >= y;
    default:
      break;
  }
  return false;
}

template <typename T>
struct ArithmeticFn {
  BinaryOp op;
  __device__ T operator()(T x, T y) const { return arithmetic(op, x, y); }
};

template <typename O, typename T>
struct CompareFn {
  BinaryOp op;
  __device__ O operator()(T x, T y) const { return O(compares(op, x, y)); }
};

// The scalar already cast to the tensor's dtype (x + 0.1 on float32 adds 0.1f, as on the CPU).
template <typename T>
struct ArithmeticScalarFn {
  BinaryOp op;
  T s;
  __device__ T operator()(T v) const {
    // x^2 is a multiply on the CPU, not a pow call: same here, so the results agree bit for bit.
    if (op == BinaryOp::Pow && s == T(2)) return v * v;
    return arithmetic(op, v, s);
  }
};

// Float tensors compare against the scalar in their own dtype, integer tensors in double.
template <typename O, typename T>
struct CompareScalarFn {
  using S = std::conditional_t<std::is_floating_point_v<T>, T, double>;
  BinaryOp op;
  S s;
  __device__ O operator()(T v) const { return O(compares(op, v, s)); }
};

template <typename T>
struct AxpbyFn {
  T alpha, beta;
  __device__ T operator()(T x, T y) const { return alpha * x + beta * y; }
};

// min(max(x, lo), hi) with comparisons that let NaN through; lo > hi gives hi.
template <typename T>
struct ClampFn {
  T lo, hi;
  __device__ T operator()(T v) const {
    const T up = v < lo ? lo : v;
    return up > hi ? hi : up;
  }
};

template <typename C, typename T>
struct WhereFn {
  __device__ T operator()(C c, T x, T y) const { return c != C(0) ? x : y; }
};

// grad_x = grad_y * f'(.) from the saved tensor (x for relu/gelu/clamp, y for sigmoid/tanh).
enum class Grad { Relu, Gelu, Sigmoid, Tanh, Clamp };

template <typename T>
struct BackwardFn {
  Grad kind;
  T lo, hi;  // clamp only
  __device__ T operator()(T g, T v) const {
    switch (kind) {
      case Grad::Relu:
        return v > T(0) ? g : T(0);
      case Grad::Gelu:
        return g * gelu_grad_of(v);
      case Grad::Sigmoid:  // y (1 - y)
        return g * v * (T(1) - v);
      case Grad::Tanh:  // 1 - y^2
        return g * (T(1) - v * v);
      case Grad::Clamp:  // passes where clamp was the identity, boundaries included
        return (v >= lo && v <= hi) ? g : T(0);
    }
    return g;
  }
};

// ============================================================================================
// Kernels: contiguous and strided, for 0 to 3 inputs
// ============================================================================================
// Contiguous: element i of every operand is p[i]. Strided: offsets_of per element. Both are
// grid-stride loops, so any n runs with any grid.

template <typename O>
__global__ void __launch_bounds__(kThreads) fill_contiguous(O* out, int64_t n, O v) {
  for (int64_t i = first_index(); i < n; i += grid_step())
    out[i] = v;
}

template <typename O>
__global__ void __launch_bounds__(kThreads) fill_strided(O* out, Walk<1> s, int64_t n, O v) {
  for (int64_t i = first_index(); i < n; i += grid_step()) {
    int64_t off[1];
    offsets_of(i, s, off);
    out[off[0]] = v;
  }
}

template <typename O, typename A, typename F>
__global__ void __launch_bounds__(kThreads)
    map1_contiguous(O* out, const A* a, int64_t n, F f) {  // out, a: [n]
  for (int64_t i = first_index(); i < n; i += grid_step())
    out[i] = f(a[i]);
}

template <typename O, typename A, typename F>
__global__ void __launch_bounds__(kThreads)
    map1_strided(O* out, const A* a, Walk<2> s, int64_t n, F f) {
  for (int64_t i = first_index(); i < n; i += grid_step()) {
    int64_t off[2];
    offsets_of(i, s, off);
    out[off[0]] = f(a[off[1]]);
  }
}

template <typename O, typename A, typename B, typename F>
__global__ void __launch_bounds__(kThreads)
    map2_contiguous(O* out, const A* a, const B* b, int64_t n, F f) {  // out, a, b: [n]
  for (int64_t i = first_index(); i < n; i += grid_step())
    out[i] = f(a[i], b[i]);
}

template <typename O, typename A, typename B, typename F>
__global__ void __launch_bounds__(kThreads)
    map2_strided(O* out, const A* a, const B* b, Walk<3> s, int64_t n, F f) {
  for (int64_t i = first_index(); i < n; i += grid_step()) {
    int64_t off[3];
    offsets_of(i, s, off);
    out[off[0]] = f(a[off[1]], b[off[2]]);
  }
}

template <typename O, typename C, typename A, typename B, typename F>
__global__ void __launch_bounds__(kThreads)
    map3_contiguous(O* out, const C* c, const A* a, const B* b, int64_t n, F f) {  // all [n]
  for (int64_t i = first_index(); i < n; i += grid_step())
    out[i] = f(c[i], a[i], b[i]);
}

template <typename O, typename C, typename A, typename B, typename F>
__global__ void __launch_bounds__(kThreads)
    map3_strided(O* out, const C* c, const A* a, const B* b, Walk<4> s, int64_t n, F f) {
  for (int64_t i = first_index(); i < n; i += grid_step()) {
    int64_t off[4];
    offsets_of(i, s, off);
    out[off[0]] = f(c[off[1]], a[off[2]], b[off[3]]);
  }
}

// ============================================================================================
// Host side: checks, the simplified walk, launchers
// ============================================================================================

unsigned grid_for(int64_t n) {
  return grid_stride_blocks(n, kThreads, kMaxBlocks);
}

// ---- argument checks (the CPU's contract, with the device in place of the CPU) ----

void check_on_cuda(const char* op, const Tensor& t, const Tensor& out) {
  SELFSUP_CHECK(t.device().is_cuda() && t.device() == out.device(), op,
                " (cuda): expected tensors on ", out.device().str(),
                " (a CUDA device), got one on ", t.device().str());
}

void check_writable(const char* op, const Tensor& out) {
  SELFSUP_CHECK(out.device().is_cuda(), op, " (cuda): out is on ", out.device().str(),
                ", not a CUDA device");
  kernels::check_not_expanded(op, "out", out);
}

void check_floating(const char* op, const Tensor& t) {
  SELFSUP_CHECK(is_floating(t.dtype()), op, ": expected a float32 or float64 tensor, got ",
                dtype_name(t.dtype()), " of shape ", shape_str(t.shape()));
}

void check_same_dtype(const char* op, const Tensor& a, const Tensor& b) {
  SELFSUP_CHECK(a.dtype() == b.dtype(), op, ": mixed dtypes ", dtype_name(a.dtype()), " ",
                shape_str(a.shape()), " and ", dtype_name(b.dtype()), " ", shape_str(b.shape()));
}

void check_out(const char* op, const Tensor& out, const Shape& shape, DType dtype) {
  check_writable(op, out);
  SELFSUP_CHECK(out.shape() == shape, op, ": out has shape ", shape_str(out.shape()),
                " but the inputs broadcast to ", shape_str(shape));
  SELFSUP_CHECK(out.dtype() == dtype, op, ": out is ", dtype_name(out.dtype()),
                " but the result is ", dtype_name(dtype));
}

void check_float_op(const char* op, const Tensor& x, const Tensor& out) {
  check_writable(op, out);
  check_on_cuda(op, x, out);
  check_floating(op, x);
  check_out(op, out, x.shape(), x.dtype());
}

void check_float_op(const char* op, const Tensor& a, const Tensor& b, const Tensor& out) {
  check_writable(op, out);
  check_on_cuda(op, a, out);
  check_on_cuda(op, b, out);
  check_floating(op, a);
  check_same_dtype(op, a, b);
  check_out(op, out, broadcast_shapes(a.shape(), b.shape(), op), a.dtype());
}

// A comparison writes uint8, float32 or float64 1/0; calls fn with a value of that C++ type.
template <typename Fn>
void dispatch_mask_dtype(const char* op, const Tensor& out, Fn&& fn) {
  switch (out.dtype()) {
    case kUInt8:
      return fn(uint8_t{});
    case kFloat32:
      return fn(float{});
    case kFloat64:
      return fn(double{});
    default:
      break;
  }
  SELFSUP_CHECK(false, op, ": out must be uint8, float32 or float64 for a comparison, got ",
                dtype_name(out.dtype()));
}

void check_comparison_out(const char* op, const Tensor& out, const Shape& shape) {
  check_writable(op, out);
  SELFSUP_CHECK(out.shape() == shape, op, ": out has shape ", shape_str(out.shape()),
                " but the inputs broadcast to ", shape_str(shape));
  dispatch_mask_dtype(op, out, [](auto) {});
}

bool contiguous_like(const Tensor& t, const Tensor& out) {
  return t.is_contiguous() && t.shape() == out.shape();
}

// ---- launchers: pick the contiguous or the strided kernel, launch, check ----

template <typename O, typename A, typename F>
void launch_map1(const char* op, Tensor& out, const Tensor& a, F f) {
  const int64_t n = out.numel();
  if (n == 0) return;
  O* po = out.data_ptr<O>();      // out.shape(), any strides
  const A* pa = a.data_ptr<A>();  // broadcasts to out.shape()
  if (out.is_contiguous() && contiguous_like(a, out)) {
    map1_contiguous<<<grid_for(n), kThreads>>>(po, pa, n, f);
  } else {
    const Walk<2> s = simplify_walk<2>(
        op, out.shape(), {out.strides(), broadcast_strides(a.shape(), a.strides(), out.shape())});
    map1_strided<<<grid_for(n), kThreads>>>(po, pa, s, n, f);
  }
  check_launch(op);
}

template <typename O, typename A, typename B, typename F>
void launch_map2(const char* op, Tensor& out, const Tensor& a, const Tensor& b, F f) {
  const int64_t n = out.numel();
  if (n == 0) return;
  O* po = out.data_ptr<O>();      // out.shape(), any strides
  const A* pa = a.data_ptr<A>();  // a and b broadcast to out.shape()
  const B* pb = b.data_ptr<B>();
  const Shape& shape = out.shape();
  if (out.is_contiguous() && contiguous_like(a, out) && contiguous_like(b, out)) {
    map2_contiguous<<<grid_for(n), kThreads>>>(po, pa, pb, n, f);
  } else {
    const Walk<3> s =
        simplify_walk<3>(op, shape,
                         {out.strides(), broadcast_strides(a.shape(), a.strides(), shape),
                          broadcast_strides(b.shape(), b.strides(), shape)});
    map2_strided<<<grid_for(n), kThreads>>>(po, pa, pb, s, n, f);
  }
  check_launch(op);
}

template <typename O, typename C, typename A, typename B, typename F>
void launch_map3(const char* op, Tensor& out, const Tensor& c, const Tensor& a, const Tensor& b,
                 F f) {
  const int64_t n = out.numel();
  if (n == 0) return;
  O* po = out.data_ptr<O>();      // out.shape(), any strides
  const C* pc = c.data_ptr<C>();  // c, a and b broadcast to out.shape()
  const A* pa = a.data_ptr<A>();
  const B* pb = b.data_ptr<B>();
  const Shape& shape = out.shape();
  if (out.is_contiguous() && contiguous_like(c, out) && contiguous_like(a, out) &&
      contiguous_like(b, out)) {
    map3_contiguous<<<grid_for(n), kThreads>>>(po, pc, pa, pb, n, f);
  } else {
    const Walk<4> s =
        simplify_walk<4>(op, shape,
                         {out.strides(), broadcast_strides(c.shape(), c.strides(), shape),
                          broadcast_strides(a.shape(), a.strides(), shape),
                          broadcast_strides(b.shape(), b.strides(), shape)});
    map3_strided<<<grid_for(n), kThreads>>>(po, pc, pa, pb, s, n, f);
  }
  check_launch(op);
}

template <typename T>
void launch_backward(const char* op, const Tensor& grad_y, const Tensor& saved, Tensor& grad_x,
                     Grad kind, double lo, double hi) {
  const BackwardFn<T> f{kind, static_cast<T>(lo), static_cast<T>(hi)};
  launch_map2<T, T, T>(op, grad_x, grad_y, saved, f);
}

void backward(const char* op, const Tensor& grad_y, const Tensor& saved, Tensor& grad_x, Grad kind,
              double lo = 0, double hi = 0) {
  check_float_op(op, grad_y, saved, grad_x);
  if (grad_y.dtype() == kFloat32)
    return launch_backward<float>(op, grad_y, saved, grad_x, kind, lo, hi);
  launch_backward<double>(op, grad_y, saved, grad_x, kind, lo, hi);
}

}  // namespace

// ============================================================================================
// Public entry points
// ============================================================================================

void unary(UnaryOp op, const Tensor& x, Tensor& out) {
  const char* name = cpu::unary_op_name(op);
  check_float_op(name, x, out);
  if (x.dtype() == kFloat32) return launch_map1<float, float>(name, out, x, UnaryFn<float>{op});
  launch_map1<double, double>(name, out, x, UnaryFn<double>{op});
}

void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  const char* name = cpu::binary_op_name(op);
  if (op < BinaryOp::Eq) {  // arithmetic
    check_float_op(name, a, b, out);
    if (a.dtype() == kFloat32)
      return launch_map2<float, float, float>(name, out, a, b, ArithmeticFn<float>{op});
    return launch_map2<double, double, double>(name, out, a, b, ArithmeticFn<double>{op});
  }
  // Comparisons take inputs of any one dtype (int64 labels == int64 predictions).
  check_writable(name, out);
  check_on_cuda(name, a, out);
  check_on_cuda(name, b, out);
  check_same_dtype(name, a, b);
  check_comparison_out(name, out, broadcast_shapes(a.shape(), b.shape(), name));
  dispatch_mask_dtype(name, out, [&](auto otag) {
    dispatch_dtype(a.dtype(), [&](auto itag) {
      using O = decltype(otag);
      using T = decltype(itag);
      launch_map2<O, T, T>(name, out, a, b, CompareFn<O, T>{op});
    });
  });
}

void binary_scalar(BinaryOp op, const Tensor& x, double s, Tensor& out) {
  const char* name = cpu::binary_op_name(op);
  if (op < BinaryOp::Eq) {
    check_float_op(name, x, out);
    if (x.dtype() == kFloat32)
      return launch_map1<float, float>(name, out, x,
                                       ArithmeticScalarFn<float>{op, static_cast<float>(s)});
    return launch_map1<double, double>(name, out, x, ArithmeticScalarFn<double>{op, s});
  }
  check_writable(name, out);
  check_on_cuda(name, x, out);
  check_comparison_out(name, out, x.shape());
  dispatch_mask_dtype(name, out, [&](auto otag) {
    dispatch_dtype(x.dtype(), [&](auto itag) {
      using O = decltype(otag);
      using T = decltype(itag);
      using S = typename CompareScalarFn<O, T>::S;
      launch_map1<O, T>(name, out, x, CompareScalarFn<O, T>{op, static_cast<S>(s)});
    });
  });
}

void axpby(double alpha, const Tensor& a, double beta, const Tensor& b, Tensor& out) {
  check_float_op("axpby", a, b, out);
  if (a.dtype() == kFloat32)
    return launch_map2<float, float, float>(
        "axpby", out, a, b, AxpbyFn<float>{static_cast<float>(alpha), static_cast<float>(beta)});
  launch_map2<double, double, double>("axpby", out, a, b, AxpbyFn<double>{alpha, beta});
}

void clamp(const Tensor& x, double lo, double hi, Tensor& out) {
  check_float_op("clamp", x, out);
  if (x.dtype() == kFloat32)
    return launch_map1<float, float>(
        "clamp", out, x, ClampFn<float>{static_cast<float>(lo), static_cast<float>(hi)});
  launch_map1<double, double>("clamp", out, x, ClampFn<double>{lo, hi});
}

void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) {
  check_writable("where", out);
  for (const Tensor* t : {&cond, &a, &b})
    check_on_cuda("where", *t, out);
  SELFSUP_CHECK(cond.dtype() == kUInt8 || is_floating(cond.dtype()),
                "where: cond must be uint8, float32 or float64, got ", dtype_name(cond.dtype()));
  check_same_dtype("where", a, b);
  const Shape shape =
      broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  check_out("where", out, shape, a.dtype());
  dispatch_dtype(cond.dtype(), [&](auto ctag) {
    using C = decltype(ctag);
    if constexpr (!std::is_same_v<C, int64_t>) {
      dispatch_dtype(a.dtype(), [&](auto tag) {
        using T = decltype(tag);
        launch_map3<T, C, T, T>("where", out, cond, a, b, WhereFn<C, T>{});
      });
    }
  });
}

void fill(Tensor& out, double value) {
  check_writable("fill", out);
  const int64_t n = out.numel();
  if (n == 0) return;
  dispatch_dtype(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T v = static_cast<T>(value);
    T* po = out.data_ptr<T>();  // out.shape(), any strides
    if (out.is_contiguous()) {
      fill_contiguous<<<grid_for(n), kThreads>>>(po, n, v);
    } else {
      const Walk<1> s = simplify_walk<1>("fill", out.shape(), {out.strides()});
      fill_strided<<<grid_for(n), kThreads>>>(po, s, n, v);
    }
  });
  check_launch("fill");
}

void relu_backward(const Tensor& grad_y, const Tensor& x, Tensor& grad_x) {
  backward("relu_backward", grad_y, x, grad_x, Grad::Relu);
}
void gelu_backward(const Tensor& grad_y, const Tensor& x, Tensor& grad_x) {
  backward("gelu_backward", grad_y, x, grad_x, Grad::Gelu);
}
void sigmoid_backward(const Tensor& grad_y, const Tensor& y, Tensor& grad_x) {
  backward("sigmoid_backward", grad_y, y, grad_x, Grad::Sigmoid);
}
void tanh_backward(const Tensor& grad_y, const Tensor& y, Tensor& grad_x) {
  backward("tanh_backward", grad_y, y, grad_x, Grad::Tanh);
}
void clamp_backward(const Tensor& grad_y, const Tensor& x, double lo, double hi, Tensor& grad_x) {
  backward("clamp_backward", grad_y, x, grad_x, Grad::Clamp, lo, hi);
}

}  // namespace selfsup::cuda
