#include "ssl/eval/finetune.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "autograd/ops.h"
#include "nn/layers.h"
#include "nn/models/registry.h"
#include "nn/optim.h"
#include "nn/schedule.h"
#include "ssl/data/loader.h"
#include "ssl/data/subset.h"
#include "ssl/data/transforms.h"
#include "ssl/eval/features.h"
#include "ssl/eval/linear_probe.h"

namespace selfsup::ssl {

namespace {

// Separate Philox keys for the head's and the encoder's initial weights, so the two never draw
// the same numbers for one seed.
constexpr uint64_t kHeadStream = 1;
constexpr uint64_t kEncoderStream = 2;

uint64_t stream_key(uint64_t seed, uint64_t stream) {
  uint64_t x = seed + stream * 0x9E3779B97F4A7C15ull;  // splitmix64
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

void check_inputs(const data::Dataset& train, const data::Dataset& test, int64_t feature_dim,
                  const FinetuneOptions& o) {
  SELFSUP_CHECK(o.label_fraction > 0 && o.label_fraction <= 1,
                "finetune: label fraction must lie in (0, 1], got ", o.label_fraction);
  SELFSUP_CHECK(o.epochs >= 1, "finetune: epochs must be positive, got ", o.epochs);
  SELFSUP_CHECK(o.batch_size >= 2, "finetune: batch size must be at least 2 (BatchNorm), got ",
                o.batch_size);
  SELFSUP_CHECK(o.eval_batch_size >= 1, "finetune: eval batch size must be positive, got ",
                o.eval_batch_size);
  SELFSUP_CHECK(o.lr > 0 && std::isfinite(o.lr), "finetune: lr must be positive, got ", o.lr);
  SELFSUP_CHECK(o.weight_decay >= 0, "finetune: weight decay must be >= 0, got ", o.weight_decay);
  SELFSUP_CHECK(o.num_workers >= 0, "finetune: workers must be >= 0, got ", o.num_workers);
  SELFSUP_CHECK(o.augment == "crop-flip" || o.augment == "none", "finetune: unknown augment '",
                o.augment, "' (crop-flip or none)");
  SELFSUP_CHECK(feature_dim >= 1, "finetune: feature_dim must be positive, got ", feature_dim);
  SELFSUP_CHECK(train.size() > 0, "finetune: the training set ", train.name, " is empty");
  SELFSUP_CHECK(test.size() > 0, "finetune: the test set ", test.name, " is empty");
  SELFSUP_CHECK(train.num_classes >= 2, "finetune: ", train.name, " has ", train.num_classes,
                " classes; at least 2 are needed");
  SELFSUP_CHECK(test.num_classes == train.num_classes, "finetune: ", train.name, " has ",
                train.num_classes, " classes but ", test.name, " has ", test.num_classes);
  SELFSUP_CHECK(test.channels() == train.channels(), "finetune: ", train.name, " has ",
                train.channels(), " channels but ", test.name, " has ", test.channels());
  SELFSUP_CHECK(train.height() == train.width(), "finetune: images of ", train.name, " are ",
                train.height(), "x", train.width(), "; square images are expected");
}

// One view per image: the light crop + flip, or the image itself (a null recipe).
data::ViewRecipes finetune_recipes(const std::string& augment, int64_t size) {
  using namespace data::transforms;
  if (augment == "none") return {"none", {nullptr}, {size}};
  return {"crop-flip",
          {data::compose({random_resized_crop(size, {0.5f, 1.0f}), horizontal_flip(0.5f)})},
          {size}};
}

// Accuracy of head(encoder(images)) on `dataset`, the encoder in eval mode.
double score(nn::Module& encoder, nn::Linear& head, const data::Dataset& dataset,
             int64_t batch_size) {
  Tensor features = extract_features(encoder, dataset, 0, batch_size);
  NoGradGuard no_grad;
  return top1_accuracy(head.forward(features), dataset.labels);
}

// Every BatchNorm layer of a model.
std::vector<nn::BatchNorm*> batch_norms(nn::Module& model) {
  std::vector<nn::BatchNorm*> out;
  for (auto& [name, m] : model.named_modules())
    if (auto* bn = dynamic_cast<nn::BatchNorm*>(m); bn && bn->running_mean.defined())
      out.push_back(bn);
  return out;
}

std::vector<Tensor> all_parameters(nn::Module& encoder, nn::Module& head) {
  std::vector<Tensor> params = encoder.parameters();
  for (const Tensor& p : head.parameters())
    params.push_back(p);
  return params;
}

}  // namespace

FinetuneResult finetune(nn::Module& encoder, int64_t feature_dim, const data::Dataset& train,
                        const data::Dataset& test, const FinetuneOptions& options) {
  check_inputs(train, test, feature_dim, options);
  data::Dataset labelled =
      data::take(train, data::labelled_subset(train, options.label_fraction, options.seed));
  const int64_t n = labelled.size();
  SELFSUP_CHECK(n >= 2, "finetune: the labelled subset of ", train.name, " holds ", n,
                " image; at least 2 are needed");
  // Never larger than the subset, so every epoch has at least one (full) batch.
  const int64_t batch = std::min(options.batch_size, n);
  data::Loader loader(
      labelled, finetune_recipes(options.augment, train.height()),
      data::LoaderOptions{batch, options.num_workers, 4, true, true, options.seed, true, nullptr});

  Generator head_gen(stream_key(options.seed, kHeadStream));
  nn::Linear head(feature_dim, train.num_classes, true, &head_gen);
  encoder.requires_grad_(true);
  optim::AdamW optimizer(all_parameters(encoder, head),
                         optim::AdamWOptions{options.lr, 0.9, 0.999, 1e-8, options.weight_decay});
  const int64_t steps_per_epoch = loader.batches_per_epoch();
  optim::CosineSchedule schedule{options.lr, 0.0, 0, options.epochs * steps_per_epoch};

  FinetuneResult result;
  result.labelled_examples = n;
  result.test_examples = test.size();
  const bool was_training = encoder.is_training();
  encoder.train();
  int64_t step = 0;
  for (int64_t epoch = 0; epoch < options.epochs; ++epoch) {
    loader.start_epoch(epoch);
    double epoch_loss = 0;
    while (auto b = loader.next()) {
      schedule.apply(optimizer, step++);
      Tensor loss = cross_entropy(head.forward(encoder.forward(b->views[0])), b->labels);
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
      epoch_loss += loss.item();
    }
    result.final_loss = epoch_loss / static_cast<double>(steps_per_epoch);
    SELFSUP_CHECK(std::isfinite(result.final_loss), "finetune: the loss became ", result.final_loss,
                  " in epoch ", epoch + 1, " (try a lower lr)");
    if (options.on_epoch) options.on_epoch(epoch + 1, options.epochs, result.final_loss);
  }
  if (options.recalibrate_batch_norm)
    recalibrate_batch_norm(encoder, labelled, options.eval_batch_size);
  result.train_top1 = score(encoder, head, labelled, options.eval_batch_size);
  result.test_top1 = score(encoder, head, test, options.eval_batch_size);
  encoder.train(was_training);
  return result;
}

void recalibrate_batch_norm(nn::Module& model, const data::Dataset& dataset, int64_t batch_size) {
  const int64_t n = dataset.size();
  SELFSUP_CHECK(n >= 2, "recalibrate_batch_norm: ", dataset.name, " holds ", n,
                " images; at least 2 are needed for batch statistics");
  std::vector<nn::BatchNorm*> layers = batch_norms(model);
  if (layers.empty()) return;
  // floor(n / B) batches of near-equal size, each of B to 2B - 1 images: never a batch of one,
  // and the average of the batch means is (nearly) the dataset mean.
  const int64_t batches = std::max<int64_t>(1, n / std::max<int64_t>(batch_size, 2));
  std::vector<std::optional<double>> momenta;
  for (nn::BatchNorm* bn : layers)
    momenta.push_back(bn->options.momentum_);
  const bool was_training = model.is_training();
  auto restore = [&] {
    model.train(was_training);
    for (size_t i = 0; i < layers.size(); ++i)
      layers[i]->options.momentum_ = momenta[i];
  };
  NoGradGuard no_grad;
  for (nn::BatchNorm* bn : layers) {
    bn->options.momentum_ = std::nullopt;  // cumulative average: factor 1 / batches seen
    bn->running_mean.fill_(0.0);
    bn->running_var.fill_(1.0);
    bn->num_batches_tracked.fill_(0.0);
  }
  model.train();
  try {
    for (int64_t b = 0, start = 0; b < batches; ++b) {
      const int64_t count = n / batches + (b < n % batches ? 1 : 0);
      model.forward(images_as_float(dataset, start, count));
      start += count;
    }
  } catch (...) {
    restore();
    throw;
  }
  restore();
}

FinetuneResult finetune_from_scratch(const std::string& model, double width,
                                     const data::Dataset& train, const data::Dataset& test,
                                     const FinetuneOptions& options) {
  SELFSUP_CHECK(train.size() > 0, "finetune: the training set ", train.name, " is empty");
  Generator gen(stream_key(options.seed, kEncoderStream));
  nn::Encoder fresh = nn::make_encoder(model, train.channels(), width, &gen);
  return finetune(*fresh.module, fresh.feature_dim, train, test, options);
}

}  // namespace selfsup::ssl
