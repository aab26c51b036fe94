// `selfsup eval`: scores a trained encoder on the test set with one of three protocols.
//
//   selfsup eval --checkpoint runs/simclr/checkpoint.safetensors --protocol linear
//   selfsup eval --checkpoint F --protocol knn --train-limit 10000
//   selfsup eval --checkpoint F --protocol finetune --labels 1% --epochs 30 --from-scratch
//
// Protocols:
//   knn       weighted kNN vote over the frozen features (k = --knn-k, temperature 0.1);
//   linear    a linear classifier on the frozen, standardised features (--epochs, default 100);
//   finetune  encoder + linear head trained end to end on --labels of the training labels
//             (default 10%), light crop + flip augmentation (--epochs, default 30).
// --labels also restricts knn and linear to that class-balanced fraction of the training set
// (by default they use all of it).
//
// --from-scratch adds a baseline line: the same protocol run on a freshly initialised encoder of
// the same architecture. For finetune that is training from scratch on the same labels, what the
// semi-supervised papers compare against; for knn and linear it is a random-features baseline.
// It is off by default because it doubles the cost.
//
// The result is one line on stdout, e.g.
//   linear probe top-1: 85.31% (test 10000 images, train 60000)
// progress goes to stderr.
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "core/error.h"
#include "nn/models/registry.h"
#include "ssl/data/subset.h"
#include "ssl/eval/features.h"
#include "ssl/eval/finetune.h"
#include "ssl/eval/knn.h"
#include "ssl/eval/linear_probe.h"
#include "tools/cli/command.h"
#include "tools/cli/eval_common.h"

