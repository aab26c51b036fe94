// SimSiam (Chen & He, "Exploring Simple Siamese Representation Learning", CVPR 2021).
//
// BYOL without the momentum encoder: one network, a predictor on one branch and a
// stop-gradient (detach) on the other. Loss: -cos(p1, sg(z2)) / 2 - cos(p2, sg(z1)) / 2.
// Defaults for small images, following the paper's CIFAR setup scaled down: projector
// feature -> 512 -> 512 -> 512 with BatchNorm after every layer (the last one too), predictor
// 512 -> 128 -> 512 (a bottleneck), the simclr augmentation preset.
#include "autograd/ops.h"
#include "ssl/losses/losses.h"
#include "ssl/methods/method.h"

namespace selfsup::ssl {

namespace {

class SimSiam : public Method {
 public:
  explicit SimSiam(const MethodOptions& o) : Method("simsiam", o) {
    int64_t hidden = or_default(o.proj_hidden, int64_t{512});
    int64_t dim = or_default(o.proj_dim, int64_t{512});
    projector_ =
        register_module("projector", make_head({feature_dim(), hidden, hidden, dim}, true, gen_));
    predictor_ = register_module(
        "predictor", make_head({dim, or_default(o.pred_hidden, dim / 4), dim}, false, gen_));
  }

  std::string augment_preset() const override { return "simclr"; }

  StepOutput step(const std::vector<Tensor>& views) override {
    int64_t n = views[0].size(0);
    Tensor z = projector_->forward(features(cat({views[0], views[1]}, 0)));
    Tensor p = predictor_->forward(z);
    Tensor z1 = narrow(z, 0, 0, n), z2 = narrow(z, 0, n, n);
    StepOutput out;
    out.loss =
        mul(add(simsiam_loss(narrow(p, 0, 0, n), z2), simsiam_loss(narrow(p, 0, n, n), z1)), 0.5);
    out.embedding = z1.detach();
    return out;
  }

 private:
  std::shared_ptr<nn::Module> projector_, predictor_;
};

}  // namespace

std::shared_ptr<Method> make_simsiam(const MethodOptions& o) {
  return std::make_shared<SimSiam>(o);
}

}  // namespace selfsup::ssl
