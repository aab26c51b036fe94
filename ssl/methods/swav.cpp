// SwAV (Caron, Misra, Mairal, Goyal, Bojanowski, Joulin: "Unsupervised Learning of Visual
// Features by Contrasting Cluster Assignments", NeurIPS 2020).
//
// Every view's projection z (L2-normalised) is scored against K learnable prototypes c_k, unit
// vectors: a bias-free Linear whose rows are renormalised in place, without gradient, before
// every step (as the paper does) and after every optimizer step. The codes q of the two global
// views are the Sinkhorn-Knopp equal-partition assignments of their scores z . c / epsilon,
// computed without gradient (ssl/losses swav_codes), and each global view's code is predicted
// from every other view: the swapped prediction loss -sum_k q_s log softmax(z_t . c / T) over
// t != s (swav_loss). Multi-crop: views 0 and 1 are global (full size), the others local crops
// at 0.57 of the side (the swav augmentation preset); only the global views get codes. Each
// resolution goes through the encoder as one batch, so BatchNorm sees each group on its own.
//
// Defaults adapted to small images:
//  - projector feature -> 512 -> 128 (Linear-BN-ReLU, Linear), as the other methods here (the
//    paper's 2048 -> 2048 -> 128 is sized for a ResNet-50's 2048-d features);
//  - 100 prototypes: the paper's 3000 are 3x ImageNet's 1000 classes, and its CIFAR ports use
//    about 10x the classes, as here for Fashion-MNIST's 10;
//  - temperature 0.1 and 3 Sinkhorn iterations: the paper's;
//  - Sinkhorn epsilon 0.025 instead of the paper's 0.05. At the start, unit projections against
//    random unit prototypes in 128 dimensions score about +-0.1, so at 0.05 the codes are nearly
//    uniform (entropy 4.06 of ln 100 = 4.61 on a checkpoint after 2 short epochs), and for
//    near-uniform codes the swapped prediction, to first order in the scores, only aligns the two
//    views and pushes them off the batch mean: a few clusters on a line satisfy that, and the
//    projections fell to an effective rank of about 2. Sharper codes give each prototype its own
//    samples sooner. Measured on the README's run (2 epochs of 20,000 images, batch 128),
//    in-training kNN top-1: 68.50% at 0.05, 71.46% at 0.025, 71.96% at 0.0125; with the README's
//    evaluation, 0.05 -> 0.025 moved kNN from 74.86% to 76.44% and the linear probe from 85.53%
//    to 86.61%. 0.025 keeps every float32 exp(score / epsilon) away from underflow (scores differ
//    by at most 2, 2 / 0.025 = 80 < 87), which 0.0125 would not;
//  - 2 + 4 views (28 px global, 16 px local) instead of 2 + 6 (224 px, 96 px). A 16 px crop costs
//    about a third of a 28 px view, so a step costs ~3.3 global views instead of ~4 with six,
//    and the paper's ablation gets most of multi-crop's gain from the first few local crops;
//  - the prototypes are frozen (the scores see them detached, so they get no gradient and the
//    optimizer skips them) during the first epoch (--freeze-prototypes N: the first N), as the
//    paper freezes them for its first 313 iterations (one ImageNet epoch at batch 4096): they
//    would otherwise chase a still random representation;
//  - no feature queue by default. With --swav-queue L the global views' z of recent steps are
//    kept from the second epoch on, and once the queue is full, their scores against the current
//    prototypes join each batch's in the Sinkhorn step (only the batch rows' codes are used), so
//    that equal partition is enforced over B + L samples instead of B: useful below ~256 images
//    per batch with 100 prototypes. The paper starts its queue after 15 of 100-800 epochs; runs
//    here are often 10-50 epochs, and a queue of a few batches is only a few steps stale, so
//    waiting out the first epoch (while the prototypes are frozen) is enough.
#include <algorithm>

#include "autograd/ops.h"
#include "core/views.h"
#include "nn/buffer_mirror.h"
#include "nn/layers.h"
#include "ssl/losses/losses.h"
#include "ssl/methods/method.h"

namespace selfsup::ssl {

namespace {

constexpr int64_t kGlobalViews = 2;
constexpr int64_t kDefaultLocalCrops = 4;
constexpr int64_t kDefaultFrozenEpochs = 1;  // prototypes without gradient; the queue waits as long

class SwAV : public Method {
 public:
  explicit SwAV(const MethodOptions& o) : Method("swav", o) {
    const int64_t dim = or_default(o.proj_dim, int64_t{128});
    projector_ = register_module(
        "projector",
        make_head({feature_dim(), or_default(o.proj_hidden, int64_t{512}), dim}, false, gen_));
    const int64_t k = or_default(o.prototypes, int64_t{100});
    SELFSUP_CHECK(k > 0, "swav: --prototypes must be positive, got ", k);
    prototypes_ = register_module("prototypes", std::make_shared<nn::Linear>(dim, k, false, &gen_));
    normalize_prototypes();
    temperature_ = or_default(o.temperature, 0.1);
    epsilon_ = or_default(o.sinkhorn_eps, 0.025);
    iterations_ = or_default(o.sinkhorn_iters, int64_t{3});
    local_crops_ = o.local_crops == -1 ? kDefaultLocalCrops : o.local_crops;
    frozen_epochs_ = o.freeze_prototypes == -1 ? kDefaultFrozenEpochs : o.freeze_prototypes;
    SELFSUP_CHECK(temperature_ > 0, "swav: --temperature must be positive, got ", temperature_);
    SELFSUP_CHECK(epsilon_ > 0, "swav: --sinkhorn-eps must be positive, got ", epsilon_);
    SELFSUP_CHECK(iterations_ > 0, "swav: --sinkhorn-iters must be positive, got ", iterations_);
    SELFSUP_CHECK(local_crops_ >= 0, "swav: --local-crops must be >= 0, got ", local_crops_);
    SELFSUP_CHECK(frozen_epochs_ >= 0, "swav: --freeze-prototypes must be >= 0, got ",
                  o.freeze_prototypes);
    SELFSUP_CHECK(o.swav_queue >= 0, "swav: --swav-queue must be >= 0, got ", o.swav_queue);
    if (o.swav_queue > 0) {
      queue_ = register_buffer("queue", zeros({o.swav_queue, dim}));
      queue_state_ = register_buffer("queue_state", zeros({2}, kInt64));  // {next row, filled}
    }
  }

