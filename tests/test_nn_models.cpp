// The encoders and heads of nn/models: parameter counts worked out by hand, torchvision's
// names, output shapes, a block against the same computation written out with ops, the
// registry, and a backward that reaches every parameter.
#include <gtest/gtest.h>

#include <cstdio>
#include <set>

#include "autograd/ops.h"
#include "nn/models/mlp.h"
#include "nn/models/registry.h"
#include "nn/models/resnet.h"

using namespace selfsup;
using namespace selfsup::nn;

namespace {

// Parameter counts by hand. A 3x3 conv without bias: in * out * 9; a BatchNorm2d: 2 * c.
int64_t conv3(int64_t in, int64_t out) {
  return in * out * 9;
}
int64_t conv1(int64_t in, int64_t out) {
  return in * out;
}
int64_t bn(int64_t c) {
  return 2 * c;
}

int64_t basic_block(int64_t in, int64_t out) {
  int64_t n = conv3(in, out) + bn(out) + conv3(out, out) + bn(out);
  if (in != out) n += conv1(in, out) + bn(out);  // every stage change here also strides
  return n;
}

int64_t bottleneck(int64_t in, int64_t planes, bool downsample) {
  int64_t out = planes * 4;
  int64_t n = conv1(in, planes) + bn(planes) + conv3(planes, planes) + bn(planes) +
              conv1(planes, out) + bn(out);
  if (downsample) n += conv1(in, out) + bn(out);
  return n;
}

int64_t resnet_small_count(int64_t in_channels) {
  return conv3(in_channels, 32) + bn(32) + basic_block(32, 32) + basic_block(32, 64) +
         basic_block(64, 128);
}

int64_t resnet18_count(int64_t in_channels) {
  int64_t n = conv3(in_channels, 64) + bn(64);
  int64_t widths[] = {64, 128, 256, 512};
  int64_t in = 64;
  for (int64_t w : widths) {
    n += basic_block(in, w) + basic_block(w, w);
    in = w;
  }
  return n;
}

int64_t resnet50_count(int64_t in_channels) {
  int64_t n = conv3(in_channels, 64) + bn(64);
  int64_t planes[] = {64, 128, 256, 512}, blocks[] = {3, 4, 6, 3};
  int64_t in = 64;
  for (int s = 0; s < 4; ++s)
    for (int64_t b = 0; b < blocks[s]; ++b) {
      n += bottleneck(in, planes[s], b == 0);  // stage 1 too: 64 -> 256 channels
      in = planes[s] * 4;
    }
  return n;
}

std::set<std::string> keys_of(const Module& m) {
  std::set<std::string> out;
  for (auto& [k, _] : m.state_dict())
    out.insert(k);
  return out;
}

}  // namespace

TEST(NnModels, HandCountsAgreeWithTorchvisionFigures) {
  // torchvision's resnet18 has 11,689,512 parameters: minus fc (512 * 1000 + 1000) and with a
  // 3x3 stem instead of the 7x7 one (3 * 64 * (49 - 9) fewer).
  EXPECT_EQ(resnet18_count(3), 11689512 - 513000 - 3 * 64 * 40);
  EXPECT_EQ(resnet18_count(3), 11168832);
  // torchvision's resnet50: 25,557,032 parameters, fc 2048 * 1000 + 1000.
  EXPECT_EQ(resnet50_count(3), 25557032 - 2049000 - 3 * 64 * 40);
}

