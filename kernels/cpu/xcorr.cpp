// The Barlow Twins cross-correlation matrix on the CPU.
//
// Forward, for the two views' embeddings za, zb [N, D]:
//   mean_d = mean_n z[n, d]      var_d = mean_n (z[n, d] - mean_d)^2      (biased)
//   r_d    = 1 / sqrt(var_d + eps)
//   zhat   = (z - mean) * r                                              [N, D]
//   C      = zahat^T zbhat / N                                           [D, D]
//
// Backward, given G = dL/dC [D, D]:
//   dL/dzahat = zbhat G^T / N        dL/dzbhat = zahat G / N              (two GEMMs)
// and through the standardisation of each view, with g = dL/dzhat (as in BatchNorm):
//   dL/dz = r * (g - mean_n g - zhat * mean_n(g * zhat))
// (zhat depends on z directly, through the mean, and through r; the mean's term is -mean_n g,
// and since dr/dz[k] = -r^3 (z[k] - mean) / N, the variance's term is -zhat * mean_n(g zhat).)
//
// Cost: the GEMMs dominate — 2*N*D*D FLOPs forward and 4*N*D*D backward, on 2*N*D + D*D
// elements — so they go to Eigen; the column statistics are O(N*D) and run in double.
#include "kernels/cpu/xcorr.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "core/views.h"
#include "kernels/cpu/eigen.h"
#include "kernels/out_buffer.h"

namespace selfsup::cpu {

namespace {

using kernels::OutBuffer;

template <typename T>
using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using ConstMap = Eigen::Map<const RowMat<T>>;
template <typename T>
using MutMap = Eigen::Map<RowMat<T>>;

// Columns are processed in blocks of this many, one block per thread: each thread walks all N
// rows of its block, reading contiguous runs of a row-major [N, D] matrix.
constexpr int64_t kColumnBlock = 128;
constexpr int64_t kParallelElements = 1 << 15;

// ------------------------------------------------------------------------------------------
// Column statistics
// ------------------------------------------------------------------------------------------

// For z [N, D] row-major: zhat = (z - mean) * r per column, written to zhat [N, D] row-major,
// and r to inv_std [D]. Two passes (mean, then squared deviations) in double, so a large mean
// does not cancel the variance away.
template <typename T>
void standardise(const T* z, int64_t n, int64_t d, double eps, T* zhat, T* inv_std) {
  const int64_t blocks = (d + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for schedule(static) if (n * d > kParallelElements)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t j0 = blk * kColumnBlock, j1 = std::min(d, j0 + kColumnBlock);
    double mean[kColumnBlock] = {}, sq[kColumnBlock] = {};
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = j0; j < j1; ++j)
        mean[j - j0] += z[i * d + j];
    for (int64_t j = j0; j < j1; ++j)
      mean[j - j0] /= static_cast<double>(n);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = j0; j < j1; ++j) {
        const double dev = z[i * d + j] - mean[j - j0];
        sq[j - j0] += dev * dev;
      }
    double r[kColumnBlock];
    for (int64_t j = j0; j < j1; ++j) {
      r[j - j0] = 1.0 / std::sqrt(sq[j - j0] / static_cast<double>(n) + eps);
      inv_std[j] = static_cast<T>(r[j - j0]);
    }
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = j0; j < j1; ++j)
        zhat[i * d + j] = static_cast<T>((z[i * d + j] - mean[j - j0]) * r[j - j0]);
  }
}

// In place on g = dL/dzhat [N, D] row-major: g <- r * (g - mean_n g - zhat * mean_n(g * zhat)).
template <typename T>
void standardise_backward(T* g, const T* zhat, const T* inv_std, int64_t n, int64_t d) {
  const int64_t blocks = (d + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for schedule(static) if (n * d > kParallelElements)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t j0 = blk * kColumnBlock, j1 = std::min(d, j0 + kColumnBlock);
    double mean_g[kColumnBlock] = {}, mean_gz[kColumnBlock] = {};
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = j0; j < j1; ++j) {
        mean_g[j - j0] += g[i * d + j];
        mean_gz[j - j0] += static_cast<double>(g[i * d + j]) * zhat[i * d + j];
      }
    for (int64_t j = j0; j < j1; ++j) {
      mean_g[j - j0] /= static_cast<double>(n);
      mean_gz[j - j0] /= static_cast<double>(n);
    }
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = j0; j < j1; ++j) {
        const double v = g[i * d + j] - mean_g[j - j0] - zhat[i * d + j] * mean_gz[j - j0];
        g[i * d + j] = static_cast<T>(inv_std[j] * v);
      }
  }
}

