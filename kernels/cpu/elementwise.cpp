// Element-wise CPU kernels: out[i] = f(a[i], b[i], ...) with NumPy broadcasting.
//
// Inputs: one to three tensors that broadcast to out's shape; out is allocated by the caller
// with any (non-overlapping) strides and may alias an input of the same shape for in-place use.
// Bounds per element: 1 to ~30 FLOPs (add vs erf/exp) against 2-4 loads/stores of 4 or 8 bytes,
// so everything but GELU and the transcendental ops is memory-bound: the goal is a loop that
// streams memory at full speed, not fewer FLOPs.
//
// Two paths share each op's formula (a small lambda):
//  1. all operands contiguous and of out's shape: one flat loop the compiler vectorises, split
//     across OpenMP threads above detail::kParallelGrain elements;
//  2. anything else (broadcast, transposed, narrowed, expanded): a simplified loop nest
//     (kernels/cpu/loops.h) whose innermost runs get a unit-stride loop when they can.
#include "kernels/cpu/elementwise.h"

#include <cmath>
#include <type_traits>

#include "kernels/cpu/loops.h"

namespace selfsup::cpu {

using detail::kParallelGrain;
using detail::make_nest;
using detail::parallel_for;
using detail::parallel_runs;

const char* unary_op_name(UnaryOp op) {
  switch (op) {
    case UnaryOp::Neg:
      return "neg";
    case UnaryOp::Exp:
      return "exp";
    case UnaryOp::Log:
      return "log";
    case UnaryOp::Sqrt:
      return "sqrt";
    case UnaryOp::Abs:
      return "abs";
    case UnaryOp::Relu:
      return "relu";
    case UnaryOp::Gelu:
      return "gelu";
    case UnaryOp::Sigmoid:
      return "sigmoid";
    case UnaryOp::Tanh:
      return "tanh";
    case UnaryOp::Square:
      return "square";
    case UnaryOp::Reciprocal:
      return "reciprocal";
    case UnaryOp::Sign:
      return "sign";
  }
  return "unary";
}

const char* binary_op_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::Add:
      return "add";
    case BinaryOp::Sub:
      return "sub";
    case BinaryOp::Mul:
      return "mul";
    case BinaryOp::Div:
      return "div";
    case BinaryOp::Pow:
      return "pow";
    case BinaryOp::Maximum:
      return "maximum";
    case BinaryOp::Minimum:
      return "minimum";
    case BinaryOp::Eq:
      return "eq";
    case BinaryOp::Ne:
      return "ne";
    case BinaryOp::Lt:
      return "lt";
    case BinaryOp::Le:
      return "le";
    case BinaryOp::Gt:
      return "gt";
    case BinaryOp::Ge:
      return "ge";
  }
  return "binary";
}

