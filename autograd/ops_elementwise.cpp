// Element-wise ops and their gradients. Broadcasting inputs get their gradient summed back to
// their own shape (reduce_to).
//
// Every kernel call goes through kernels/dispatch.h, so forward and backward run on the device
// of the inputs (CPU or CUDA); the backward closures build their gradients from these same ops
// and dispatch:: kernels only, so they stay on that device too. (reduce_to, for broadcast
// inputs, is a reduction and still CPU-only until reductions are dispatched.)
#include <cmath>

#include "autograd/op_utils.h"
#include "autograd/ops.h"
#include "kernels/dispatch.h"

namespace selfsup {

using detail::needs_grad;
using detail::reduce_to;

namespace {

using dispatch::BinaryOp;
using dispatch::UnaryOp;

Tensor binary_forward(BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* name = cpu::binary_op_name(op);
  detail::check_same_device(name, {a, b});
  detail::check_same_dtype(name, a, b);
  Tensor out = detail::empty_as(broadcast_shapes(a.shape(), b.shape(), name), a);
  dispatch::binary(op, a, b, out);
  return out;
}

// A uint8 mask on the inputs' device.
Tensor compare(BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* name = cpu::binary_op_name(op);
  detail::check_same_device(name, {a, b});
  detail::check_same_dtype(name, a, b);
  Tensor out =
      empty(broadcast_shapes(a.shape(), b.shape(), name), TensorOptions(kUInt8).device(a.device()));
  dispatch::binary(op, a, b, out);
  return out;
}

Tensor compare_scalar(BinaryOp op, const Tensor& a, double s) {
  Tensor out = empty(a.shape(), TensorOptions(kUInt8).device(a.device()));
  dispatch::binary_scalar(op, a, s, out);
  return out;
}

Tensor unary_forward(UnaryOp op, const Tensor& x) {
  detail::check_floating(cpu::unary_op_name(op), x);
  Tensor out = detail::empty_as(x.shape(), x);
  dispatch::unary(op, x, out);
  return out;
}

Tensor scalar_forward(BinaryOp op, const Tensor& x, double s) {
  detail::check_floating(cpu::binary_op_name(op), x);
  Tensor out = detail::empty_as(x.shape(), x);
  dispatch::binary_scalar(op, x, s, out);
  return out;
}

// grad * mask where mask is 1 where a (op) b holds, plus half the gradient at ties. The
// comparisons write 1/0 straight into a's float dtype (no uint8 -> float copy, which core can
// only do on the CPU).
Tensor tie_split_mask(const Tensor& a, const Tensor& b, bool take_larger) {
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), "tie_split_mask");
  Tensor w = detail::empty_as(shape, a), t = detail::empty_as(shape, a);
  dispatch::binary(take_larger ? BinaryOp::Gt : BinaryOp::Lt, a, b, w);
  dispatch::binary(BinaryOp::Eq, a, b, t);
  return add(w, mul(t, 0.5));
}

}  // namespace

// ---- binary arithmetic ----

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Add, a, b);
  return record(out, "add", {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor& g) {
    return std::vector<Tensor>{reduce_to(g, sa), reduce_to(g, sb)};
  });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Sub, a, b);
  return record(out, "sub", {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor& g) {
    return std::vector<Tensor>{reduce_to(g, sa), reduce_to(neg(g), sb)};
  });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Mul, a, b);
  Tensor sa = a.detach(), sb = b.detach();
  bool ga = needs_grad(a), gb = needs_grad(b);
  return record(out, "mul", {a, b},
                [=](const Tensor& g) {
                  return std::vector<Tensor>{ga ? reduce_to(mul(g, sb), sa.shape()) : Tensor(),
                                             gb ? reduce_to(mul(g, sa), sb.shape()) : Tensor()};
                },
                {a, b});
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Div, a, b);
  Tensor sa = a.detach(), sb = b.detach();
  bool ga = needs_grad(a), gb = needs_grad(b);
  return record(out, "div", {a, b},
                [=](const Tensor& g) {
                  Tensor grad_a = ga ? reduce_to(div(g, sb), sa.shape()) : Tensor();
                  Tensor grad_b =
                      gb ? reduce_to(neg(div(mul(g, sa), mul(sb, sb))), sb.shape()) : Tensor();
                  return std::vector<Tensor>{grad_a, grad_b};
                },
                {a, b});
}

