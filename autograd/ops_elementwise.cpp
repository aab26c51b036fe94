// Element-wise ops and their gradients. Broadcasting inputs get their gradient summed back to
// their own shape (reduce_to).
#include <cmath>

#include "autograd/op_utils.h"
#include "autograd/ops.h"
#include "kernels/cpu/elementwise.h"

namespace selfsup {

using detail::needs_grad;
using detail::reduce_to;

namespace {

Tensor binary_forward(cpu::BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* name = cpu::binary_op_name(op);
  detail::check_cpu(name, {a, b});
  detail::check_same_dtype(name, a, b);
  Tensor out = detail::empty_as(broadcast_shapes(a.shape(), b.shape(), name), a);
  cpu::binary(op, a, b, out);
  return out;
}

Tensor compare(cpu::BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* name = cpu::binary_op_name(op);
  detail::check_cpu(name, {a, b});
  detail::check_same_dtype(name, a, b);
  Tensor out = empty(broadcast_shapes(a.shape(), b.shape(), name), kUInt8);
  cpu::binary(op, a, b, out);
  return out;
}

Tensor compare_scalar(cpu::BinaryOp op, const Tensor& a, double s) {
  detail::check_cpu(cpu::binary_op_name(op), {a});
  Tensor out = empty(a.shape(), kUInt8);
  cpu::binary_scalar(op, a, s, out);
  return out;
}

Tensor unary_forward(cpu::UnaryOp op, const Tensor& x) {
  detail::check_cpu(cpu::unary_op_name(op), {x});
  detail::check_floating(cpu::unary_op_name(op), x);
  Tensor out = detail::empty_as(x.shape(), x);
  cpu::unary(op, x, out);
  return out;
}

Tensor scalar_forward(cpu::BinaryOp op, const Tensor& x, double s) {
  detail::check_cpu(cpu::binary_op_name(op), {x});
  detail::check_floating(cpu::binary_op_name(op), x);
  Tensor out = detail::empty_as(x.shape(), x);
  cpu::binary_scalar(op, x, s, out);
  return out;
}

// grad * mask where mask is 1 where a (op) b holds, plus half the gradient at ties.
Tensor tie_split_mask(const Tensor& a, const Tensor& b, bool take_larger) {
  Tensor wins = compare(take_larger ? cpu::BinaryOp::Gt : cpu::BinaryOp::Lt, a, b);
  Tensor ties = compare(cpu::BinaryOp::Eq, a, b);
  Tensor w = detail::empty_as(wins.shape(), a), t = detail::empty_as(ties.shape(), a);
  raw::copy_(w, wins);
  raw::copy_(t, ties);
  return add(w, mul(t, 0.5));
}

}  // namespace

// ---- binary arithmetic ----

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(cpu::BinaryOp::Add, a, b);
  return record(out, "add", {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor& g) {
    return std::vector<Tensor>{reduce_to(g, sa), reduce_to(g, sb)};
  });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(cpu::BinaryOp::Sub, a, b);
  return record(out, "sub", {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor& g) {
    return std::vector<Tensor>{reduce_to(g, sa), reduce_to(neg(g), sb)};
  });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(cpu::BinaryOp::Mul, a, b);
  Tensor sa = a.detach(), sb = b.detach();
  bool ga = needs_grad(a), gb = needs_grad(b);
  return record(
      out, "mul", {a, b},
      [=](const Tensor& g) {
        return std::vector<Tensor>{ga ? reduce_to(mul(g, sb), sa.shape()) : Tensor(),
                                   gb ? reduce_to(mul(g, sa), sb.shape()) : Tensor()};
      },
      {a, b});
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(cpu::BinaryOp::Div, a, b);
  Tensor sa = a.detach(), sb = b.detach();
  bool ga = needs_grad(a), gb = needs_grad(b);
  return record(
      out, "div", {a, b},
      [=](const Tensor& g) {
        Tensor grad_a = ga ? reduce_to(div(g, sb), sa.shape()) : Tensor();
        Tensor grad_b = gb ? reduce_to(neg(div(mul(g, sa), mul(sb, sb))), sb.shape()) : Tensor();
        return std::vector<Tensor>{grad_a, grad_b};
      },
      {a, b});
}

