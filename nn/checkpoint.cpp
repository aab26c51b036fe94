#include "nn/checkpoint.h"

#include "core/safetensors.h"

namespace selfsup::nn {

namespace {

constexpr const char* kFormatKey = "selfsup.format";
constexpr const char* kFormat = "checkpoint-v1";
const std::string kModel = "model.";
const std::string kOptim = "optim.";
const std::string kExtra = "extra.";

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

SafetensorsFile read_checkpoint(const std::string& path) {
  SafetensorsFile file = load_safetensors(path);
  auto it = file.metadata.find(kFormatKey);
  SELFSUP_CHECK(it != file.metadata.end(), "load_checkpoint: ", path,
                ": not a selfsup checkpoint (no '", kFormatKey, "' in the metadata)");
  SELFSUP_CHECK(it->second == kFormat, "load_checkpoint: ", path, ": checkpoint format '",
                it->second, "', this build reads '", kFormat, "'");
  return file;
}

uint64_t parse_u64(const SafetensorsFile& file, const std::string& path, const std::string& key) {
  auto it = file.metadata.find(key);
  SELFSUP_CHECK(it != file.metadata.end(), "load_checkpoint: ", path, ": metadata '", key,
                "' is missing");
  const std::string& text = it->second;
  bool digits = !text.empty() && text.size() <= 20 &&
                text.find_first_not_of("0123456789") == std::string::npos;
  SELFSUP_CHECK(digits, "load_checkpoint: ", path, ": metadata '", key, "' = '", text,
                "' is not a non-negative integer");
  try {
    return std::stoull(text);
  } catch (const std::exception&) {
    throw Error("load_checkpoint: " + path + ": metadata '" + key + "' = '" + text +
                "' is out of range");
  }
}

TrainingProgress progress_of(const SafetensorsFile& file, const std::string& path) {
  TrainingProgress p;
  p.epoch = static_cast<int64_t>(parse_u64(file, path, "epoch"));
  p.step = static_cast<int64_t>(parse_u64(file, path, "step"));
  p.rng_seed = parse_u64(file, path, "rng.seed");
  p.rng_offset = parse_u64(file, path, "rng.offset");
  auto text = [&](const char* key) {
    auto it = file.metadata.find(key);
    return it == file.metadata.end() ? std::string() : it->second;
  };
  p.method = text("method");
  p.config = text("config");
  for (const auto& [key, value] : file.metadata)
    if (starts_with(key, kExtra)) p.extra[key.substr(kExtra.size())] = value;
  return p;
}

// The file's tensors under `prefix`, with the prefix removed.
NamedTensors tensors_under(const SafetensorsFile& file, const std::string& prefix) {
  NamedTensors out;
  for (const auto& [key, t] : file.tensors)
    if (starts_with(key, prefix)) out.emplace_back(key.substr(prefix.size()), t);
  return out;
}

// Throws unless dict fits model exactly (strict) or at least for model's keys.
void check_model_fits(const Module& model, const NamedTensors& dict, const std::string& path,
                      const std::string& key_prefix, bool strict) {
  StateDictDiff diff = model.diff_state_dict(dict);
  if (!strict) diff.unexpected.clear();
  SELFSUP_CHECK(diff.empty(), "load_checkpoint: ", path, " does not fit this ", model.type_name(),
                ": ", diff.describe(key_prefix));
}

}  // namespace

void save_checkpoint(const std::string& path, const Module& model,
                     const optim::Optimizer* optimizer, const TrainingProgress& progress) {
  SELFSUP_CHECK(progress.epoch >= 0 && progress.step >= 0, "save_checkpoint: ", path, ": epoch ",
                progress.epoch, " and step ", progress.step, " must be >= 0");
  NamedTensors tensors;
  for (const auto& [key, t] : model.state_dict())
    tensors.emplace_back(kModel + key, t);
  std::map<std::string, std::string> meta = {
      {kFormatKey, kFormat},
      {"epoch", std::to_string(progress.epoch)},
      {"step", std::to_string(progress.step)},
      {"rng.seed", std::to_string(progress.rng_seed)},
      {"rng.offset", std::to_string(progress.rng_offset)},
      {"method", progress.method},
      {"config", progress.config},
  };
  for (const auto& [key, value] : progress.extra)
    meta[kExtra + key] = value;
  if (optimizer) {
    optim::OptimizerState state = optimizer->state_dict();
    for (const auto& [key, t] : state.tensors)
      tensors.emplace_back(kOptim + key, t);
    for (const auto& [key, value] : state.metadata)
      meta[kOptim + key] = value;
  }
  save_safetensors(path, tensors, meta);
}

TrainingProgress load_checkpoint(const std::string& path, Module& model,
                                 optim::Optimizer* optimizer) {
  SafetensorsFile file = read_checkpoint(path);
  TrainingProgress progress = progress_of(file, path);
  NamedTensors weights = tensors_under(file, kModel);
  check_model_fits(model, weights, path, kModel, true);
  if (optimizer) {
    optim::OptimizerState state;
    state.tensors = tensors_under(file, kOptim);
    for (const auto& [key, value] : file.metadata)
      if (starts_with(key, kOptim)) state.metadata[key.substr(kOptim.size())] = value;
    SELFSUP_CHECK(state.metadata.count("type"), "load_checkpoint: ", path,
                  ": holds no optimizer state");
    try {
      optimizer->load_state_dict(state);  // checks everything before it changes anything
    } catch (const Error& e) {
      throw Error("load_checkpoint: " + path + ": " + e.what());
    }
  }
  model.load_state_dict(weights);
  return progress;
}

TrainingProgress read_checkpoint_progress(const std::string& path) {
  return progress_of(read_checkpoint(path), path);
}

void load_checkpoint_weights(const std::string& path, Module& model, const std::string& prefix) {
  SafetensorsFile file = read_checkpoint(path);
  NamedTensors weights = tensors_under(file, kModel + prefix);
  SELFSUP_CHECK(!weights.empty(), "load_checkpoint: ", path, ": no tensor starts with '",
                kModel + prefix, "'");
  check_model_fits(model, weights, path, kModel + prefix, true);
  model.load_state_dict(weights);
}

}  // namespace selfsup::nn