TEST(NnModels, ResNetSmallCountNamesAndShapes) {
  auto enc = make_encoder("resnet-small", 1);
  EXPECT_EQ(enc.feature_dim, 128);
  EXPECT_EQ(enc.module->num_parameters(), resnet_small_count(1));
  auto enc3 = make_encoder("resnet-small", 3);
  EXPECT_EQ(enc3.module->num_parameters(), resnet_small_count(3));
  std::printf("resnet-small parameters: %lld (1 input channel), %lld (3 input channels)\n",
              static_cast<long long>(enc.module->num_parameters()),
              static_cast<long long>(enc3.module->num_parameters()));
  EXPECT_GT(enc3.module->num_parameters(), 250000);
  EXPECT_LT(enc3.module->num_parameters(), 350000);

  auto keys = keys_of(*enc.module);
  for (const char* k :
       {"conv1.weight", "bn1.weight", "bn1.running_var", "layer1.0.conv1.weight",
        "layer1.0.bn2.bias", "layer2.0.downsample.0.weight", "layer2.0.downsample.1.running_mean",
        "layer3.0.conv2.weight", "layer3.0.downsample.1.num_batches_tracked"})
    EXPECT_TRUE(keys.count(k)) << k;
  EXPECT_FALSE(keys.count("layer1.0.downsample.0.weight"));  // 32 -> 32, stride 1: identity
  EXPECT_FALSE(keys.count("layer4.0.conv1.weight"));

  Generator gen(1);
  Tensor y = enc.module->forward(randn({2, 1, 28, 28}, kFloat32, &gen));
  EXPECT_EQ(y.shape(), (Shape{2, 128}));
  Tensor y3 = enc3.module->forward(randn({2, 3, 32, 32}, kFloat32, &gen));
  EXPECT_EQ(y3.shape(), (Shape{2, 128}));
  for (double v : y.to_vector<double>())
    EXPECT_GE(v, 0.0);  // pooled ReLU outputs
}

// resnet-small-wide = resnet-small + a 1x1 conv (128 -> 512), BN and ReLU before the pool.
TEST(NnModels, ResNetSmallWideAddsAHeadConv) {
  auto enc = make_encoder("resnet-small-wide", 1);
  EXPECT_EQ(enc.feature_dim, 512);
  EXPECT_EQ(enc.module->num_parameters(), resnet_small_count(1) + conv1(128, 512) + bn(512));
  auto keys = keys_of(*enc.module);
  for (const char* k : {"head.0.weight", "head.1.weight", "head.1.running_var"})
    EXPECT_TRUE(keys.count(k)) << k;
  EXPECT_FALSE(keys.count("head.0.bias"));
  Generator gen(2);
  Tensor y = enc.module->forward(randn({3, 1, 28, 28}, kFloat32, &gen));
  EXPECT_EQ(y.shape(), (Shape{3, 512}));
  for (double v : y.to_vector<double>())
    EXPECT_GE(v, 0.0);  // pooled ReLU outputs
  // A convolutional encoder takes other image sizes: training at 20 px, evaluating at 28.
  EXPECT_EQ(enc.module->forward(randn({2, 1, 20, 20}, kFloat32, &gen)).shape(), (Shape{2, 512}));
  EXPECT_EQ(make_encoder("resnet-small-wide", 1, 0.5).feature_dim, 256);
}

TEST(NnModels, ResNet18CountNamesAndShape) {
  auto enc = make_encoder("resnet18", 3);
  EXPECT_EQ(enc.feature_dim, 512);
  EXPECT_EQ(enc.module->num_parameters(), resnet18_count(3));
  EXPECT_EQ(enc.module->num_parameters(), 11168832);
  auto keys = keys_of(*enc.module);
  EXPECT_EQ(keys.size(), 120u);  // torchvision's 122 state-dict keys without fc.weight/bias
  for (const char* k :
       {"conv1.weight", "bn1.num_batches_tracked", "layer1.0.conv1.weight", "layer1.1.bn2.weight",
        "layer2.0.downsample.0.weight", "layer2.0.downsample.1.running_mean",
        "layer4.1.conv2.weight", "layer4.0.downsample.1.bias"})
    EXPECT_TRUE(keys.count(k)) << k;
  EXPECT_FALSE(keys.count("fc.weight"));
  EXPECT_FALSE(keys.count("layer1.0.downsample.0.weight"));
  EXPECT_EQ(enc.module->state_dict().front().first, "conv1.weight");

  auto one = make_encoder("resnet18", 1);
  EXPECT_EQ(one.module->num_parameters(), resnet18_count(1));
  Generator gen(2);
  EXPECT_EQ(one.module->forward(randn({2, 1, 28, 28}, kFloat32, &gen)).shape(), (Shape{2, 512}));
  EXPECT_EQ(enc.module->forward(randn({2, 3, 32, 32}, kFloat32, &gen)).shape(), (Shape{2, 512}));
}