Tensor maximum(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(cpu::BinaryOp::Maximum, a, b);
  Tensor sa = a.detach(), sb = b.detach();
  return record(
      out, "maximum", {a, b},
      [=](const Tensor& g) {
        Tensor to_a = tie_split_mask(sa, sb, true);
        Tensor to_b = sub(ones_like(to_a), to_a);
        return std::vector<Tensor>{reduce_to(mul(g, to_a), sa.shape()),
                                   reduce_to(mul(g, to_b), sb.shape())};
      },
      {a, b});
}

Tensor minimum(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(cpu::BinaryOp::Minimum, a, b);
  Tensor sa = a.detach(), sb = b.detach();
  return record(
      out, "minimum", {a, b},
      [=](const Tensor& g) {
        Tensor to_a = tie_split_mask(sa, sb, false);
        Tensor to_b = sub(ones_like(to_a), to_a);
        return std::vector<Tensor>{reduce_to(mul(g, to_a), sa.shape()),
                                   reduce_to(mul(g, to_b), sb.shape())};
      },
      {a, b});
}

Tensor pow(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(cpu::BinaryOp::Pow, a, b);
  Tensor sa = a.detach(), sb = b.detach(), y = out.detach();
  bool ga = needs_grad(a), gb = needs_grad(b);
  return record(
      out, "pow", {a, b},
      [=](const Tensor& g) {
        // d/da a^b = b a^(b-1);  d/db a^b = a^b log(a)
        Tensor grad_a = ga ? reduce_to(mul(g, mul(sb, pow(sa, sub(sb, ones_like(sb))))), sa.shape())
                           : Tensor();
        Tensor grad_b = gb ? reduce_to(mul(g, mul(y, log(sa))), sb.shape()) : Tensor();
        return std::vector<Tensor>{grad_a, grad_b};
      },
      {a, b, out});
}

// ---- with a scalar ----

