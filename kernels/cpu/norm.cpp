// Batch norm, layer norm and dropout on the CPU, float32/float64.
//
// Batch norm, x viewed as [N, C, S] (S = product of the dims after C), per channel c over the
// M = N*S values:
//   mean_c = sum x / M,  var_c = sum (x - mean_c)^2 / M,  invstd_c = 1 / sqrt(var_c + eps)
//   y = (x - mean_c) * invstd_c * w_c + b_c
//   backward: xhat = (x - mean) * invstd,
//             dx = w * invstd / M * (M*g - sum g - xhat * sum(g*xhat)),
//             dw = sum(g*xhat),  db = sum g
// Layer norm is the same formula over the last dims of each row instead of over a channel, with
// an element-wise weight and bias.
// Dropout: out = x * mask / (1 - p), mask from a counter-based Philox draw (one per element).
//   p = 0 keeps everything (the identity); p = 1 drops everything and gives zeros (as PyTorch
//   does) rather than an error. Either way the generator advances by numel.
//
// All of these read x once or twice and write once: memory-bound. Statistics are accumulated in
// double for both dtypes (one more cast per element, no lost digits over large channels).
// Parallelism: over channels (batch norm), rows (layer norm) or elements (dropout); the
// layer-norm weight gradient sums per-thread partials in a fixed order, so results do not
// depend on scheduling.
#include "kernels/cpu/norm.h"

#include <omp.h>

#include <cmath>
#include <type_traits>
#include <vector>

#include "core/views.h"
#include "kernels/cpu/conv_norm_util.h"
#include "kernels/norm_plan.h"

namespace selfsup::cpu {

namespace {

// Elements worth an OpenMP team.
constexpr int64_t kParallelWork = 1 << 15;

template <typename Fn>
void dispatch_float(DType dtype, Fn&& fn) {
  dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point_v<T>) fn(T{});
  });
}

// An optional per-channel vector (weight, bias) read as a contiguous array, or a constant.
template <typename T>
struct ChannelParam {
  Tensor data;  // contiguous [C] or undefined
  T fallback;
  T operator[](int64_t c) const { return data.defined() ? data.data_ptr<T>()[c] : fallback; }
};

// Every tensor on the CPU (the argument checks themselves are in kernels/norm_plan.h).
void check_on_cpu(const Tensor& t, const char* op, const char* name) {
  SELFSUP_CHECK(t.device().is_cpu(), op, ": ", name, " must be on the CPU, got ", t.device().str());
}
void check_other_on_cpu(const Tensor& t, const Device&, const char* op, const char* name) {
  check_on_cpu(t, op, name);
}
constexpr norm_plan::Devices kCpu{check_on_cpu, check_other_on_cpu};

using norm_plan::ChannelGeometry;
using norm_plan::RowGeometry;

// ---------------------------------------------------------------------------------------------
// Batch norm
// ---------------------------------------------------------------------------------------------

// Sums in double over n contiguous values, kept in kLanes independent partial sums. A single
// running double sum is a chain of dependent adds (one per ~4 cycles, and the compiler may not
// reorder it); independent lanes let it vectorise and pipeline the adds. Each lane still adds in
// a fixed order, so results do not depend on threads or scheduling.
constexpr int64_t kLanes = 8;

// sum of v[s]
template <typename T>
double lane_sum(const T* v, int64_t n) {
  double acc[kLanes] = {};
  int64_t s = 0;
  for (; s + kLanes <= n; s += kLanes)
    for (int64_t k = 0; k < kLanes; ++k)
      acc[k] += v[s + k];
  for (; s < n; ++s)
    acc[0] += v[s];
  double total = 0;
  for (double a : acc)
    total += a;
  return total;
}

// sum of (v[s] - mean)^2
template <typename T>
double lane_sum_sq_dev(const T* v, int64_t n, double mean) {
  double acc[kLanes] = {};
  int64_t s = 0;
  for (; s + kLanes <= n; s += kLanes)
    for (int64_t k = 0; k < kLanes; ++k) {
      const double d = v[s + k] - mean;
      acc[k] += d * d;
    }
  for (; s < n; ++s)
    acc[0] += (v[s] - mean) * (v[s] - mean);
  double total = 0;
  for (double a : acc)
    total += a;
  return total;
}

