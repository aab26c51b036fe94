#include "tools/cli/eval_common.h"

#include <filesystem>

#include "core/error.h"
#include "ssl/data/subset.h"
#include "ssl/train/trainer.h"

namespace selfsup::cli {

LoadedCheckpoint open_checkpoint(const std::string& path, const char* command) {
  SELFSUP_CHECK(!path.empty(), command, ": --checkpoint is required");
  std::error_code ec;
  SELFSUP_CHECK(std::filesystem::is_regular_file(path, ec), command, ": checkpoint '", path,
                "' does not exist or is not a file");
  LoadedCheckpoint c;
  c.path = path;
  c.method = ssl::load_method(path, &c.config);
  return c;
}

DataSource resolve_data_source(const ssl::TrainConfig& config, const std::string& dataset_flag,
                               const std::string& data_dir_flag) {
  DataSource s;
  s.dataset = dataset_flag.empty() ? config.dataset : dataset_flag;
  if (!data_dir_flag.empty())
    s.data_dir = data_dir_flag;
  else if (s.dataset == config.dataset)
    s.data_dir = config.data_dir;  // the folder the encoder was trained from
  return s;
}

data::Dataset load_split(const DataSource& source, const std::string& split, int64_t limit,
                         const ssl::TrainConfig& config, const char* command) {
  SELFSUP_CHECK(split == "train" || split == "test", command, ": unknown split '", split,
                "' (train or test)");
  SELFSUP_CHECK(limit >= 0, command, ": a limit must be >= 0, got ", limit);
  data::Dataset ds = data::load_dataset(source.dataset, split, source.data_dir);
  const int64_t expected = config.method_options.in_channels;
  SELFSUP_CHECK(ds.channels() == expected, command, ": ", ds.name, " has ", ds.channels(),
                "-channel images but the checkpoint's encoder (", config.method_options.model,
                ", trained on ", config.dataset, ") expects ", expected);
  return limit > 0 ? data::first_n(ds, limit) : ds;
}

}  // namespace selfsup::cli
