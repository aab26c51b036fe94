// Sinkhorn-Knopp equal-partition assignment on the CPU (float32/float64): SwAV's codes.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace selfsup::cpu {

// From scores [B, K] (similarities of B samples to K prototypes), the soft assignment
//   Q = diag(u) exp(scores / epsilon) diag(v)
// whose row scales u and column scales v come from `iterations` rounds of alternating
// normalisation, each round making every column (prototype) hold 1/K of the mass and then every
// row (sample) 1/B; Q is finally rescaled by B so that each row sums to 1 (a distribution over
// prototypes). The columns then hold about B/K each, exactly so as the iterations go on.
//
// scores may have any strides; out must be a contiguous [B, K] tensor of scores' dtype (it is
// written, never read). epsilon > 0, iterations >= 1. The global maximum of the scores is
// subtracted before the exponential; entries more than ~87 * epsilon (float32) below it
// underflow to 0, and a column or row whose entries all do stays 0 rather than becoming NaN.
// A non-finite score is an Error.
void sinkhorn(const Tensor& scores, double epsilon, int64_t iterations, Tensor& out);

}  // namespace selfsup::cpu
