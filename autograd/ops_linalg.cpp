// Matrix products, softmax and the fused losses, with their gradients.
#include <memory>

#include "autograd/op_utils.h"
#include "autograd/ops.h"
#include "kernels/cpu/xcorr.h"
#include "kernels/dispatch.h"

namespace selfsup {

using detail::needs_grad;

namespace {

Tensor matmul_2d(const Tensor& a, const Tensor& b) {
  SELFSUP_CHECK(a.size(1) == b.size(0), "matmul: shapes ", shape_str(a.shape()), " and ",
                shape_str(b.shape()), " do not match (", a.size(1), " != ", b.size(0), ")");
  Tensor out = detail::empty_as({a.size(0), b.size(1)}, a);
  dispatch::matmul(a, b, out);
  Tensor sa = a.detach(), sb = b.detach();
  bool ga = needs_grad(a), gb = needs_grad(b);
  return record(out, "matmul", {a, b},
                [=](const Tensor& g) {
                  // dA = dC B^T, dB = A^T dC; the transposes are strided views, not copies.
                  return std::vector<Tensor>{
                      ga ? matmul_2d(g, raw::transpose(sb, 0, 1)) : Tensor(),
                      gb ? matmul_2d(raw::transpose(sa, 0, 1), g) : Tensor()};
                },
                {a, b});
}

}  // namespace

Tensor bmm(const Tensor& a, const Tensor& b) {
  detail::check_same_device("bmm", {a, b});
  detail::check_same_dtype("bmm", a, b);
  SELFSUP_CHECK(a.dim() == 3 && b.dim() == 3 && a.size(0) == b.size(0) && a.size(2) == b.size(1),
                "bmm: shapes ", shape_str(a.shape()), " and ", shape_str(b.shape()),
                " do not match (need [B, M, K] and [B, K, N])");
  Tensor out = detail::empty_as({a.size(0), a.size(1), b.size(2)}, a);
  dispatch::bmm(a, b, out);
  Tensor sa = a.detach(), sb = b.detach();
  bool ga = needs_grad(a), gb = needs_grad(b);
  return record(out, "bmm", {a, b},
                [=](const Tensor& g) {
                  return std::vector<Tensor>{ga ? bmm(g, raw::transpose(sb, 1, 2)) : Tensor(),
                                             gb ? bmm(raw::transpose(sa, 1, 2), g) : Tensor()};
                },
                {a, b});
}

Tensor matmul(const Tensor& a, const Tensor& b) {
  detail::check_same_device("matmul", {a, b});
  detail::check_same_dtype("matmul", a, b);
  detail::check_floating("matmul", a);
  if (a.dim() == 2 && b.dim() == 2) return matmul_2d(a, b);
  if (a.dim() == 3 && b.dim() == 3) return bmm(a, b);
  SELFSUP_CHECK(a.dim() >= 2 && b.dim() == 2, "matmul: shapes ", shape_str(a.shape()), " and ",
                shape_str(b.shape()), " are not supported (2-d @ 2-d, 3-d @ 3-d, N-d @ 2-d)");
  // [..., M, K] @ [K, N]: fold the leading dims into M.
  Shape out_shape = a.shape();
  out_shape.back() = b.size(1);
  return reshape(matmul_2d(reshape(a, {-1, a.size(-1)}), b), out_shape);
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  Tensor y = matmul(x, transpose(w, 0, 1));
  return b.defined() ? add(y, b) : y;
}

Tensor softmax(const Tensor& x, int64_t dim) {
  detail::check_floating("softmax", x);
  dim = normalize_dim(dim, x.dim(), "softmax");
  Tensor out = detail::empty_as(x.shape(), x);
  dispatch::softmax(x, dim, out);
  Tensor y = out.detach();
  return record(out, "softmax", {x},
                [=](const Tensor& g) {
                  Tensor gx = detail::empty_as(g.shape(), g);
                  dispatch::softmax_backward(g, y, dim, gx);
                  return std::vector<Tensor>{gx};
                },
                {out});
}

Tensor log_softmax(const Tensor& x, int64_t dim) {
  detail::check_floating("log_softmax", x);
  dim = normalize_dim(dim, x.dim(), "log_softmax");
  Tensor out = detail::empty_as(x.shape(), x);
  dispatch::log_softmax(x, dim, out);
  Tensor y = out.detach();
  return record(out, "log_softmax", {x},
                [=](const Tensor& g) {
                  Tensor gx = detail::empty_as(g.shape(), g);
                  dispatch::log_softmax_backward(g, y, dim, gx);
                  return std::vector<Tensor>{gx};
                },
                {out});
}

namespace {

// The fused losses compute d(loss)/d(logits) in the forward pass; backward scales it.
Tensor fused_loss(const char* name, const Tensor& logits, const Tensor& targets, bool soft) {
  detail::check_floating(name, logits);
  Tensor loss = detail::empty_as({}, logits);
  Tensor grad_logits = needs_grad(logits) && GradMode::is_enabled()
                           ? detail::empty_as(logits.shape(), logits)
                           : Tensor();
  if (soft)
    dispatch::cross_entropy_soft(logits, targets, loss, grad_logits);
  else
    dispatch::cross_entropy(logits, targets, loss, grad_logits);
  return record(loss, name, {logits}, [grad_logits](const Tensor& g) {
    return std::vector<Tensor>{mul(grad_logits, g)};
  });
}

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& targets) {
  return fused_loss("cross_entropy", logits, targets, false);
}

Tensor cross_entropy_soft(const Tensor& logits, const Tensor& targets) {
  return fused_loss("cross_entropy_soft", logits, targets, true);
}

namespace detail {

Tensor cross_correlation_composed(const Tensor& za, const Tensor& zb, double eps) {
  auto standardise = [eps](const Tensor& z) {
    return div(sub(z, mean(z, {0}, true)), sqrt(add(var(z, {0}, 0, true), eps)));
  };
  return mul(matmul(transpose(standardise(za), 0, 1), standardise(zb)), 1.0 / za.size(0));
}

}  // namespace detail

Tensor cross_correlation(const Tensor& za, const Tensor& zb, double eps) {
  detail::check_same_device("cross_correlation", {za, zb});
  detail::check_same_dtype("cross_correlation", za, zb);
  SELFSUP_CHECK(za.dim() == 2 && za.shape() == zb.shape(), "cross_correlation: shapes ",
                shape_str(za.shape()), " and ", shape_str(zb.shape()), " must be equal and [N, D]");
  if (!za.device().is_cpu()) return detail::cross_correlation_composed(za, zb, eps);
  int64_t n = za.size(0), d = za.size(1);
  Tensor c = detail::empty_as({d, d}, za);
  Tensor za_hat = detail::empty_as({n, d}, za), zb_hat = detail::empty_as({n, d}, za);
  Tensor inv_a = detail::empty_as({d}, za), inv_b = detail::empty_as({d}, za);
  cpu::cross_correlation(za, zb, eps, c, za_hat, zb_hat, inv_a, inv_b);
  return record(c, "cross_correlation", {za, zb}, [=](const Tensor& g) {
    Tensor ga = detail::empty_as({n, d}, g), gb = detail::empty_as({n, d}, g);
    cpu::cross_correlation_backward(g, za_hat, zb_hat, inv_a, inv_b, ga, gb);
    return std::vector<Tensor>{ga, gb};
  });
}

Tensor cross_correlation_loss(const Tensor& za, const Tensor& zb, double lambda, double eps) {
  detail::check_same_device("cross_correlation_loss", {za, zb});
  detail::check_same_dtype("cross_correlation_loss", za, zb);
  SELFSUP_CHECK(za.dim() == 2 && za.shape() == zb.shape(), "cross_correlation_loss: shapes ",
                shape_str(za.shape()), " and ", shape_str(zb.shape()), " must be equal and [N, D]");
  // The GPU kernels read plain rows: a strided input is copied (through a differentiable op).
  const Tensor a = za.is_contiguous() ? za : contiguous(za);
  const Tensor b = zb.is_contiguous() ? zb : contiguous(zb);
  Tensor loss = detail::empty_as({}, a);
  auto saved = std::make_shared<dispatch::BarlowSaved>();
  dispatch::barlow_twins_loss(a, b, eps, lambda, loss, *saved);
  return record(loss, "cross_correlation_loss", {a, b}, [=](const Tensor& g) {
    Tensor ga = detail::empty_as(a.shape(), g), gb = detail::empty_as(b.shape(), g);
    dispatch::barlow_twins_loss_backward(g, a, b, *saved, lambda, ga, gb);
    return std::vector<Tensor>{ga, gb};
  });
}

Tensor mse_loss(const Tensor& a, const Tensor& b) {
  return mean(square(sub(a, b)));
}

}  // namespace selfsup