namespace {

bool is_comparison(BinaryOp op) {
  return op >= BinaryOp::Eq;
}

// ============================================================================================
// Checks
// ============================================================================================

void check_floating(const char* op, const Tensor& t) {
  SELFSUP_CHECK(is_floating(t.dtype()), op, ": expected a float32 or float64 tensor, got ",
                dtype_name(t.dtype()), " of shape ", shape_str(t.shape()));
}

void check_same_dtype(const char* op, const Tensor& a, const Tensor& b) {
  SELFSUP_CHECK(a.dtype() == b.dtype(), op, ": mixed dtypes ", dtype_name(a.dtype()), " ",
                shape_str(a.shape()), " and ", dtype_name(b.dtype()), " ", shape_str(b.shape()));
}

// out must be writable and have exactly the shape its inputs broadcast to.
void check_out_shape(const char* op, const Tensor& out, const Shape& expected) {
  detail::check_writable(op, out);
  SELFSUP_CHECK(out.shape() == expected, op, ": out has shape ", shape_str(out.shape()),
                " but the inputs broadcast to ", shape_str(expected));
}

void check_out_dtype(const char* op, const Tensor& out, DType expected) {
  SELFSUP_CHECK(out.dtype() == expected, op, ": out is ", dtype_name(out.dtype()),
                " but the result is ", dtype_name(expected));
}

// The usual contract of a float op: float inputs of one dtype, out of that dtype and of the
// broadcast shape of the inputs.
void check_float_op(const char* op, const Tensor& a, const Tensor& b, const Tensor& out) {
  detail::check_cpu(op, a);
  detail::check_cpu(op, b);
  check_floating(op, a);
  check_same_dtype(op, a, b);
  check_out_shape(op, out, broadcast_shapes(a.shape(), b.shape(), op));
  check_out_dtype(op, out, a.dtype());
}

void check_float_op(const char* op, const Tensor& x, const Tensor& out) {
  detail::check_cpu(op, x);
  check_floating(op, x);
  check_out_shape(op, out, x.shape());
  check_out_dtype(op, out, x.dtype());
}

bool contiguous_like(const Tensor& t, const Tensor& out) {
  return t.is_contiguous() && t.shape() == out.shape();
}

// ============================================================================================
// The three loop shapes: out = f(a), f(a, b), f(c, a, b)
// ============================================================================================

template <typename O, typename A, typename F>
void map1(Tensor& out, const Tensor& a, F f) {
  O* po = out.data_ptr<O>();      // out.shape(), any strides
  const A* pa = a.data_ptr<A>();  // broadcasts to out.shape()
  if (out.is_contiguous() && contiguous_like(a, out)) {
    parallel_for(out.numel(), kParallelGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i)
        po[i] = f(pa[i]);
    });
    return;
  }
  auto nest = make_nest<2>(
      out.shape(), {out.strides(), broadcast_strides(a.shape(), a.strides(), out.shape())}, 0);
  parallel_runs(
      nest, [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& st) {
        O* o = po + off[0];
        const A* x = pa + off[1];
        if (st[0] == 1 && st[1] == 1) {
          for (int64_t i = 0; i < n; ++i)
            o[i] = f(x[i]);
        } else {
          for (int64_t i = 0; i < n; ++i)
            o[i * st[0]] = f(x[i * st[1]]);
        }
      });
}

template <typename O, typename A, typename B, typename F>
void map2(Tensor& out, const Tensor& a, const Tensor& b, F f) {
  O* po = out.data_ptr<O>();      // out.shape(), any strides
  const A* pa = a.data_ptr<A>();  // a and b broadcast to out.shape()
  const B* pb = b.data_ptr<B>();
  if (out.is_contiguous() && contiguous_like(a, out) && contiguous_like(b, out)) {
    parallel_for(out.numel(), kParallelGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i)
        po[i] = f(pa[i], pb[i]);
    });
    return;
  }
  auto nest = make_nest<3>(out.shape(),
                           {out.strides(), broadcast_strides(a.shape(), a.strides(), out.shape()),
                            broadcast_strides(b.shape(), b.strides(), out.shape())},
                           0);
  parallel_runs(
      nest, [&](const std::array<int64_t, 3>& off, int64_t n, const std::array<int64_t, 3>& st) {
        O* o = po + off[0];
        const A* x = pa + off[1];
        const B* y = pb + off[2];
        // Unit strides, or one side held fixed along the run ([N, D] op [N, 1]): plain loops the
        // compiler vectorises. Everything else walks its strides.
        if (st[0] == 1 && st[1] == 1 && st[2] == 1) {
          for (int64_t i = 0; i < n; ++i)
            o[i] = f(x[i], y[i]);
        } else if (st[0] == 1 && st[1] == 1 && st[2] == 0) {
          const B yv = *y;
          for (int64_t i = 0; i < n; ++i)
            o[i] = f(x[i], yv);
        } else if (st[0] == 1 && st[1] == 0 && st[2] == 1) {
          const A xv = *x;
          for (int64_t i = 0; i < n; ++i)
            o[i] = f(xv, y[i]);
        } else {
          for (int64_t i = 0; i < n; ++i)
            o[i * st[0]] = f(x[i * st[1]], y[i * st[2]]);
        }
      });
}

