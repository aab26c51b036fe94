// The encoders the CLI can name: make_encoder("resnet18", in_channels, width) returns the
// module and the size of the feature vector it outputs for an [N, in_channels, H, W] batch.
//
//   resnet-small  ~0.3M params, 128-d   (CPU training on 28x28 / 32x32 images)
//   resnet18      11.2M params, 512-d   (small-image stem: 3x3 stride-1 conv, no max-pool)
//   resnet34      21.3M params, 512-d
//   resnet50      23.5M params, 2048-d
//   vit-tiny       2.7M params, 192-d   (ViT-Ti width, depth 6, patch 4; nn/models/vit.h)
// (parameter counts for 3 input channels and width 1; features scale with the width.)
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/random.h"
#include "nn/module.h"

namespace selfsup::nn {

struct Encoder {
  std::shared_ptr<Module> module;  // forward: [N, C, H, W] -> [N, feature_dim]
  int64_t feature_dim = 0;
};

// Throws an Error listing the known names for an unknown one.
Encoder make_encoder(const std::string& name, int64_t in_channels = 3,
                     double width_multiplier = 1.0, Generator* gen = nullptr);

// The names make_encoder accepts, in a stable order.
std::vector<std::string> encoder_names();

// Whether the encoder evaluates images of another size than it trained on with nothing left
// untrained: true for the ResNets (convolutions and a global pool), false for vit-tiny (one
// learned position embedding per patch of the training grid).
bool encoder_accepts_any_image_size(const std::string& name);

}  // namespace selfsup::nn
