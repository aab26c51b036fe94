// VICReg (Bardes, Ponce, LeCun, "VICReg: Variance-Invariance-Covariance Regularization for
// Self-Supervised Learning", ICLR 2022).
//
// Three terms on the two views' embeddings: invariance (MSE between views), variance (a hinge
// keeping each dimension's std above 1) and covariance (off-diagonal covariances to 0).
// Defaults: expander feature -> 512 -> 512 -> 512, weights 25 / 25 / 1 (the paper's), the byol
// augmentation preset (the paper uses BYOL's augmentations).
#include "autograd/ops.h"
#include "ssl/losses/losses.h"
#include "ssl/methods/method.h"

namespace selfsup::ssl {

namespace {

class VICReg : public Method {
 public:
  explicit VICReg(const MethodOptions& o) : Method("vicreg", o) {
    int64_t hidden = or_default(o.proj_hidden, int64_t{512});
    int64_t dim = or_default(o.proj_dim, int64_t{512});
    projector_ =
        register_module("projector", make_head({feature_dim(), hidden, hidden, dim}, false, gen_));
  }

  std::string augment_preset() const override { return "byol"; }

  StepOutput step(const std::vector<Tensor>& views) override {
    Tensor z1 = projector_->forward(features(views[0]));
    Tensor z2 = projector_->forward(features(views[1]));
    const MethodOptions& o = options();
    VicregTerms t = vicreg_loss(z1, z2, o.sim_weight, o.var_weight, o.cov_weight);
    StepOutput out;
    out.loss = t.loss;
    out.metrics = {{"invariance", t.invariance.item()},
                   {"variance", t.variance.item()},
                   {"covariance", t.covariance.item()}};
    out.embedding = z1.detach();
    return out;
  }

 private:
  std::shared_ptr<nn::Module> projector_;
};

}  // namespace

std::shared_ptr<Method> make_vicreg(const MethodOptions& o) {
  return std::make_shared<VICReg>(o);
}

}  // namespace selfsup::ssl
