// DeepCluster, v2 style (Caron, Bojanowski, Joulin, Douze: "Deep Clustering for Unsupervised
// Learning of Visual Features", ECCV 2018; v2 in Caron et al., "Unsupervised Learning of Visual
// Features by Contrasting Cluster Assignments", NeurIPS 2020).
//
// Before every epoch the whole training set goes through the encoder and projector (eval mode,
// the images as they are) and its L2-normalised projections are clustered by k-means (our own,
// kernels/cpu/kmeans.h: k-means++ seeding from a generator keyed by (seed, epoch), Lloyd
// iterations with GEMM distances, an empty cluster re-seeded with the point farthest from its
// centroid). The assignments are the epoch's pseudo-labels. The classifier head, a bias-free
// Linear on the normalised projection (v2's cosine classifier, logits z . w / T), is
// re-initialised at every clustering and trained with the network during the epoch; the loss is
// the cross-entropy of every augmented view against its image's pseudo-label.
//
// The head is re-initialised to the L2-normalised centroids rather than at random (v1): row k
// then already points at cluster k, so the epoch does not start by fitting a random head to new
// labels (v1's reason for re-initialising is that cluster indices mean nothing across
// clusterings, which holds for either choice). v2 itself keeps the centroids as a fixed
// classifier; here they are its starting point. The optimizer's moments for the head carry over
// a re-initialisation (the method does not own the optimizer).
//
// Defaults adapted to small images: projector feature -> 512 -> 128, 100 clusters (10x
// Fashion-MNIST's classes: DeepCluster over-clusters, 10k for ImageNet's 1000; v2 uses 3000),
// temperature 0.1 (v2's), at most 20 Lloyd iterations (v1's), and v2's multi-crop with the swav
// preset's 2 global + 4 local views (see swav.cpp for why 4): every crop of an image shares its
// pseudo-label. The clustering costs one eval-mode forward over the training set per epoch
// (a fraction of the epoch's 6 views of forward and backward) plus the k-means.
#include "ssl/methods/deepcluster.h"

#include <chrono>
#include <cstdio>

#include "autograd/ops.h"
#include "core/views.h"
#include "kernels/cpu/kmeans.h"
#include "nn/layers.h"
#include "ssl/data/dataset.h"
#include "ssl/eval/features.h"
#include "ssl/methods/method.h"

namespace selfsup::ssl {

namespace {

constexpr int64_t kGlobalViews = 2;
constexpr int64_t kDefaultLocalCrops = 4;
constexpr int64_t kLloydIterations = 20;

class DeepCluster : public Method {
 public:
  explicit DeepCluster(const MethodOptions& o) : Method("deepcluster", o) {
    const int64_t dim = or_default(o.proj_dim, int64_t{128});
    projector_ = register_module(
        "projector",
        make_head({feature_dim(), or_default(o.proj_hidden, int64_t{512}), dim}, false, gen_));
    clusters_ = or_default(o.clusters, int64_t{100});
    SELFSUP_CHECK(clusters_ > 0, "deepcluster: --clusters must be positive, got ", clusters_);
    head_ = register_module("head", std::make_shared<nn::Linear>(dim, clusters_, false, &gen_));
    temperature_ = or_default(o.temperature, 0.1);
    SELFSUP_CHECK(temperature_ > 0, "deepcluster: --temperature must be positive, got ",
                  temperature_);
    local_crops_ = o.local_crops == -1 ? kDefaultLocalCrops : o.local_crops;
    SELFSUP_CHECK(local_crops_ >= 0, "deepcluster: --local-crops must be >= 0, got ", local_crops_);
  }

  std::string augment_preset() const override { return "swav"; }
  int64_t num_views() const override { return kGlobalViews + local_crops_; }
  const Clustering& clustering() const { return clustering_; }

  void before_epoch(const EpochContext& ctx) override {
    SELFSUP_CHECK(ctx.train_set != nullptr, "deepcluster: before_epoch needs the training set");
    const data::Dataset& ds = *ctx.train_set;
    SELFSUP_CHECK(ds.size() >= clusters_, "deepcluster: ", clusters_,
                  " clusters need at least as many training images, ", ds.name, " has ", ds.size(),
                  " (lower --clusters)");
    auto start = std::chrono::steady_clock::now();
    const Tensor z = projected_features(ds, std::max<int64_t>(ctx.batch_size, 1));
    // Keyed by (seed, epoch) alone, so a resumed run clusters exactly as an uninterrupted one.
    Generator gen(options().seed ^ (0x9E3779B97F4A7C15ull * static_cast<uint64_t>(ctx.epoch + 1)));
    cpu::KMeansResult r = cpu::kmeans(z, clusters_, kLloydIterations, gen);
    clustering_ = {ctx.epoch, r.assignments, r.centroids, r.inertia, r.iterations, r.reseeded};
    {
      NoGradGuard no_grad;  // the re-initialisation: row k points at centroid k
      head_->weight.copy_(normalize(r.centroids, 1));
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr,
                 "selfsup: deepcluster: k-means of %lld projections into %lld clusters in %.1f s "
                 "(%lld Lloyd iterations, %lld empty clusters re-seeded)\n",
                 static_cast<long long>(ds.size()), static_cast<long long>(clusters_), seconds,
                 static_cast<long long>(r.iterations), static_cast<long long>(r.reseeded));
  }