// ------------------------------------------------------------------------------------------
// Output handling and checks
// ------------------------------------------------------------------------------------------

void check_tensor(const char* op, const char* name, const Tensor& t, const Shape& shape,
                  DType dtype) {
  SELFSUP_CHECK(t.defined(), op, ": ", name, " is undefined");
  SELFSUP_CHECK(t.device().is_cpu(), op, ": ", name, " is on ", t.device().str());
  SELFSUP_CHECK(t.shape() == shape, op, ": ", name, " has shape ", shape_str(t.shape()),
                ", expected ", shape_str(shape));
  SELFSUP_CHECK(t.dtype() == dtype, op, ": ", name, " is ", dtype_name(t.dtype()), ", expected ",
                dtype_name(dtype));
}

template <typename T>
void cross_correlation_typed(const Tensor& za, const Tensor& zb, double eps, Tensor& c,
                             Tensor& za_hat, Tensor& zb_hat, Tensor& inv_std_a, Tensor& inv_std_b) {
  const int64_t n = za.size(0), d = za.size(1);
  const Tensor a = raw::contiguous(za), b = raw::contiguous(zb);  // [N, D] row-major
  OutBuffer ahat(za_hat), bhat(zb_hat), ra(inv_std_a), rb(inv_std_b), cc(c);
  standardise(a.data_ptr<T>(), n, d, eps, ahat.data<T>(), ra.data<T>());
  standardise(b.data_ptr<T>(), n, d, eps, bhat.data<T>(), rb.data<T>());
  ConstMap<T> A(ahat.data<T>(), n, d), B(bhat.data<T>(), n, d);
  MutMap<T> C(cc.data<T>(), d, d);
  C.noalias() = (A.transpose() * B) * static_cast<T>(1.0 / n);
  for (OutBuffer* o : {&ahat, &bhat, &ra, &rb, &cc})
    o->commit();
}

template <typename T>
void cross_correlation_backward_typed(const Tensor& grad_c, const Tensor& za_hat,
                                      const Tensor& zb_hat, const Tensor& inv_std_a,
                                      const Tensor& inv_std_b, Tensor& grad_za, Tensor& grad_zb) {
  const int64_t n = za_hat.size(0), d = za_hat.size(1);
  const Tensor g = raw::contiguous(grad_c);                                       // [D, D]
  const Tensor ah = raw::contiguous(za_hat), bh = raw::contiguous(zb_hat);        // [N, D]
  const Tensor ra = raw::contiguous(inv_std_a), rb = raw::contiguous(inv_std_b);  // [D]
  OutBuffer ga(grad_za), gb(grad_zb);
  ConstMap<T> G(g.data_ptr<T>(), d, d), A(ah.data_ptr<T>(), n, d), B(bh.data_ptr<T>(), n, d);
  MutMap<T> GA(ga.data<T>(), n, d), GB(gb.data<T>(), n, d);
  const T inv_n = static_cast<T>(1.0 / n);
  GA.noalias() = (B * G.transpose()) * inv_n;  // dL/dzahat
  GB.noalias() = (A * G) * inv_n;              // dL/dzbhat
  standardise_backward(ga.data<T>(), ah.data_ptr<T>(), ra.data_ptr<T>(), n, d);
  standardise_backward(gb.data<T>(), bh.data_ptr<T>(), rb.data_ptr<T>(), n, d);
  ga.commit();
  gb.commit();
}

template <typename T>
void barlow_twins_loss_typed(const Tensor& c, double lambda, Tensor& loss) {
  const Tensor cc = raw::contiguous(c);
  const T* p = cc.data_ptr<T>();
  const int64_t d = c.size(0);
  double on_diagonal = 0, off_diagonal = 0;
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j < d; ++j) {
      const double v = p[i * d + j];
      if (i == j)
        on_diagonal += (1 - v) * (1 - v);
      else
        off_diagonal += v * v;
    }
  OutBuffer out(loss);
  out.data<T>()[0] = static_cast<T>(on_diagonal + lambda * off_diagonal);
  out.commit();
}

template <typename T>
void barlow_twins_loss_grad_typed(const Tensor& c, double lambda, double scale, Tensor& grad_c) {
  const Tensor cc = raw::contiguous(c);
  const T* p = cc.data_ptr<T>();
  const int64_t d = c.size(0);
  OutBuffer out(grad_c);
  T* g = out.data<T>();
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j < d; ++j) {
      const double v = p[i * d + j];
      g[i * d + j] = static_cast<T>(i == j ? -2 * scale * (1 - v) : 2 * scale * lambda * v);
    }
  out.commit();
}

