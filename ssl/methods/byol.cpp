// BYOL (Grill et al., "Bootstrap Your Own Latent", NeurIPS 2020).
//
// An online network (encoder, projector, predictor) predicts the target network's projection
// of the other view; the target is an EMA of the online encoder and projector, with the
// momentum raised from its base value to 1 along a cosine schedule. No negatives: the
// predictor and the stop-gradient on the target keep the representation from collapsing.
// Defaults for small images: projector feature -> 1024 -> 256, predictor 256 -> 1024 -> 256,
// base momentum 0.99 (the paper's 0.996 is for 1000-epoch ImageNet runs), the byol preset
// (asymmetric blur and solarisation). The loss is symmetrised over the two views.
#include "autograd/ops.h"
#include "ssl/losses/losses.h"
#include "ssl/methods/method.h"

namespace selfsup::ssl {

namespace {

class BYOL : public Method {
 public:
  explicit BYOL(const MethodOptions& o) : Method("byol", o) {
    int64_t hidden = or_default(o.proj_hidden, int64_t{1024});
    int64_t dim = or_default(o.proj_dim, int64_t{256});
    projector_ = register_module("projector", make_head({feature_dim(), hidden, dim}, false, gen_));
    predictor_ = register_module(
        "predictor", make_head({dim, or_default(o.pred_hidden, hidden), dim}, false, gen_));
    target_encoder_ = register_module(
        "target_encoder", nn::make_encoder(o.model, o.in_channels, o.width, &gen_).module);
    target_projector_ =
        register_module("target_projector", make_head({feature_dim(), hidden, dim}, false, gen_));
    init_target(encoder(), *target_encoder_);
    init_target(*projector_, *target_projector_);
  }

  std::string augment_preset() const override { return "byol"; }

  StepOutput step(const std::vector<Tensor>& views) override {
    int64_t n = views[0].size(0);
    Tensor both = cat({views[0], views[1]}, 0);
    Tensor z_online = projector_->forward(features(both));
    Tensor p = predictor_->forward(z_online);
    Tensor z_target;
    {
      NoGradGuard no_grad;
      z_target = target_projector_->forward(target_encoder_->forward(both));
    }
    // p of view 1 predicts the target of view 2 and the other way round.
    StepOutput out;
    out.loss = add(byol_loss(narrow(p, 0, 0, n), narrow(z_target, 0, n, n)),
                   byol_loss(narrow(p, 0, n, n), narrow(z_target, 0, 0, n)));
    out.embedding = narrow(z_online, 0, 0, n).detach();
    return out;
  }

  void after_optimizer_step(double progress) override {
    double m = cosine_momentum(options().momentum, progress);
    ema_update_module(*target_encoder_, encoder(), m);
    ema_update_module(*target_projector_, *projector_, m);
  }

 private:
  std::shared_ptr<nn::Module> projector_, predictor_, target_encoder_, target_projector_;
};

}  // namespace

std::shared_ptr<Method> make_byol(const MethodOptions& o) {
  return std::make_shared<BYOL>(o);
}

}  // namespace selfsup::ssl
