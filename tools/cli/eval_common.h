// What `selfsup eval` and `selfsup embed` share: opening a checkpoint and loading the dataset
// split its encoder is evaluated on.
#pragma once

#include <memory>
#include <string>

#include "ssl/data/dataset.h"
#include "ssl/methods/method.h"
#include "ssl/train/config.h"

namespace selfsup::cli {

struct LoadedCheckpoint {
  std::string path;
  std::shared_ptr<ssl::Method> method;
  ssl::TrainConfig config;  // the configuration the checkpoint was trained with
};

// The method and its training configuration; a missing file is an Error naming it.
LoadedCheckpoint open_checkpoint(const std::string& path, const char* command);

// Where the evaluation data comes from: --dataset (default: the checkpoint's) and --data-dir
// (default: the checkpoint's folder when the dataset is the checkpoint's, else the dataset's
// default folder).
struct DataSource {
  std::string dataset;
  std::string data_dir;
};
DataSource resolve_data_source(const ssl::TrainConfig& config, const std::string& dataset_flag,
                               const std::string& data_dir_flag);

// The split ("train" or "test") cut to its first `limit` images (all when limit <= 0). An Error
// when its channel count differs from the encoder's input.
data::Dataset load_split(const DataSource& source, const std::string& split, int64_t limit,
                         const ssl::TrainConfig& config, const char* command);

}  // namespace selfsup::cli
