// MAE (ssl/methods/mae.cpp): the per-image random masking, the per-patch normalised targets and
// the masked-patch loss by hand on tiny inputs, the method's contract (one view, the mae preset,
// a ViT encoder or a clear error), and short end-to-end runs through ssl::train(): MAE itself
// and SimCLR with the vit-tiny encoder, to show the ViT serves the other methods.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "autograd/ops.h"
#include "ssl/methods/mae.h"
#include "ssl/methods/method.h"
#include "ssl/train/trainer.h"
#include "tests/ssl_test_util.h"

using namespace selfsup;
using test::have_fashion_mnist;
using test::metrics;
using test::temp_dir;
namespace fs = std::filesystem;

namespace {

template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

ssl::MethodOptions vit_options(double width = 0.25) {
  ssl::MethodOptions o;
  o.model = "vit-tiny";
  o.width = width;
  o.in_channels = 1;
  o.seed = 3;
  return o;
}

}  // namespace

// ---------------------------------------------------------------- masking

TEST(Mae, MaskingHidesExactlyTheRightNumberPerRow) {
  Generator gen(1);
  for (auto [l, ratio, visible] : {std::tuple<int64_t, double, int64_t>{49, 0.75, 12},
                                   {64, 0.75, 16},
                                   {10, 0.5, 5},
                                   {7, 0.6, 2}}) {
    ssl::PatchMasking m = ssl::random_masking(6, l, ratio, gen);
    ASSERT_EQ(m.num_visible, visible);
    ASSERT_EQ(m.keep.shape(), (Shape{6, visible}));
    ASSERT_EQ(m.restore.shape(), (Shape{6, l}));
    ASSERT_EQ(m.mask.shape(), (Shape{6, l}));
    auto keep = m.keep.to_vector<int64_t>(), restore = m.restore.to_vector<int64_t>();
    auto mask = m.mask.to_vector<float>();
    for (int64_t i = 0; i < 6; ++i) {
      double masked = 0;
      for (int64_t j = 0; j < l; ++j)
        masked += mask[i * l + j];
      EXPECT_EQ(masked, static_cast<double>(l - visible));
      // The kept patches are distinct, unmasked, and restore inverts the shuffle.
      std::set<int64_t> kept(keep.begin() + i * visible, keep.begin() + (i + 1) * visible);
      EXPECT_EQ(static_cast<int64_t>(kept.size()), visible);
      for (int64_t j = 0; j < visible; ++j) {
        int64_t patch = keep[i * visible + j];
        EXPECT_EQ(mask[i * l + patch], 0.0f);
        EXPECT_EQ(restore[i * l + patch], j);
      }
      std::set<int64_t> places(restore.begin() + i * l, restore.begin() + (i + 1) * l);
      EXPECT_EQ(static_cast<int64_t>(places.size()), l);
      EXPECT_EQ(*places.rbegin(), l - 1);
      for (int64_t j = 0; j < l; ++j)  // masked exactly where restore points past the kept ones
        EXPECT_EQ(mask[i * l + j], restore[i * l + j] >= visible ? 1.0f : 0.0f);
    }
  }
}

TEST(Mae, MasksDifferAcrossRowsAndRepeatWithTheSeed) {
  Generator a(7), b(7), c(8);
  ssl::PatchMasking ma = ssl::random_masking(16, 49, 0.75, a);
  ssl::PatchMasking mb = ssl::random_masking(16, 49, 0.75, b);
  ssl::PatchMasking mc = ssl::random_masking(16, 49, 0.75, c);
  EXPECT_EQ(ma.keep.to_vector<int64_t>(), mb.keep.to_vector<int64_t>());
  EXPECT_EQ(ma.mask.to_vector<float>(), mb.mask.to_vector<float>());
  EXPECT_NE(ma.mask.to_vector<float>(), mc.mask.to_vector<float>());
  auto mask = ma.mask.to_vector<float>();
  std::set<std::vector<float>> rows;
  for (int64_t i = 0; i < 16; ++i)
    rows.emplace(mask.begin() + i * 49, mask.begin() + (i + 1) * 49);
  EXPECT_EQ(rows.size(), 16u);
  // Every patch is masked about 75% of the time over many rows.
  Generator g(9);
  auto many = ssl::random_masking(2000, 49, 0.75, g).mask.to_vector<float>();
  for (int64_t j = 0; j < 49; ++j) {
    double s = 0;
    for (int64_t i = 0; i < 2000; ++i)
      s += many[i * 49 + j];
    EXPECT_NEAR(s / 2000, 37.0 / 49.0, 0.04) << j;
  }
  // The next draw from the same generator is a new mask.
  EXPECT_NE(ssl::random_masking(16, 49, 0.75, a).mask.to_vector<float>(), mask);
}