// sum of g[s] and of g[s] * (x[s] - mean), added to sum_g and sum_gc.
template <typename T>
void lane_sum_grad(const T* g, const T* x, int64_t n, double mean, double& sum_g, double& sum_gc) {
  double acc_g[kLanes] = {}, acc_gc[kLanes] = {};
  int64_t s = 0;
  for (; s + kLanes <= n; s += kLanes)
    for (int64_t k = 0; k < kLanes; ++k) {
      acc_g[k] += g[s + k];
      acc_gc[k] += g[s + k] * (x[s + k] - mean);
    }
  for (; s < n; ++s) {
    acc_g[0] += g[s];
    acc_gc[0] += g[s] * (x[s] - mean);
  }
  for (int64_t k = 0; k < kLanes; ++k) {
    sum_g += acc_g[k];
    sum_gc += acc_gc[k];
  }
}

// Per-channel statistics of one channel: mean and biased variance (two passes).
template <typename T>
void channel_stats(const T* x, const ChannelGeometry& g, int64_t c, double& mean, double& var) {
  double sum = 0;
  for (int64_t n = 0; n < g.N; ++n)
    sum += lane_sum(x + (n * g.C + c) * g.S, g.S);
  mean = sum / static_cast<double>(g.count());
  double sq = 0;
  for (int64_t n = 0; n < g.N; ++n)
    sq += lane_sum_sq_dev(x + (n * g.C + c) * g.S, g.S, mean);
  var = sq / static_cast<double>(g.count());
}

// y = x * scale_c + shift_c, channel c.
template <typename T>
void channel_affine(const T* x, const ChannelGeometry& g, int64_t c, T scale, T shift, T* y) {
  for (int64_t n = 0; n < g.N; ++n) {
    const int64_t base = (n * g.C + c) * g.S;
    for (int64_t s = 0; s < g.S; ++s)
      y[base + s] = x[base + s] * scale + shift;
  }
}

template <typename T>
void batch_norm_impl(const Tensor& x, const ChannelGeometry& g, const ChannelParam<T>& w,
                     const ChannelParam<T>& b, Tensor& running_mean, Tensor& running_var,
                     bool training, double momentum, double eps, Tensor& out, Tensor& save_mean,
                     Tensor& save_invstd) {
  const Tensor xc = raw::contiguous(x);  // [N, C, S]
  const T* xp = xc.data_ptr<T>();
  detail::OutBuffer ob(out);
  T* yp = ob.data<T>();
  std::vector<double> mean(g.C), var(g.C);
  if (!training) {
    // Running statistics are 1-d; read them through their stride.
    for (int64_t c = 0; c < g.C; ++c) {
      mean[c] = running_mean.data_ptr<T>()[c * running_mean.stride(0)];
      var[c] = running_var.data_ptr<T>()[c * running_var.stride(0)];
    }
  }
#pragma omp parallel for schedule(static) if (g.C > 1 && g.C * g.count() > kParallelWork)
  for (int64_t c = 0; c < g.C; ++c) {
    if (training) channel_stats(xp, g, c, mean[c], var[c]);
    const double invstd = 1.0 / std::sqrt(var[c] + eps);
    const double scale = invstd * w[c];
    channel_affine(xp, g, c, static_cast<T>(scale), static_cast<T>(b[c] - mean[c] * scale), yp);
  }
  ob.commit();

  if (training && running_mean.defined()) {
    // running = (1 - momentum) * running + momentum * batch, with the unbiased batch variance.
    const double bessel = static_cast<double>(g.count()) / static_cast<double>(g.count() - 1);
    T* rm = running_mean.data_ptr<T>();
    T* rv = running_var.data_ptr<T>();
    for (int64_t c = 0; c < g.C; ++c) {
      T& m = rm[c * running_mean.stride(0)];
      T& v = rv[c * running_var.stride(0)];
      m = static_cast<T>((1 - momentum) * m + momentum * mean[c]);
      v = static_cast<T>((1 - momentum) * v + momentum * var[c] * bessel);
    }
    running_mean.bump_version();
    running_var.bump_version();
  }
  detail::OutBuffer sm(save_mean), si(save_invstd);
  for (int64_t c = 0; c < g.C; ++c) {
    if (save_mean.defined()) sm.data<T>()[c] = static_cast<T>(mean[c]);
    if (save_invstd.defined()) si.data<T>()[c] = static_cast<T>(1.0 / std::sqrt(var[c] + eps));
  }
  sm.commit();
  si.commit();
}

