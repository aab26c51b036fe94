// The pretext-task methods — RotNet, Jigsaw, the denoising autoencoder — by hand on tiny inputs:
// the rotation labels against the orientation the rotnet recipe really gives each view, the
// jigsaw tiles against naive crops and against data::jigsaw(), the puzzle put back by the
// inverse permutation, the DAE's corruption statistics and its loss on a perfect and an
// off-by-delta reconstruction; gradchecks in float64; bad options; and one short run of each
// method through ssl::train() (skipped where Fashion-MNIST is not installed).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/views.h"
#include "ssl/data/dataset.h"
#include "ssl/data/transforms.h"
#include "ssl/eval/features.h"
#include "ssl/methods/method.h"
#include "ssl/methods/pretext.h"
#include "ssl/train/trainer.h"
#include "tests/ssl_test_util.h"

using namespace selfsup;
using test::have_fashion_mnist;
using test::metrics;
using test::temp_dir;
namespace fs = std::filesystem;

namespace {

// ---- helpers ----

ssl::MethodOptions small_options(int64_t image_size = 12) {
  ssl::MethodOptions o;
  o.width = 0.25;  // resnet-small: 8, 8, 16, 32 channels, 32-d features
  o.proj_hidden = 16;
  o.image_size = image_size;
  o.seed = 7;
  return o;
}

Tensor random_images(Shape shape, uint64_t seed, DType dtype = kFloat32) {
  Generator g(seed);
  return rand(shape, dtype, &g);
}

std::shared_ptr<nn::Module> child(nn::Module& m, const std::string& name) {
  for (const auto& [n, c] : m.named_children())
    if (n == name) return c;
  return nullptr;
}

Tensor parameter(const nn::Module& m, const std::string& name) {
  for (const auto& [n, p] : m.named_parameters())
    if (n == name) return p;
  return Tensor();
}

// Mean softmax cross-entropy by a plain loop.
double cross_entropy_reference(const Tensor& logits, const std::vector<int64_t>& labels) {
  auto z = logits.to_vector<double>();
  int64_t n = logits.size(0), k = logits.size(1);
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    double mx = -INFINITY, s = 0;
    for (int64_t j = 0; j < k; ++j)
      mx = std::max(mx, z[i * k + j]);
    for (int64_t j = 0; j < k; ++j)
      s += std::exp(z[i * k + j] - mx);
    total += std::log(s) + mx - z[i * k + labels[i]];
  }
  return total / n;
}

template <typename Fn>
void expect_error(Fn&& fn, const std::vector<std::string>& needles) {
  try {
    fn();
    FAIL() << "no error; expected one mentioning " << needles[0];
  } catch (const Error& e) {
    for (const auto& needle : needles)
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
          << "'" << e.what() << "' lacks '" << needle << "'";
  }
}

// Element (b, c, y, x) of a [B, C, H, W] tensor, any strides.
double at(const Tensor& t, int64_t b, int64_t c, int64_t y, int64_t x) {
  return raw::select(raw::select(raw::select(raw::select(t, 0, b), 0, c), 0, y), 0, x).item();
}

}  // namespace

// =============================================================================================
// RotNet
// =============================================================================================

TEST(RotNet, LabelsAreTheViewIndexModFour) {
  EXPECT_EQ(ssl::rotation_labels(3, 4).to_vector<int64_t>(),
            (std::vector<int64_t>{0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3}));
  EXPECT_EQ(ssl::rotation_labels(2, 6).to_vector<int64_t>(),
            (std::vector<int64_t>{0, 0, 1, 1, 2, 2, 3, 3, 0, 0, 1, 1}));
  expect_error([] { ssl::rotation_labels(0, 4); }, {"rotation_labels", "batch 0"});
}

