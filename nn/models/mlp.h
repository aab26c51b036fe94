// MLP heads: the projectors and predictors of SimCLR, BYOL, SimSiam, Barlow Twins, VICReg.
//
// mlp_head({in, h1, ..., out}) is a Sequential of Linear-BN-ReLU blocks and a last Linear, named
// by index as torch.nn.Sequential would name them:
//   {512, 2048, 128}: 0 Linear(512, 2048), 1 BatchNorm1d(2048), 2 ReLU, 3 Linear(2048, 128)
// and with last_bn a final BatchNorm1d(out) as module 4 (SimSiam's projector, Barlow Twins'
// uses none). A Linear followed by BatchNorm has no bias: the BN's shift makes it redundant.
#pragma once

#include <memory>
#include <vector>

#include "nn/layers.h"

namespace selfsup::nn {

struct MlpHeadOptions {
  std::vector<int64_t> dims;   // {in, hidden..., out}: at least two entries
  bool last_bn = false;        // a BatchNorm1d after the last Linear
  bool last_bn_affine = true;  // SimSiam's projector ends in BatchNorm1d(affine=false)
};

std::shared_ptr<Sequential> mlp_head(const MlpHeadOptions& options, Generator* gen = nullptr);
std::shared_ptr<Sequential> mlp_head(const std::vector<int64_t>& dims, bool last_bn = false,
                                     Generator* gen = nullptr);

}  // namespace selfsup::nn
