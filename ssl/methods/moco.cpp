// MoCo v2 (He et al., "Momentum Contrast for Unsupervised Visual Representation Learning",
// CVPR 2020; Chen et al., "Improved Baselines with Momentum Contrastive Learning", 2020).
//
// A query encoder learns by InfoNCE against the key of the same image, produced by a momentum
// (EMA) copy of itself, and against a queue of keys from earlier batches. After each step the
// key encoder follows the query encoder by EMA (the fused EMA kernel) and the batch's keys
// replace the oldest entries of the queue.
// Defaults for small images: projector feature -> 512 -> 128, temperature 0.2, queue 4096,
// momentum 0.99, the moco (v2) augmentation preset. The loss is symmetrised over the two views
// (as in MoCo v3 and most single-device CIFAR ports), which also stands in for the shuffled
// BatchNorm the paper needs across GPUs.
#include "autograd/ops.h"
#include "core/views.h"
#include "nn/buffer_mirror.h"
#include "ssl/losses/losses.h"
#include "ssl/methods/method.h"

namespace selfsup::ssl {

namespace {

class MoCo : public Method {
 public:
  explicit MoCo(const MethodOptions& o) : Method("moco", o) {
    std::vector<int64_t> dims = {feature_dim(), or_default(o.proj_hidden, int64_t{512}),
                                 or_default(o.proj_dim, int64_t{128})};
    projector_ = register_module("projector", make_head(dims, false, gen_));
    key_encoder_ = register_module("key_encoder",
                                   nn::make_encoder(o.model, o.in_channels, o.width, &gen_).module);
    key_projector_ = register_module("key_projector", make_head(dims, false, gen_));
    init_target(encoder(), *key_encoder_);
    init_target(*projector_, *key_projector_);
    SELFSUP_CHECK(o.queue_size > 0, "moco: queue size must be positive, got ", o.queue_size);
    // The queue starts as random unit vectors, as in the reference implementation.
    queue_ =
        register_buffer("queue", normalize(randn({o.queue_size, dims.back()}, kFloat32, &gen_), 1));
    queue_ptr_ = register_buffer("queue_ptr", zeros({1}, kInt64));
    temperature_ = or_default(o.temperature, 0.2);
  }

  std::string augment_preset() const override { return "moco"; }

  StepOutput step(const std::vector<Tensor>& views) override {
    int64_t n = views[0].size(0);
    Tensor q = projector_->forward(features(cat({views[0], views[1]}, 0)));
    Tensor k;
    {
      NoGradGuard no_grad;
      k = key_projector_->forward(key_encoder_->forward(cat({views[1], views[0]}, 0)));
    }
    Tensor queue = queue_.to(q.dtype());
    StepOutput out;
    out.loss = mul(add(info_nce_loss(narrow(q, 0, 0, n), narrow(k, 0, 0, n), queue, temperature_),
                       info_nce_loss(narrow(q, 0, n, n), narrow(k, 0, n, n), queue, temperature_)),
                   0.5);
    last_keys_ = normalize(narrow(k, 0, 0, n), 1);
    out.embedding = narrow(q, 0, 0, n).detach();
    return out;
  }

  void after_optimizer_step(double) override {
    ema_update_module(*key_encoder_, encoder(), options().momentum);
    ema_update_module(*key_projector_, *projector_, options().momentum);
    enqueue(last_keys_);
  }

 private:
  // Writes keys [n, D] into the ring buffer at queue_ptr, wrapping around: at most two block
  // copies. The pointer lives in a buffer (checkpoints carry it) with a copy on the host, so a
  // GPU step does not wait to read it.
  void enqueue(const Tensor& keys) {
    NoGradGuard no_grad;
    const int64_t size = queue_.size(0), n = std::min(keys.size(0), size);
    const int64_t ptr = queue_ptr_mirror_.read(queue_ptr_)[0];
    const int64_t first = std::min(n, size - ptr);
    raw::narrow(queue_, 0, ptr, first).copy_(raw::narrow(keys, 0, 0, first));
    if (n > first)
      raw::narrow(queue_, 0, 0, n - first).copy_(raw::narrow(keys, 0, first, n - first));
    queue_ptr_mirror_.write(queue_ptr_, {(ptr + n) % size});
  }

  std::shared_ptr<nn::Module> projector_, key_encoder_, key_projector_;
  Tensor queue_, queue_ptr_, last_keys_;
  nn::IntBufferMirror queue_ptr_mirror_;
  double temperature_;
};

}  // namespace

std::shared_ptr<Method> make_moco(const MethodOptions& o) {
  return std::make_shared<MoCo>(o);
}

}  // namespace selfsup::ssl