// A vertical ramp (bright at the top) keeps its bright side through the recipe's mild crop and
// horizontal flip; only the rotation moves it. The side where the view is brightest — top,
// left, bottom, right — is its rotation counter-clockwise, which must be its label.
TEST(RotNet, LabelsLineUpWithTheOrientationOfTheRecipeViews) {
  auto method = ssl::make_method("rotnet", small_options());
  ASSERT_EQ(method->num_views(), 4);
  const int64_t side = 28;
  data::ViewRecipes recipes =
      data::make_recipes(method->augment_preset(), 1, side, method->num_views());
  ASSERT_EQ(recipes.views.size(), 4u);
  data::Image ramp(1, side, side);
  for (int64_t y = 0; y < side; ++y)
    for (int64_t x = 0; x < side; ++x)
      ramp.at(0, y, x) = 1.0f - static_cast<float>(y) / side;
  auto labels = ssl::rotation_labels(1, 4).to_vector<int64_t>();
  auto band_mean = [&](const data::Image& v, int side_index) {
    double s = 0;  // 4-pixel band along one side: 0 top, 1 left, 2 bottom, 3 right
    for (int64_t i = 0; i < 4; ++i)
      for (int64_t j = 0; j < v.w; ++j) {
        int64_t y = side_index == 0 ? i : side_index == 2 ? v.h - 1 - i : j;
        int64_t x = side_index == 1 ? i : side_index == 3 ? v.w - 1 - i : j;
        s += v.at(0, y, x);
      }
    return s;
  };
  for (uint64_t sample = 0; sample < 12; ++sample)
    for (int64_t v = 0; v < 4; ++v) {
      data::AugRng rng(3, 0, sample, static_cast<uint64_t>(v));
      data::Image view = recipes.views[static_cast<size_t>(v)]->apply(ramp, rng);
      int brightest = 0;
      for (int s = 1; s < 4; ++s)
        if (band_mean(view, s) > band_mean(view, brightest)) brightest = s;
      EXPECT_EQ(brightest, labels[static_cast<size_t>(v)]) << "sample " << sample << " view " << v;
    }
}

TEST(RotNet, LossIsCrossEntropyOfTheClassifierOnTheConcatenatedViews) {
  auto method = ssl::make_method("rotnet", small_options());
  method->eval();  // running statistics: the hand computation below sees the same network
  std::vector<Tensor> views;
  for (uint64_t v = 0; v < 4; ++v)
    views.push_back(random_images({3, 1, 12, 12}, 10 + v));
  ssl::StepOutput out = method->step(views);
  Tensor logits;
  {
    NoGradGuard g;
    logits = child(*method, "classifier")->forward(method->features(cat(views, 0)));
  }
  ASSERT_EQ(logits.shape(), Shape({12, 4}));
  std::vector<int64_t> labels = {0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3};
  EXPECT_NEAR(out.loss.item(), cross_entropy_reference(logits, labels), 1e-5);
  auto z = logits.to_vector<double>();
  int hits = 0;
  for (int64_t i = 0; i < 12; ++i) {
    int64_t best = 0;
    for (int64_t j = 1; j < 4; ++j)
      if (z[i * 4 + j] > z[i * 4 + best]) best = j;
    hits += best == labels[static_cast<size_t>(i)];
  }
  ASSERT_TRUE(out.metrics.count("rotation_acc"));
  EXPECT_DOUBLE_EQ(out.metrics["rotation_acc"], hits / 12.0);
  EXPECT_EQ(out.embedding.shape(), Shape({3, method->feature_dim()}));
  expect_error([&] { method->step({views[0], views[1]}); }, {"rotnet", "4 views", "got 2"});
}

TEST(RotNet, GradcheckThroughEncoderAndHeadInFloat64) {
  auto method = ssl::make_method("rotnet", small_options());
  method->to(kFloat64);
  std::vector<Tensor> views;
  for (uint64_t v = 0; v < 4; ++v)
    views.push_back(random_images({2, 1, 6, 6}, 20 + v, kFloat64));
  Tensor w = parameter(*method, "encoder.conv1.weight");
  ASSERT_TRUE(w.defined());
  auto f = [&](const std::vector<Tensor>&) { return method->step(views).loss; };
  GradcheckResult r = gradcheck(f, {w}, {1e-6, 1e-6, 1e-3});
  EXPECT_TRUE(r.ok) << r.message;
}