TEST(Mae, BadMaskRatiosAreClearErrors) {
  Generator gen(1);
  for (double r : {0.0, 1.0, -0.5, 0.99}) {
    std::string msg = error_of([&] { ssl::random_masking(2, 49, r, gen); });
    EXPECT_TRUE(contains(msg, "mask-ratio")) << r << ": " << msg;
  }
  auto o = vit_options();
  o.mask_ratio = 1.5;
  std::string msg = error_of([&] { ssl::make_method("mae", o); });
  EXPECT_TRUE(contains(msg, "--mask-ratio 1.5")) << msg;
}

// ---------------------------------------------------------------- targets and loss

TEST(Mae, NormPixTargetsByHand) {
  // Patch [1, 2, 3, 4]: mean 2.5, unbiased variance 5/3; patch [2, 2, 2, 6]: mean 3, var 4.
  Tensor p = from_vector<double>({1, 2, 3, 4, 2, 2, 2, 6}, {1, 2, 4});
  auto got = ssl::normalize_patches(p).to_vector<double>();
  const double s1 = std::sqrt(5.0 / 3.0 + 1e-6), s2 = std::sqrt(4.0 + 1e-6);
  std::vector<double> want = {-1.5 / s1, -0.5 / s1, 0.5 / s1, 1.5 / s1,
                              -1 / s2,   -1 / s2,   -1 / s2,  3 / s2};
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_NEAR(got[i], want[i], 1e-12) << i;
  // A flat patch stays finite (zeros).
  for (double v : ssl::normalize_patches(full({1, 1, 4}, 0.7, kFloat64)).to_vector<double>())
    EXPECT_NEAR(v, 0.0, 1e-9);
}

TEST(Mae, LossByHandCountsOnlyTheMaskedPatches) {
  // One image, 3 patches of 2 pixels; patches 1 and 2 masked.
  Tensor pred = from_vector<double>({5, -7, 1, 2, 0, 4}, {1, 3, 2}).requires_grad_();
  Tensor target = from_vector<double>({0, 0, 0, 1, 1, 1}, {1, 3, 2});
  Tensor mask = from_vector<float>({0, 1, 1}, {1, 3});
  // Patch 1: ((1-0)^2 + (2-1)^2) / 2 = 1; patch 2: ((0-1)^2 + (4-1)^2) / 2 = 5; mean 3.
  Tensor loss = ssl::mae_loss(pred, target, mask);
  EXPECT_NEAR(loss.item(), 3.0, 1e-12);
  loss.backward();
  // d/dpred = mask * 2 (pred - target) / (P * masked) = (pred - target) / 2 on masked patches.
  auto g = pred.grad().to_vector<double>();
  std::vector<double> want = {0, 0, 0.5, 0.5, -0.5, 1.5};
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_NEAR(g[i], want[i], 1e-12) << i;

  auto loss_with = [&](int64_t element, double value) {
    auto v = pred.to_vector<double>();
    v[static_cast<size_t>(element)] = value;
    return ssl::mae_loss(from_vector<double>(v, {1, 3, 2}), target, mask).item();
  };
  EXPECT_EQ(loss_with(0, 100.0), 3.0);  // a visible patch's prediction: no effect
  EXPECT_EQ(loss_with(1, -3.0), 3.0);
  EXPECT_NE(loss_with(2, 3.0), 3.0);  // a masked one: the loss changes
  EXPECT_NE(loss_with(5, 0.0), 3.0);

  std::string msg = error_of([&] { ssl::mae_loss(pred, target, zeros({1, 3})); });
  EXPECT_TRUE(contains(msg, "masks no patch")) << msg;
  msg = error_of([&] { ssl::mae_loss(pred, target, zeros({1, 4})); });
  EXPECT_TRUE(contains(msg, "[1, 3, 2]") && contains(msg, "[1, 4]")) << msg;
}

// ---------------------------------------------------------------- the method