// Checks c [D, D] floating and its output's shape and dtype.
void check_loss_args(const char* op, const Tensor& c, const Tensor& out, const Shape& out_shape) {
  SELFSUP_CHECK(c.defined() && c.dim() == 2 && c.size(0) == c.size(1), op,
                ": c must be a square [D, D] matrix, got ",
                c.defined() ? shape_str(c.shape()) : std::string("an undefined tensor"));
  SELFSUP_CHECK(is_floating(c.dtype()), op, ": expects float32 or float64, got ",
                dtype_name(c.dtype()));
  check_tensor(op, "out", out, out_shape, c.dtype());
}

}  // namespace

// ============================================================================================
// Entry points
// ============================================================================================

void cross_correlation(const Tensor& za, const Tensor& zb, double eps, Tensor& c, Tensor& za_hat,
                       Tensor& zb_hat, Tensor& inv_std_a, Tensor& inv_std_b) {
  const char* op = "cross_correlation";
  SELFSUP_CHECK(za.defined() && zb.defined(), op, ": undefined input");
  SELFSUP_CHECK(za.dim() == 2 && za.shape() == zb.shape(), op, ": za and zb must both be [N, D], ",
                "got ", shape_str(za.shape()), " and ", shape_str(zb.shape()));
  SELFSUP_CHECK(is_floating(za.dtype()), op, ": expects float32 or float64, got ",
                dtype_name(za.dtype()));
  SELFSUP_CHECK(za.size(0) > 0, op, ": empty batch ", shape_str(za.shape()));
  SELFSUP_CHECK(eps >= 0, op, ": eps must be >= 0, got ", eps);
  const int64_t n = za.size(0), d = za.size(1);
  const DType dt = za.dtype();
  check_tensor(op, "za", za, {n, d}, dt);
  check_tensor(op, "zb", zb, {n, d}, dt);
  check_tensor(op, "c", c, {d, d}, dt);
  check_tensor(op, "za_hat", za_hat, {n, d}, dt);
  check_tensor(op, "zb_hat", zb_hat, {n, d}, dt);
  check_tensor(op, "inv_std_a", inv_std_a, {d}, dt);
  check_tensor(op, "inv_std_b", inv_std_b, {d}, dt);
  dispatch_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point_v<T>)
      cross_correlation_typed<T>(za, zb, eps, c, za_hat, zb_hat, inv_std_a, inv_std_b);
  });
}

void cross_correlation_backward(const Tensor& grad_c, const Tensor& za_hat, const Tensor& zb_hat,
                                const Tensor& inv_std_a, const Tensor& inv_std_b, Tensor& grad_za,
                                Tensor& grad_zb) {
  const char* op = "cross_correlation_backward";
  SELFSUP_CHECK(za_hat.defined() && za_hat.dim() == 2, op, ": za_hat must be [N, D]");
  SELFSUP_CHECK(is_floating(za_hat.dtype()), op, ": expects float32 or float64, got ",
                dtype_name(za_hat.dtype()));
  const int64_t n = za_hat.size(0), d = za_hat.size(1);
  SELFSUP_CHECK(n > 0, op, ": empty batch ", shape_str(za_hat.shape()));
  const DType dt = za_hat.dtype();
  check_tensor(op, "grad_c", grad_c, {d, d}, dt);
  check_tensor(op, "za_hat", za_hat, {n, d}, dt);
  check_tensor(op, "zb_hat", zb_hat, {n, d}, dt);
  check_tensor(op, "inv_std_a", inv_std_a, {d}, dt);
  check_tensor(op, "inv_std_b", inv_std_b, {d}, dt);
  check_tensor(op, "grad_za", grad_za, {n, d}, dt);
  check_tensor(op, "grad_zb", grad_zb, {n, d}, dt);
  dispatch_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point_v<T>)
      cross_correlation_backward_typed<T>(grad_c, za_hat, zb_hat, inv_std_a, inv_std_b, grad_za,
                                          grad_zb);
  });
}

void barlow_twins_loss(const Tensor& c, double lambda, Tensor& loss) {
  check_loss_args("barlow_twins_loss", c, loss, {});
  dispatch_dtype(c.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point_v<T>) barlow_twins_loss_typed<T>(c, lambda, loss);
  });
}

void barlow_twins_loss_grad(const Tensor& c, double lambda, double scale, Tensor& grad_c) {
  check_loss_args("barlow_twins_loss_grad", c, grad_c, c.shape());
  dispatch_dtype(c.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point_v<T>)
      barlow_twins_loss_grad_typed<T>(c, lambda, scale, grad_c);
  });
}

}  // namespace selfsup::cpu
