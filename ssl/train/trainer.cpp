#include "ssl/train/trainer.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "autograd/ops.h"
#include "core/views.h"
#include "kernels/cuda/device_info.h"
#include "nn/checkpoint.h"
#include "nn/optim.h"
#include "nn/schedule.h"
#include "ssl/data/augment.h"
#include "ssl/data/loader.h"
#include "ssl/data/subset.h"
#include "ssl/eval/features.h"
#include "ssl/eval/knn.h"
#include "ssl/train/progress.h"

namespace selfsup::ssl {

namespace {

using Clock = std::chrono::steady_clock;

void check_device(const std::string& device) {
  SELFSUP_CHECK(device == "auto" || device == "cpu" || device == "cuda", "train: unknown device '",
                device, "' (cpu, cuda or auto)");
}

// The device to train on: --device cuda needs a GPU (an Error says why there is none);
// auto takes the GPU when there is one. Finding a GPU registers the CUDA backend, whose pinned
// host allocator the loader's batches then use.
Device pick_device(const std::string& device) {
  if (device == "cpu") return kCPU;
  const cuda::DeviceReport report = cuda::query_devices();
  if (!report.gpus.empty()) return Device::cuda();
  SELFSUP_CHECK(device != "cuda", "train: --device cuda, but no GPU can be used: ", report.reason);
  return kCPU;
}

void check_config(const TrainConfig& c) {
  check_device(c.device);
  SELFSUP_CHECK(c.epochs > 0, "train: --epochs must be positive, got ", c.epochs);
  SELFSUP_CHECK(c.batch_size >= 2, "train: --batch-size must be at least 2, got ", c.batch_size);
  SELFSUP_CHECK(c.lr > 0, "train: --lr must be positive, got ", c.lr);
  SELFSUP_CHECK(c.subset >= 0, "train: --subset must be >= 0, got ", c.subset);
  SELFSUP_CHECK(c.crop_min_scale >= 0 && c.crop_min_scale <= 1, "train: --crop-min-scale ",
                c.crop_min_scale, " must lie in [0, 1] (0: the recipe's own)");
  SELFSUP_CHECK(c.view_size == 0 || c.view_size >= 8, "train: --view-size ", c.view_size,
                " must be 0 (the image size) or at least 8");
  SELFSUP_CHECK(c.warmup_epochs >= 0 && c.warmup_epochs <= c.epochs, "train: --warmup-epochs ",
                c.warmup_epochs, " must lie in [0, epochs]");
}

std::unique_ptr<optim::Optimizer> make_optimizer(const TrainConfig& c,
                                                 const std::vector<Tensor>& params) {
  double lr = c.lr * c.batch_size / 256.0;  // the linear scaling rule
  if (c.optimizer == "adamw")
    return std::make_unique<optim::AdamW>(
        params, optim::AdamWOptions{lr, 0.9, 0.999, 1e-8, c.weight_decay});
  if (c.optimizer == "sgd")
    return std::make_unique<optim::SGD>(
        params, optim::SgdOptions{lr, c.momentum, 0.0, c.weight_decay, false});
  if (c.optimizer == "lars")
    return std::make_unique<optim::LARS>(
        params, optim::LarsOptions{lr, c.momentum, c.weight_decay, 1e-3, true});
  throw Error("train: unknown optimizer '" + c.optimizer + "' (adamw, sgd or lars)");
}

std::vector<Tensor> trainable(const nn::Module& m) {
  std::vector<Tensor> out;
  for (const Tensor& p : m.parameters())
    if (p.requires_grad()) out.push_back(p);
  return out;
}

// Batches whose projections feed an epoch's collapse statistics: the epoch's last ones.
constexpr int64_t kCollapseBatches = 8;

// Everything one epoch reports.
struct EpochStats {
  double loss = 0;
  int64_t steps = 0;
  int64_t views = 0;
  double seconds = 0;
  double data_wait_seconds = 0;           // time the step loop spent blocked on the loader
  std::map<std::string, double> metrics;  // summed, divided by steps when written
  std::vector<Tensor> embeddings;         // the last batches' projections, for collapse stats
};

void write_json_line(const std::string& path, const nlohmann::json& j) {
  std::ofstream f(path, std::ios::app);
  SELFSUP_CHECK(f, "train: cannot append to ", path);
  f << j.dump() << "\n";
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::trunc);
  SELFSUP_CHECK(f, "train: cannot write ", path);
  f << text << "\n";
}

// Reads the run's configuration back from its checkpoint.
TrainConfig config_of(const std::string& checkpoint) {
  nn::TrainingProgress p = nn::read_checkpoint_progress(checkpoint);
  SELFSUP_CHECK(!p.config.empty(), "checkpoint ", checkpoint, " has no training configuration");
  return TrainConfig::from_json(p.config);
}

class Trainer {
 public:
  Trainer(TrainConfig config, const std::string& resume_dir) : c_(std::move(config)) {
    check_config(c_);
    device_ = pick_device(c_.device);
    train_set_ = data::load_dataset(c_.dataset, "train", c_.data_dir);
    if (c_.subset > 0) train_set_ = data::first_n(train_set_, c_.subset);
    // A ViT learns one position embedding per patch of the grid it trains on; views smaller
    // than the image would leave the outer positions untrained for evaluation at full size.
    SELFSUP_CHECK(nn::encoder_accepts_any_image_size(c_.method_options.model) ||
                      c_.view_size == 0 || c_.view_size == train_set_.height(),
                  "train: --view-size ", c_.view_size, " is not supported with --model ",
                  c_.method_options.model, " (", train_set_.name, " images are ",
                  train_set_.height(), " px; its position embeddings must be trained at the ",
                  "evaluation size)");
    c_.method_options.in_channels = train_set_.channels();
    c_.method_options.image_size = c_.view_size > 0 ? c_.view_size : train_set_.height();
    c_.method_options.seed = c_.seed;
    method_ = make_method(c_.method, c_.method_options);
    method_->to(device_);  // before the optimizer, whose state follows the parameters
    SELFSUP_CHECK(train_set_.height() == train_set_.width(), "train: images of ", train_set_.name,
                  " are ", train_set_.height(), "x", train_set_.width(),
                  "; square images are expected");
    auto recipes = data::make_recipes(
        method_->augment_preset(), train_set_.channels(), train_set_.height(), method_->num_views(),
        data::RecipeOptions{static_cast<float>(c_.crop_min_scale), c_.view_size});
    loader_ = std::make_unique<data::Loader>(
        train_set_, recipes,
        data::LoaderOptions{c_.batch_size, c_.num_workers, 4, true, true, c_.seed, true, nullptr});
    SELFSUP_CHECK(loader_->batches_per_epoch() > 0, "train: ", train_set_.size(),
                  " training images make no batch of ", c_.batch_size);
    optimizer_ = make_optimizer(c_, trainable(*method_));
    int64_t per_epoch = loader_->batches_per_epoch();
    schedule_ = {optimizer_->lr(), 0.0, static_cast<int64_t>(c_.warmup_epochs * per_epoch),
                 c_.epochs * per_epoch};
    schedule_.validate();
    std::filesystem::create_directories(c_.out);
    if (!resume_dir.empty()) resume(checkpoint_path(resume_dir));
    write_text(c_.out + "/config.json", c_.to_json());
  }

