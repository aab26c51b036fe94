// RotNet (Gidaris, Singh, Komodakis: "Unsupervised Representation Learning by Predicting Image
// Rotations", ICLR 2018).
//
// Every image is shown in all four rotations (0, 90, 180, 270 degrees) and the network predicts
// which one it sees: a 4-way classification that needs the object's canonical orientation, so
// its shape and parts. The rotnet augmentation preset makes view v the image rotated by
// (v % 4) * 90 degrees, so the label of view v is v % 4; the four views go through the encoder
// in one batch (the paper's finding: all four rotations of an image in the same batch train
// best) and a classifier head gives the logits.
// Defaults for small images: the head is an MLP feature -> 512 -> 4 (Linear-BN-ReLU, Linear;
// --proj-hidden sets the width). The paper found that the last layers before the rotation
// classifier specialise in the pretext task and transfer worst; a hidden layer in the head takes
// that role here, so the encoder's output stays the general representation the evaluation uses.
// The step reports the rotation accuracy of the batch as "rotation_acc".
#include "autograd/ops.h"
#include "core/views.h"
#include "ssl/eval/linear_probe.h"
#include "ssl/methods/method.h"
#include "ssl/methods/pretext.h"

namespace selfsup::ssl {

Tensor rotation_labels(int64_t batch, int64_t num_views) {
  SELFSUP_CHECK(batch > 0 && num_views > 0, "rotation_labels: batch ", batch, " and num_views ",
                num_views, " must be positive");
  Tensor labels = empty({batch * num_views}, kInt64);
  int64_t* out = labels.data_ptr<int64_t>();
  for (int64_t v = 0; v < num_views; ++v)
    for (int64_t i = 0; i < batch; ++i)
      out[v * batch + i] = v % 4;
  return labels;
}

namespace {

constexpr int64_t kRotations = 4;

class RotNet : public Method {
 public:
  explicit RotNet(const MethodOptions& o) : Method("rotnet", o) {
    SELFSUP_CHECK(o.proj_hidden >= 0, "rotnet: --proj-hidden must be >= 0, got ", o.proj_hidden);
    classifier_ = register_module(
        "classifier",
        make_head({feature_dim(), or_default(o.proj_hidden, int64_t{512}), kRotations}, false,
                  gen_));
  }

  std::string augment_preset() const override { return "rotnet"; }
  int64_t num_views() const override { return kRotations; }

  StepOutput step(const std::vector<Tensor>& views) override {
    SELFSUP_CHECK(static_cast<int64_t>(views.size()) == kRotations, "rotnet: expected ", kRotations,
                  " views (one per rotation), got ", views.size());
    const int64_t n = views[0].size(0);
    // All rotations in one forward: BatchNorm's statistics cover every orientation alike.
    Tensor h = features(cat(views, 0));  // [4n, D]
    Tensor logits = classifier_->forward(h);
    Tensor labels = raw::to_device(rotation_labels(n, kRotations), logits.device());
    StepOutput out;
    out.loss = cross_entropy(logits, labels);
    out.metrics = {{"rotation_acc", top1_accuracy(logits, labels)}};
    out.embedding = narrow(h, 0, 0, n).detach();  // the upright view
    return out;
  }

 private:
  std::shared_ptr<nn::Module> classifier_;
};

}  // namespace

std::shared_ptr<Method> make_rotnet(const MethodOptions& o) {
  return std::make_shared<RotNet>(o);
}

}  // namespace selfsup::ssl
