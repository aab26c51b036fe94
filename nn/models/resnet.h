// ResNet encoders (He et al. 2015) in torchvision's layout and parameter names, without the
// classifier: the output is the globally average-pooled feature vector [N, feature_dim].
//
//   conv1 -> bn1 -> relu [-> maxpool] -> layer1 .. layerK -> global average pool -> flatten
//
// Each layer_i is a Sequential of blocks ("layer1.0.conv1.weight"); a block whose input and
// output shapes differ gets a "downsample" shortcut Sequential(1x1 conv, BatchNorm2d), as in
// torchvision ("layer2.0.downsample.0.weight", "layer2.0.downsample.1.running_mean").
//
// The small-image ("CIFAR") stem is a 3x3 stride-1 conv with no max-pool, the common choice
// for 28x28 / 32x32 inputs in SSL papers; the ImageNet stem is 7x7 stride 2 plus a 3x3 max-pool.
#pragma once

#include <memory>
#include <vector>

#include "nn/layers.h"

namespace selfsup::nn {

// conv3x3 -> BN -> ReLU -> conv3x3 -> BN, plus the shortcut, then ReLU. Expansion 1.
class BasicBlock : public Module {
 public:
  static constexpr int64_t kExpansion = 1;
  BasicBlock(int64_t in_channels, int64_t planes, int64_t stride, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;

  std::shared_ptr<Conv2d> conv1, conv2;
  std::shared_ptr<BatchNorm2d> bn1, bn2;
  std::shared_ptr<Sequential> downsample;  // null when the shortcut is the identity
};

// conv1x1 -> BN -> ReLU -> conv3x3 (stride) -> BN -> ReLU -> conv1x1 (x4) -> BN, plus the
// shortcut, then ReLU. The stride sits on the 3x3 conv (torchvision's "ResNet v1.5").
class Bottleneck : public Module {
 public:
  static constexpr int64_t kExpansion = 4;
  Bottleneck(int64_t in_channels, int64_t planes, int64_t stride, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;

  std::shared_ptr<Conv2d> conv1, conv2, conv3;
  std::shared_ptr<BatchNorm2d> bn1, bn2, bn3;
  std::shared_ptr<Sequential> downsample;
};

enum class BlockType { Basic, Bottleneck };

struct ResNetOptions {
  BlockType block = BlockType::Basic;
  std::vector<int64_t> blocks_per_stage = {2, 2, 2, 2};  // resnet18
  std::vector<int64_t> stage_planes = {64, 128, 256, 512};
  std::vector<int64_t> stage_strides = {1, 2, 2, 2};
  int64_t stem_channels = 64;
  int64_t in_channels = 3;
  bool imagenet_stem = false;  // 7x7/2 conv + max-pool instead of the 3x3/1 conv
  // Zero the last BN weight of every block so each residual branch starts as the identity
  // (Goyal et al. 2017; torchvision's zero_init_residual).
  bool zero_init_residual = false;
  // When > 0: a 1x1 conv -> BN -> ReLU widens the last stage to this many channels before the
  // pool (the "head conv" of MobileNetV2 / EfficientNet). It costs one pointwise conv at the
  // smallest resolution, and the pooled feature keeps more of what the last stage knows.
  int64_t head_channels = 0;
};

class ResNet : public Module {
 public:
  explicit ResNet(const ResNetOptions& options, Generator* gen = nullptr);
  // x [N, in_channels, H, W] -> features [N, feature_dim()].
  Tensor forward(const Tensor& x) override;
  int64_t feature_dim() const { return feature_dim_; }

  ResNetOptions options;
  std::shared_ptr<Conv2d> conv1;
  std::shared_ptr<BatchNorm2d> bn1;
  std::vector<std::shared_ptr<Sequential>> layers;  // registered as layer1, layer2, ...
  std::shared_ptr<Sequential> head;                 // 1x1 conv, BN, ReLU; null without one

 private:
  int64_t feature_dim_ = 0;
};

// The options of the standard depths, with every channel count scaled by width_multiplier.
ResNetOptions resnet18_options(int64_t in_channels = 3, double width_multiplier = 1.0);
ResNetOptions resnet34_options(int64_t in_channels = 3, double width_multiplier = 1.0);
ResNetOptions resnet50_options(int64_t in_channels = 3, double width_multiplier = 1.0);
// ~0.3M parameters for CPU training: a 32-channel stem and three stages of one BasicBlock
// with 32, 64, 128 channels and strides 1, 2, 2 (128-d features).
ResNetOptions resnet_small_options(int64_t in_channels = 3, double width_multiplier = 1.0);
// resnet-small plus a 128 -> 512 head conv (1x1, BN, ReLU) at 7x7: 512-d features for about
// 9% more FLOPs ("resnet-small-wide").
ResNetOptions resnet_small_wide_options(int64_t in_channels = 3, double width_multiplier = 1.0);

}  // namespace selfsup::nn