Tensor maximum(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Maximum, a, b);
  Tensor sa = a.detach(), sb = b.detach();
  return record(out, "maximum", {a, b},
                [=](const Tensor& g) {
                  Tensor to_a = tie_split_mask(sa, sb, true);
                  Tensor to_b = add(neg(to_a), 1.0);  // 1 - to_a, with no host-filled ones tensor
                  return std::vector<Tensor>{reduce_to(mul(g, to_a), sa.shape()),
                                             reduce_to(mul(g, to_b), sb.shape())};
                },
                {a, b});
}

Tensor minimum(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Minimum, a, b);
  Tensor sa = a.detach(), sb = b.detach();
  return record(out, "minimum", {a, b},
                [=](const Tensor& g) {
                  Tensor to_a = tie_split_mask(sa, sb, false);
                  Tensor to_b = add(neg(to_a), 1.0);  // 1 - to_a, with no host-filled ones tensor
                  return std::vector<Tensor>{reduce_to(mul(g, to_a), sa.shape()),
                                             reduce_to(mul(g, to_b), sb.shape())};
                },
                {a, b});
}

Tensor pow(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Pow, a, b);
  Tensor sa = a.detach(), sb = b.detach(), y = out.detach();
  bool ga = needs_grad(a), gb = needs_grad(b);
  return record(out, "pow", {a, b},
                [=](const Tensor& g) {
                  // d/da a^b = b a^(b-1);  d/db a^b = a^b log(a)
                  Tensor grad_a =
                      ga ? reduce_to(mul(g, mul(sb, pow(sa, add(sb, -1.0)))), sa.shape())
                         : Tensor();
                  Tensor grad_b = gb ? reduce_to(mul(g, mul(y, log(sa))), sb.shape()) : Tensor();
                  return std::vector<Tensor>{grad_a, grad_b};
                },
                {a, b, out});
}

// ---- with a scalar ----