// =============================================================================================
// Jigsaw
// =============================================================================================

TEST(Jigsaw, GridOfSmallImages) {
  ssl::JigsawGrid g = ssl::jigsaw_grid(28, 28, 1);
  EXPECT_EQ(g.cell_h, 9);
  EXPECT_EQ(g.tile_h, 8);
  EXPECT_EQ(g.origin_y, 0);  // 27 of 28 rows used; the 1-row remainder splits as 0 / 1
  g = ssl::jigsaw_grid(32, 29, 2);
  EXPECT_EQ(g.cell_h, 10);
  EXPECT_EQ(g.cell_w, 9);
  EXPECT_EQ(g.tile_h, 8);
  EXPECT_EQ(g.tile_w, 7);
  EXPECT_EQ(g.origin_y, 1);
  EXPECT_EQ(g.origin_x, 1);
  expect_error([] { ssl::jigsaw_grid(28, 28, -1); }, {"--tile-jitter", "-1"});
  expect_error([] { ssl::jigsaw_grid(8, 8, 2); }, {"8x8", "--tile-jitter 2"});
}

// Every tile against a naive crop, for a non-contiguous float64 batch of awkward size and
// random offsets, and for float32.
TEST(Jigsaw, TilesAreTheCropsOfTheirCells) {
  for (DType dtype : {kFloat64, kFloat32}) {
    Tensor stored = random_images({3, 2, 31, 29}, 5, dtype);  // [B, C, W, H]
    Tensor images = raw::transpose(stored, 2, 3);             // [3, 2, 29, 31], not contiguous
    ssl::JigsawGrid g = ssl::jigsaw_grid(29, 31, 2);
    Generator gen(6);
    Tensor offsets = randint(0, 3, {3, 9, 2}, kInt64, &gen);
    Tensor tiles = ssl::cut_jigsaw_tiles(images, offsets, g);
    ASSERT_EQ(tiles.shape(), Shape({27, 2, g.tile_h, g.tile_w}));
    EXPECT_EQ(tiles.dtype(), dtype);
    auto off = offsets.to_vector<int64_t>();
    for (int64_t b = 0; b < 3; ++b)
      for (int64_t k = 0; k < 9; ++k) {
        int64_t y0 = g.origin_y + (k / 3) * g.cell_h + off[(b * 9 + k) * 2];
        int64_t x0 = g.origin_x + (k % 3) * g.cell_w + off[(b * 9 + k) * 2 + 1];
        for (int64_t c = 0; c < 2; ++c)
          for (int64_t y = 0; y < g.tile_h; ++y)
            for (int64_t x = 0; x < g.tile_w; ++x)
              ASSERT_EQ(at(tiles, b * 9 + k, c, y, x), at(images, b, c, y0 + y, x0 + x))
                  << "image " << b << " cell " << k;
      }
  }
}

TEST(Jigsaw, TileCuttingRejectsBadInput) {
  Tensor images = random_images({2, 1, 12, 12}, 1);
  ssl::JigsawGrid g = ssl::jigsaw_grid(12, 12, 1);
  Tensor offsets = zeros({2, 9, 2}, kInt64);
  expect_error(
      [&] {
        ssl::cut_jigsaw_tiles(images, zeros({2, 8, 2}, kInt64), g);
      },
      {"offsets", "[2, 8, 2]"});
  Tensor bad = offsets.clone();
  bad.data_ptr<int64_t>()[5] = 2;  // beyond the jitter of 1
  expect_error([&] { ssl::cut_jigsaw_tiles(images, bad, g); }, {"offset 2", "[0, 1]"});
  expect_error(
      [&] {
        ssl::cut_jigsaw_tiles(random_images({2, 1, 9, 9}, 1), offsets, g);
      },
      {"does not fit", "[2, 1, 9, 9]"});
  expect_error(
      [&] {
        ssl::cut_jigsaw_tiles(zeros({2, 1, 12, 12}, kInt64), offsets, g);
      },
      {"float32 or float64"});
}