  TrainResult run() {
    TrainResult result;
    auto start = Clock::now();
    std::fprintf(stderr,
                 "selfsup: training %s (%s, %lld params) on %s: %lld images, %lld epochs, %s\n",
                 c_.method.c_str(), c_.method_options.model.c_str(),
                 static_cast<long long>(method_->encoder().num_parameters()),
                 train_set_.name.c_str(), static_cast<long long>(train_set_.size()),
                 static_cast<long long>(c_.epochs), device_.str().c_str());
    for (int64_t epoch = first_epoch_; epoch < c_.epochs; ++epoch) {
      EpochStats stats = run_epoch(epoch);
      nlohmann::json line = epoch_record(epoch, stats);
      if (want_knn(epoch)) result.knn_top1 = line["knn_top1"] = knn();
      write_json_line(c_.out + "/metrics.jsonl", line);
      save(epoch + 1);
      result.final_loss = stats.loss / std::max<int64_t>(stats.steps, 1);
      result.epochs_done = epoch + 1;
      report(line);
    }
    result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    result.checkpoint = checkpoint_path(c_.out);
    return result;
  }

 private:
  EpochStats run_epoch(int64_t epoch) {
    EpochStats s;
    method_->before_epoch({epoch, c_.epochs, &train_set_, c_.batch_size});
    method_->train();
    loader_->start_epoch(epoch);
    ProgressBar bar("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(c_.epochs),
                    loader_->batches_per_epoch());
    auto start = Clock::now();
    while (auto batch = next_batch(s)) {
      for (Tensor& view : batch->views)
        view = raw::to_device(view, device_);
      schedule_.apply(*optimizer_, step_);
      StepOutput out = method_->step_indexed(batch->views, batch->indices);
      optimizer_->zero_grad();
      out.loss.backward();
      if (c_.grad_clip > 0) optim::clip_grad_norm_(trainable(*method_), c_.grad_clip);
      optimizer_->step();
      ++step_;
      method_->after_optimizer_step(static_cast<double>(step_) / schedule_.total_steps);
      const bool near_end = batch->index >= loader_->batches_per_epoch() - kCollapseBatches;
      accumulate(s, out, batch->size() * method_->num_views(), near_end);
      s.seconds = std::chrono::duration<double>(Clock::now() - start).count();
      bar.update(s.steps, s.loss / s.steps, s.views / s.seconds, optimizer_->lr());
    }
    bar.finish();
    return s;
  }