TEST(NnModels, ResNet50CountAndShape) {
  auto enc = make_encoder("resnet50", 3);
  EXPECT_EQ(enc.feature_dim, 2048);
  EXPECT_EQ(enc.module->num_parameters(), resnet50_count(3));
  auto keys = keys_of(*enc.module);
  EXPECT_TRUE(keys.count("layer1.0.downsample.0.weight"));  // 64 -> 256 channels
  EXPECT_TRUE(keys.count("layer3.5.conv3.weight"));
  EXPECT_TRUE(keys.count("layer4.2.bn3.running_var"));
  // A 32x32 forward costs ~1.3 GFLOP (over a second on a busy 2-core machine); an 8x8 image
  // takes the same path through every block at 1/16 of the cost. In eval mode: layer4 sees a
  // 1x1 map, and BatchNorm refuses batch statistics over a single value.
  Generator gen(3);
  enc.module->eval();
  Tensor y = enc.module->forward(randn({1, 3, 8, 8}, kFloat32, &gen));
  EXPECT_EQ(y.shape(), (Shape{1, 2048}));
}

TEST(NnModels, WidthMultiplierAndInputChannels) {
  auto wide = make_encoder("resnet-small", 3, 2.0);
  EXPECT_EQ(wide.feature_dim, 256);
  auto r18 = make_encoder("resnet18", 3, 0.5);
  EXPECT_EQ(r18.feature_dim, 256);
  auto& conv1 = *std::dynamic_pointer_cast<ResNet>(r18.module)->conv1;
  EXPECT_EQ(conv1.weight.shape(), (Shape{32, 3, 3, 3}));
  Generator gen(4);
  EXPECT_EQ(wide.module->forward(randn({2, 3, 16, 16}, kFloat32, &gen)).shape(), (Shape{2, 256}));
  EXPECT_THROW(make_encoder("resnet18", 3, 0.0), Error);
  // The wrong number of input channels is refused with both shapes.
  try {
    r18.module->forward(zeros({2, 1, 28, 28}));
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("[N, 3, H, W]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[2, 1, 28, 28]"), std::string::npos) << msg;
  }
}

TEST(NnModels, RegistryNamesAndUnknownName) {
  auto names = encoder_names();
  EXPECT_EQ(names, (std::vector<std::string>{"resnet-small", "resnet-small-wide", "resnet18",
                                             "resnet34", "resnet50", "vit-tiny"}));
  try {
    make_encoder("resnet19");
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("resnet19"), std::string::npos) << msg;
    EXPECT_NE(msg.find("resnet-small, resnet-small-wide, resnet18"), std::string::npos) << msg;
  }
}

TEST(NnModels, SeededConstructionIsRepeatable) {
  Generator a(5), b(5);
  auto ea = make_encoder("resnet-small", 1, 1.0, &a), eb = make_encoder("resnet-small", 1, 1.0, &b);
  auto sa = ea.module->state_dict(), sb = eb.module->state_dict();
  for (size_t i = 0; i < sa.size(); ++i)
    EXPECT_EQ(sa[i].second.to_vector<double>(), sb[i].second.to_vector<double>()) << sa[i].first;
}

TEST(NnModels, TorchvisionInitialisation) {
  Generator gen(6);
  ResNetOptions o = resnet_small_options(3);
  o.zero_init_residual = true;
  ResNet net(o, &gen);
  // He-normal with fan_out: std = sqrt(2 / (out * 9)) for the 3x3 convs.
  auto w = net.layers[2]->at<BasicBlock>(0)->conv2->weight.to_vector<double>();
  double s2 = 0;
  for (double v : w)
    s2 += v * v;
  double want = std::sqrt(2.0 / (128 * 9));
  EXPECT_NEAR(std::sqrt(s2 / static_cast<double>(w.size())), want, want * 0.02);
  for (double v : net.layers[0]->at<BasicBlock>(0)->bn2->weight.to_vector<double>())
    EXPECT_EQ(v, 0.0);
  for (double v : net.bn1->weight.to_vector<double>())
    EXPECT_EQ(v, 1.0);
}

