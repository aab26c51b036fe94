// The training loop of every SSL method: data, augmentations, the method's loss, the optimizer
// with a warm-up + cosine schedule, a progress bar, per-epoch metrics (loss, kNN accuracy,
// collapse diagnostics) as JSON lines, and an atomic checkpoint after every epoch.
//
// The run folder holds:
//   config.json          the resolved configuration
//   metrics.jsonl        one JSON object per epoch
//   checkpoint.safetensors   the latest checkpoint (model, optimizer, progress)
#pragma once

#include <string>

#include "ssl/train/config.h"

namespace selfsup::ssl {

struct TrainResult {
  int64_t epochs_done = 0;
  double final_loss = 0;
  double knn_top1 = -1;  // -1 when no kNN evaluation ran
  double seconds = 0;
  std::string checkpoint;
};

// Trains from scratch, or continues the run in `resume_dir` (its checkpoint and configuration;
// `config.epochs`, when larger than the run's, extends it).
TrainResult train(TrainConfig config, const std::string& resume_dir = "");

// The path of a run folder's checkpoint.
std::string checkpoint_path(const std::string& run_dir);

// Rebuilds the method a checkpoint was trained with and loads its weights.
std::shared_ptr<Method> load_method(const std::string& checkpoint, TrainConfig* config = nullptr);

}  // namespace selfsup::ssl
