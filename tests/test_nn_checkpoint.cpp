// Checkpoints: a full round trip (weights, buffers, optimizer state, progress) that resumes to
// the same numbers, and the refusal of checkpoints that do not fit, naming file and tensor.
#include <gtest/gtest.h>

#include <unistd.h>
#include <filesystem>

#include "autograd/ops.h"
#include "core/safetensors.h"
#include "nn/checkpoint.h"
#include "nn/models/mlp.h"
#include "nn/models/registry.h"

using namespace selfsup;
using namespace selfsup::nn;
namespace fs = std::filesystem;

namespace {

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("selfsup_nn_ckpt_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
};

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// One training step of an encoder + head on a fixed batch.
void train_step(Module& encoder, Module& head, optim::Optimizer& opt, uint64_t seed) {
  Generator gen(seed);
  Tensor x = randn({4, 1, 10, 10}, kFloat32, &gen);
  opt.zero_grad();
  Tensor loss = head.forward(encoder.forward(x)).pow(2.0).mean();
  loss.backward();
  opt.step();
}

// A method-shaped module: an encoder and a projector as children.
class Wrapper : public Module {
 public:
  Wrapper(uint64_t seed) : Module("Wrapper") {
    Generator gen(seed);
    encoder = register_module("encoder", make_encoder("resnet-small", 1, 0.25, &gen).module);
    head = register_module("head", mlp_head({32, 16, 8}, false, &gen));
  }
  std::shared_ptr<Module> encoder;
  std::shared_ptr<Sequential> head;
};

std::vector<Tensor> all_params(const Wrapper& w) {
  return w.parameters();
}

}  // namespace

TEST_F(CheckpointTest, RoundTripRestoresEverythingAndResumesIdentically) {
  Wrapper a(1);
  optim::SGD opt_a(all_params(a), {.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-4});
  train_step(*a.encoder, *a.head, opt_a, 10);
  train_step(*a.encoder, *a.head, opt_a, 11);

  TrainingProgress progress;
  progress.epoch = 3;
  progress.step = 1234;
  progress.rng_seed = 0xfeedfacecafebeefull;
  progress.rng_offset = 987654321012ull;
  progress.method = "simclr";
  progress.config = R"({"batch_size": 256, "lr": 0.05})";
  progress.extra["best_knn"] = "0.8125";
  save_checkpoint(path("run.ckpt"), a, &opt_a, progress);

  Wrapper b(2);  // other initial weights
  optim::SGD opt_b(all_params(b), {.lr = 0.5, .momentum = 0.9, .weight_decay = 1e-4});
  TrainingProgress got = load_checkpoint(path("run.ckpt"), b, &opt_b);
  EXPECT_EQ(got.epoch, 3);
  EXPECT_EQ(got.step, 1234);
  EXPECT_EQ(got.rng_seed, 0xfeedfacecafebeefull);
  EXPECT_EQ(got.rng_offset, 987654321012ull);
  EXPECT_EQ(got.method, "simclr");
  EXPECT_EQ(got.config, progress.config);
  EXPECT_EQ(got.extra, progress.extra);
  EXPECT_EQ(opt_b.lr(), 0.05);

  auto sa = a.state_dict(), sb = b.state_dict();
  ASSERT_EQ(sa.size(), sb.size());
  for (size_t i = 0; i < sa.size(); ++i) {
    EXPECT_EQ(sa[i].first, sb[i].first);
    EXPECT_EQ(sa[i].second.dtype(), sb[i].second.dtype()) << sa[i].first;
    EXPECT_EQ(sa[i].second.to_vector<double>(), sb[i].second.to_vector<double>()) << sa[i].first;
  }
  EXPECT_EQ(a.encoder->named_buffers().back().second.item(), 2);  // num_batches_tracked
  for (size_t i = 0; i < all_params(a).size(); ++i) {
    EXPECT_EQ(opt_a.state(i).step, opt_b.state(i).step);
    EXPECT_EQ(opt_a.state(i).buffers[0].second.to_vector<double>(),
              opt_b.state(i).buffers[0].second.to_vector<double>());
  }
  // Resuming: the next step gives bit-identical weights.
  train_step(*a.encoder, *a.head, opt_a, 12);
  train_step(*b.encoder, *b.head, opt_b, 12);
  sa = a.state_dict();
  sb = b.state_dict();
  for (size_t i = 0; i < sa.size(); ++i)
    EXPECT_EQ(sa[i].second.to_vector<double>(), sb[i].second.to_vector<double>()) << sa[i].first;

  EXPECT_EQ(read_checkpoint_progress(path("run.ckpt")).step, 1234);
}