template <typename T>
void batch_norm_backward_impl(const Tensor& grad_out, const Tensor& x, const ChannelGeometry& g,
                              const ChannelParam<T>& w, const Tensor& save_mean,
                              const Tensor& save_invstd, Tensor& grad_x, Tensor& grad_w,
                              Tensor& grad_b) {
  const Tensor xc = raw::contiguous(x), gc = raw::contiguous(grad_out);             // [N, C, S]
  const Tensor mc = raw::contiguous(save_mean), ic = raw::contiguous(save_invstd);  // [C]
  const T* xp = xc.data_ptr<T>();
  const T* gp = gc.data_ptr<T>();
  detail::OutBuffer gx(grad_x), gw(grad_w), gb(grad_b);
  T* dx = grad_x.defined() ? gx.data<T>() : nullptr;  // [N, C, S] or skipped
  T* dw = grad_w.defined() ? gw.data<T>() : nullptr;  // [C] or skipped
  T* db = grad_b.defined() ? gb.data<T>() : nullptr;  // [C] or skipped
  const T* mean_p = mc.data_ptr<T>();
  const T* invstd_p = ic.data_ptr<T>();
  const double M = static_cast<double>(g.count());
#pragma omp parallel for schedule(static) if (g.C > 1 && g.C * g.count() > kParallelWork)
  for (int64_t c = 0; c < g.C; ++c) {
    const double mean = mean_p[c], invstd = invstd_p[c];
    double sum_g = 0, sum_g_centered = 0;
    for (int64_t n = 0; n < g.N; ++n) {
      const int64_t base = (n * g.C + c) * g.S;
      lane_sum_grad(gp + base, xp + base, g.S, mean, sum_g, sum_g_centered);
    }
    const double sum_g_xhat = sum_g_centered * invstd;
    if (db) db[c] = static_cast<T>(sum_g);
    if (dw) dw[c] = static_cast<T>(sum_g_xhat);
    if (!dx) continue;
    // dx = k * (g - sum_g/M - xhat * sum_g_xhat/M) with k = w * invstd, xhat = (x-mean)*invstd
    const T k = static_cast<T>(w[c] * invstd);
    const T mean_g = static_cast<T>(sum_g / M);
    const T xhat_coef = static_cast<T>(invstd * sum_g_xhat / M);  // multiplies (x - mean)
    const T mean_t = static_cast<T>(mean);
    for (int64_t n = 0; n < g.N; ++n) {
      const int64_t base = (n * g.C + c) * g.S;
      for (int64_t s = 0; s < g.S; ++s)
        dx[base + s] = k * (gp[base + s] - mean_g - (xp[base + s] - mean_t) * xhat_coef);
    }
  }
  gx.commit();
  gw.commit();
  gb.commit();
}

// ---------------------------------------------------------------------------------------------
// Layer norm
// ---------------------------------------------------------------------------------------------

