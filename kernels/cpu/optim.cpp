// Optimizer steps on the CPU (see optim.h). Each rule is one flat loop per parameter over raw
// pointers, threaded with OpenMP when the tensor is large: 10-15 FLOPs and 3-4 memory streams
// per element, so bound by memory bandwidth like the EMA.
#include "kernels/cpu/optim.h"

#include <cmath>

#include "core/error.h"
#include "core/views.h"

namespace selfsup::cpu {

namespace {

constexpr int64_t kParallelThreshold = 1 << 15;  // elements; below this a loop is too short

// Calls fn(float{}) or fn(double{}) for a floating dtype.
template <typename Fn>
void dispatch_floating(DType dtype, const char* op, Fn&& fn) {
  SELFSUP_CHECK(is_floating(dtype), op, ": expects float32 or float64, got ", dtype_name(dtype));
  if (dtype == kFloat32)
    fn(float{});
  else
    fn(double{});
}

// Every list matches params one to one: same length, shape and dtype, contiguous, on the CPU.
void check_list(const char* op, const char* what, const std::vector<Tensor>& list,
                const std::vector<Tensor>& params) {
  SELFSUP_CHECK(list.size() == params.size(), op, ": ", params.size(), " params but ", list.size(),
                " ", what);
  for (size_t i = 0; i < list.size(); ++i) {
    const Tensor& t = list[i];
    const Tensor& p = params[i];
    SELFSUP_CHECK(t.defined() && t.shape() == p.shape() && t.dtype() == p.dtype() &&
                      t.is_contiguous() && t.device().is_cpu(),
                  op, ": ", what, "[", i, "] must be a contiguous CPU tensor like param ", i, " (",
                  shape_str(p.shape()), " ", dtype_name(p.dtype()), ")");
  }
}

template <typename T>
void sgd_update(T* p, const T* g, T* buf, int64_t n, T lr, T wd, T momentum, T dampening,
                bool nesterov, bool first_step) {
#pragma omp parallel for schedule(static) if (n > kParallelThreshold)
  for (int64_t i = 0; i < n; ++i) {
    T d = g[i] + wd * p[i];
    if (buf) {
      T b = first_step ? d : momentum * buf[i] + (T(1) - dampening) * d;
      buf[i] = b;
      d = nesterov ? d + momentum * b : b;
    }
    p[i] -= lr * d;
  }
}

template <typename T>
void adamw_update(T* p, const T* g, T* m, T* v, int64_t n, T lr, T wd, T beta1, T beta2, T eps,
                  int64_t step) {
  T bias1 = T(1) - std::pow(beta1, static_cast<T>(step));
  T bias2_sqrt = std::sqrt(T(1) - std::pow(beta2, static_cast<T>(step)));
  T step_size = lr / bias1;
  T decay = T(1) - lr * wd;
#pragma omp parallel for schedule(static) if (n > kParallelThreshold)
  for (int64_t i = 0; i < n; ++i) {
    p[i] *= decay;
    m[i] = beta1 * m[i] + (T(1) - beta1) * g[i];
    v[i] = beta2 * v[i] + (T(1) - beta2) * g[i] * g[i];
    p[i] -= step_size * m[i] / (std::sqrt(v[i]) / bias2_sqrt + eps);
  }
}

template <typename T>
double sum_squares(const T* x, int64_t n) {
  double acc = 0;
#pragma omp parallel for schedule(static) reduction(+ : acc) if (n > kParallelThreshold)
  for (int64_t i = 0; i < n; ++i)
    acc += static_cast<double>(x[i]) * static_cast<double>(x[i]);
  return acc;
}

// buf = momentum * buf + scale * (g + wd * p);  p -= lr * buf
template <typename T>
void lars_update(T* p, const T* g, T* buf, int64_t n, T lr, T wd, T scale, T momentum) {
#pragma omp parallel for schedule(static) if (n > kParallelThreshold)
  for (int64_t i = 0; i < n; ++i) {
    T d = scale * (g[i] + wd * p[i]);
    buf[i] = momentum * buf[i] + d;
    p[i] -= lr * buf[i];
  }
}

}  // namespace

void sgd_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
              const std::vector<Tensor>& momentum_buffers, const SgdStep& s) {
  const bool momentum = s.momentum != 0;
  check_list("sgd_step", "params", params, params);
  check_list("sgd_step", "grads", grads, params);
  if (momentum) check_list("sgd_step", "momentum_buffers", momentum_buffers, params);
  for (size_t i = 0; i < params.size(); ++i) {
    Tensor p = params[i];
    dispatch_floating(p.dtype(), "sgd_step", [&](auto tag) {
      using T = decltype(tag);
      sgd_update<T>(p.data_ptr<T>(), grads[i].data_ptr<T>(),
                    momentum ? momentum_buffers[i].data_ptr<T>() : nullptr, p.numel(), T(s.lr),
                    T(s.weight_decay), T(s.momentum), T(s.dampening), s.nesterov, s.first_step);
    });
  }
}