// The shuffled puzzle against data::jigsaw(): with jitter 1 and every offset 1 the tiles sit
// where data::jigsaw(img, label, gap = 1) cuts them on a 28 px image, and slot i of the puzzle
// must show what that function puts at position i. Putting slot i back at cell perm[i] (the
// inverse permutation) must give the unshuffled tiles.
TEST(Jigsaw, ShuffledTilesMatchDataJigsawAndGoBackByTheInversePermutation) {
  const int64_t side = 28, channels = 2;
  Tensor images = random_images({3, channels, side, side}, 8);
  ssl::JigsawGrid g = ssl::jigsaw_grid(side, side, 1);
  Tensor tiles = ssl::cut_jigsaw_tiles(images, ones({3, 9, 2}, kInt64), g);  // [27, C, 8, 8]
  const int64_t d = channels * g.tile_h * g.tile_w;
  Tensor flat = raw::reshape(tiles, {27, d});  // tiles as "features"
  std::vector<int64_t> labels = {0, 37, 99};
  Tensor puzzle = ssl::shuffle_tile_features(flat, from_vector(labels, {3}));
  ASSERT_EQ(puzzle.shape(), Shape({3, 9 * d}));
  auto p = puzzle.to_vector<float>(), t = flat.to_vector<float>();
  const auto& perms = data::jigsaw_permutations();
  for (int64_t b = 0; b < 3; ++b) {
    data::Image img(channels, side, side);
    Tensor one = raw::select(images, 0, b);
    img.data = one.to_vector<float>();
    data::Image shuffled = data::jigsaw(img, static_cast<int>(labels[b]), 1);
    const auto& perm = perms[static_cast<size_t>(labels[b])];
    for (int64_t slot = 0; slot < 9; ++slot) {
      const float* got = &p[static_cast<size_t>((b * 9 + slot) * d)];
      // data::jigsaw: 8 px tiles at pitch 9 starting at (1, 1).
      int64_t y0 = 1 + (slot / 3) * 9, x0 = 1 + (slot % 3) * 9;
      for (int64_t c = 0; c < channels; ++c)
        for (int64_t y = 0; y < 8; ++y)
          for (int64_t x = 0; x < 8; ++x)
            ASSERT_EQ(got[(c * 8 + y) * 8 + x], shuffled.at(c, y0 + y, x0 + x))
                << "image " << b << " slot " << slot;
      // Back by the inverse permutation: slot `slot` holds cell perm[slot].
      const float* cell = &t[static_cast<size_t>((b * 9 + perm[static_cast<size_t>(slot)]) * d)];
      for (int64_t j = 0; j < d; ++j)
        ASSERT_EQ(got[j], cell[j]);
    }
  }
}

TEST(Jigsaw, ShuffleGradcheckAndBadLabels) {
  Generator gen(9);
  Tensor features = randn({2 * 9, 3}, kFloat64, &gen).requires_grad_();
  Tensor labels = tensor<int64_t>({5, 61});
  auto f = [&](const std::vector<Tensor>& in) { return ssl::shuffle_tile_features(in[0], labels); };
  GradcheckResult r = gradcheck(f, {features});
  EXPECT_TRUE(r.ok) << r.message;
  expect_error(
      [&] {
        ssl::shuffle_tile_features(features, tensor<int64_t>({5, 100}));
      },
      {"label 100", "image 1"});
  expect_error([&] { ssl::shuffle_tile_features(features, tensor<int64_t>({5})); },
               {"[9, D]", "[18, 3]"});
}