template <typename T>
void layer_norm_impl(const Tensor& x, const RowGeometry& g, const Tensor& weight,
                     const Tensor& bias, double eps, Tensor& out, Tensor& mean, Tensor& rstd) {
  const Tensor xc = raw::contiguous(x);
  const Tensor wc = weight.defined() ? raw::contiguous(weight) : Tensor();  // [D]
  const Tensor bc = bias.defined() ? raw::contiguous(bias) : Tensor();      // [D]
  const T* xp = xc.data_ptr<T>();
  const T* wp = wc.defined() ? wc.data_ptr<T>() : nullptr;
  const T* bp = bc.defined() ? bc.data_ptr<T>() : nullptr;
  detail::OutBuffer ob(out), mb(mean), rb(rstd);
  T* yp = ob.data<T>();
  T* mean_p = mean.defined() ? mb.data<T>() : nullptr;  // [M] or skipped
  T* rstd_p = rstd.defined() ? rb.data<T>() : nullptr;  // [M] or skipped
#pragma omp parallel for schedule(static) if (g.M > 1 && g.M * g.D > kParallelWork)
  for (int64_t r = 0; r < g.M; ++r) {
    const T* row = xp + r * g.D;
    double sum = 0;
    for (int64_t j = 0; j < g.D; ++j)
      sum += row[j];
    const double mu = sum / static_cast<double>(g.D);
    double sq = 0;
    for (int64_t j = 0; j < g.D; ++j)
      sq += (row[j] - mu) * (row[j] - mu);
    const double inv = 1.0 / std::sqrt(sq / static_cast<double>(g.D) + eps);
    if (mean_p) mean_p[r] = static_cast<T>(mu);
    if (rstd_p) rstd_p[r] = static_cast<T>(inv);
    const T mu_t = static_cast<T>(mu), inv_t = static_cast<T>(inv);
    T* y = yp + r * g.D;
    for (int64_t j = 0; j < g.D; ++j) {
      const T xhat = (row[j] - mu_t) * inv_t;
      y[j] = (wp ? xhat * wp[j] : xhat) + (bp ? bp[j] : T(0));
    }
  }
  ob.commit();
  mb.commit();
  rb.commit();
}

template <typename T>
void layer_norm_backward_impl(const Tensor& grad_out, const Tensor& x, const RowGeometry& g,
                              const Tensor& weight, const Tensor& mean, const Tensor& rstd,
                              Tensor& grad_x, Tensor& grad_w, Tensor& grad_b) {
  const Tensor xc = raw::contiguous(x), gc = raw::contiguous(grad_out);     // [M, D]
  const Tensor mc = raw::contiguous(mean), rc = raw::contiguous(rstd);      // [M]
  const Tensor wc = weight.defined() ? raw::contiguous(weight) : Tensor();  // [D]
  const T* xp = xc.data_ptr<T>();
  const T* gp = gc.data_ptr<T>();
  const T* wp = wc.defined() ? wc.data_ptr<T>() : nullptr;
  const T* mean_p = mc.data_ptr<T>();
  const T* rstd_p = rc.data_ptr<T>();
  const bool need_wb = grad_w.defined() || grad_b.defined();
  const bool parallel = g.M > 1 && g.M * g.D > kParallelWork;
  const int threads = parallel ? omp_get_max_threads() : 1;
  // Thread t's partial sums over its rows: [t][0..D) of g*xhat, then [t][D..2D) of g.
  std::vector<double> partial(need_wb ? threads * 2 * g.D : 0, 0.0);
  detail::OutBuffer gx(grad_x), gw(grad_w), gb(grad_b);
  T* dx_p = grad_x.defined() ? gx.data<T>() : nullptr;  // [M, D] or skipped

#pragma omp parallel num_threads(threads) if (parallel)
  {
    double* pw = need_wb ? partial.data() + omp_get_thread_num() * 2 * g.D : nullptr;
    double* pb = need_wb ? pw + g.D : nullptr;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < g.M; ++r) {
      const T* xr = xp + r * g.D;
      const T* gr = gp + r * g.D;
      const T mu = mean_p[r], inv = rstd_p[r];
      if (need_wb) {
        for (int64_t j = 0; j < g.D; ++j) {
          pw[j] += gr[j] * ((xr[j] - mu) * inv);
          pb[j] += gr[j];
        }
      }
      if (!dx_p) continue;
      // With gw = g * w: dx = rstd * (gw - mean(gw) - xhat * mean(gw * xhat)).
      double sum_gw = 0, sum_gw_xhat = 0;
      for (int64_t j = 0; j < g.D; ++j) {
        const double gwj = wp ? gr[j] * wp[j] : gr[j];
        sum_gw += gwj;
        sum_gw_xhat += gwj * ((xr[j] - mu) * inv);
      }
      const T mean_gw = static_cast<T>(sum_gw / g.D);
      const T mean_gw_xhat = static_cast<T>(sum_gw_xhat / g.D);
      T* dx = dx_p + r * g.D;
      for (int64_t j = 0; j < g.D; ++j) {
        const T gwj = wp ? gr[j] * wp[j] : gr[j];
        dx[j] = inv * (gwj - mean_gw - (xr[j] - mu) * inv * mean_gw_xhat);
      }
    }
  }
  // Sum the partials thread by thread (a fixed order: the same result on every run).
  for (int64_t j = 0; j < g.D && need_wb; ++j) {
    double sw = 0, sb = 0;
    for (int t = 0; t < threads; ++t) {
      sw += partial[t * 2 * g.D + j];
      sb += partial[t * 2 * g.D + g.D + j];
    }
    if (grad_w.defined()) gw.data<T>()[j] = static_cast<T>(sw);
    if (grad_b.defined()) gb.data<T>()[j] = static_cast<T>(sb);
  }
  gx.commit();
  gw.commit();
  gb.commit();
}

