// Every SSL method end to end on a small subset of Fashion-MNIST, through the built `selfsup`
// binary: the loss goes down, a checkpoint is written and resumes, `selfsup eval` prints an
// accuracy; stop-gradients and EMA targets behave. Skips where the dataset is not installed.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "autograd/ops.h"
#include "ssl/train/trainer.h"
#include "tests/cli_test_util.h"
#include "tests/ssl_test_util.h"

using namespace selfsup;
using test::have_fashion_mnist;
using test::metrics;
using test::temp_dir;
namespace fs = std::filesystem;

namespace {

#define REQUIRE_DATASET() \
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed"

ssl::TrainConfig tiny(const std::string& method, const std::string& out) {
  ssl::TrainConfig c;
  c.method = method;
  c.out = out;
  c.epochs = 2;
  c.batch_size = 32;
  c.subset = 64;
  c.num_workers = 1;
  c.lr = 0.02;  // per 256 images: 2.5e-3 at batch 32
  c.warmup_epochs = 0;
  c.knn_train = 64;
  c.knn_test = 64;
  c.knn_k = 5;
  c.method_options.width = 0.5;
  c.method_options.queue_size = 32;
  c.method_options.proj_hidden = 64;
  c.method_options.proj_dim = 32;
  if (method == "mae") c.method_options.model = "vit-tiny";  // MAE masks patch tokens
  if (method == "mae") c.method_options.width = 0.25;
  c.method_options.clusters = 8;  // DeepCluster: no more clusters than the 64 images
  return c;
}

// The `selfsup` binary built next to the tests (cli_test_util.h), or "" when it is not there.
std::string selfsup_binary() {
  const fs::path bin = test::selfsup_beside_test();
  return fs::exists(bin) ? bin.string() : "";
}

// The flags of tiny(method, out) for `selfsup train`.
std::string tiny_flags(const std::string& method, const std::string& out) {
  std::string f = " --method " + method + " --out " + out +
                  " --batch-size 32 --subset 64 --workers 1 --lr 0.02 --warmup-epochs 0"
                  " --knn-train 64 --knn-test 64 --knn-k 5 --queue-size 32 --proj-hidden 64"
                  " --proj-dim 32 --clusters 8";
  return f + (method == "mae" ? " --model vit-tiny --width 0.25" : " --width 0.5");
}

// Runs a shell command with stdout and stderr appended to `log`; returns its exit status.
int run_logged(const std::string& command, const std::string& log) {
  return std::system((command + " >> " + log + " 2>&1").c_str());
}

// Every method through the CLI: `selfsup train` for two epochs (the loss goes down, a checkpoint
// and metrics are written), `train --resume` for a third, then `selfsup eval` prints an accuracy.
class EveryMethod : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryMethod, TrainsResumesAndEvaluates) {
  REQUIRE_DATASET();
  const std::string bin = selfsup_binary();
  if (bin.empty()) GTEST_SKIP() << "the selfsup binary is not built next to the tests";
  std::string run = temp_dir(GetParam()), log = run + ".log";
  ASSERT_EQ(run_logged(bin + " train --epochs 2" + tiny_flags(GetParam(), run), log), 0)
      << test::slurp(log);
  auto m = metrics(run);
  ASSERT_EQ(m.size(), 2u);
  // DeepCluster's two epochs train against two different clusterings, so their losses are not
  // comparable (test_ssl_cluster_methods checks that it learns its pseudo-labels).
  if (GetParam() != "moco" && GetParam() != "deepcluster") {
    EXPECT_LT(m[1]["loss"].get<double>(), m[0]["loss"].get<double>()) << GetParam();
  }
  EXPECT_TRUE(fs::exists(ssl::checkpoint_path(run)));
  const double knn = m[1].value("knn_top1", -1.0);
  EXPECT_TRUE(knn >= 0.0 && knn <= 1.0) << "knn_top1 " << knn;
  EXPECT_TRUE(m[1].contains("effective_rank"));
  double wait = m[1].value("data_wait_fraction", -1.0);
  EXPECT_TRUE(wait >= 0.0 && wait <= 1.0) << "data_wait_fraction " << wait;
  // Resume: one more epoch continues from the checkpoint's step count.
  ASSERT_EQ(run_logged(bin + " train --resume " + run + " --epochs 3", log), 0) << test::slurp(log);
  auto m3 = metrics(run);
  ASSERT_EQ(m3.size(), 3u);
  EXPECT_EQ(m3[2]["step"].get<int64_t>(), 3 * 2);  // 64 images / 32 per batch = 2 steps
  // MoCo's loss first rises while real keys replace the queue's random start; once the queue
  // holds only keys (it is 32 long here: one batch), it falls.
  if (GetParam() == "moco") {
    EXPECT_LT(m3[2]["loss"].get<double>(), m3[1]["loss"].get<double>());
  }
  // The checkpoint rebuilds the same method.
  ssl::TrainConfig loaded;
  auto method = ssl::load_method(ssl::checkpoint_path(run), &loaded);
  EXPECT_EQ(method->name(), GetParam());
  EXPECT_EQ(loaded.epochs, 3);
  // `selfsup eval` scores the checkpoint and prints the accuracy.
  const std::string eval_out = run + ".eval";
  ASSERT_EQ(std::system((bin + " eval --checkpoint " + ssl::checkpoint_path(run) +
                         " --protocol knn --train-limit 64 --test-limit 64 --knn-k 5 > " +
                         eval_out + " 2>> " + log)
                            .c_str()),
            0)
      << test::slurp(log);
  const std::string printed = test::slurp(eval_out);
  EXPECT_NE(printed.find("kNN top-1 (k=5)"), std::string::npos) << printed;
  EXPECT_NE(printed.find('%'), std::string::npos) << printed;
  fs::remove_all(run);
  fs::remove(log);
  fs::remove(eval_out);
}