void adamw_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                const std::vector<Tensor>& exp_avg, const std::vector<Tensor>& exp_avg_sq,
                const AdamWStep& s) {
  SELFSUP_CHECK(s.step >= 1, "adamw_step: step must be >= 1 (counted after incrementing), got ",
                s.step);
  check_list("adamw_step", "params", params, params);
  check_list("adamw_step", "grads", grads, params);
  check_list("adamw_step", "exp_avg", exp_avg, params);
  check_list("adamw_step", "exp_avg_sq", exp_avg_sq, params);
  for (size_t i = 0; i < params.size(); ++i) {
    Tensor p = params[i], m = exp_avg[i], v = exp_avg_sq[i];
    dispatch_floating(p.dtype(), "adamw_step", [&](auto tag) {
      using T = decltype(tag);
      adamw_update<T>(p.data_ptr<T>(), grads[i].data_ptr<T>(), m.data_ptr<T>(), v.data_ptr<T>(),
                      p.numel(), T(s.lr), T(s.weight_decay), T(s.beta1), T(s.beta2), T(s.eps),
                      s.step);
    });
  }
}

void lars_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
               const std::vector<Tensor>& momentum_buffers, const std::vector<bool>& excluded,
               const LarsStep& s) {
  check_list("lars_step", "params", params, params);
  check_list("lars_step", "grads", grads, params);
  check_list("lars_step", "momentum_buffers", momentum_buffers, params);
  SELFSUP_CHECK(excluded.empty() || excluded.size() == params.size(), "lars_step: ", params.size(),
                " tensors but ", excluded.size(), " exclusion flags");
  for (size_t i = 0; i < params.size(); ++i) {
    const bool skip = !excluded.empty() && excluded[i];
    Tensor p = params[i], buf = momentum_buffers[i];
    dispatch_floating(p.dtype(), "lars_step", [&](auto tag) {
      using T = decltype(tag);
      T* pp = p.data_ptr<T>();
      const T* g = grads[i].data_ptr<T>();
      const int64_t n = p.numel();
      const double wd = skip ? 0.0 : s.weight_decay;
      double trust = 1.0;
      if (!skip) {
        const double w_norm = std::sqrt(sum_squares(pp, n)), g_norm = std::sqrt(sum_squares(g, n));
        if (w_norm > 0 && g_norm > 0) trust = s.eta * w_norm / (g_norm + wd * w_norm);
      }
      lars_update<T>(pp, g, buf.data_ptr<T>(), n, T(s.lr), T(wd), T(trust), T(s.momentum));
    });
  }
}

double sum_of_squares(const Tensor& x) {
  const Tensor c = raw::contiguous(x);
  double acc = 0;
  dispatch_floating(c.dtype(), "sum_of_squares", [&](auto tag) {
    using T = decltype(tag);
    acc = sum_squares(c.data_ptr<T>(), c.numel());
  });
  return acc;
}

}  // namespace selfsup::cpu