  // The loader's next batch, timing how long the trainer waited for it: with enough workers
  // the batch is already in the queue and the wait is a few microseconds.
  std::optional<data::Batch> next_batch(EpochStats& s) {
    auto start = Clock::now();
    auto batch = loader_->next();
    s.data_wait_seconds += std::chrono::duration<double>(Clock::now() - start).count();
    return batch;
  }

  // keep_embedding: the step is one of the epoch's last kCollapseBatches, whose projections
  // give the collapse statistics of the network as the epoch leaves it (the first batches would
  // describe the network the epoch started from: for epoch 1, an untrained one).
  void accumulate(EpochStats& s, const StepOutput& out, int64_t views, bool keep_embedding) {
    double loss = out.loss.item();
    SELFSUP_CHECK(std::isfinite(loss), "train: the loss became ", loss, " at step ", step_,
                  " (try a lower --lr)");
    s.loss += loss;
    s.steps += 1;
    s.views += views;
    for (const auto& [k, v] : out.metrics)
      s.metrics[k] += v;
    if (out.embedding.defined() && keep_embedding)
      s.embeddings.push_back(raw::to_device(raw::contiguous(out.embedding), kCPU));
  }

  nlohmann::json epoch_record(int64_t epoch, const EpochStats& s) {
    nlohmann::json j = {{"epoch", epoch + 1},
                        {"step", step_},
                        {"loss", s.loss / std::max<int64_t>(s.steps, 1)},
                        {"lr", optimizer_->lr()},
                        {"views_per_s", s.views / std::max(s.seconds, 1e-9)},
                        {"seconds", s.seconds},
                        {"data_wait_fraction", s.data_wait_seconds / std::max(s.seconds, 1e-9)}};
    for (const auto& [k, v] : s.metrics)
      j[k] = v / s.steps;
    if (!s.embeddings.empty()) {
      CollapseStats cs = collapse_stats(raw::to_dtype(cat(s.embeddings, 0), kFloat32));
      j["embedding_std"] = cs.mean_std;
      j["reference_std"] = cs.reference_std;
      j["effective_rank"] = cs.effective_rank;
      j["collapsed"] = cs.collapsed;
      if (cs.collapsed)
        std::fprintf(stderr,
                     "selfsup: warning: the representation looks collapsed (embedding std %.4f "
                     "vs %.4f for a spread-out one, effective rank %.2f)\n",
                     cs.mean_std, cs.reference_std, cs.effective_rank);
    }
    return j;
  }

