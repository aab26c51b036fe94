// `selfsup train`: trains an encoder without labels with one of the SSL methods.
//
//   selfsup train --method simclr --dataset fashion-mnist --model resnet-small --epochs 10
//                 --batch-size 256 --out runs/simclr
//   selfsup train --config runs/simclr.toml --lr 2e-3     (flags override the file)
//   selfsup train --resume runs/simclr --epochs 20        (continue, or extend, a run)
//
// Every option can be given in a TOML file (--config) with the option's long name as the key
// (batch-size = 256). The run folder keeps the resolved configuration (config.json and
// config.toml), one JSON line of metrics per epoch and the latest checkpoint.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "ssl/methods/method.h"
#include "ssl/train/trainer.h"
#include "tools/cli/command.h"
#include "tools/cli/config_file.h"

namespace selfsup::cli {
namespace {

struct TrainArgs {
  ssl::TrainConfig config;
  std::string resume;
  std::string config_file;
};

TrainArgs& args() {
  static TrainArgs a;
  return a;
}

std::string joined(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names)
    s += (s.empty() ? "" : ", ") + n;
  return s;
}

void add_run_options(CLI::App& sub, ssl::TrainConfig& c) {
  sub.add_option("--method", c.method, "SSL method: " + joined(ssl::method_names()))
      ->capture_default_str();
  sub.add_option("--dataset", c.dataset, "fashion-mnist, mnist, cifar10, cifar100, folder:PATH")
      ->capture_default_str();
  sub.add_option("--data-dir", c.data_dir, "read the dataset's files from this folder");
  sub.add_option("--model", c.method_options.model,
                 "encoder: resnet-small, resnet-small-wide, resnet18, resnet34, resnet50, vit-tiny")
      ->capture_default_str();
  sub.add_option("--width", c.method_options.width, "encoder width multiplier")
      ->capture_default_str();
  sub.add_option("--epochs", c.epochs, "training epochs")->capture_default_str();
  sub.add_option("--batch-size", c.batch_size, "images per batch")->capture_default_str();
  sub.add_option("--device", c.device, "cpu, cuda or auto")->capture_default_str();
  sub.add_option("--out", c.out, "run folder")->capture_default_str();
  sub.add_option("--seed", c.seed, "random seed")->capture_default_str();
  sub.add_option("--subset", c.subset, "train on the first N training images (0: all)")
      ->capture_default_str();
  sub.add_option("--workers", c.num_workers, "data loader threads")->capture_default_str();
  sub.add_option("--crop-min-scale", c.crop_min_scale,
                 "smallest random-resized-crop area of a view (0: the method's recipe)");
  sub.add_option(
      "--view-size", c.view_size,
      "side of the training views, e.g. 20 to train 28 px images at 20 px (0: image size)");
}

void add_optimisation_options(CLI::App& sub, ssl::TrainConfig& c) {
  sub.add_option("--optimizer", c.optimizer, "adamw, sgd or lars")->capture_default_str();
  sub.add_option("--lr", c.lr, "learning rate per 256 images (scaled with the batch size)")
      ->capture_default_str();
  sub.add_option("--weight-decay", c.weight_decay)->capture_default_str();
  sub.add_option("--momentum", c.momentum, "SGD / LARS momentum")->capture_default_str();
  sub.add_option("--warmup-epochs", c.warmup_epochs, "linear warm-up before the cosine decay")
      ->capture_default_str();
  sub.add_option("--grad-clip", c.grad_clip, "clip the gradient's global norm (0: off)")
      ->capture_default_str();
}

void add_method_options(CLI::App& sub, ssl::MethodOptions& m) {
  sub.add_option("--proj-hidden", m.proj_hidden,
                 "hidden width of the head: the projector (rotnet, jigsaw: the classifier; dae: "
                 "the decoder; mae: unused); 0: the method's default");
  sub.add_option("--proj-dim", m.proj_dim, "projection size (0: method default)");
  sub.add_option("--pred-hidden", m.pred_hidden, "predictor hidden width (0: method default)");
  sub.add_option("--temperature", m.temperature, "SimCLR / MoCo temperature (0: default)");
  sub.add_option("--ema", m.momentum, "base EMA momentum of BYOL's target / MoCo's keys")
      ->capture_default_str();
  sub.add_option("--queue-size", m.queue_size, "MoCo queue length")->capture_default_str();
  sub.add_option("--lambda", m.lambda, "Barlow Twins off-diagonal weight (0: 0.0051)");
  sub.add_option("--margin", m.margin, "triplet margin")->capture_default_str();
  sub.add_option("--sim-weight", m.sim_weight, "VICReg invariance weight")->capture_default_str();
  sub.add_option("--var-weight", m.var_weight, "VICReg variance weight")->capture_default_str();
  sub.add_option("--cov-weight", m.cov_weight, "VICReg covariance weight")->capture_default_str();
  sub.add_option("--jigsaw-classes", m.jigsaw_classes, "Jigsaw permutation classes (0: 100)");
  sub.add_option("--tile-jitter", m.tile_jitter, "Jigsaw: largest random tile offset in px")
      ->capture_default_str();
  sub.add_option("--mask-noise", m.mask_noise, "DAE: fraction of pixels masked to 0")
      ->capture_default_str();
  sub.add_option("--noise-std", m.noise_std, "DAE: std of additive Gaussian noise")
      ->capture_default_str();
  sub.add_option("--mask-ratio", m.mask_ratio, "MAE: fraction of patches masked")
      ->capture_default_str();
  sub.add_option("--norm-pix", m.norm_pix, "MAE: per-patch normalised targets (true / false)")
      ->capture_default_str();
  sub.add_option("--prototypes", m.prototypes, "SwAV prototypes (0: 100)");
  sub.add_option("--sinkhorn-eps", m.sinkhorn_eps, "SwAV Sinkhorn epsilon (0: 0.025)");
  sub.add_option("--sinkhorn-iters", m.sinkhorn_iters, "SwAV Sinkhorn iterations (0: 3)");
  sub.add_option("--swav-queue", m.swav_queue, "SwAV feature queue length (0: none)")
      ->capture_default_str();
  sub.add_option("--freeze-prototypes", m.freeze_prototypes,
                 "SwAV: epochs before the prototypes learn; the queue waits as long (-1: 1)")
      ->capture_default_str();
  sub.add_option("--clusters", m.clusters, "DeepCluster k-means clusters (0: 100)");
  sub.add_option("--local-crops", m.local_crops,
                 "SwAV / DeepCluster local crops besides the 2 global views (-1: 4)")
      ->capture_default_str();
}

void add_eval_options(CLI::App& sub, ssl::TrainConfig& c) {
  sub.add_option("--knn-every", c.knn_every, "epochs between kNN evaluations (0: at the end)")
      ->capture_default_str();
  sub.add_option("--knn-train", c.knn_train, "training images in the kNN memory bank")
      ->capture_default_str();
  sub.add_option("--knn-test", c.knn_test, "test images the kNN evaluation classifies")
      ->capture_default_str();
  sub.add_option("--knn-k", c.knn_k, "neighbours in the kNN vote")->capture_default_str();
}

void run_train(CLI::App& sub) {
  TrainArgs& a = args();
  bool epochs_given = sub.count("--epochs") > 0;
  if (!a.config_file.empty()) {
    apply_config_file(sub, a.config_file);
    epochs_given = epochs_given || sub.count("--epochs") > 0;
  }
  if (!a.resume.empty() && !epochs_given) a.config.epochs = 0;  // keep the run's
  // MAE masks patch tokens: without a --model it trains vit-tiny, not the default ResNet.
  if (a.resume.empty() && a.config.method == "mae" && sub.count("--model") == 0) {
    sub.get_option("--model")->add_result("vit-tiny");
    sub.get_option("--model")->run_callback();
  }
  if (a.resume.empty()) {
    auto names = ssl::method_names();
    SELFSUP_CHECK(std::find(names.begin(), names.end(), a.config.method) != names.end(),
                  "train: unknown method '", a.config.method, "' (known: ", joined(names), ")");
    std::filesystem::create_directories(a.config.out);
    std::ofstream(a.config.out + "/config.toml") << sub.config_to_str(true, false);  // resolved
  }
  ssl::TrainResult r = ssl::train(a.config, a.resume);
  std::printf("trained %lld epochs in %.1f s; final loss %.4f",
              static_cast<long long>(r.epochs_done), r.seconds, r.final_loss);
  if (r.knn_top1 >= 0) std::printf("; kNN top-1 %.2f%%", 100 * r.knn_top1);
  std::printf("\ncheckpoint: %s\n", r.checkpoint.c_str());
}

void setup_train(CLI::App& sub) {
  TrainArgs& a = args();
  sub.add_option("--config", a.config_file,
                 "TOML file holding any of these options (flags override it)");
  add_run_options(sub, a.config);
  add_optimisation_options(sub, a.config);
  add_method_options(sub, a.config.method_options);
  add_eval_options(sub, a.config);
  sub.add_option("--resume", a.resume, "continue the run in this folder from its checkpoint");
  sub.callback([&sub] { run_train(sub); });
}

const Registrar kRegistrar("train", "Train an encoder without labels (SimCLR, MoCo, BYOL, ...)",
                           &setup_train);

}  // namespace
}  // namespace selfsup::cli