Tensor add(const Tensor& a, double s) {
  Tensor out = scalar_forward(BinaryOp::Add, a, s);
  return record(out, "add", {a}, [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

Tensor mul(const Tensor& a, double s) {
  Tensor out = scalar_forward(BinaryOp::Mul, a, s);
  return record(out, "mul", {a}, [s](const Tensor& g) { return std::vector<Tensor>{mul(g, s)}; });
}

Tensor pow(const Tensor& a, double e) {
  Tensor out = scalar_forward(BinaryOp::Pow, a, e);
  Tensor sa = a.detach();
  return record(
      out, "pow", {a},
      [=](const Tensor& g) { return std::vector<Tensor>{mul(mul(g, pow(sa, e - 1.0)), e)}; }, {a});
}

// ---- unary ----

Tensor neg(const Tensor& x) {
  Tensor out = unary_forward(UnaryOp::Neg, x);
  return record(out, "neg", {x}, [](const Tensor& g) { return std::vector<Tensor>{neg(g)}; });
}

Tensor exp(const Tensor& x) {
  Tensor out = unary_forward(UnaryOp::Exp, x);
  Tensor y = out.detach();
  return record(out, "exp", {x}, [=](const Tensor& g) { return std::vector<Tensor>{mul(g, y)}; },
                {out});
}

Tensor log(const Tensor& x) {
  Tensor out = unary_forward(UnaryOp::Log, x);
  Tensor sx = x.detach();
  return record(out, "log", {x}, [=](const Tensor& g) { return std::vector<Tensor>{div(g, sx)}; },
                {x});
}

Tensor sqrt(const Tensor& x) {
  Tensor out = unary_forward(UnaryOp::Sqrt, x);
  Tensor y = out.detach();
  return record(out, "sqrt", {x},
                [=](const Tensor& g) { return std::vector<Tensor>{div(mul(g, 0.5), y)}; }, {out});
}

Tensor abs(const Tensor& x) {
  Tensor out = unary_forward(UnaryOp::Abs, x);
  Tensor sx = x.detach();
  return record(out, "abs", {x},
                [=](const Tensor& g) {
                  return std::vector<Tensor>{mul(g, unary_forward(UnaryOp::Sign, sx))};
                },
                {x});
}

Tensor square(const Tensor& x) {
  Tensor out = unary_forward(UnaryOp::Square, x);
  Tensor sx = x.detach();
  return record(out, "square", {x},
                [=](const Tensor& g) { return std::vector<Tensor>{mul(mul(g, sx), 2.0)}; }, {x});
}

namespace {

// An activation whose backward kernel takes (grad, saved) -> grad_x.
using ActBackward = void (*)(const Tensor&, const Tensor&, Tensor&);

Tensor activation(UnaryOp op, const char* name, const Tensor& x, ActBackward backward,
                  bool saves_output) {
  Tensor out = unary_forward(op, x);
  Tensor saved = saves_output ? out.detach() : x.detach();
  return record(out, name, {x},
                [=](const Tensor& g) {
                  Tensor gx = detail::empty_as(g.shape(), g);
                  backward(g, saved, gx);
                  return std::vector<Tensor>{gx};
                },
                {saves_output ? out : x});
}

}  // namespace

Tensor relu(const Tensor& x) {
  return activation(UnaryOp::Relu, "relu", x, dispatch::relu_backward, false);
}
Tensor gelu(const Tensor& x) {
  return activation(UnaryOp::Gelu, "gelu", x, dispatch::gelu_backward, false);
}
Tensor sigmoid(const Tensor& x) {
  return activation(UnaryOp::Sigmoid, "sigmoid", x, dispatch::sigmoid_backward, true);
}
Tensor tanh(const Tensor& x) {
  return activation(UnaryOp::Tanh, "tanh", x, dispatch::tanh_backward, true);
}

Tensor clamp(const Tensor& x, double lo, double hi) {
  detail::check_floating("clamp", x);
  SELFSUP_CHECK(lo <= hi, "clamp: lo ", lo, " > hi ", hi);
  Tensor out = detail::empty_as(x.shape(), x);
  dispatch::clamp(x, lo, hi, out);
  Tensor sx = x.detach();
  return record(out, "clamp", {x},
                [=](const Tensor& g) {
                  Tensor gx = detail::empty_as(g.shape(), g);
                  dispatch::clamp_backward(g, sx, lo, hi, gx);
                  return std::vector<Tensor>{gx};
                },
                {x});
}

Tensor clamp_min(const Tensor& x, double lo) {
  return clamp(x, lo, HUGE_VAL);
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  detail::check_same_device("where", {cond, a, b});
  detail::check_same_dtype("where", a, b);
  Shape shape =
      broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor out = detail::empty_as(shape, a);
  dispatch::where(cond, a, b, out);
  Tensor c = cond.detach();
  return record(out, "where", {a, b}, [=, sa = a.shape(), sb = b.shape()](const Tensor& g) {
    Tensor z = detail::empty_as(g.shape(), g);
    dispatch::fill(z, 0.0);  // on g's device, no host round trip
    Tensor ga = detail::empty_as(g.shape(), g), gb = detail::empty_as(g.shape(), g);
    dispatch::where(c, g, z, ga);
    dispatch::where(c, z, g, gb);
    return std::vector<Tensor>{reduce_to(ga, sa), reduce_to(gb, sb)};
  });
}

// ---- comparisons (no gradient) ----

Tensor eq(const Tensor& a, const Tensor& b) {
  return compare(BinaryOp::Eq, a, b);
}
Tensor ne(const Tensor& a, const Tensor& b) {
  return compare(BinaryOp::Ne, a, b);
}
Tensor lt(const Tensor& a, const Tensor& b) {
  return compare(BinaryOp::Lt, a, b);
}
Tensor le(const Tensor& a, const Tensor& b) {
  return compare(BinaryOp::Le, a, b);
}
Tensor gt(const Tensor& a, const Tensor& b) {
  return compare(BinaryOp::Gt, a, b);
}
Tensor ge(const Tensor& a, const Tensor& b) {
  return compare(BinaryOp::Ge, a, b);
}
Tensor gt(const Tensor& a, double s) {
  return compare_scalar(BinaryOp::Gt, a, s);
}
Tensor lt(const Tensor& a, double s) {
  return compare_scalar(BinaryOp::Lt, a, s);
}

// ---- operators ----

Tensor operator+(const Tensor& a, const Tensor& b) {
  return add(a, b);
}
Tensor operator-(const Tensor& a, const Tensor& b) {
  return sub(a, b);
}
Tensor operator*(const Tensor& a, const Tensor& b) {
  return mul(a, b);
}
Tensor operator/(const Tensor& a, const Tensor& b) {
  return div(a, b);
}
Tensor operator-(const Tensor& x) {
  return neg(x);
}
Tensor operator+(const Tensor& a, double s) {
  return add(a, s);
}
Tensor operator+(double s, const Tensor& a) {
  return add(a, s);
}
Tensor operator-(const Tensor& a, double s) {
  return add(a, -s);
}
Tensor operator-(double s, const Tensor& a) {
  return add(neg(a), s);
}
Tensor operator*(const Tensor& a, double s) {
  return mul(a, s);
}
Tensor operator*(double s, const Tensor& a) {
  return mul(a, s);
}
Tensor operator/(const Tensor& a, double s) {
  return mul(a, 1.0 / s);
}
Tensor operator/(double s, const Tensor& a) {
  return mul(pow(a, -1.0), s);
}

}  // namespace selfsup