namespace selfsup::cli {
namespace {

struct EvalArgs {
  std::string checkpoint;
  std::string protocol = "linear";
  std::string labels;  // "10%"; empty: the protocol's default
  std::string dataset;
  std::string data_dir;
  int64_t train_limit = 0;
  int64_t test_limit = 0;
  int64_t epochs = 0;      // 0: the protocol's default
  int64_t batch_size = 0;  // 0: the protocol's default
  double lr = 0;           // 0: the protocol's default
  int64_t knn_k = 200;
  int workers = 2;
  uint64_t seed = 0;
  bool from_scratch = false;
};

using Clock = std::chrono::steady_clock;

void check_protocol(const std::string& p) {
  SELFSUP_CHECK(p == "knn" || p == "linear" || p == "finetune", "eval: unknown protocol '", p,
                "' (knn, linear or finetune)");
}

// "1%" -> 0.01. Anything but a percentage in (0, 100] is an Error naming the value.
double parse_label_fraction(const std::string& text) {
  const char* usage = "' (a percentage in (0, 100], such as 1% or 10%)";
  SELFSUP_CHECK(text.size() >= 2 && text.back() == '%', "eval: bad --labels '", text, usage);
  const std::string number = text.substr(0, text.size() - 1);
  char* end = nullptr;
  errno = 0;
  const double percent = std::strtod(number.c_str(), &end);
  SELFSUP_CHECK(errno == 0 && end == number.c_str() + number.size() && std::isfinite(percent) &&
                    percent > 0 && percent <= 100,
                "eval: bad --labels '", text, usage);
  return percent / 100.0;
}

std::string percent(double fraction) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f%%", 100 * fraction);
  return buf;
}

std::string label_text(double fraction) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g%%", 100 * fraction);
  return buf;
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// A freshly initialised encoder of the checkpoint's architecture, for the baselines.
nn::Encoder fresh_encoder(const ssl::TrainConfig& config, uint64_t seed) {
  Generator gen(seed);
  const ssl::MethodOptions& m = config.method_options;
  return nn::make_encoder(m.model, m.in_channels, m.width, &gen);
}

// What every protocol works on.
struct EvalData {
  data::Dataset train, test;
  double label_fraction = 1.0;  // of train, used by the protocol
};

// ---------------------------------------------------------------- knn and linear

// The training set the frozen-feature protocols see: all of it, or the --labels fraction.
data::Dataset frozen_train_set(const EvalData& d, uint64_t seed) {
  if (d.label_fraction >= 1.0) return d.train;
  return data::take(d.train, data::labelled_subset(d.train, d.label_fraction, seed));
}

void run_frozen(const EvalArgs& a, nn::Module& encoder, const EvalData& d, const char* who) {
  data::Dataset train = frozen_train_set(d, a.seed);
  auto start = Clock::now();
  std::fprintf(stderr, "selfsup: extracting features of %lld training and %lld test images%s\n",
               static_cast<long long>(train.size()), static_cast<long long>(d.test.size()), who);
  Tensor f_train = ssl::extract_features(encoder, train);
  Tensor f_test = ssl::extract_features(encoder, d.test);
  std::fprintf(stderr, "selfsup: %lld-d features in %.1f s\n",
               static_cast<long long>(f_train.size(1)), seconds_since(start));
  const std::string sizes = "(test " + std::to_string(d.test.size()) + " images, train " +
                            std::to_string(train.size()) + ")";
  if (a.protocol == "knn") {
    ssl::KnnOptions o;
    o.k = a.knn_k;
    double acc =
        ssl::knn_accuracy(f_train, train.labels, f_test, d.test.labels, train.num_classes, o);
    std::printf("kNN top-1 (k=%lld)%s: %s %s\n", static_cast<long long>(a.knn_k), who,
                percent(acc).c_str(), sizes.c_str());
    return;
  }
  ssl::LinearProbeOptions o;
  if (a.epochs > 0) o.epochs = a.epochs;
  if (a.batch_size > 0) o.batch_size = a.batch_size;
  if (a.lr > 0) o.lr = a.lr;
  o.seed = a.seed;
  start = Clock::now();
  ssl::LinearProbeResult r =
      ssl::linear_probe(f_train, train.labels, f_test, d.test.labels, train.num_classes, o);
  std::fprintf(stderr, "selfsup: linear probe: %lld epochs in %.1f s, train top-1 %s\n",
               static_cast<long long>(o.epochs), seconds_since(start),
               percent(r.train_top1).c_str());
  std::printf("linear probe top-1%s: %s %s\n", who, percent(r.test_top1).c_str(), sizes.c_str());
}

// ---------------------------------------------------------------- finetune

ssl::FinetuneOptions finetune_options(const EvalArgs& a, const EvalData& d, const char* who) {
  ssl::FinetuneOptions o;
  o.label_fraction = d.label_fraction;
  if (a.epochs > 0) o.epochs = a.epochs;
  if (a.batch_size > 0) o.batch_size = a.batch_size;
  if (a.lr > 0) o.lr = a.lr;
  o.num_workers = a.workers;
  o.seed = a.seed;
  std::string label = who;
  o.on_epoch = [label](int64_t epoch, int64_t epochs, double loss) {
    std::fprintf(stderr, "selfsup: fine-tune%s epoch %lld/%lld: loss %.4f\n", label.c_str(),
                 static_cast<long long>(epoch), static_cast<long long>(epochs), loss);
  };
  return o;
}

void run_finetune(const EvalArgs& a, nn::Module& encoder, int64_t feature_dim, const EvalData& d,
                  const char* who) {
  ssl::FinetuneOptions o = finetune_options(a, d, who);
  auto start = Clock::now();
  ssl::FinetuneResult r = ssl::finetune(encoder, feature_dim, d.train, d.test, o);
  std::fprintf(stderr, "selfsup: fine-tuned%s in %.1f s, train top-1 %s\n", who,
               seconds_since(start), percent(r.train_top1).c_str());
  std::printf("fine-tune top-1%s (%s labels: %lld images, %lld epochs): %s (test %lld images)\n",
              who, label_text(d.label_fraction).c_str(),
              static_cast<long long>(r.labelled_examples), static_cast<long long>(o.epochs),
              percent(r.test_top1).c_str(), static_cast<long long>(r.test_examples));
}

// ---------------------------------------------------------------- the command

void run_protocol(const EvalArgs& a, nn::Module& encoder, int64_t feature_dim, const EvalData& d,
                  const char* who) {
  if (a.protocol == "finetune")
    run_finetune(a, encoder, feature_dim, d, who);
  else
    run_frozen(a, encoder, d, who);
}

void run_eval(const EvalArgs& a) {
  // Cheap checks first: a typo must not cost a dataset load.
  check_protocol(a.protocol);
  EvalData d;
  d.label_fraction =
      a.labels.empty() ? (a.protocol == "finetune" ? 0.1 : 1.0) : parse_label_fraction(a.labels);
  SELFSUP_CHECK(a.knn_k >= 1, "eval: --knn-k must be positive, got ", a.knn_k);
  LoadedCheckpoint c = open_checkpoint(a.checkpoint, "eval");
  DataSource source = resolve_data_source(c.config, a.dataset, a.data_dir);
  d.train = load_split(source, "train", a.train_limit, c.config, "eval");
  d.test = load_split(source, "test", a.test_limit, c.config, "eval");
  std::fprintf(stderr, "selfsup: evaluating %s (%s, %lld-d features) from %s on %s\n",
               c.config.method.c_str(), c.config.method_options.model.c_str(),
               static_cast<long long>(c.method->feature_dim()), c.path.c_str(),
               source.dataset.c_str());
  run_protocol(a, c.method->encoder(), c.method->feature_dim(), d, "");
  if (!a.from_scratch) return;
  nn::Encoder fresh = fresh_encoder(c.config, a.seed);
  run_protocol(a, *fresh.module, fresh.feature_dim, d,
               a.protocol == "finetune" ? ", from scratch" : ", random-init encoder");
}

void setup_eval(CLI::App& sub) {
  auto a = std::make_shared<EvalArgs>();  // outlives setup: the callback runs at parse time
  sub.add_option("--checkpoint", a->checkpoint, "checkpoint of a `selfsup train` run (required)");
  sub.add_option("--protocol", a->protocol, "knn, linear or finetune")->capture_default_str();
  sub.add_option("--labels", a->labels,
                 "train on this class-balanced share of the labels, e.g. 1% or 10% "
                 "(default: 10% for finetune, all for knn and linear)");
  sub.add_option("--dataset", a->dataset, "dataset to evaluate on (default: the checkpoint's)");
  sub.add_option("--data-dir", a->data_dir, "read the dataset's files from this folder");
  sub.add_option("--train-limit", a->train_limit, "use the first N training images (0: all)")
      ->capture_default_str();
  sub.add_option("--test-limit", a->test_limit, "score the first N test images (0: all)")
      ->capture_default_str();
  sub.add_option("--epochs", a->epochs, "training epochs (default: 100 linear, 30 finetune)");
  sub.add_option("--batch-size", a->batch_size, "batch size (default: 256 linear, 64 finetune)");
  sub.add_option("--lr", a->lr, "AdamW learning rate (default: 1e-2 linear, 1e-3 finetune)");
  sub.add_option("--knn-k", a->knn_k, "neighbours in the kNN vote")->capture_default_str();
  sub.add_option("--workers", a->workers, "data loader threads (finetune)")->capture_default_str();
  sub.add_option("--seed", a->seed, "random seed")->capture_default_str();
  sub.add_flag("--from-scratch", a->from_scratch,
               "also run the protocol on a freshly initialised encoder (the baseline)");
  sub.callback([a] { run_eval(*a); });
}

const Registrar kRegistrar("eval", "Score a trained encoder: kNN, linear probe or fine-tuning",
                           &setup_eval);

}  // namespace
}  // namespace selfsup::cli