TEST(NnModels, BasicBlockMatchesTheOpsWrittenOut) {
  Generator gen(7);
  BasicBlock block(3, 5, 2, &gen);
  ASSERT_TRUE(block.downsample);
  {
    NoGradGuard no_grad;
    block.bn1->weight.copy_(rand({5}, kFloat32, &gen));
    block.bn2->bias.copy_(randn({5}, kFloat32, &gen));
  }
  block.eval();  // fixed statistics make the expected value easy to write down
  {
    NoGradGuard no_grad;
    for (auto* b : {block.bn1.get(), block.bn2.get()}) {
      b->running_mean.copy_(randn({5}, kFloat32, &gen));
      b->running_var.copy_(add(rand({5}, kFloat32, &gen), 0.5));
    }
  }
  Tensor x = randn({2, 3, 7, 6}, kFloat32, &gen);
  auto bn_eval = [](const Tensor& h, const BatchNorm2d& b) {
    Shape s{1, -1, 1, 1};
    return add(mul(div(sub(h, b.running_mean.view(s)), sqrt(add(b.running_var.view(s), 1e-5))),
                   b.weight.view(s)),
               b.bias.view(s));
  };
  Tensor h = relu(bn_eval(conv2d(x, block.conv1->weight, Tensor(), 2, 1), *block.bn1));
  h = bn_eval(conv2d(h, block.conv2->weight, Tensor(), 1, 1), *block.bn2);
  auto& ds_conv = *block.downsample->at<Conv2d>(0);
  auto& ds_bn = *block.downsample->at<BatchNorm2d>(1);
  Tensor shortcut = bn_eval(conv2d(x, ds_conv.weight, Tensor(), 2, 0), ds_bn);
  auto want = relu(add(h, shortcut)).to_vector<double>();
  auto got = block.forward(x).to_vector<double>();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], 1e-4) << i;
}

TEST(NnModels, BackwardReachesEveryParameter) {
  Generator gen(8);
  auto enc = make_encoder("resnet-small", 1, 0.5, &gen);
  Tensor y = enc.module->forward(randn({3, 1, 12, 12}, kFloat32, &gen));
  y.pow(2.0).sum().backward();
  for (auto& [name, p] : enc.module->named_parameters()) {
    Tensor g = p.grad();
    ASSERT_TRUE(g.defined()) << name;
    EXPECT_EQ(g.shape(), p.shape()) << name;
    double s = 0;
    for (double v : g.to_vector<double>())
      s += std::abs(v);
    EXPECT_GT(s, 0.0) << name;
  }
}

TEST(NnModels, MlpHeadLayoutNamesAndShapes) {
  auto head = mlp_head({8, 16, 4});
  std::vector<std::string> types;
  for (auto& [_, m] : head->named_children())
    types.push_back(m->type_name());
  EXPECT_EQ(types, (std::vector<std::string>{"Linear", "BatchNorm1d", "ReLU", "Linear"}));
  std::vector<std::string> keys;
  for (auto& [k, _] : head->state_dict())
    keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"0.weight", "1.weight", "1.bias", "1.running_mean",
                                            "1.running_var", "1.num_batches_tracked", "3.weight",
                                            "3.bias"}));
  EXPECT_EQ(head->num_parameters(), 8 * 16 + 2 * 16 + 16 * 4 + 4);
  Generator gen(9);
  EXPECT_EQ(head->forward(randn({5, 8}, kFloat32, &gen)).shape(), (Shape{5, 4}));

  MlpHeadOptions o;
  o.dims = {6, 10, 10, 3};
  o.last_bn = true;
  o.last_bn_affine = false;
  auto deep = mlp_head(o);
  EXPECT_EQ(deep->size(), 8u);  // 3 x (Linear, BN) + 2 ReLU
  EXPECT_FALSE(deep->at<Linear>(6)->bias.defined());
  EXPECT_FALSE(deep->at<BatchNorm1d>(7)->weight.defined());
  EXPECT_TRUE(deep->at<BatchNorm1d>(7)->running_mean.defined());
  Tensor z = deep->forward(randn({4, 6}, kFloat32, &gen));
  EXPECT_EQ(z.shape(), (Shape{4, 3}));
  // Ending in an affine-free BN, every output column has mean 0 over the batch.
  auto v = z.to_vector<double>();
  for (int c = 0; c < 3; ++c)
    EXPECT_NEAR(v[c] + v[3 + c] + v[6 + c] + v[9 + c], 0.0, 1e-5);
  EXPECT_THROW(mlp_head({8}), Error);
  EXPECT_THROW(mlp_head({8, 0, 2}), Error);
}

// Only the convolutional encoders may train on views smaller than the evaluation images.
TEST(Registry, OnlyResNetsAcceptAnyImageSize) {
  for (const std::string& name : nn::encoder_names())
    EXPECT_EQ(nn::encoder_accepts_any_image_size(name), name.rfind("resnet", 0) == 0) << name;
  EXPECT_FALSE(nn::encoder_accepts_any_image_size("no-such-encoder"));
}