  bool want_knn(int64_t epoch) const {
    bool last = epoch + 1 == c_.epochs;
    return last || (c_.knn_every > 0 && (epoch + 1) % c_.knn_every == 0);
  }

  double knn() {
    if (!test_set_.images.defined())
      test_set_ = data::load_dataset(c_.dataset, "test", c_.data_dir);
    nn::Module& enc = method_->encoder();
    Tensor bank = extract_features(enc, train_set_, c_.knn_train);
    Tensor queries = extract_features(enc, test_set_, c_.knn_test);
    return knn_accuracy(bank, first_labels(train_set_, c_.knn_train), queries,
                        first_labels(test_set_, c_.knn_test), train_set_.num_classes,
                        {c_.knn_k, 0.1, 256});
  }

  void save(int64_t epochs_done) {
    nn::TrainingProgress p;
    p.epoch = epochs_done;
    p.step = step_;
    p.rng_seed = c_.seed;
    p.method = c_.method;
    p.config = c_.to_json();
    nn::save_checkpoint(checkpoint_path(c_.out), *method_, optimizer_.get(), p);
  }

  void resume(const std::string& path) {
    nn::TrainingProgress p = nn::load_checkpoint(path, *method_, optimizer_.get());
    SELFSUP_CHECK(p.method == c_.method, "train: checkpoint ", path, " was trained with ", p.method,
                  ", not ", c_.method);
    first_epoch_ = p.epoch;
    step_ = p.step;
    std::fprintf(stderr, "selfsup: resuming %s after epoch %lld (step %lld)\n", path.c_str(),
                 static_cast<long long>(p.epoch), static_cast<long long>(p.step));
  }

  void report(const nlohmann::json& line) {
    std::fprintf(stderr, "selfsup: epoch %d: loss %.4f", line["epoch"].get<int>(),
                 line["loss"].get<double>());
    if (line.contains("knn_top1"))
      std::fprintf(stderr, ", kNN top-1 %.2f%%", 100 * line["knn_top1"].get<double>());
    if (line.contains("effective_rank"))
      std::fprintf(stderr, ", effective rank %.1f", line["effective_rank"].get<double>());
    std::fprintf(stderr, ", %.0f views/s, waited on data %.1f%% of the time\n",
                 line["views_per_s"].get<double>(), 100 * line["data_wait_fraction"].get<double>());
  }

  TrainConfig c_;
  Device device_ = kCPU;  // where the method's parameters and each batch live
  data::Dataset train_set_, test_set_;
  std::shared_ptr<Method> method_;
  std::unique_ptr<data::Loader> loader_;
  std::unique_ptr<optim::Optimizer> optimizer_;
  optim::CosineSchedule schedule_;
  int64_t first_epoch_ = 0;
  int64_t step_ = 0;
};

}  // namespace

std::string checkpoint_path(const std::string& run_dir) {
  return run_dir + "/checkpoint.safetensors";
}

TrainResult train(TrainConfig config, const std::string& resume_dir) {
  if (!resume_dir.empty()) {
    TrainConfig saved = config_of(checkpoint_path(resume_dir));
    saved.epochs = std::max(saved.epochs, config.epochs);
    saved.out = resume_dir;
    config = saved;
  }
  return Trainer(std::move(config), resume_dir).run();
}

std::shared_ptr<Method> load_method(const std::string& checkpoint, TrainConfig* config) {
  TrainConfig c = config_of(checkpoint);
  auto method = make_method(c.method, c.method_options);
  nn::load_checkpoint(checkpoint, *method);
  if (config) *config = c;
  return method;
}

}  // namespace selfsup::ssl