template <typename O, typename C, typename A, typename B, typename F>
void map3(Tensor& out, const Tensor& c, const Tensor& a, const Tensor& b, F f) {
  O* po = out.data_ptr<O>();      // out.shape(), any strides
  const C* pc = c.data_ptr<C>();  // c, a and b broadcast to out.shape()
  const A* pa = a.data_ptr<A>();
  const B* pb = b.data_ptr<B>();
  if (out.is_contiguous() && contiguous_like(c, out) && contiguous_like(a, out) &&
      contiguous_like(b, out)) {
    parallel_for(out.numel(), kParallelGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i)
        po[i] = f(pc[i], pa[i], pb[i]);
    });
    return;
  }
  const Shape& shape = out.shape();
  auto nest = make_nest<4>(shape,
                           {out.strides(), broadcast_strides(c.shape(), c.strides(), shape),
                            broadcast_strides(a.shape(), a.strides(), shape),
                            broadcast_strides(b.shape(), b.strides(), shape)},
                           0);
  parallel_runs(
      nest, [&](const std::array<int64_t, 4>& off, int64_t n, const std::array<int64_t, 4>& st) {
        O* o = po + off[0];
        const C* z = pc + off[1];
        const A* x = pa + off[2];
        const B* y = pb + off[3];
        for (int64_t i = 0; i < n; ++i)
          o[i * st[0]] = f(z[i * st[1]], x[i * st[2]], y[i * st[3]]);
      });
}

// ============================================================================================
// The formulas
// ============================================================================================

// NaN-propagating maximum / minimum (a NaN on either side gives NaN, as in PyTorch).
template <typename T>
T nan_max(T a, T b) {
  return (a > b || a != a) ? a : b;
}
template <typename T>
T nan_min(T a, T b) {
  return (a < b || a != a) ? a : b;
}

// Logistic function without overflow: exp is only taken of a non-positive number.
template <typename T>
T sigmoid_of(T x) {
  if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
  const T e = std::exp(x);
  return e / (T(1) + e);
}

template <typename T>
constexpr T kInvSqrt2 = T(0.70710678118654752440);
template <typename T>
constexpr T kInvSqrt2Pi = T(0.39894228040143267794);

// Exact GELU: x * Phi(x) with Phi the standard normal CDF.
template <typename T>
T gelu_of(T x) {
  return T(0.5) * x * (T(1) + std::erf(x * kInvSqrt2<T>));
}
// d/dx [x * Phi(x)] = Phi(x) + x * phi(x), phi the standard normal density.
template <typename T>
T gelu_grad_of(T x) {
  const T cdf = T(0.5) * (T(1) + std::erf(x * kInvSqrt2<T>));
  return cdf + x * kInvSqrt2Pi<T> * std::exp(T(-0.5) * x * x);
}

template <typename T>
void unary_typed(UnaryOp op, const Tensor& x, Tensor& out) {
  switch (op) {
    case UnaryOp::Neg:
      return map1<T, T>(out, x, [](T v) { return -v; });
    case UnaryOp::Exp:
      return map1<T, T>(out, x, [](T v) { return std::exp(v); });
    case UnaryOp::Log:
      return map1<T, T>(out, x, [](T v) { return std::log(v); });
    case UnaryOp::Sqrt:
      return map1<T, T>(out, x, [](T v) { return std::sqrt(v); });
    case UnaryOp::Abs:
      return map1<T, T>(out, x, [](T v) { return std::abs(v); });
    // `v < 0 ? 0 : v` keeps NaN as NaN.
    case UnaryOp::Relu:
      return map1<T, T>(out, x, [](T v) { return v < T(0) ? T(0) : v; });
    case UnaryOp::Gelu:
      return map1<T, T>(out, x, [](T v) { return gelu_of(v); });
    case UnaryOp::Sigmoid:
      return map1<T, T>(out, x, [](T v) { return sigmoid_of(v); });
    case UnaryOp::Tanh:
      return map1<T, T>(out, x, [](T v) { return std::tanh(v); });
    case UnaryOp::Square:
      return map1<T, T>(out, x, [](T v) { return v * v; });
    case UnaryOp::Reciprocal:
      return map1<T, T>(out, x, [](T v) { return T(1) / v; });
    // 0 and NaN are their own sign.
    case UnaryOp::Sign:
      return map1<T, T>(out, x, [](T v) { return v > T(0) ? T(1) : (v < T(0) ? T(-1) : v); });
  }
}