TEST(Jigsaw, TilesAreStandardisedOneByOne) {
  Tensor tiles = random_images({4, 2, 5, 3}, 11, kFloat64);
  auto before = tiles.to_vector<double>();
  std::fill(before.begin() + 30, before.begin() + 60, 0.25);  // tile 1: constant
  tiles = from_vector(before, {4, 2, 5, 3});
  const double eps = 1e-2;
  ssl::standardize_tiles_(tiles, eps);
  auto after = tiles.to_vector<double>();
  for (int64_t i = 0; i < 4; ++i) {
    double mean = 0, var = 0, mean_after = 0, var_after = 0;
    for (int64_t j = 0; j < 30; ++j)
      mean += before[i * 30 + j] / 30;
    for (int64_t j = 0; j < 30; ++j)
      var += std::pow(before[i * 30 + j] - mean, 2) / 30;
    for (int64_t j = 0; j < 30; ++j)
      mean_after += after[i * 30 + j] / 30;
    for (int64_t j = 0; j < 30; ++j)
      var_after += std::pow(after[i * 30 + j] - mean_after, 2) / 30;
    EXPECT_NEAR(mean_after, 0.0, 1e-12) << i;
    EXPECT_NEAR(var_after, var / (var + eps), 1e-12) << i;
  }
  for (int64_t j = 30; j < 60; ++j)
    EXPECT_EQ(after[j], 0.0);
  Tensor strided = raw::transpose(tiles, 0, 1);
  expect_error([&] { ssl::standardize_tiles_(strided); }, {"contiguous"});
}

// Jigsaw (tiles) and the DAE (corrupted views) must leave the encoder's BatchNorm statistics to
// the whole, clean images the evaluation shows it: after a step they equal those of a twin
// method whose encoder saw only the clean views, and the embedding is its clean features.
namespace {

void expect_clean_image_statistics(const std::string& name, int64_t side) {
  ssl::MethodOptions o = small_options(side);
  auto method = ssl::make_method(name, o), twin = ssl::make_method(name, o);
  Tensor images = random_images({5, 1, side, side}, 12);
  ssl::StepOutput out = method->step({images});
  Tensor clean;
  {
    NoGradGuard g;
    clean = twin->features(images);
  }
  auto mine = method->encoder().named_buffers(), theirs = twin->encoder().named_buffers();
  ASSERT_EQ(mine.size(), theirs.size());
  ASSERT_FALSE(mine.empty());
  for (size_t i = 0; i < mine.size(); ++i)
    EXPECT_EQ(mine[i].second.to_vector<double>(), theirs[i].second.to_vector<double>())
        << name << " " << mine[i].first;
  EXPECT_EQ(out.embedding.to_vector<float>(), clean.to_vector<float>()) << name;
  // The training forward still reaches the encoder.
  out.loss.backward();
  EXPECT_TRUE(parameter(*method, "encoder.conv1.weight").grad().defined()) << name;
}

}  // namespace

// The random draws of a step (DAE noise, MAE masks, jigsaw puzzles) are keyed by the epoch, so
// a run resumed at epoch 1 draws exactly what an uninterrupted run drew in its epoch 1.
TEST(PretextMethods, StepRandomnessIsKeyedByTheEpochSoResumedRunsDrawTheSame) {
  for (const char* name : {"dae", "mae", "jigsaw"}) {
    ssl::MethodOptions o = small_options(28);
    if (std::string(name) == "mae") o.model = "vit-tiny";
    auto uninterrupted = ssl::make_method(name, o), resumed = ssl::make_method(name, o);
    const Tensor images = random_images({4, 1, 28, 28}, 21);
    uninterrupted->before_epoch({0, 2, nullptr, 4});
    const double epoch0 = uninterrupted->step({images}).loss.item();
    uninterrupted->before_epoch({1, 2, nullptr, 4});
    const double epoch1 = uninterrupted->step({images}).loss.item();
    resumed->before_epoch({1, 2, nullptr, 4});
    EXPECT_EQ(resumed->step({images}).loss.item(), epoch1) << name;
    EXPECT_NE(epoch0, epoch1) << name << ": epochs 0 and 1 drew the same";
  }
}

