// Checkpoints: a model, its optimizer and the training progress in one safetensors file.
//
//   tensors   "model.<state_dict key>"   e.g. model.layer1.0.conv1.weight
//             "optim.<state tensor>"     e.g. optim.state.3.momentum_buffer
//   metadata  "selfsup.format" = "checkpoint-v1", "epoch", "step", "rng.seed", "rng.offset",
//             "method", "config" (JSON text), "optim.<key>" (optim::Optimizer::state_dict's
//             metadata: type, group.0.lr, ...), "extra.<key>"
//
// The file is readable by any safetensors reader (Python: safetensors.torch.load_file).
// Writes are atomic (core/safetensors.h): a crash mid-save leaves the previous file intact.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "nn/module.h"
#include "nn/optim.h"

namespace selfsup::nn {

struct TrainingProgress {
  int64_t epoch = 0;
  int64_t step = 0;
  uint64_t rng_seed = 0;    // the training Generator's seed ...
  uint64_t rng_offset = 0;  // ... and its position, to resume the same random stream
  std::string method = {};  // "simclr", "byol", ...
  std::string config = {};  // the run's configuration as JSON text
  std::map<std::string, std::string> extra = {};  // anything else a trainer wants to keep
};

// Writes model (state_dict), optimizer state (if not null) and progress to path, atomically.
void save_checkpoint(const std::string& path, const Module& model,
                     const optim::Optimizer* optimizer, const TrainingProgress& progress);

// Restores model and optimizer (if not null) from path and returns the progress. Everything is
// checked before anything changes: a checkpoint of another model (missing or unexpected
// tensor, shape mismatch) or without optimizer state when one is asked for throws an Error
// naming the file and the tensor (with both shapes).
TrainingProgress load_checkpoint(const std::string& path, Module& model,
                                 optim::Optimizer* optimizer = nullptr);

// Only the progress (the file is still read whole).
TrainingProgress read_checkpoint_progress(const std::string& path);

// Loads the weights under "model.<prefix>" into model, ignoring every other tensor: e.g. the
// encoder of an SSL checkpoint with prefix "encoder.". Strict about model's own keys.
void load_checkpoint_weights(const std::string& path, Module& model,
                             const std::string& prefix = "");

}  // namespace selfsup::nn