INSTANTIATE_TEST_SUITE_P(Methods, EveryMethod, ::testing::ValuesIn(ssl::method_names()),
                         [](const auto& info) { return info.param; });

// Training at a lower resolution than the images (20 px views of 28 px images) with weaker
// crops: the options reach the loader, survive the run configuration, and the kNN evaluation
// still feeds the encoder full-size images.
TEST(Train, ViewSizeAndCropScaleOverrides) {
  REQUIRE_DATASET();
  std::string run = temp_dir("view_size");
  ssl::TrainConfig c = tiny("simclr", run);
  c.epochs = 1;
  c.view_size = 20;
  c.crop_min_scale = 0.5;
  ssl::TrainResult r = ssl::train(c);
  EXPECT_EQ(r.epochs_done, 1);
  EXPECT_GE(r.knn_top1, 0.0);
  ssl::TrainConfig loaded;
  ssl::load_method(ssl::checkpoint_path(run), &loaded);
  EXPECT_EQ(loaded.view_size, 20);
  EXPECT_DOUBLE_EQ(loaded.crop_min_scale, 0.5);
  c.view_size = 4;
  try {
    ssl::train(c);
    ADD_FAILURE() << "a 4 px view size was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--view-size 4"), std::string::npos) << e.what();
  }
  fs::remove_all(run);
}

// A ViT's position table is learned per patch of the training grid, so views smaller than the
// images would be evaluated on positions that never trained: refused before any work.
TEST(Train, ViewSizeIsRefusedForTheVit) {
  REQUIRE_DATASET();
  std::string run = temp_dir("vit_view_size");
  ssl::TrainConfig c = tiny("mae", run);
  c.method_options.model = "vit-tiny";
  c.view_size = 20;
  try {
    ssl::train(c);
    ADD_FAILURE() << "--view-size 20 was accepted with vit-tiny";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--view-size 20 is not supported with --model vit-tiny"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(ssl::checkpoint_path(run)));
  fs::remove_all(run);
}

ssl::MethodOptions small_options() {
  ssl::MethodOptions o;
  o.width = 0.5;
  o.proj_hidden = 32;
  o.proj_dim = 16;
  o.queue_size = 64;
  return o;
}

std::vector<Tensor> two_views(uint64_t seed) {
  Generator g(seed);
  return {rand({8, 1, 12, 12}, kFloat32, &g), rand({8, 1, 12, 12}, kFloat32, &g)};
}

}  // namespace