TEST(Jigsaw, StepKeepsWholeImageBatchNormStatisticsAndReportsAccuracy) {
  expect_clean_image_statistics("jigsaw", 28);
  auto method = ssl::make_method("jigsaw", small_options(28));
  ASSERT_EQ(method->augment_preset(), "jigsaw");
  ASSERT_EQ(method->num_views(), 1);
  ssl::StepOutput out = method->step({random_images({6, 1, 28, 28}, 13)});
  EXPECT_TRUE(std::isfinite(out.loss.item()));
  EXPECT_NEAR(out.loss.item(), std::log(100.0), 1.5);  // an untrained guess among 100
  ASSERT_TRUE(out.metrics.count("puzzle_acc"));
  EXPECT_GE(out.metrics["puzzle_acc"], 0.0);
  EXPECT_LE(out.metrics["puzzle_acc"], 1.0);
  EXPECT_EQ(out.embedding.shape(), Shape({6, method->feature_dim()}));
  expect_error([&] { method->step({random_images({2, 1, 5, 5}, 1)}); }, {"5x5", "--tile-jitter"});
}

// =============================================================================================
// Denoising autoencoder
// =============================================================================================

TEST(Dae, MaskingNoiseZeroesAFractionOfPixelsInEveryChannel) {
  Tensor images = full({64, 3, 20, 20}, 0.5, kFloat64);
  Generator gen(13);
  Tensor x = ssl::corrupt(images, {0.3, 0.0}, gen);
  EXPECT_EQ(x.dtype(), kFloat64);
  EXPECT_FALSE(x.requires_grad());
  auto v = x.to_vector<double>();
  int64_t masked = 0, pixels = 64 * 20 * 20;
  for (int64_t b = 0; b < 64; ++b)
    for (int64_t p = 0; p < 400; ++p) {
      double c0 = v[(b * 3) * 400 + p];
      ASSERT_TRUE(c0 == 0.0 || c0 == 0.5) << c0;
      for (int64_t c = 1; c < 3; ++c)
        ASSERT_EQ(v[(b * 3 + c) * 400 + p], c0);  // shared
      masked += c0 == 0.0;
    }
  EXPECT_NEAR(static_cast<double>(masked) / pixels, 0.3, 0.015);  // 5 standard errors
  EXPECT_EQ(images.to_vector<double>()[0], 0.5);                  // input untouched
  // The generator advances: the next draw differs; the same seed repeats it.
  Generator again(13);
  EXPECT_EQ(ssl::corrupt(images, {0.3, 0.0}, again).to_vector<double>(), v);
  EXPECT_NE(ssl::corrupt(images, {0.3, 0.0}, gen).to_vector<double>(), v);
}

TEST(Dae, GaussianNoiseHasTheRequestedSpreadAndMaskedPixelsStayZero) {
  Tensor images = random_images({32, 1, 16, 16}, 14);
  Generator gen(15);
  auto clean = images.to_vector<float>();
  auto noisy = ssl::corrupt(images, {0.0, 0.2}, gen).to_vector<float>();
  double mean = 0, sq = 0;
  for (size_t i = 0; i < clean.size(); ++i)
    mean += (noisy[i] - clean[i]) / clean.size();
  for (size_t i = 0; i < clean.size(); ++i)
    sq += std::pow(noisy[i] - clean[i] - mean, 2);
  EXPECT_NEAR(mean, 0.0, 0.01);
  EXPECT_NEAR(std::sqrt(sq / clean.size()), 0.2, 0.01);
  auto both = ssl::corrupt(images, {0.5, 0.2}, gen).to_vector<float>();
  int64_t zeros_seen = 0;
  for (float x : both)
    zeros_seen += x == 0.0f;  // noise never lands exactly on 0
  EXPECT_NEAR(static_cast<double>(zeros_seen) / both.size(), 0.5, 0.03);
  // No noise at all: a copy.
  auto copy = ssl::corrupt(images, {0.0, 0.0}, gen);
  EXPECT_FALSE(copy.shares_storage_with(images));
  EXPECT_EQ(copy.to_vector<float>(), clean);
}

