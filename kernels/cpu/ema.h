// Exponential moving average over a list of tensors, in place (BYOL's target network, MoCo's
// key encoder):  target = momentum * target + (1 - momentum) * source, for each pair.
#pragma once

#include <vector>

#include "core/tensor.h"

namespace selfsup::cpu {

// Pairs must match in shape and dtype (an Error names the index and both shapes otherwise).
// Bumps each target's version.
void ema_update(const std::vector<Tensor>& targets, const std::vector<Tensor>& sources,
                double momentum);

}  // namespace selfsup::cpu
