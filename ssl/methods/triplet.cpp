// Triplet loss (Schroff et al., "FaceNet", CVPR 2015; here without labels) — the simplest
// baseline: the anchor is view 1 of an image, the positive its view 2, and the negative view 2
// of the next image in the batch. Loss: mean relu(||a - p|| - ||a - n|| + margin) on
// L2-normalised embeddings. Defaults: projector feature -> 512 -> 128, margin 0.5, the simclr
// augmentation preset.
#include "autograd/ops.h"
#include "ssl/losses/losses.h"
#include "ssl/methods/method.h"

namespace selfsup::ssl {

namespace {

class Triplet : public Method {
 public:
  explicit Triplet(const MethodOptions& o) : Method("triplet", o) {
    projector_ = register_module("projector",
                                 make_head({feature_dim(), or_default(o.proj_hidden, int64_t{512}),
                                            or_default(o.proj_dim, int64_t{128})},
                                           false, gen_));
  }

  std::string augment_preset() const override { return "simclr"; }

  StepOutput step(const std::vector<Tensor>& views) override {
    int64_t n = views[0].size(0);
    SELFSUP_CHECK(n >= 2, "triplet: needs a batch of at least 2 images, got ", n);
    Tensor z = normalize(projector_->forward(features(cat({views[0], views[1]}, 0))), 1);
    Tensor anchor = narrow(z, 0, 0, n), positive = narrow(z, 0, n, n);
    // The negative of row i is the positive of row i + 1 (mod n): another image.
    Tensor negative = cat({narrow(positive, 0, 1, n - 1), narrow(positive, 0, 0, 1)}, 0);
    StepOutput out;
    out.loss = triplet_loss(anchor, positive, negative, options().margin);
    out.embedding = anchor.detach();
    return out;
  }

 private:
  std::shared_ptr<nn::Module> projector_;
};

}  // namespace

std::shared_ptr<Method> make_triplet(const MethodOptions& o) {
  return std::make_shared<Triplet>(o);
}

}  // namespace selfsup::ssl