TEST_F(CheckpointTest, FileLayoutUsesPrefixedNamesAndStringMetadata) {
  Wrapper a(3);
  optim::AdamW opt(all_params(a), {});
  train_step(*a.encoder, *a.head, opt, 13);
  save_checkpoint(path("a.ckpt"), a, &opt, {.epoch = 1, .step = 2, .method = "byol"});
  SafetensorsFile f = load_safetensors(path("a.ckpt"));
  EXPECT_NE(f.find("model.encoder.conv1.weight"), nullptr);
  EXPECT_NE(f.find("model.encoder.layer2.0.downsample.1.running_mean"), nullptr);
  EXPECT_NE(f.find("model.head.1.num_batches_tracked"), nullptr);
  EXPECT_NE(f.find("optim.state.0.exp_avg"), nullptr);
  EXPECT_NE(f.find("optim.state.0.exp_avg_sq"), nullptr);
  EXPECT_EQ(f.metadata.at("optim.type"), "AdamW");
  EXPECT_EQ(f.metadata.at("optim.group.0.lr"), "0.001");
  EXPECT_EQ(f.metadata.at("epoch"), "1");
  EXPECT_EQ(f.metadata.at("method"), "byol");
  EXPECT_EQ(f.metadata.at("selfsup.format"), "checkpoint-v1");
  // Overwriting is atomic and leaves no temporary file behind.
  save_checkpoint(path("a.ckpt"), a, nullptr, {.epoch = 2});
  EXPECT_EQ(read_checkpoint_progress(path("a.ckpt")).epoch, 2);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);
}

TEST_F(CheckpointTest, RefusesACheckpointOfAnotherModel) {
  auto one = make_encoder("resnet-small", 1, 0.25);
  save_checkpoint(path("one.ckpt"), *one.module, nullptr, {});
  auto three = make_encoder("resnet-small", 3, 0.25);
  auto before = three.module->state_dict().front().second.to_vector<double>();
  std::string msg = error_of([&] { load_checkpoint(path("one.ckpt"), *three.module); });
  EXPECT_NE(msg.find(path("one.ckpt")), std::string::npos) << msg;
  EXPECT_NE(msg.find("model.conv1.weight is [8, 1, 3, 3] in the state dict but [8, 3, 3, 3] in "
                     "the module"),
            std::string::npos)
      << msg;
  EXPECT_EQ(three.module->state_dict().front().second.to_vector<double>(), before);

  auto wider = make_encoder("resnet18", 1, 0.125);
  msg = error_of([&] { load_checkpoint(path("one.ckpt"), *wider.module); });
  EXPECT_NE(msg.find("missing keys model.layer1.1.conv1.weight"), std::string::npos) << msg;

  auto head = mlp_head({4, 3});
  save_checkpoint(path("head.ckpt"), *head, nullptr, {});
  auto head_bn = mlp_head({4, 3}, true);
  msg = error_of([&] { load_checkpoint(path("head.ckpt"), *head_bn); });
  EXPECT_NE(msg.find("missing keys model.1.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unexpected key model.0.bias"), std::string::npos) << msg;
}

TEST_F(CheckpointTest, RefusesMissingOrForeignOptimizerState) {
  auto enc = make_encoder("resnet-small", 1, 0.25);
  save_checkpoint(path("weights.ckpt"), *enc.module, nullptr, {});
  optim::SGD sgd(enc.module->parameters(), {.momentum = 0.9});
  std::string msg = error_of([&] { load_checkpoint(path("weights.ckpt"), *enc.module, &sgd); });
  EXPECT_NE(msg.find("holds no optimizer state"), std::string::npos) << msg;
  EXPECT_NE(msg.find("weights.ckpt"), std::string::npos) << msg;

  optim::AdamW adam(enc.module->parameters(), {});
  save_checkpoint(path("adam.ckpt"), *enc.module, &adam, {});
  msg = error_of([&] { load_checkpoint(path("adam.ckpt"), *enc.module, &sgd); });
  EXPECT_NE(msg.find("adam.ckpt"), std::string::npos) << msg;
  EXPECT_NE(msg.find("AdamW"), std::string::npos) << msg;
}

TEST_F(CheckpointTest, RefusesFilesThatAreNotCheckpoints) {
  save_safetensors(path("plain.safetensors"), {{"x", zeros({2})}});
  auto enc = make_encoder("resnet-small", 1, 0.25);
  std::string msg = error_of([&] { load_checkpoint(path("plain.safetensors"), *enc.module); });
  EXPECT_NE(msg.find("not a selfsup checkpoint"), std::string::npos) << msg;
  msg = error_of([&] { load_checkpoint(path("absent.ckpt"), *enc.module); });
  EXPECT_NE(msg.find("absent.ckpt"), std::string::npos) << msg;
  save_safetensors(path("bad_step.ckpt"), {{"model.x", zeros({2})}},
                   {{"selfsup.format", "checkpoint-v1"},
                    {"epoch", "1"},
                    {"step", "-3"},
                    {"rng.seed", "0"},
                    {"rng.offset", "0"}});
  msg = error_of([&] { read_checkpoint_progress(path("bad_step.ckpt")); });
  EXPECT_NE(msg.find("'step'"), std::string::npos) << msg;
}

TEST_F(CheckpointTest, LoadsTheEncoderOfAMethodCheckpoint) {
  Wrapper a(4);
  save_checkpoint(path("method.ckpt"), a, nullptr, {});
  Generator gen(5);
  auto enc = make_encoder("resnet-small", 1, 0.25, &gen);
  load_checkpoint_weights(path("method.ckpt"), *enc.module, "encoder.");
  auto sa = a.encoder->state_dict(), sb = enc.module->state_dict();
  for (size_t i = 0; i < sa.size(); ++i)
    EXPECT_EQ(sa[i].second.to_vector<double>(), sb[i].second.to_vector<double>()) << sa[i].first;
  EXPECT_THROW(load_checkpoint_weights(path("method.ckpt"), *enc.module, "target."), Error);
}