TEST(Methods, MomentumTargetsNeverReceiveGradients) {
  for (const char* name : {"byol", "moco"}) {
    auto method = ssl::make_method(name, small_options());
    method->step(two_views(1)).loss.backward();
    int64_t online = 0;
    for (const auto& [key, p] : method->named_parameters()) {
      bool target = key.rfind("target_", 0) == 0 || key.rfind("key_", 0) == 0;
      if (target) {
        EXPECT_FALSE(p.requires_grad()) << name << " " << key;
        EXPECT_FALSE(p.grad().defined()) << name << " " << key;
      } else {
        online += p.grad().defined();
      }
    }
    EXPECT_GT(online, 0) << name;
  }
}

TEST(Methods, EmaMovesTheTargetTowardsTheOnlineNetwork) {
  auto method = ssl::make_method("byol", small_options());
  auto named = method->named_parameters();
  auto find = [&](const std::string& key) {
    for (const auto& [k, p] : named)
      if (k == key) return p;
    return Tensor();
  };
  Tensor online = find("encoder.conv1.weight"), target = find("target_encoder.conv1.weight");
  ASSERT_TRUE(online.defined() && target.defined());
  EXPECT_EQ(online.to_vector<float>(), target.to_vector<float>());  // starts as a copy
  {
    NoGradGuard g;
    online.add_(ones_like(online));  // as if an optimizer step moved it
  }
  auto before = target.to_vector<float>();
  method->after_optimizer_step(0.0);  // momentum 0.99 at progress 0
  auto after = target.to_vector<float>(), on = online.to_vector<float>();
  for (size_t i = 0; i < after.size(); ++i)
    EXPECT_NEAR(after[i], 0.99f * before[i] + 0.01f * on[i], 1e-5);
}

TEST(Methods, SimSiamStopGradientKeepsTheTargetBranchOutOfTheGraph) {
  // With the predictor's output detached as well, nothing would learn; with only the target
  // detached, the projector still gets gradient through the predictor branch.
  auto method = ssl::make_method("simsiam", small_options());
  method->step(two_views(2)).loss.backward();
  bool projector_grad = false;
  for (const auto& [key, p] : method->named_parameters())
    if (key.rfind("projector.", 0) == 0 && p.grad().defined()) projector_grad = true;
  EXPECT_TRUE(projector_grad);
}

TEST(Methods, UnknownMethodIsAClearError) {
  try {
    ssl::make_method("simclrr", small_options());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown method 'simclrr'"), std::string::npos);
  }
}

TEST(Cli, TrainResumeAndEvalThroughTheBinary) {
  REQUIRE_DATASET();
  const std::string bin = selfsup_binary();
  if (bin.empty()) GTEST_SKIP() << "the selfsup binary is not built next to the tests";
  std::string run = temp_dir("cli");
  std::string common =
      " --method simclr --subset 64 --batch-size 32 --width 0.5 --proj-hidden 64"
      " --proj-dim 32 --knn-train 64 --knn-test 64 --knn-k 5 --workers 1";
  std::string log = run + ".log";
  ASSERT_EQ(std::system(
                (bin + " train --epochs 1 --out " + run + common + " > " + log + " 2>&1").c_str()),
            0);
  EXPECT_TRUE(fs::exists(run + "/config.json"));
  EXPECT_TRUE(fs::exists(run + "/config.toml"));
  ASSERT_EQ(
      std::system((bin + " train --resume " + run + " --epochs 2 >> " + log + " 2>&1").c_str()), 0);
  EXPECT_EQ(metrics(run).size(), 2u);
  // The resolved configuration works as a config file for a new run.
  std::string run2 = temp_dir("cli2");
  ASSERT_EQ(std::system((bin + " train --config " + run + "/config.toml --epochs 1 --out " + run2 +
                         " >> " + log + " 2>&1")
                            .c_str()),
            0);
  // A bad value is one line and a non-zero exit.
  EXPECT_NE(std::system((bin + " train --epochs 0 --out " + run2 + " >> " + log + " 2>&1").c_str()),
            0);
  fs::remove_all(run);
  fs::remove_all(run2);
  fs::remove(log);
}