template <typename T>
void arithmetic_typed(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  switch (op) {
    case BinaryOp::Add:
      return map2<T, T, T>(out, a, b, [](T x, T y) { return x + y; });
    case BinaryOp::Sub:
      return map2<T, T, T>(out, a, b, [](T x, T y) { return x - y; });
    case BinaryOp::Mul:
      return map2<T, T, T>(out, a, b, [](T x, T y) { return x * y; });
    case BinaryOp::Div:
      return map2<T, T, T>(out, a, b, [](T x, T y) { return x / y; });
    case BinaryOp::Pow:
      return map2<T, T, T>(out, a, b, [](T x, T y) { return std::pow(x, y); });
    case BinaryOp::Maximum:
      return map2<T, T, T>(out, a, b, [](T x, T y) { return nan_max(x, y); });
    case BinaryOp::Minimum:
      return map2<T, T, T>(out, a, b, [](T x, T y) { return nan_min(x, y); });
    default:
      break;
  }
}

template <typename O, typename T>
void compare_typed(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  switch (op) {
    case BinaryOp::Eq:
      return map2<O, T, T>(out, a, b, [](T x, T y) { return O(x == y); });
    case BinaryOp::Ne:
      return map2<O, T, T>(out, a, b, [](T x, T y) { return O(x != y); });
    case BinaryOp::Lt:
      return map2<O, T, T>(out, a, b, [](T x, T y) { return O(x < y); });
    case BinaryOp::Le:
      return map2<O, T, T>(out, a, b, [](T x, T y) { return O(x <= y); });
    case BinaryOp::Gt:
      return map2<O, T, T>(out, a, b, [](T x, T y) { return O(x > y); });
    case BinaryOp::Ge:
      return map2<O, T, T>(out, a, b, [](T x, T y) { return O(x >= y); });
    default:
      break;
  }
}

template <typename T>
void arithmetic_scalar_typed(BinaryOp op, const Tensor& x, double scalar, Tensor& out) {
  // The scalar takes the tensor's dtype first (x + 0.1 on float32 adds 0.1f), as in PyTorch.
  const T s = static_cast<T>(scalar);
  switch (op) {
    case BinaryOp::Add:
      return map1<T, T>(out, x, [s](T v) { return v + s; });
    case BinaryOp::Sub:
      return map1<T, T>(out, x, [s](T v) { return v - s; });
    case BinaryOp::Mul:
      return map1<T, T>(out, x, [s](T v) { return v * s; });
    case BinaryOp::Div:
      return map1<T, T>(out, x, [s](T v) { return v / s; });
    case BinaryOp::Pow:
      // x^2 is the common case (squared errors, variances): a multiply, not a pow call.
      if (s == T(2)) return map1<T, T>(out, x, [](T v) { return v * v; });
      return map1<T, T>(out, x, [s](T v) { return std::pow(v, s); });
    case BinaryOp::Maximum:
      return map1<T, T>(out, x, [s](T v) { return nan_max(v, s); });
    case BinaryOp::Minimum:
      return map1<T, T>(out, x, [s](T v) { return nan_min(v, s); });
    default:
      break;
  }
}