  std::string augment_preset() const override { return "swav"; }
  int64_t num_views() const override { return kGlobalViews + local_crops_; }

  void before_epoch(const EpochContext& ctx) override { epoch_ = ctx.epoch; }

  StepOutput step(const std::vector<Tensor>& views) override {
    SELFSUP_CHECK(static_cast<int64_t>(views.size()) == num_views(), "swav: expected ", num_views(),
                  " views (2 global + ", local_crops_, " local), got ", views.size());
    const int64_t n = views[0].size(0);
    normalize_prototypes();
    Tensor z = embed({views[0], views[1]});  // [2n, D], unit rows
    if (local_crops_ > 0)
      z = cat({z, embed(std::vector<Tensor>(views.begin() + kGlobalViews, views.end()))}, 0);
    const bool frozen = epoch_ < frozen_epochs_;
    Tensor scores = linear(z, frozen ? prototypes_->weight.detach() : prototypes_->weight);
    std::vector<Tensor> per_view = chunk(scores, num_views(), 0);  // [n, K] each
    std::vector<Tensor> codes;
    for (int64_t s = 0; s < kGlobalViews; ++s)
      codes.push_back(codes_of(per_view[s]));
    StepOutput out;
    out.loss = swav_loss(per_view, codes, temperature_);
    if (queue_.defined() && !frozen) enqueue(narrow(z, 0, 0, kGlobalViews * n).detach());
    out.embedding = narrow(z, 0, 0, n).detach();
    return out;
  }

  void after_optimizer_step(double) override { normalize_prototypes(); }

 private:
  // L2-normalised projections of a group of same-size views, in one forward.
  Tensor embed(const std::vector<Tensor>& views) {
    return normalize(projector_->forward(features(cat(views, 0))), 1);
  }

  // The rows of the prototype matrix back to unit length, in place and outside the graph.
  void normalize_prototypes() {
    NoGradGuard no_grad;
    Tensor w = prototypes_->weight;
    w.copy_(normalize(w, 1));
  }

  bool queue_full() {
    return queue_.defined() && queue_state_mirror_.read(queue_state_)[1] == queue_.size(0);
  }

  // The codes of one global view's scores [n, K]; with a full queue, the queued features'
  // scores join the Sinkhorn step and only the batch's rows are kept.
  Tensor codes_of(const Tensor& scores) {
    if (!queue_full()) return swav_codes(scores, epsilon_, iterations_);
    NoGradGuard no_grad;
    Tensor queued = linear(queue_.to(scores.dtype()), prototypes_->weight.detach());  // [L, K]
    Tensor all = swav_codes(cat({queued, scores.detach()}, 0), epsilon_, iterations_);
    return raw::narrow(all, 0, queued.size(0), scores.size(0));
  }

  // Writes rows z [m, D] into the ring buffer at its next row, wrapping around (the last
  // queue-length rows when m is larger).
  void enqueue(const Tensor& z) {
    NoGradGuard no_grad;
    const int64_t size = queue_.size(0), m = std::min(z.size(0), size);
    const std::vector<int64_t> state = queue_state_mirror_.read(queue_state_);  // a copy
    const int64_t first = std::min(m, size - state[0]);
    const int64_t skip = z.size(0) - m;
    raw::narrow(queue_, 0, state[0], first).copy_(raw::narrow(z, 0, skip, first));
    if (m > first)
      raw::narrow(queue_, 0, 0, m - first).copy_(raw::narrow(z, 0, skip + first, m - first));
    queue_state_mirror_.write(queue_state_, {(state[0] + m) % size, std::min(size, state[1] + m)});
  }

  std::shared_ptr<nn::Module> projector_;
  std::shared_ptr<nn::Linear> prototypes_;
  Tensor queue_, queue_state_;              // [L, D] float32 ring buffer; {next row, rows filled}
  nn::IntBufferMirror queue_state_mirror_;  // queue_state on the host
  double temperature_, epsilon_;
  int64_t iterations_, local_crops_, frozen_epochs_;
  int64_t epoch_ = 0;
};

}  // namespace

std::shared_ptr<Method> make_swav(const MethodOptions& o) {
  return std::make_shared<SwAV>(o);
}

}  // namespace selfsup::ssl
