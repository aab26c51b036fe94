#include "ssl/methods/method.h"

#include <cmath>
#include <functional>

#include "autograd/ops.h"
#include "core/views.h"
#include "nn/models/mlp.h"

namespace selfsup::ssl {

Method::Method(std::string name, const MethodOptions& options)
    : nn::Module("Method"), gen_(options.seed), name_(std::move(name)), options_(options) {
  encoder_ = nn::make_encoder(options.model, options.in_channels, options.width, &gen_);
  register_module("encoder", encoder_.module);
}

void init_target(const nn::Module& source, nn::Module& target) {
  target.load_state_dict(source.state_dict());
  target.requires_grad_(false);
}

double cosine_momentum(double base, double progress) {
  return 1.0 - (1.0 - base) * (std::cos(M_PI * progress) + 1.0) / 2.0;
}

void ema_update_module(nn::Module& target, const nn::Module& online, double momentum) {
  ema_update_(target.parameters(), online.parameters(), momentum);
}

std::shared_ptr<nn::Module> make_head(const std::vector<int64_t>& dims, bool last_bn,
                                      Generator& gen) {
  return nn::mlp_head(dims, last_bn, &gen);
}

namespace {

struct Entry {
  const char* name;
  std::shared_ptr<Method> (*make)(const MethodOptions&);
};

const std::vector<Entry>& registry() {
  static const std::vector<Entry> entries = {
      {"simclr", make_simclr},
      {"moco", make_moco},
      {"byol", make_byol},
      {"simsiam", make_simsiam},
      {"barlow", make_barlow},
      {"vicreg", make_vicreg},
      {"triplet", make_triplet},
      {"rotnet", make_rotnet},
      {"jigsaw", make_jigsaw},
      {"dae", make_dae},
      {"mae", make_mae},
      {"swav", make_swav},
      {"deepcluster", make_deepcluster},
  };
  return entries;
}

}  // namespace

std::vector<std::string> method_names() {
  std::vector<std::string> names;
  for (const Entry& e : registry())
    names.push_back(e.name);
  return names;
}

std::shared_ptr<Method> make_method(const std::string& name, const MethodOptions& options) {
  for (const Entry& e : registry())
    if (name == e.name) return e.make(options);
  std::string known;
  for (const Entry& e : registry())
    known += std::string(known.empty() ? "" : ", ") + e.name;
  throw Error("make_method: unknown method '" + name + "' (known: " + known + ")");
}

}  // namespace selfsup::ssl