// ---------------------------------------------------------------------------------------------
// Dropout
// ---------------------------------------------------------------------------------------------

// Element i is kept when uniform_float(first Philox word) >= float(p), whatever the tensor's
// dtype: the mask is a coin flip, not data, so float32 and float64 runs (and a GPU kernel
// drawing the same counter) drop the same elements.
inline bool dropout_keep(uint64_t seed, uint64_t counter, float p) {
  return uniform_float(philox4x32(seed, counter).v[0]) >= p;
}

using norm_plan::keep_scale;

template <typename T>
void dropout_impl(const Tensor& x, double p, uint64_t seed, uint64_t first, Tensor& out,
                  Tensor& mask) {
  const Tensor xc = raw::contiguous(x);
  const T* xp = xc.data_ptr<T>();
  detail::OutBuffer ob(out), mb(mask);
  T* yp = ob.data<T>();
  uint8_t* mp = mb.data<uint8_t>();
  const float threshold = static_cast<float>(p);
  const T scale = static_cast<T>(keep_scale(p));
  const int64_t n = x.numel();
#pragma omp parallel for schedule(static) if (n > kParallelWork / 4)
  for (int64_t i = 0; i < n; ++i) {
    const bool keep = dropout_keep(seed, first + i, threshold);
    mp[i] = keep ? 1 : 0;
    yp[i] = keep ? xp[i] * scale : T(0);
  }
  ob.commit();
  mb.commit();
}

template <typename T>
void dropout_backward_impl(const Tensor& grad_out, const Tensor& mask, double p, Tensor& grad_x) {
  const Tensor gc = raw::contiguous(grad_out), mc = raw::contiguous(mask);
  const T* gp = gc.data_ptr<T>();
  const uint8_t* mp = mc.data_ptr<uint8_t>();
  detail::OutBuffer ob(grad_x);
  T* dx = ob.data<T>();
  const T scale = static_cast<T>(keep_scale(p));
  const int64_t n = grad_out.numel();
#pragma omp parallel for schedule(static) if (n > kParallelWork)
  for (int64_t i = 0; i < n; ++i)
    dx[i] = mp[i] ? gp[i] * scale : T(0);
  ob.commit();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------------

void batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& running_mean,
                Tensor& running_var, bool training, double momentum, double eps, Tensor& out,
                Tensor& save_mean, Tensor& save_invstd) {
  const ChannelGeometry g =
      norm_plan::check_batch_norm("batch_norm", x, weight, bias, running_mean, running_var,
                                  training, eps, out, save_mean, save_invstd, kCpu);
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const ChannelParam<T> w{weight.defined() ? raw::contiguous(weight) : Tensor(), T(1)};
    const ChannelParam<T> b{bias.defined() ? raw::contiguous(bias) : Tensor(), T(0)};
    batch_norm_impl<T>(x, g, w, b, running_mean, running_var, training, momentum, eps, out,
                       save_mean, save_invstd);
  });
}