template <typename O, typename T>
void compare_scalar_typed(BinaryOp op, const Tensor& x, double scalar, Tensor& out) {
  // Float tensors compare against the scalar in their own dtype (x == 0.1 holds for the float32
  // 0.1f); integer tensors compare in double so that x < 2.5 is not x < 2.
  using S = std::conditional_t<std::is_floating_point_v<T>, T, double>;
  const S s = static_cast<S>(scalar);
  switch (op) {
    case BinaryOp::Eq:
      return map1<O, T>(out, x, [s](T v) { return O(v == s); });
    case BinaryOp::Ne:
      return map1<O, T>(out, x, [s](T v) { return O(v != s); });
    case BinaryOp::Lt:
      return map1<O, T>(out, x, [s](T v) { return O(v < s); });
    case BinaryOp::Le:
      return map1<O, T>(out, x, [s](T v) { return O(v <= s); });
    case BinaryOp::Gt:
      return map1<O, T>(out, x, [s](T v) { return O(v > s); });
    case BinaryOp::Ge:
      return map1<O, T>(out, x, [s](T v) { return O(v >= s); });
    default:
      break;
  }
}

// Calls fn with a value of out's C++ type for the dtypes a comparison may write.
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

void check_comparison_out(const char* op, const Tensor& out, const Shape& expected) {
  check_out_shape(op, out, expected);
  dispatch_mask_dtype(op, out, [](auto) {});
}

}  // namespace

// ============================================================================================
// Public entry points
// ============================================================================================

void unary(UnaryOp op, const Tensor& x, Tensor& out) {
  const char* name = unary_op_name(op);
  check_float_op(name, x, out);
  if (x.dtype() == kFloat32) return unary_typed<float>(op, x, out);
  unary_typed<double>(op, x, out);
}

void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  const char* name = binary_op_name(op);
  if (!is_comparison(op)) {
    check_float_op(name, a, b, out);
    if (a.dtype() == kFloat32) return arithmetic_typed<float>(op, a, b, out);
    return arithmetic_typed<double>(op, a, b, out);
  }
  // Comparisons take inputs of any one dtype (int64 labels == int64 predictions).
  detail::check_cpu(name, a);
  detail::check_cpu(name, b);
  check_same_dtype(name, a, b);
  check_comparison_out(name, out, broadcast_shapes(a.shape(), b.shape(), name));
  dispatch_mask_dtype(name, out, [&](auto otag) {
    dispatch_dtype(a.dtype(), [&](auto itag) {
      compare_typed<decltype(otag), decltype(itag)>(op, a, b, out);
    });
  });
}

void binary_scalar(BinaryOp op, const Tensor& x, double s, Tensor& out) {
  const char* name = binary_op_name(op);
  if (!is_comparison(op)) {
    check_float_op(name, x, out);
    if (x.dtype() == kFloat32) return arithmetic_scalar_typed<float>(op, x, s, out);
    return arithmetic_scalar_typed<double>(op, x, s, out);
  }
  detail::check_cpu(name, x);
  check_comparison_out(name, out, x.shape());
  dispatch_mask_dtype(name, out, [&](auto otag) {
    dispatch_dtype(x.dtype(), [&](auto itag) {
      compare_scalar_typed<decltype(otag), decltype(itag)>(op, x, s, out);
    });
  });
}

void axpby(double alpha, const Tensor& a, double beta, const Tensor& b, Tensor& out) {
  check_float_op("axpby", a, b, out);
  dispatch_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point_v<T>) {
      const T al = static_cast<T>(alpha), be = static_cast<T>(beta);
      map2<T, T, T>(out, a, b, [al, be](T x, T y) { return al * x + be * y; });
    }
  });
}

void clamp(const Tensor& x, double lo, double hi, Tensor& out) {
  check_float_op("clamp", x, out);
  dispatch_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point_v<T>) {
      const T l = static_cast<T>(lo), h = static_cast<T>(hi);
      // min(max(x, lo), hi) written with comparisons that let NaN through; lo > hi gives hi.
      map1<T, T>(out, x, [l, h](T v) {
        const T up = v < l ? l : v;
        return up > h ? h : up;
      });
    }
  });
}

