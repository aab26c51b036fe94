// Barlow Twins (Zbontar et al., "Barlow Twins: Self-Supervised Learning via Redundancy
// Reduction", ICML 2021).
//
// The cross-correlation matrix of the two views' embeddings, each standardised over the batch
// (the fused cross-correlation kernel), is pushed towards the identity: diagonal terms to 1
// (invariance), off-diagonal terms to 0 with weight lambda (redundancy reduction).
// Defaults for small images: projector feature -> 512 -> 512 -> 512 (Linear-BN-ReLU blocks, last
// Linear plain), lambda 0.0051 (the paper's value), the barlow (= BYOL) augmentation preset.
#include "autograd/ops.h"
#include "ssl/losses/losses.h"
#include "ssl/methods/method.h"

namespace selfsup::ssl {

namespace {

class BarlowTwins : public Method {
 public:
  explicit BarlowTwins(const MethodOptions& o) : Method("barlow", o) {
    int64_t hidden = or_default(o.proj_hidden, int64_t{512});
    int64_t dim = or_default(o.proj_dim, int64_t{512});
    projector_ =
        register_module("projector", make_head({feature_dim(), hidden, hidden, dim}, false, gen_));
    lambda_ = or_default(o.lambda, 0.0051);
  }

  std::string augment_preset() const override { return "barlow"; }

  StepOutput step(const std::vector<Tensor>& views) override {
    Tensor z1 = projector_->forward(features(views[0]));
    Tensor z2 = projector_->forward(features(views[1]));
    StepOutput out;
    out.loss = barlow_twins_loss(z1, z2, lambda_);
    out.embedding = z1.detach();
    return out;
  }

 private:
  std::shared_ptr<nn::Module> projector_;
  double lambda_;
};

}  // namespace

std::shared_ptr<Method> make_barlow(const MethodOptions& o) {
  return std::make_shared<BarlowTwins>(o);
}

}  // namespace selfsup::ssl