// With every training image the same, a decoder whose last layer ignores the code and outputs
// that image reconstructs perfectly: the loss is exactly 0 even under heavy corruption (the
// target is the clean view). Off by delta at one pixel it is delta^2 / (C H W).
TEST(Dae, PerfectReconstructionGivesZeroLossAndTheErrorIsAMeanOverPixels) {
  ssl::MethodOptions o = small_options(10);
  o.in_channels = 2;
  o.mask_noise = 0.5;
  o.noise_std = 0.3;
  auto method = ssl::make_method("dae", o);
  ASSERT_EQ(method->num_views(), 1);
  Tensor image = random_images({1, 2, 10, 10}, 16);
  Tensor batch = cat({image, image, image, image}, 0);
  Tensor w = parameter(*method, "decoder.3.weight"), b = parameter(*method, "decoder.3.bias");
  ASSERT_TRUE(w.defined() && b.defined());
  ASSERT_EQ(b.shape(), Shape({200}));
  {
    NoGradGuard g;
    w.zero_();
    b.copy_(raw::reshape(image, {200}));
  }
  EXPECT_EQ(method->step({batch}).loss.item(), 0.0);
  const double delta = 0.125;
  {
    NoGradGuard g;
    b.data_ptr<float>()[117] += static_cast<float>(delta);
  }
  ssl::StepOutput out = method->step({batch});
  EXPECT_NEAR(out.loss.item(), delta * delta / 200, 1e-9);
  EXPECT_EQ(out.embedding.shape(), Shape({4, method->feature_dim()}));
  expect_error(
      [&] {
        method->step({random_images({4, 2, 12, 12}, 1)});
      },
      {"dae", "[B, 2, 10, 10]", "[4, 2, 12, 12]"});
}

TEST(Dae, StepKeepsCleanImageBatchNormStatistics) {
  expect_clean_image_statistics("dae", 12);
}

TEST(Dae, GradcheckThroughEncoderAndDecoderInFloat64) {
  ssl::MethodOptions o = small_options(6);
  o.mask_noise = 0;  // no corruption: the step is a deterministic function of the weights
  o.noise_std = 0;
  auto method = ssl::make_method("dae", o);
  method->to(kFloat64);
  Tensor images = random_images({3, 1, 6, 6}, 17, kFloat64);
  Tensor w = parameter(*method, "encoder.conv1.weight");
  auto f = [&](const std::vector<Tensor>&) { return method->step({images}).loss; };
  GradcheckResult r = gradcheck(f, {w}, {1e-6, 1e-7, 1e-3});
  EXPECT_TRUE(r.ok) << r.message;
}

// =============================================================================================
// Options
// =============================================================================================

TEST(PretextOptions, BadValuesAreOneLineErrorsNamingTheOption) {
  auto with = [](auto set) {
    ssl::MethodOptions o = small_options(28);
    set(o);
    return o;
  };
  expect_error([&] { ssl::make_method("rotnet", with([](auto& o) { o.proj_hidden = -2; })); },
               {"rotnet", "--proj-hidden", "-2"});
  expect_error([&] { ssl::make_method("jigsaw", with([](auto& o) { o.jigsaw_classes = 1; })); },
               {"--jigsaw-classes 1", "[2, 100]"});
  expect_error([&] { ssl::make_method("jigsaw", with([](auto& o) { o.jigsaw_classes = 101; })); },
               {"--jigsaw-classes 101"});
  expect_error([&] { ssl::make_method("jigsaw", with([](auto& o) { o.tile_jitter = -1; })); },
               {"--tile-jitter", "-1"});
  expect_error([&] { ssl::make_method("jigsaw", with([](auto& o) { o.tile_jitter = 9; })); },
               {"28x28", "--tile-jitter 9"});
  expect_error([&] { ssl::make_method("dae", with([](auto& o) { o.image_size = 0; })); },
               {"dae", "image_size", "0"});
  expect_error([&] { ssl::make_method("dae", with([](auto& o) { o.mask_noise = 1.0; })); },
               {"--mask-noise 1", "[0, 1)"});
  expect_error([&] { ssl::make_method("dae", with([](auto& o) { o.mask_noise = -0.1; })); },
               {"--mask-noise -0.1"});
  expect_error([&] { ssl::make_method("dae", with([](auto& o) { o.noise_std = -1; })); },
               {"--noise-std -1"});
}