TEST(Mae, MethodContractOneViewAViTAndPooledFeatures) {
  auto method = ssl::make_method("mae", vit_options());
  EXPECT_EQ(method->num_views(), 1);
  EXPECT_EQ(method->augment_preset(), "mae");
  EXPECT_EQ(method->feature_dim(), 48);
  Generator gen(4);
  Tensor x = rand({4, 1, 28, 28}, kFloat32, &gen);
  ssl::StepOutput out = method->step({x});
  EXPECT_TRUE(std::isfinite(out.loss.item()));
  EXPECT_EQ(out.embedding.shape(), (Shape{4, 48}));
  out.loss.backward();
  // The decoder, the mask token and the encoder all learn.
  int64_t with_grad = 0, total = 0;
  bool mask_token = false, encoder_block = false;
  for (auto& [name, p] : method->named_parameters()) {
    ++total;
    if (!p.grad().defined()) continue;
    ++with_grad;
    mask_token |= name == "decoder.mask_token";
    encoder_block |= name == "encoder.blocks.5.mlp.2.weight";
  }
  EXPECT_TRUE(mask_token);
  EXPECT_TRUE(encoder_block);
  EXPECT_EQ(with_grad, total);
  // Evaluation features: the whole image through the encoder, no masking, no randomness.
  NoGradGuard no_grad;
  method->eval();
  Tensor f1 = method->features(x), f2 = method->features(x);
  EXPECT_EQ(f1.shape(), (Shape{4, 48}));
  EXPECT_EQ(f1.to_vector<float>(), f2.to_vector<float>());
  EXPECT_EQ(f1.to_vector<float>(), method->encoder().forward(x).to_vector<float>());
}

TEST(Mae, SameSeedSameLossAndNormPixChangesTheTarget) {
  Generator gen(5);
  Tensor x = rand({3, 1, 28, 28}, kFloat32, &gen);
  auto a = ssl::make_method("mae", vit_options()), b = ssl::make_method("mae", vit_options());
  EXPECT_EQ(a->step({x}).loss.item(), b->step({x}).loss.item());
  auto o = vit_options();
  o.norm_pix = false;
  auto raw_pixels = ssl::make_method("mae", o);
  auto normalised = ssl::make_method("mae", vit_options());
  EXPECT_NE(raw_pixels->step({x}).loss.item(), normalised->step({x}).loss.item());
}

TEST(Mae, AModelThatCannotMaskIsAOneLineError) {
  auto o = vit_options();
  o.model = "resnet-small";
  std::string msg = error_of([&] { ssl::make_method("mae", o); });
  EXPECT_TRUE(contains(msg, "--model resnet-small") && contains(msg, "vit-tiny")) << msg;
  EXPECT_FALSE(contains(msg, "\n")) << msg;
}

// ---------------------------------------------------------------- end to end

namespace {

ssl::TrainConfig tiny_run(const std::string& method, const std::string& out) {
  ssl::TrainConfig c;
  c.method = method;
  c.out = out;
  c.epochs = 2;
  c.batch_size = 32;
  c.subset = 64;
  c.num_workers = 1;
  c.lr = 0.02;
  c.warmup_epochs = 0;
  c.knn_train = 64;
  c.knn_test = 64;
  c.knn_k = 5;
  c.method_options.model = "vit-tiny";
  c.method_options.width = 0.25;
  c.method_options.proj_hidden = 64;
  c.method_options.proj_dim = 32;
  return c;
}

std::vector<double> epoch_losses(const std::string& run) {
  std::vector<double> out;
  std::ifstream f(run + "/metrics.jsonl");
  std::string line;
  while (std::getline(f, line))
    out.push_back(nlohmann::json::parse(line)["loss"].get<double>());
  return out;
}

}  // namespace

TEST(Mae, TrainsThroughTheTrainerAndReloads) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  std::string run = temp_dir("mae");
  ssl::TrainConfig c = tiny_run("mae", run);
  c.method_options.mask_ratio = 0.7;
  c.method_options.norm_pix = false;
  ssl::TrainResult r = ssl::train(c);
  EXPECT_EQ(r.epochs_done, 2);
  auto losses = epoch_losses(run);
  ASSERT_EQ(losses.size(), 2u);
  EXPECT_LT(losses[1], losses[0]);
  EXPECT_GE(r.knn_top1, 0.0);
  // The checkpoint's configuration rebuilds the same MAE, with its options.
  ssl::TrainConfig loaded;
  auto method = ssl::load_method(ssl::checkpoint_path(run), &loaded);
  EXPECT_EQ(method->name(), "mae");
  EXPECT_EQ(loaded.method_options.model, "vit-tiny");
  EXPECT_EQ(loaded.method_options.mask_ratio, 0.7);
  EXPECT_FALSE(loaded.method_options.norm_pix);
  fs::remove_all(run);
}

TEST(Mae, VitTinyServesAnotherMethod) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  std::string run = temp_dir("simclr_vit");
  ssl::TrainConfig c = tiny_run("simclr", run);
  c.epochs = 1;
  c.subset = 32;
  c.batch_size = 16;
  c.knn_train = c.knn_test = 32;
  ssl::TrainResult r = ssl::train(c);
  EXPECT_EQ(r.epochs_done, 1);
  EXPECT_TRUE(std::isfinite(r.final_loss));
  EXPECT_GE(r.knn_top1, 0.0);
  auto method = ssl::load_method(ssl::checkpoint_path(run));
  EXPECT_EQ(method->encoder().type_name(), "VisionTransformer");
  fs::remove_all(run);
}
