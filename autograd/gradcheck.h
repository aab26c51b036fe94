// gradcheck: compares the gradients autograd computes with central finite differences.
//
// For f: inputs -> y and a fixed random v shaped like y, it checks the vector-Jacobian product
// d/dx sum(v * f(x)) — what backward computes — against
//   (L(x + eps e_j) - L(x - eps e_j)) / (2 eps)   for every element j of every input that
//   requires grad.
// Inputs must be float64 (finite differences in float32 are too coarse) and must not overlap
// in memory (no stride-0 leaves); they may be non-contiguous views.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace selfsup {

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-5;
  double rtol = 1e-3;
  uint64_t seed = 1234;  // of the projection v
};

struct GradcheckResult {
  bool ok = true;
  std::string message;  // the first mismatch, in words ("input 1 element 7: ...")
  double max_abs_error = 0;
};

using GradcheckFn = std::function<Tensor(const std::vector<Tensor>&)>;

GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& opts = {});

}  // namespace selfsup
