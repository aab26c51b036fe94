#include "ssl/train/config.h"

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace selfsup::ssl {

using nlohmann::json;

namespace {

json method_json(const MethodOptions& m) {
  return {{"model", m.model},
          {"in_channels", m.in_channels},
          {"width", m.width},
          {"proj_hidden", m.proj_hidden},
          {"proj_dim", m.proj_dim},
          {"pred_hidden", m.pred_hidden},
          {"temperature", m.temperature},
          {"momentum", m.momentum},
          {"queue_size", m.queue_size},
          {"lambda", m.lambda},
          {"margin", m.margin},
          {"sim_weight", m.sim_weight},
          {"var_weight", m.var_weight},
          {"cov_weight", m.cov_weight},
          {"image_size", m.image_size},
          {"jigsaw_classes", m.jigsaw_classes},
          {"tile_jitter", m.tile_jitter},
          {"mask_noise", m.mask_noise},
          {"noise_std", m.noise_std},
          {"mask_ratio", m.mask_ratio},
          {"norm_pix", m.norm_pix},
          {"prototypes", m.prototypes},
          {"sinkhorn_eps", m.sinkhorn_eps},
          {"sinkhorn_iters", m.sinkhorn_iters},
          {"swav_queue", m.swav_queue},
          {"freeze_prototypes", m.freeze_prototypes},
          {"clusters", m.clusters},
          {"local_crops", m.local_crops},
          {"seed", m.seed}};
}

template <typename T>
void read(const json& j, const char* key, T& into) {
  if (j.contains(key)) into = j.at(key).get<T>();
}

MethodOptions method_from(const json& j) {
  MethodOptions m;
  read(j, "model", m.model);
  read(j, "in_channels", m.in_channels);
  read(j, "width", m.width);
  read(j, "proj_hidden", m.proj_hidden);
  read(j, "proj_dim", m.proj_dim);
  read(j, "pred_hidden", m.pred_hidden);
  read(j, "temperature", m.temperature);
  read(j, "momentum", m.momentum);
  read(j, "queue_size", m.queue_size);
  read(j, "lambda", m.lambda);
  read(j, "margin", m.margin);
  read(j, "sim_weight", m.sim_weight);
  read(j, "var_weight", m.var_weight);
  read(j, "cov_weight", m.cov_weight);
  read(j, "image_size", m.image_size);
  read(j, "jigsaw_classes", m.jigsaw_classes);
  read(j, "tile_jitter", m.tile_jitter);
  read(j, "mask_noise", m.mask_noise);
  read(j, "noise_std", m.noise_std);
  read(j, "mask_ratio", m.mask_ratio);
  read(j, "norm_pix", m.norm_pix);
  read(j, "prototypes", m.prototypes);
  read(j, "sinkhorn_eps", m.sinkhorn_eps);
  read(j, "sinkhorn_iters", m.sinkhorn_iters);
  read(j, "swav_queue", m.swav_queue);
  read(j, "freeze_prototypes", m.freeze_prototypes);
  read(j, "clusters", m.clusters);
  read(j, "local_crops", m.local_crops);
  read(j, "seed", m.seed);
  return m;
}

}  // namespace

std::string TrainConfig::to_json() const {
  json j = {{"method", method},
            {"dataset", dataset},
            {"data_dir", data_dir},
            {"device", device},
            {"out", out},
            {"epochs", epochs},
            {"batch_size", batch_size},
            {"subset", subset},
            {"num_workers", num_workers},
            {"seed", seed},
            {"crop_min_scale", crop_min_scale},
            {"view_size", view_size},
            {"optimizer", optimizer},
            {"lr", lr},
            {"weight_decay", weight_decay},
            {"momentum", momentum},
            {"warmup_epochs", warmup_epochs},
            {"grad_clip", grad_clip},
            {"knn_every", knn_every},
            {"knn_train", knn_train},
            {"knn_test", knn_test},
            {"knn_k", knn_k},
            {"method_options", method_json(method_options)}};
  return j.dump(2);
}

TrainConfig TrainConfig::from_json(const std::string& text) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw Error(std::string("train config: not valid JSON: ") + e.what());
  }
  TrainConfig c;
  try {
    read(j, "method", c.method);
    read(j, "dataset", c.dataset);
    read(j, "data_dir", c.data_dir);
    read(j, "device", c.device);
    read(j, "out", c.out);
    read(j, "epochs", c.epochs);
    read(j, "batch_size", c.batch_size);
    read(j, "subset", c.subset);
    read(j, "num_workers", c.num_workers);
    read(j, "seed", c.seed);
    read(j, "crop_min_scale", c.crop_min_scale);
    read(j, "view_size", c.view_size);
    read(j, "optimizer", c.optimizer);
    read(j, "lr", c.lr);
    read(j, "weight_decay", c.weight_decay);
    read(j, "momentum", c.momentum);
    read(j, "warmup_epochs", c.warmup_epochs);
    read(j, "grad_clip", c.grad_clip);
    read(j, "knn_every", c.knn_every);
    read(j, "knn_train", c.knn_train);
    read(j, "knn_test", c.knn_test);
    read(j, "knn_k", c.knn_k);
    if (j.contains("method_options")) c.method_options = method_from(j.at("method_options"));
  } catch (const json::exception& e) {
    throw Error(std::string("train config: a value has the wrong type: ") + e.what());
  }
  return c;
}

}  // namespace selfsup::ssl