  StepOutput step(const std::vector<Tensor>&) override {
    throw Error(
        "deepcluster: step() needs the dataset index of each row for its pseudo-labels: call "
        "step_indexed(views, indices)");
  }

  StepOutput step_indexed(const std::vector<Tensor>& views, const Tensor& indices) override {
    SELFSUP_CHECK(clustering_.pseudo_labels.defined(),
                  "deepcluster: no clustering yet: before_epoch() must run before the first step "
                  "(the trainer calls it)");
    SELFSUP_CHECK(static_cast<int64_t>(views.size()) == num_views(), "deepcluster: expected ",
                  num_views(), " views (2 global + ", local_crops_, " local), got ", views.size());
    const int64_t n = views[0].size(0);
    const Tensor labels = raw::to_device(labels_of(indices, n), views[0].device());
    Tensor z = embed({views[0], views[1]});
    if (local_crops_ > 0)
      z = cat({z, embed(std::vector<Tensor>(views.begin() + kGlobalViews, views.end()))}, 0);
    const Tensor logits = mul(linear(z, head_->weight), 1.0 / temperature_);  // [V n, K]
    StepOutput out;
    out.loss = cross_entropy(logits, cat(std::vector<Tensor>(num_views(), labels), 0));
    out.embedding = narrow(z, 0, 0, n).detach();
    const double images = static_cast<double>(clustering_.pseudo_labels.size(0));
    out.metrics["kmeans_inertia"] = clustering_.inertia / images;  // mean squared distance
    out.metrics["kmeans_reseeded"] = static_cast<double>(clustering_.reseeded);
    return out;
  }

 private:
  Tensor embed(const std::vector<Tensor>& views) {
    return normalize(projector_->forward(features(cat(views, 0))), 1);
  }

  // The L2-normalised projections [N, D] (float32) of every image of ds, in eval mode.
  Tensor projected_features(const data::Dataset& ds, int64_t batch_size) {
    const bool was_training = is_training();
    eval();
    NoGradGuard no_grad;
    const DType dtype = head_->weight.dtype();
    std::vector<Tensor> parts;
    for (int64_t first = 0; first < ds.size(); first += batch_size) {
      const int64_t count = std::min(batch_size, ds.size() - first);
      Tensor images = images_as_float(ds, first, count);
      if (images.dtype() != dtype) images = raw::to_dtype(images, dtype);
      // To the model's device and back: k-means runs on the host.
      const Tensor z = embed({raw::to_device(images, head_->weight.device())});
      parts.push_back(raw::to_device(raw::contiguous(z), kCPU));
    }
    train(was_training);
    return raw::to_dtype(cat(parts, 0), kFloat32);
  }

  // The pseudo-labels [n] of the rows with these dataset indices.
  Tensor labels_of(const Tensor& indices, int64_t n) const {
    SELFSUP_CHECK(indices.defined() && indices.dtype() == kInt64 && indices.shape() == Shape({n}),
                  "deepcluster: indices must be int64 [", n, "], one per row of the views");
    const Tensor idx = raw::to_device(raw::contiguous(indices), kCPU);
    const int64_t* in = idx.data_ptr<int64_t>();
    const int64_t* all = clustering_.pseudo_labels.data_ptr<int64_t>();
    const int64_t images = clustering_.pseudo_labels.size(0);
    Tensor labels = empty({n}, kInt64);
    int64_t* out = labels.data_ptr<int64_t>();
    for (int64_t i = 0; i < n; ++i) {
      SELFSUP_CHECK(in[i] >= 0 && in[i] < images, "deepcluster: dataset index ", in[i], " of row ",
                    i, " is outside the clustered training set of ", images, " images");
      out[i] = all[in[i]];
    }
    return labels;
  }

  std::shared_ptr<nn::Module> projector_;
  std::shared_ptr<nn::Linear> head_;
  int64_t clusters_, local_crops_;
  double temperature_;
  Clustering clustering_;
};

}  // namespace

const Clustering& deepcluster_clustering(const Method& method) {
  const auto* dc = dynamic_cast<const DeepCluster*>(&method);
  SELFSUP_CHECK(dc != nullptr, "deepcluster_clustering: method '", method.name(),
                "' is not deepcluster");
  return dc->clustering();
}

std::shared_ptr<Method> make_deepcluster(const MethodOptions& o) {
  return std::make_shared<DeepCluster>(o);
}

}  // namespace selfsup::ssl
