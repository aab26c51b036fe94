#include "nn/models/resnet.h"

#include <algorithm>
#include <cmath>

#include "autograd/ops.h"
#include "nn/init.h"

namespace selfsup::nn {

namespace {

std::shared_ptr<Conv2d> conv(int64_t in, int64_t out, int64_t kernel, int64_t stride,
                             Generator* gen) {
  return std::make_shared<Conv2d>(
      Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2).bias(false), gen);
}

// The projection shortcut: 1x1 conv with the block's stride, then BN; null if not needed.
std::shared_ptr<Sequential> make_downsample(int64_t in, int64_t out, int64_t stride,
                                            Generator* gen) {
  if (stride == 1 && in == out) return nullptr;
  return std::make_shared<Sequential>(std::initializer_list<ModulePtr>{
      conv(in, out, 1, stride, gen), std::make_shared<BatchNorm2d>(out)});
}

}  // namespace

// ---------------------------------------------------------------- blocks

BasicBlock::BasicBlock(int64_t in, int64_t planes, int64_t stride, Generator* gen)
    : Module("BasicBlock") {
  conv1 = register_module("conv1", conv(in, planes, 3, stride, gen));
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(planes));
  conv2 = register_module("conv2", conv(planes, planes, 3, 1, gen));
  bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(planes));
  if (auto ds = make_downsample(in, planes, stride, gen))
    downsample = register_module("downsample", ds);
}

Tensor BasicBlock::forward(const Tensor& x) {
  Tensor out = relu(bn1->forward(conv1->forward(x)));
  out = bn2->forward(conv2->forward(out));
  Tensor shortcut = downsample ? downsample->forward(x) : x;
  return relu(add(out, shortcut));
}

Bottleneck::Bottleneck(int64_t in, int64_t planes, int64_t stride, Generator* gen)
    : Module("Bottleneck") {
  int64_t out = planes * kExpansion;
  conv1 = register_module("conv1", conv(in, planes, 1, 1, gen));
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(planes));
  conv2 = register_module("conv2", conv(planes, planes, 3, stride, gen));
  bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(planes));
  conv3 = register_module("conv3", conv(planes, out, 1, 1, gen));
  bn3 = register_module("bn3", std::make_shared<BatchNorm2d>(out));
  if (auto ds = make_downsample(in, out, stride, gen))
    downsample = register_module("downsample", ds);
}

Tensor Bottleneck::forward(const Tensor& x) {
  Tensor out = relu(bn1->forward(conv1->forward(x)));
  out = relu(bn2->forward(conv2->forward(out)));
  out = bn3->forward(conv3->forward(out));
  Tensor shortcut = downsample ? downsample->forward(x) : x;
  return relu(add(out, shortcut));
}

// ---------------------------------------------------------------- ResNet

