// An SSL method: the networks it trains (an encoder plus heads, and target networks for the
// momentum methods) and the loss of one batch of augmented views. Each method is an nn::Module,
// so its state dict — encoder, heads, target networks, MoCo's queue — is what a checkpoint
// holds, and the encoder is always the child named "encoder".
//
//   auto method = make_method("simclr", options);
//   method->before_epoch({epoch, epochs, &train_set, batch_size});  // once per epoch
//   StepOutput out = method->step(batch.views);   // forward, returns the loss
//   out.loss.backward(); optimizer.step();
//   method->after_optimizer_step(progress);       // EMA updates, queues
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "nn/models/registry.h"
#include "nn/module.h"

namespace selfsup::data {
struct Dataset;
}

namespace selfsup::ssl {

struct MethodOptions {
  std::string model = "resnet-small";  // nn::make_encoder name
  int64_t in_channels = 1;
  double width = 1.0;
  // Head sizes; 0 means the method's own default (given in its file's header).
  int64_t proj_hidden = 0;
  int64_t proj_dim = 0;
  int64_t pred_hidden = 0;
  double temperature = 0;  // 0: the method's default
  double momentum = 0.99;  // base EMA momentum of the target / key network (BYOL, MoCo)
  int64_t queue_size = 4096;
  double lambda = 0;    // Barlow Twins' off-diagonal weight; 0: the paper's 0.0051
  double margin = 0.5;  // triplet
  double sim_weight = 25.0, var_weight = 25.0, cov_weight = 1.0;  // VICReg
  int64_t image_size = 0;          // side of the square training images (set by the trainer; DAE)
  int64_t jigsaw_classes = 0;      // Jigsaw: the first N permutations of the set; 0: 100
  int64_t tile_jitter = 1;         // Jigsaw: largest random offset (px) of a tile in its cell
  double mask_noise = 0.25;        // DAE: fraction of pixels set to 0 (masking noise)
  double noise_std = 0.0;          // DAE: standard deviation of additive Gaussian noise
  double mask_ratio = 0.75;        // MAE: fraction of each image's patches hidden from the encoder
  bool norm_pix = true;            // MAE: targets normalised per patch (the paper's norm_pix_loss)
  int64_t prototypes = 0;          // SwAV's prototype count (0: the method's default)
  double sinkhorn_eps = 0;         // SwAV's Sinkhorn epsilon (0: 0.025)
  int64_t sinkhorn_iters = 0;      // SwAV's Sinkhorn iterations (0: 3)
  int64_t swav_queue = 0;          // SwAV's feature queue length (0: no queue)
  int64_t freeze_prototypes = -1;  // SwAV: epochs before the prototypes learn (-1: 1)
  int64_t clusters = 0;            // DeepCluster's k (0: the method's default)
  int64_t local_crops = -1;        // multi-crop local views of SwAV / DeepCluster (-1: the default)
  uint64_t seed = 0;
};

// What a method may need before an epoch starts (DeepCluster clusters the whole training set).
struct EpochContext {
  int64_t epoch = 0;                         // 0-based index of the epoch about to run
  int64_t epochs = 0;                        // epochs in the whole run
  const data::Dataset* train_set = nullptr;  // the training images, unaugmented
  int64_t batch_size = 256;                  // for passes over train_set (ssl/eval/features.h)
};

struct StepOutput {
  Tensor loss;                            // 0-d, differentiable
  std::map<std::string, double> metrics;  // extra numbers for the log (e.g. VICReg's terms)
  Tensor embedding;  // a detached [B, D] projection of view 0, for collapse checks
};

class Method : public nn::Module {
 public:
  Method(std::string name, const MethodOptions& options);

  const std::string& name() const { return name_; }
  const MethodOptions& options() const { return options_; }
  // The backbone whose features are evaluated.
  nn::Module& encoder() const { return *encoder_.module; }
  int64_t feature_dim() const { return encoder_.feature_dim; }
  // Encoder features of a batch [B, C, H, W] -> [B, feature_dim].
  Tensor features(const Tensor& images) { return encoder_.module->forward(images); }

