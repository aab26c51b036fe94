// The configuration of a training run: what `selfsup train` takes (flags or a TOML file), what
// the run folder keeps (config.json) and what a checkpoint carries, so eval and --resume can
// rebuild the same method.
#pragma once

#include <string>

#include "ssl/methods/method.h"

namespace selfsup::ssl {

struct TrainConfig {
  std::string method = "simclr";
  std::string dataset = "fashion-mnist";
  std::string data_dir;  // empty: the dataset's default folder
  std::string device = "auto";
  std::string out = "runs/simclr";
  int64_t epochs = 10;
  int64_t batch_size = 256;
  int64_t subset = 0;  // train on the first N training images (0: all)
  int num_workers = 2;
  // Augmentation overrides (0: the method's recipe as published, ssl/data/presets.cpp).
  double crop_min_scale = 0;  // lower end of the random-resized-crop area
  int64_t view_size = 0;      // side of the training views (0: the image size)
  uint64_t seed = 0;
  // Optimisation. lr is per 256 images (scaled linearly with the batch size, as the papers do).
  std::string optimizer = "adamw";  // adamw | sgd | lars
  double lr = 1e-3;
  double weight_decay = 1e-6;
  double momentum = 0.9;  // sgd / lars
  double warmup_epochs = 1;
  double grad_clip = 0;  // 0: off
  // Evaluation during training.
  int64_t knn_every = 0;      // epochs between kNN evaluations (0: only after the last epoch)
  int64_t knn_train = 10000;  // training images in the kNN memory bank
  int64_t knn_test = 10000;   // test images classified
  int64_t knn_k = 200;
  MethodOptions method_options;

  std::string to_json() const;
  static TrainConfig from_json(const std::string& text);
};

}  // namespace selfsup::ssl