ResNet::ResNet(const ResNetOptions& o, Generator* gen) : Module("ResNet"), options(o) {
  size_t stages = o.blocks_per_stage.size();
  SELFSUP_CHECK(stages > 0 && o.stage_planes.size() == stages && o.stage_strides.size() == stages,
                "ResNet: blocks_per_stage, stage_planes and stage_strides must have one entry ",
                "per stage, got ", stages, ", ", o.stage_planes.size(), " and ",
                o.stage_strides.size());
  SELFSUP_CHECK(o.in_channels > 0 && o.stem_channels > 0, "ResNet: in_channels ", o.in_channels,
                " and stem_channels ", o.stem_channels, " must be positive");
  bool bottleneck = o.block == BlockType::Bottleneck;
  int64_t expansion = bottleneck ? Bottleneck::kExpansion : BasicBlock::kExpansion;

  if (o.imagenet_stem)
    conv1 = register_module(
        "conv1",
        std::make_shared<Conv2d>(
            Conv2dOptions(o.in_channels, o.stem_channels, 7).stride(2).padding(3).bias(false),
            gen));
  else
    conv1 = register_module("conv1", conv(o.in_channels, o.stem_channels, 3, 1, gen));
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(o.stem_channels));

  int64_t channels = o.stem_channels;
  for (size_t s = 0; s < stages; ++s) {
    SELFSUP_CHECK(o.blocks_per_stage[s] > 0 && o.stage_planes[s] > 0 && o.stage_strides[s] > 0,
                  "ResNet: stage ", s + 1, " needs positive blocks, planes and stride");
    auto layer = std::make_shared<Sequential>();
    for (int64_t b = 0; b < o.blocks_per_stage[s]; ++b) {
      int64_t stride = b == 0 ? o.stage_strides[s] : 1;
      if (bottleneck)
        layer->push_back(std::make_shared<Bottleneck>(channels, o.stage_planes[s], stride, gen));
      else
        layer->push_back(std::make_shared<BasicBlock>(channels, o.stage_planes[s], stride, gen));
      channels = o.stage_planes[s] * expansion;
    }
    layers.push_back(register_module("layer" + std::to_string(s + 1), layer));
  }
  feature_dim_ = channels;
  if (o.head_channels > 0) {
    head = register_module("head", std::make_shared<Sequential>());
    head->push_back(conv(channels, o.head_channels, 1, 1, gen));
    head->push_back(std::make_shared<BatchNorm2d>(o.head_channels));
    head->push_back(std::make_shared<ReLU>());
    feature_dim_ = o.head_channels;
  }

  // torchvision's initialisation: He-normal (fan_out, relu) for every conv, BN weight 1 and
  // bias 0 (the BatchNorm default); optionally zero the last BN of each residual branch.
  for (auto& [name, m] : named_modules()) {
    if (auto* c = dynamic_cast<Conv2d*>(m))
      init::kaiming_normal_(c->weight, 0.0, init::FanMode::FanOut, "relu", gen);
  }
  if (o.zero_init_residual) {
    for (auto& layer : layers)
      for (const auto& [_, block] : layer->named_children()) {
        if (auto* basic = dynamic_cast<BasicBlock*>(block.get())) init::zeros_(basic->bn2->weight);
        if (auto* bneck = dynamic_cast<Bottleneck*>(block.get())) init::zeros_(bneck->bn3->weight);
      }
  }
}

Tensor ResNet::forward(const Tensor& x) {
  SELFSUP_CHECK(x.dim() == 4 && x.size(1) == options.in_channels, "ResNet: expected input [N, ",
                options.in_channels, ", H, W], got ", shape_str(x.shape()));
  Tensor h = relu(bn1->forward(conv1->forward(x)));
  if (options.imagenet_stem) h = max_pool2d(h, 3, 2, 1);
  for (auto& layer : layers)
    h = layer->forward(h);
  if (head) h = head->forward(h);
  return flatten(adaptive_avg_pool2d(h, 1, 1), 1);  // [N, C, 1, 1] -> [N, C]
}

// ---------------------------------------------------------------- standard depths

namespace {

int64_t scaled(int64_t channels, double width_multiplier) {
  SELFSUP_CHECK(width_multiplier > 0, "ResNet: width_multiplier must be positive, got ",
                width_multiplier);
  return std::max<int64_t>(1, std::llround(static_cast<double>(channels) * width_multiplier));
}

ResNetOptions standard(BlockType block, std::vector<int64_t> blocks, int64_t in_channels,
                       double w) {
  ResNetOptions o;
  o.block = block;
  o.blocks_per_stage = std::move(blocks);
  o.stage_planes = {scaled(64, w), scaled(128, w), scaled(256, w), scaled(512, w)};
  o.stage_strides = {1, 2, 2, 2};
  o.stem_channels = scaled(64, w);
  o.in_channels = in_channels;
  return o;
}

}  // namespace

ResNetOptions resnet18_options(int64_t in_channels, double w) {
  return standard(BlockType::Basic, {2, 2, 2, 2}, in_channels, w);
}

ResNetOptions resnet34_options(int64_t in_channels, double w) {
  return standard(BlockType::Basic, {3, 4, 6, 3}, in_channels, w);
}

ResNetOptions resnet50_options(int64_t in_channels, double w) {
  return standard(BlockType::Bottleneck, {3, 4, 6, 3}, in_channels, w);
}

ResNetOptions resnet_small_options(int64_t in_channels, double w) {
  ResNetOptions o;
  o.block = BlockType::Basic;
  o.blocks_per_stage = {1, 1, 1};
  o.stage_planes = {scaled(32, w), scaled(64, w), scaled(128, w)};
  o.stage_strides = {1, 2, 2};
  o.stem_channels = scaled(32, w);
  o.in_channels = in_channels;
  return o;
}

ResNetOptions resnet_small_wide_options(int64_t in_channels, double w) {
  ResNetOptions o = resnet_small_options(in_channels, w);
  o.head_channels = scaled(512, w);
  return o;
}

}  // namespace selfsup::nn