void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) {
  for (const Tensor* t : {&cond, &a, &b})
    detail::check_cpu("where", *t);
  SELFSUP_CHECK(cond.dtype() == kUInt8 || is_floating(cond.dtype()),
                "where: cond must be uint8, float32 or float64, got ", dtype_name(cond.dtype()));
  check_same_dtype("where", a, b);
  const Shape shape =
      broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  check_out_shape("where", out, shape);
  check_out_dtype("where", out, a.dtype());
  dispatch_dtype(cond.dtype(), [&](auto ctag) {
    using C = decltype(ctag);
    if constexpr (!std::is_same_v<C, int64_t>) {
      dispatch_dtype(a.dtype(), [&](auto tag) {
        using T = decltype(tag);
        map3<T, C, T, T>(out, cond, a, b, [](C c, T x, T y) { return c != C(0) ? x : y; });
      });
    }
  });
}

void fill(Tensor& out, double value) {
  detail::check_writable("fill", out);
  dispatch_dtype(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T v = static_cast<T>(value);
    T* po = out.data_ptr<T>();  // out.shape(), any strides
    if (out.is_contiguous()) {
      parallel_for(out.numel(), kParallelGrain,
                   [&](int64_t begin, int64_t end) { std::fill(po + begin, po + end, v); });
      return;
    }
    auto nest = make_nest<1>(out.shape(), {out.strides()}, 0);
    parallel_runs(
        nest, [&](const std::array<int64_t, 1>& off, int64_t n, const std::array<int64_t, 1>& st) {
          for (int64_t i = 0; i < n; ++i)
            po[off[0] + i * st[0]] = v;
        });
  });
}

// ============================================================================================
// Backward helpers: grad_x = grad_y * f'(.)
// ============================================================================================

namespace {

// Runs f(grad_y, saved) -> grad_x for a float backward helper after the usual checks.
template <typename F>
void backward_map(const char* op, const Tensor& grad_y, const Tensor& saved, Tensor& grad_x,
                  F&& f) {
  check_float_op(op, grad_y, saved, grad_x);
  if (grad_y.dtype() == kFloat32) return map2<float, float, float>(grad_x, grad_y, saved, f);
  map2<double, double, double>(grad_x, grad_y, saved, f);
}

}  // namespace

void relu_backward(const Tensor& grad_y, const Tensor& x, Tensor& grad_x) {
  backward_map("relu_backward", grad_y, x, grad_x,
               [](auto g, auto v) { return v > decltype(v)(0) ? g : decltype(g)(0); });
}

void gelu_backward(const Tensor& grad_y, const Tensor& x, Tensor& grad_x) {
  backward_map("gelu_backward", grad_y, x, grad_x,
               [](auto g, auto v) { return g * gelu_grad_of(v); });
}

void sigmoid_backward(const Tensor& grad_y, const Tensor& y, Tensor& grad_x) {
  // d sigmoid / dx = y (1 - y), from the saved output.
  backward_map("sigmoid_backward", grad_y, y, grad_x,
               [](auto g, auto s) { return g * s * (decltype(s)(1) - s); });
}

void tanh_backward(const Tensor& grad_y, const Tensor& y, Tensor& grad_x) {
  // d tanh / dx = 1 - y^2, from the saved output.
  backward_map("tanh_backward", grad_y, y, grad_x,
               [](auto g, auto t) { return g * (decltype(t)(1) - t * t); });
}

void clamp_backward(const Tensor& grad_y, const Tensor& x, double lo, double hi, Tensor& grad_x) {
  // The gradient passes where clamp was the identity, boundaries included (as in PyTorch).
  backward_map("clamp_backward", grad_y, x, grad_x, [lo, hi](auto g, auto v) {
    using T = decltype(v);
    return (v >= static_cast<T>(lo) && v <= static_cast<T>(hi)) ? g : T(0);
  });
}

}  // namespace selfsup::cpu
