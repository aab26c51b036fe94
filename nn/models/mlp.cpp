#include "nn/models/mlp.h"

namespace selfsup::nn {

std::shared_ptr<Sequential> mlp_head(const MlpHeadOptions& o, Generator* gen) {
  SELFSUP_CHECK(o.dims.size() >= 2, "mlp_head: needs at least {in, out} dims, got ",
                shape_str(o.dims));
  for (int64_t d : o.dims)
    SELFSUP_CHECK(d > 0, "mlp_head: every dim must be positive, got ", shape_str(o.dims));
  auto head = std::make_shared<Sequential>();
  size_t linears = o.dims.size() - 1;
  for (size_t i = 0; i < linears; ++i) {
    bool last = i + 1 == linears;
    bool bn_follows = !last || o.last_bn;
    head->push_back(std::make_shared<Linear>(o.dims[i], o.dims[i + 1], !bn_follows, gen));
    if (bn_follows)
      head->push_back(std::make_shared<BatchNorm1d>(
          BatchNormOptions(o.dims[i + 1]).affine(!last || o.last_bn_affine)));
    if (!last) head->push_back(std::make_shared<ReLU>());
  }
  return head;
}

std::shared_ptr<Sequential> mlp_head(const std::vector<int64_t>& dims, bool last_bn,
                                     Generator* gen) {
  MlpHeadOptions o;
  o.dims = dims;
  o.last_bn = last_bn;
  return mlp_head(o, gen);
}

}  // namespace selfsup::nn