TEST(PretextOptions, SurviveTheRunConfigurationJson) {
  ssl::TrainConfig c;
  c.method_options.image_size = 32;
  c.method_options.jigsaw_classes = 24;
  c.method_options.tile_jitter = 2;
  c.method_options.mask_noise = 0.4;
  c.method_options.noise_std = 0.05;
  ssl::MethodOptions m = ssl::TrainConfig::from_json(c.to_json()).method_options;
  EXPECT_EQ(m.image_size, 32);
  EXPECT_EQ(m.jigsaw_classes, 24);
  EXPECT_EQ(m.tile_jitter, 2);
  EXPECT_EQ(m.mask_noise, 0.4);
  EXPECT_EQ(m.noise_std, 0.05);
}

// =============================================================================================
// End to end: four steps of each method through the trainer on 64 images
// =============================================================================================

namespace {

struct EndToEnd {
  std::string method, metric;
};

class PretextEndToEnd : public ::testing::TestWithParam<EndToEnd> {};

}  // namespace

TEST_P(PretextEndToEnd, LossFallsCheckpointLoadsAndEvaluates) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  const EndToEnd& p = GetParam();
  std::string run = (fs::temp_directory_path() /
                     ("selfsup_test_pretext_" + p.method + "_" + std::to_string(getpid())))
                        .string();
  fs::remove_all(run);
  ssl::TrainConfig c;
  c.method = p.method;
  c.out = run;
  c.epochs = 2;
  c.batch_size = 32;
  c.subset = 64;
  c.num_workers = 1;
  c.lr = 0.02;
  c.warmup_epochs = 0;
  c.knn_train = 64;
  c.knn_test = 64;
  c.knn_k = 5;
  c.method_options.width = 0.5;
  c.method_options.proj_hidden = 64;
  ssl::TrainResult r = ssl::train(c);
  EXPECT_EQ(r.epochs_done, 2);
  auto m = metrics(run);
  ASSERT_EQ(m.size(), 2u);
  for (const auto& line : m) {
    EXPECT_TRUE(std::isfinite(line["loss"].get<double>()));
    ASSERT_TRUE(line.contains(p.metric) || p.metric.empty()) << line.dump();
  }
  EXPECT_LT(m[1]["loss"].get<double>(), m[0]["loss"].get<double>()) << p.method;
  EXPECT_GE(r.knn_top1, 0.0);
  // The checkpoint rebuilds the method (the DAE's decoder from the saved image size) and its
  // encoder embeds whole test images.
  ssl::TrainConfig loaded;
  auto method = ssl::load_method(ssl::checkpoint_path(run), &loaded);
  EXPECT_EQ(method->name(), p.method);
  EXPECT_EQ(loaded.method_options.image_size, 28);
  data::Dataset test = data::load_dataset("fashion-mnist", "test", "");
  Tensor f = ssl::extract_features(method->encoder(), test, 16);
  ASSERT_EQ(f.shape(), Shape({16, method->feature_dim()}));
  for (float x : f.to_vector<float>())
    ASSERT_TRUE(std::isfinite(x));
  fs::remove_all(run);
}

INSTANTIATE_TEST_SUITE_P(Methods, PretextEndToEnd,
                         ::testing::Values(EndToEnd{"rotnet", "rotation_acc"},
                                           EndToEnd{"jigsaw", "puzzle_acc"}, EndToEnd{"dae", ""}),
                         [](const auto& info) { return info.param.method; });
