#include "autograd/gradcheck.h"

#include <cmath>
#include <sstream>

#include "autograd/ops.h"
#include "core/strided.h"

namespace selfsup {

namespace {

// L(x) = sum(v * f(x)) in double, without recording a graph.
double projected(const GradcheckFn& f, const std::vector<Tensor>& inputs, const Tensor& v) {
  NoGradGuard no_grad;
  Tensor y = f(inputs);
  SELFSUP_CHECK(y.shape() == v.shape(), "gradcheck: f changed its output shape");
  auto yv = y.to_vector<double>(), vv = v.to_vector<double>();
  double total = 0;
  for (size_t i = 0; i < yv.size(); ++i)
    total += yv[i] * vv[i];
  return total;
}

}  // namespace

GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& opts) {
  for (const Tensor& x : inputs)
    if (x.defined() && x.requires_grad())
      SELFSUP_CHECK(x.dtype() == kFloat64,
                    "gradcheck: inputs that require grad must be float64, "
                    "got ",
                    dtype_name(x.dtype()), " ", shape_str(x.shape()));
  // Analytic: one backward of sum(v * y).
  for (const Tensor& x : inputs)
    if (x.defined() && x.requires_grad()) x.set_grad(Tensor());
  Tensor y = f(inputs);
  Generator gen(opts.seed);
  Tensor v = randn(y.shape(), kFloat64, &gen);
  sum(mul(y, v)).backward();

  GradcheckResult result;
  for (size_t k = 0; k < inputs.size(); ++k) {
    const Tensor& x = inputs[k];
    if (!x.defined() || !x.requires_grad()) continue;
    Tensor g = x.grad();
    std::vector<double> analytic =
        g.defined() ? g.to_vector<double>() : std::vector<double>(x.numel(), 0.0);
    double* base = static_cast<double*>(x.storage().data());
    for (int64_t j = 0; j < x.numel(); ++j) {
      double& cell = base[x.offset() + strided_offset(j, x.shape(), x.strides())];
      double saved = cell;
      cell = saved + opts.eps;
      double plus = projected(f, inputs, v);
      cell = saved - opts.eps;
      double minus = projected(f, inputs, v);
      cell = saved;
      double numeric = (plus - minus) / (2 * opts.eps);
      double err = std::abs(analytic[j] - numeric);
      result.max_abs_error = std::max(result.max_abs_error, err);
      if (result.ok && !(err <= opts.atol + opts.rtol * std::abs(numeric))) {
        std::ostringstream os;
        os << "input " << k << " " << shape_str(x.shape()) << " element " << j << ": analytic "
           << analytic[j] << " vs numeric " << numeric;
        result.ok = false;
        result.message = os.str();
      }
    }
  }
  return result;
}

}  // namespace selfsup