Tensor add(const Tensor& a, double s) {
  Tensor out = scalar_forward(cpu::BinaryOp::Add, a, s);
  return record(out, "add", {a}, [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

Tensor mul(const Tensor& a, double s) {
  Tensor out = scalar_forward(cpu::BinaryOp::Mul, a, s);
  return record(out, "mul", {a}, [s](const Tensor& g) { return std::vector<Tensor>{mul(g, s)}; });
}

Tensor pow(const Tensor& a, double e) {
  Tensor out = scalar_forward(cpu::BinaryOp::Pow, a, e);
  Tensor sa = a.detach();
  return record(
      out, "pow", {a},
      [=](const Tensor& g) { return std::vector<Tensor>{mul(mul(g, pow(sa, e - 1.0)), e)}; }, {a});
}

// ---- unary ----

Tensor neg(const Tensor& x) {
  Tensor out = unary_forward(cpu::UnaryOp::Neg, x);
  return record(out, "neg", {x}, [](const Tensor& g) { return std::vector<Tensor>{neg(g)}; });
}

Tensor exp(const Tensor& x) {
  Tensor out = unary_forward(cpu::UnaryOp::Exp, x);
  Tensor y = out.detach();
  return record(
      out, "exp", {x}, [=](const Tensor& g) { return std::vector<Tensor>{mul(g, y)}; }, {out});
}

Tensor log(const Tensor& x) {
  Tensor out = unary_forward(cpu::UnaryOp::Log, x);
  Tensor sx = x.detach();
  return record(
      out, "log", {x}, [=](const Tensor& g) { return std::vector<Tensor>{div(g, sx)}; }, {x});
}

Tensor sqrt(const Tensor& x) {
  Tensor out = unary_forward(cpu::UnaryOp::Sqrt, x);
  Tensor y = out.detach();
  return record(
      out, "sqrt", {x}, [=](const Tensor& g) { return std::vector<Tensor>{div(mul(g, 0.5), y)}; },
      {out});
}

Tensor abs(const Tensor& x) {
  Tensor out = unary_forward(cpu::UnaryOp::Abs, x);
  Tensor sx = x.detach();
  return record(
      out, "abs", {x},
      [=](const Tensor& g) {
        return std::vector<Tensor>{mul(g, unary_forward(cpu::UnaryOp::Sign, sx))};
      },
      {x});
}

Tensor square(const Tensor& x) {
  Tensor out = unary_forward(cpu::UnaryOp::Square, x);
  Tensor sx = x.detach();
  return record(
      out, "square", {x}, [=](const Tensor& g) { return std::vector<Tensor>{mul(mul(g, sx), 2.0)}; },
      {x});
}

namespace {

// An activation whose backward kernel takes (grad, saved) -> grad_x.
using ActBackward = void (*)(const Tensor&, const Tensor&, Tensor&);

Tensor activation(cpu::UnaryOp op, const char* name, const Tensor& x, ActBackward backward,
                  bool saves_output) {
  Tensor out = unary_forward(op, x);
  Tensor saved = saves_output ? out.detach() : x.detach();
  return record(
      out, name, {x},
      [=](const Tensor& g) {
        Tensor gx = detail::empty_as(g.shape(), g);
        backward(g, saved, gx);
        return std::vector<Tensor>{gx};
      },
      {saves_output ? out : x});
}

}  // namespace

Tensor relu(const Tensor& x) {
  return activation(cpu::UnaryOp::Relu, "relu", x, cpu::relu_backward, false);
}
Tensor gelu(const Tensor& x) {
  return activation(cpu::UnaryOp::Gelu, "gelu", x, cpu::gelu_backward, false);
}
Tensor sigmoid(const Tensor& x) {
  return activation(cpu::UnaryOp::Sigmoid, "sigmoid", x, cpu::sigmoid_backward, true);
}
Tensor tanh(const Tensor& x) {
  return activation(cpu::UnaryOp::Tanh, "tanh", x, cpu::tanh_backward, true);
}

Tensor clamp(const Tensor& x, double lo, double hi) {
  detail::check_cpu("clamp", {x});
  detail::check_floating("clamp", x);
  SELFSUP_CHECK(lo <= hi, "clamp: lo ", lo, " > hi ", hi);
  Tensor out = detail::empty_as(x.shape(), x);
  cpu::clamp(x, lo, hi, out);
  Tensor sx = x.detach();
  return record(
      out, "clamp", {x},
      [=](const Tensor& g) {
        Tensor gx = detail::empty_as(g.shape(), g);
        cpu::clamp_backward(g, sx, lo, hi, gx);
        return std::vector<Tensor>{gx};
      },
      {x});
}

Tensor clamp_min(const Tensor& x, double lo) { return clamp(x, lo, HUGE_VAL); }

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  detail::check_cpu("where", {cond, a, b});
  detail::check_same_dtype("where", a, b);
  Shape shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(),
                                 "where");
  Tensor out = detail::empty_as(shape, a);
  cpu::where(cond, a, b, out);
  Tensor c = cond.detach();
  return record(out, "where", {a, b}, [=, sa = a.shape(), sb = b.shape()](const Tensor& g) {
    Tensor z = zeros_like(g);
    Tensor ga = detail::empty_as(g.shape(), g), gb = detail::empty_as(g.shape(), g);
    cpu::where(c, g, z, ga);
    cpu::where(c, z, g, gb);
    return std::vector<Tensor>{reduce_to(ga, sa), reduce_to(gb, sb)};
  });
}

// ---- comparisons (no gradient) ----

Tensor eq(const Tensor& a, const Tensor& b) { return compare(cpu::BinaryOp::Eq, a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return compare(cpu::BinaryOp::Ne, a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return compare(cpu::BinaryOp::Lt, a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return compare(cpu::BinaryOp::Le, a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return compare(cpu::BinaryOp::Gt, a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return compare(cpu::BinaryOp::Ge, a, b); }
Tensor gt(const Tensor& a, double s) { return compare_scalar(cpu::BinaryOp::Gt, a, s); }
Tensor lt(const Tensor& a, double s) { return compare_scalar(cpu::BinaryOp::Lt, a, s); }

// ---- operators ----

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator-(const Tensor& x) { return neg(x); }
Tensor operator+(const Tensor& a, double s) { return add(a, s); }
Tensor operator+(double s, const Tensor& a) { return add(a, s); }
Tensor operator-(const Tensor& a, double s) { return add(a, -s); }
Tensor operator-(double s, const Tensor& a) { return add(neg(a), s); }
Tensor operator*(const Tensor& a, double s) { return mul(a, s); }
Tensor operator*(double s, const Tensor& a) { return mul(a, s); }
Tensor operator/(const Tensor& a, double s) { return mul(a, 1.0 / s); }
Tensor operator/(double s, const Tensor& a) { return mul(pow(a, -1.0), s); }

}  // namespace selfsup