void batch_norm_backward(const Tensor& grad_out, const Tensor& x, const Tensor& weight,
                         const Tensor& save_mean, const Tensor& save_invstd, Tensor& grad_x,
                         Tensor& grad_w, Tensor& grad_b) {
  const ChannelGeometry g =
      norm_plan::check_batch_norm_backward("batch_norm_backward", grad_out, x, weight, save_mean,
                                           save_invstd, grad_x, grad_w, grad_b, kCpu);
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const ChannelParam<T> w{weight.defined() ? raw::contiguous(weight) : Tensor(), T(1)};
    batch_norm_backward_impl<T>(grad_out, x, g, w, save_mean, save_invstd, grad_x, grad_w, grad_b);
  });
}

void batch_norm_eval_backward(const Tensor& grad_out, const Tensor& weight,
                              const Tensor& save_invstd, Tensor& grad_x) {
  const ChannelGeometry g = norm_plan::check_batch_norm_eval_backward(
      "batch_norm_eval_backward", grad_out, weight, save_invstd, grad_x, kCpu);
  dispatch_float(grad_out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const ChannelParam<T> w{weight.defined() ? raw::contiguous(weight) : Tensor(), T(1)};
    const Tensor gc = raw::contiguous(grad_out), ic = raw::contiguous(save_invstd);
    const T* gp = gc.data_ptr<T>();      // [N, C, S]
    const T* invstd = ic.data_ptr<T>();  // [C]
    detail::OutBuffer ob(grad_x);
    T* dx = ob.data<T>();  // [N, C, S]
#pragma omp parallel for schedule(static) if (g.C > 1 && g.C * g.count() > kParallelWork)
    for (int64_t c = 0; c < g.C; ++c)
      channel_affine(gp, g, c, static_cast<T>(w[c] * invstd[c]), T(0), dx);
    ob.commit();
  });
}

void layer_norm(const Tensor& x, int64_t normalized_ndim, const Tensor& weight, const Tensor& bias,
                double eps, Tensor& out, Tensor& mean, Tensor& rstd) {
  const RowGeometry g = norm_plan::check_layer_norm("layer_norm", x, normalized_ndim, weight, bias,
                                                    eps, out, mean, rstd, kCpu);
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    layer_norm_impl<T>(x, g, weight, bias, eps, out, mean, rstd);
  });
}

void layer_norm_backward(const Tensor& grad_out, const Tensor& x, int64_t normalized_ndim,
                         const Tensor& weight, const Tensor& mean, const Tensor& rstd,
                         Tensor& grad_x, Tensor& grad_w, Tensor& grad_b) {
  const RowGeometry g =
      norm_plan::check_layer_norm_backward("layer_norm_backward", grad_out, x, normalized_ndim,
                                           weight, mean, rstd, grad_x, grad_w, grad_b, kCpu);
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    layer_norm_backward_impl<T>(grad_out, x, g, weight, mean, rstd, grad_x, grad_w, grad_b);
  });
}

void dropout(const Tensor& x, double p, Generator& gen, Tensor& out, Tensor& mask) {
  norm_plan::check_dropout("dropout", x, p, out, mask, kCpu);
  // The draw always consumes numel counters, whatever p: the stream position after a dropout
  // depends only on how many elements it saw.
  const uint64_t seed = gen.seed();
  const uint64_t first = gen.advance(static_cast<uint64_t>(x.numel()));
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    dropout_impl<T>(x, p, seed, first, out, mask);
  });
}

void dropout_backward(const Tensor& grad_out, const Tensor& mask, double p, Tensor& grad_x) {
  norm_plan::check_dropout_backward("dropout_backward", grad_out, mask, p, grad_x, kCpu);
  dispatch_float(grad_out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    dropout_backward_impl<T>(grad_out, mask, p, grad_x);
  });
}

}  // namespace selfsup::cpu