  // The augmentation preset (ssl/data/augment.h make_recipes) and how many views it needs.
  virtual std::string augment_preset() const = 0;
  virtual int64_t num_views() const { return 2; }
  // The loss of one batch: views[k] is [B, C, H, W].
  virtual StepOutput step(const std::vector<Tensor>& views) = 0;
  // After each optimizer step; progress = finished steps / total steps, in (0, 1].
  virtual void after_optimizer_step(double progress) { (void)progress; }
  // At the start of every epoch, a resumed run's first one included.
  virtual void before_epoch(const EpochContext& ctx) { (void)ctx; }
  // step() with the dataset index of each row (int64 [B]), for methods whose targets are
  // per-image state (DeepCluster's pseudo-labels). The trainer calls this one; by default the
  // indices are ignored.
  virtual StepOutput step_indexed(const std::vector<Tensor>& views, const Tensor& indices) {
    (void)indices;
    return step(views);
  }

 protected:
  nn::Encoder encoder_;
  Generator gen_;

 private:
  std::string name_;
  MethodOptions options_;
};

// Where a method's per-step random draws (DAE noise, MAE masks, jigsaw puzzles) start in epoch
// `epoch` of its generator's Philox stream: 2^40 counters per epoch, past the construction-time
// draws. Keyed by the epoch alone, so a run resumed at an epoch draws what an uninterrupted run
// drew there (checkpoints are written at epoch ends; no generator state needs saving).
inline uint64_t epoch_rng_offset(int64_t epoch) {
  return static_cast<uint64_t>(epoch + 1) << 40;
}

std::shared_ptr<Method> make_method(const std::string& name, const MethodOptions& options);
std::vector<std::string> method_names();

// ---- helpers the methods share ----
// A value, or `fallback` when it is 0 (an unset option).
inline double or_default(double v, double fallback) {
  return v != 0 ? v : fallback;
}
inline int64_t or_default(int64_t v, int64_t fallback) {
  return v != 0 ? v : fallback;
}
// Copies every parameter and buffer of `source` into `target` (same architecture) and freezes
// target: the start of a momentum (target / key) network.
void init_target(const nn::Module& source, nn::Module& target);
// The cosine momentum schedule of BYOL: m = 1 - (1 - base) (cos(pi progress) + 1) / 2.
double cosine_momentum(double base, double progress);
// target_k = m * target_k + (1 - m) * online_k over every parameter (one fused EMA launch). The
// target's BatchNorm statistics are its own, from its own forward passes.
void ema_update_module(nn::Module& target, const nn::Module& online, double momentum);
// A projector / predictor: nn::mlp_head with this method's generator.
std::shared_ptr<nn::Module> make_head(const std::vector<int64_t>& dims, bool last_bn,
                                      Generator& gen);

// One factory per method file.
std::shared_ptr<Method> make_simclr(const MethodOptions& options);
std::shared_ptr<Method> make_moco(const MethodOptions& options);
std::shared_ptr<Method> make_byol(const MethodOptions& options);
std::shared_ptr<Method> make_simsiam(const MethodOptions& options);
std::shared_ptr<Method> make_barlow(const MethodOptions& options);
std::shared_ptr<Method> make_vicreg(const MethodOptions& options);
std::shared_ptr<Method> make_triplet(const MethodOptions& options);
std::shared_ptr<Method> make_rotnet(const MethodOptions& options);
std::shared_ptr<Method> make_jigsaw(const MethodOptions& options);
std::shared_ptr<Method> make_dae(const MethodOptions& options);
std::shared_ptr<Method> make_mae(const MethodOptions& options);
std::shared_ptr<Method> make_swav(const MethodOptions& options);
std::shared_ptr<Method> make_deepcluster(const MethodOptions& options);

}  // namespace selfsup::ssl
