// SimCLR (Chen, Kornblith, Norouzi, Hinton: "A Simple Framework for Contrastive Learning of
// Visual Representations", ICML 2020).
//
// Two augmented views of each image go through the encoder and a projector MLP; NT-Xent pulls
// each embedding towards the other view of its image and away from the other 2N - 2 embeddings.
// Defaults, adapted to small images as in the paper's CIFAR-10 setup: projector
// feature -> 512 -> 128 (Linear-BN-ReLU, Linear), temperature 0.5, the simclr augmentation preset.
#include "autograd/ops.h"
#include "ssl/losses/losses.h"
#include "ssl/methods/method.h"

namespace selfsup::ssl {

namespace {

class SimCLR : public Method {
 public:
  explicit SimCLR(const MethodOptions& o) : Method("simclr", o) {
    projector_ = register_module("projector",
                                 make_head({feature_dim(), or_default(o.proj_hidden, int64_t{512}),
                                            or_default(o.proj_dim, int64_t{128})},
                                           false, gen_));
    temperature_ = or_default(o.temperature, 0.5);
  }

  std::string augment_preset() const override { return "simclr"; }

  StepOutput step(const std::vector<Tensor>& views) override {
    // Both views in one forward: BatchNorm sees all 2N images, as in the paper.
    Tensor z = projector_->forward(features(cat({views[0], views[1]}, 0)));
    auto halves = chunk(z, 2, 0);
    StepOutput out;
    out.loss = nt_xent_loss(halves[0], halves[1], temperature_);
    out.embedding = halves[0].detach();
    return out;
  }

 private:
  std::shared_ptr<nn::Module> projector_;
  double temperature_;
};

}  // namespace

std::shared_ptr<Method> make_simclr(const MethodOptions& o) {
  return std::make_shared<SimCLR>(o);
}

}  // namespace selfsup::ssl
