#include "nn/models/registry.h"

#include <functional>
#include <utility>

#include "nn/models/resnet.h"
#include "nn/models/vit.h"

namespace selfsup::nn {

namespace {

using OptionsFn = ResNetOptions (*)(int64_t, double);

const std::vector<std::pair<std::string, OptionsFn>>& resnets() {
  static const std::vector<std::pair<std::string, OptionsFn>> table = {
      {"resnet-small", resnet_small_options}, {"resnet-small-wide", resnet_small_wide_options},
      {"resnet18", resnet18_options},         {"resnet34", resnet34_options},
      {"resnet50", resnet50_options},
  };
  return table;
}

}  // namespace

Encoder make_encoder(const std::string& name, int64_t in_channels, double width_multiplier,
                     Generator* gen) {
  for (const auto& [known, options] : resnets()) {
    if (known != name) continue;
    auto net = std::make_shared<ResNet>(options(in_channels, width_multiplier), gen);
    return {net, net->feature_dim()};
  }
  if (name == "vit-tiny") {
    auto vit =
        std::make_shared<VisionTransformer>(vit_tiny_options(in_channels, width_multiplier), gen);
    return {vit, vit->feature_dim()};
  }
  std::string list;
  for (const auto& n : encoder_names())
    list += (list.empty() ? "" : ", ") + n;
  throw Error("make_encoder: unknown encoder '" + name + "' (known: " + list + ")");
}

bool encoder_accepts_any_image_size(const std::string& name) {
  for (const auto& [known, _] : resnets())
    if (known == name) return true;
  return false;
}

std::vector<std::string> encoder_names() {
  std::vector<std::string> names;
  for (const auto& [name, _] : resnets())
    names.push_back(name);
  names.push_back("vit-tiny");
  return names;
}

}  // namespace selfsup::nn
