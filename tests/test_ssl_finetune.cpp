// Fine-tuning with few labels on a synthetic two-class image set: the labelled subset's size,
// learning well above chance, determinism, the encoder's mode, and bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/random.h"
#include "core/views.h"
#include "nn/layers.h"
#include "nn/models/registry.h"
#include "ssl/eval/finetune.h"

namespace selfsup::ssl {
namespace {

// 1-channel size x size images of two classes: class 0 has a bright top half and a dark bottom
// half, class 1 the opposite, both with uniform noise of +-40 grey levels. The first n0 images
// are class 0, the rest class 1, interleaved so that any prefix holds both.
data::Dataset make_halves(int64_t n0, int64_t n1, int64_t size, uint64_t seed,
                          int64_t channels = 1) {
  const int64_t n = n0 + n1;
  Generator gen(seed);
  Tensor noise = rand({n, channels, size, size}, kFloat32, &gen);
  Tensor images = empty({n, channels, size, size}, kUInt8);
  std::vector<int64_t> labels(n);
  int64_t left0 = n0, left1 = n1;
  const float* u = noise.data_ptr<float>();
  uint8_t* px = images.data_ptr<uint8_t>();
  for (int64_t i = 0; i < n; ++i) {
    bool zero = left0 > 0 && (left1 == 0 || i % 2 == 0);
    labels[i] = zero ? 0 : 1;
    (zero ? left0 : left1) -= 1;
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t y = 0; y < size; ++y)
        for (int64_t x = 0; x < size; ++x) {
          int64_t k = ((i * channels + c) * size + y) * size + x;
          bool bright = (y < size / 2) == zero;
          float v = (bright ? 200.0f : 50.0f) + 80.0f * (u[k] - 0.5f);
          px[k] = static_cast<uint8_t>(std::lround(v));
        }
  }
  data::Dataset ds;
  ds.name = "halves";
  ds.images = images;
  ds.labels = from_vector(labels, {n});
  ds.num_classes = 2;
  return ds;
}

FinetuneOptions quick_options() {
  FinetuneOptions o;
  o.label_fraction = 1.0;
  o.epochs = 1;
  o.batch_size = 16;
  o.lr = 3e-3;
  o.num_workers = 0;
  o.augment = "none";
  return o;
}

template <typename Fn>
void expect_error(Fn fn, const std::vector<std::string>& fragments) {
  try {
    fn();
    FAIL() << "expected a selfsup::Error";
  } catch (const Error& e) {
    for (const auto& f : fragments)
      EXPECT_NE(std::string(e.what()).find(f), std::string::npos)
          << "message '" << e.what() << "' lacks '" << f << "'";
  }
}

// ---------------------------------------------------------------- the labelled subset

TEST(Finetune, LabelledFractionsGiveTheExpectedCounts) {
  data::Dataset train = make_halves(37, 63, 8, 1);
  data::Dataset test = make_halves(5, 5, 8, 2);
  FinetuneOptions o = quick_options();
  // round(fraction * n_c) per class, at least one: 10% -> 4 + 6, 1% -> 1 + 1, 50% -> 19 + 32
  // (18.5 rounds up), all -> 100.
  const std::vector<std::pair<double, int64_t>> cases = {
      {0.1, 10}, {0.01, 2}, {0.5, 51}, {1.0, 100}};
  for (auto [fraction, expected] : cases) {
    o.label_fraction = fraction;
    FinetuneResult r = finetune_from_scratch("resnet-small", 0.125, train, test, o);
    EXPECT_EQ(r.labelled_examples, expected) << "fraction " << fraction;
    EXPECT_EQ(r.test_examples, 10);
  }
}

// ---------------------------------------------------------------- learning

TEST(Finetune, LearnsHalvesWellAboveChance) {
  data::Dataset train = make_halves(80, 80, 8, 3);
  data::Dataset test = make_halves(50, 50, 8, 4);
  FinetuneOptions o = quick_options();
  o.label_fraction = 0.25;  // 20 labelled images per class
  o.epochs = 8;
  o.batch_size = 10;
  o.augment = "crop-flip";
  o.num_workers = 2;
  std::vector<double> losses;
  o.on_epoch = [&](int64_t epoch, int64_t epochs, double loss) {
    EXPECT_EQ(epoch, static_cast<int64_t>(losses.size()) + 1);
    EXPECT_EQ(epochs, 8);
    losses.push_back(loss);
  };
  FinetuneResult r = finetune_from_scratch("resnet-small", 0.25, train, test, o);
  EXPECT_EQ(r.labelled_examples, 40);
  ASSERT_EQ(losses.size(), 8u);
  EXPECT_LT(losses.back(), losses.front());
  EXPECT_GE(r.test_top1, 0.9) << "final loss " << r.final_loss;
  EXPECT_GE(r.train_top1, 0.9);
}

TEST(Finetune, TrainsTheGivenEncoderInPlaceAndRestoresItsMode) {
  data::Dataset train = make_halves(12, 12, 8, 5);
  data::Dataset test = make_halves(4, 4, 8, 6);
  Generator gen(9);
  nn::Encoder enc = nn::make_encoder("resnet-small", 1, 0.125, &gen);
  Tensor w = enc.module->parameters().front();
  std::vector<float> before = w.to_vector<float>();
  enc.module->eval();
  FinetuneResult r = finetune(*enc.module, enc.feature_dim, train, test, quick_options());
  EXPECT_FALSE(enc.module->is_training());
  EXPECT_NE(w.to_vector<float>(), before);
  EXPECT_EQ(r.labelled_examples, 24);
}

TEST(Finetune, DeterministicForASeedWhateverTheWorkers) {
  data::Dataset train = make_halves(20, 20, 8, 7);
  data::Dataset test = make_halves(10, 10, 8, 8);
  FinetuneOptions o = quick_options();
  o.epochs = 2;
  o.label_fraction = 0.5;
  o.augment = "crop-flip";
  o.seed = 5;
  FinetuneResult a = finetune_from_scratch("resnet-small", 0.125, train, test, o);
  o.num_workers = 2;
  FinetuneResult b = finetune_from_scratch("resnet-small", 0.125, train, test, o);
  EXPECT_EQ(a.final_loss, b.final_loss);
  EXPECT_EQ(a.test_top1, b.test_top1);
  o.seed = 6;
  FinetuneResult c = finetune_from_scratch("resnet-small", 0.125, train, test, o);
  EXPECT_NE(a.final_loss, c.final_loss);
}

// ---------------------------------------------------------------- BatchNorm recalibration

// Per-channel mean and unbiased variance of images [first, first + count) / 255, naively.
std::pair<std::vector<double>, std::vector<double>> channel_stats(const data::Dataset& ds,
                                                                  int64_t first, int64_t count) {
  const int64_t c = ds.channels(), hw = ds.height() * ds.width();
  const uint8_t* px = ds.images.data_ptr<uint8_t>();
  std::vector<double> mean(c, 0.0), var(c, 0.0);
  for (int64_t ch = 0; ch < c; ++ch) {
    for (int64_t i = first; i < first + count; ++i)
      for (int64_t k = 0; k < hw; ++k)
        mean[ch] += px[(i * c + ch) * hw + k] / 255.0;
    mean[ch] /= static_cast<double>(count * hw);
    for (int64_t i = first; i < first + count; ++i)
      for (int64_t k = 0; k < hw; ++k) {
        double d = px[(i * c + ch) * hw + k] / 255.0 - mean[ch];
        var[ch] += d * d;
      }
    var[ch] /= static_cast<double>(count * hw - 1);
  }
  return {mean, var};
}

TEST(RecalibrateBatchNorm, AveragesBatchStatisticsAndRestoresTheLayer) {
  data::Dataset ds = make_halves(4, 3, 5, 12, 2);  // 7 images, 2 channels, 5x5
  auto bn = std::make_shared<nn::BatchNorm2d>(2);
  nn::Sequential model({bn});
  model.eval();
  bn->running_mean.fill_(9.0);  // stale values that must be replaced, not averaged in

  // One batch: the exact mean and unbiased variance.
  recalibrate_batch_norm(model, ds, 256);
  auto [mean, var] = channel_stats(ds, 0, 7);
  std::vector<float> rm = bn->running_mean.to_vector<float>();
  std::vector<float> rv = bn->running_var.to_vector<float>();
  for (int64_t c = 0; c < 2; ++c) {
    EXPECT_NEAR(rm[c], mean[c], 1e-5) << "channel " << c;
    EXPECT_NEAR(rv[c], var[c], 1e-5) << "channel " << c;
  }
  EXPECT_FALSE(model.is_training());
  ASSERT_TRUE(bn->options.momentum_.has_value());
  EXPECT_EQ(*bn->options.momentum_, 0.1);
  EXPECT_EQ(bn->num_batches_tracked.item(), 1.0);

  // floor(7 / 3) = 2 batches of 4 and 3 images: the plain average of their statistics.
  recalibrate_batch_norm(model, ds, 3);
  auto [mean_a, var_a] = channel_stats(ds, 0, 4);
  auto [mean_b, var_b] = channel_stats(ds, 4, 3);
  rm = bn->running_mean.to_vector<float>();
  rv = bn->running_var.to_vector<float>();
  for (int64_t c = 0; c < 2; ++c) {
    EXPECT_NEAR(rm[c], (mean_a[c] + mean_b[c]) / 2, 1e-5) << "channel " << c;
    EXPECT_NEAR(rv[c], (var_a[c] + var_b[c]) / 2, 1e-5) << "channel " << c;
  }
  EXPECT_EQ(bn->num_batches_tracked.item(), 2.0);
}

// ---------------------------------------------------------------- bad input

TEST(Finetune, BadInputThrowsNamingTheValue) {
  data::Dataset train = make_halves(6, 6, 8, 9);
  data::Dataset test = make_halves(2, 2, 8, 10);
  Generator gen(1);
  nn::Encoder enc = nn::make_encoder("resnet-small", 1, 0.125, &gen);
  auto run = [&](FinetuneOptions o, const data::Dataset& tr, const data::Dataset& te) {
    finetune(*enc.module, enc.feature_dim, tr, te, o);
  };
  FinetuneOptions o = quick_options();
  o.label_fraction = 0;
  expect_error([&] { run(o, train, test); }, {"finetune", "fraction", "0"});
  o.label_fraction = 1.5;
  expect_error([&] { run(o, train, test); }, {"fraction", "1.5"});
  o = quick_options();
  o.epochs = 0;
  expect_error([&] { run(o, train, test); }, {"epochs", "0"});
  o = quick_options();
  o.batch_size = 1;
  expect_error([&] { run(o, train, test); }, {"batch size", "1"});
  o = quick_options();
  o.augment = "blur";
  expect_error([&] { run(o, train, test); }, {"augment 'blur'", "crop-flip"});
  o = quick_options();
  expect_error([&] { run(o, train, make_halves(2, 2, 8, 11, 3)); }, {"1 channels", "3"});
  data::Dataset three = test;
  three.num_classes = 3;
  expect_error([&] { run(o, train, three); }, {"2 classes", "3"});
  expect_error([&] { finetune_from_scratch("resnet-tiny", 1.0, train, test, o); }, {"resnet-tiny"});
}

}  // namespace
}  // namespace selfsup::ssl
