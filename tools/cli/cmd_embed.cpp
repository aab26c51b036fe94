// `selfsup embed`: writes a trained encoder's frozen features of a dataset split to a
// safetensors file, so that any other tool (numpy, scikit-learn, PyTorch) can evaluate them.
//
//   selfsup embed --checkpoint runs/simclr/checkpoint.safetensors --split test
//                 --out feats.safetensors [--dataset fashion-mnist] [--limit 1000]
//
// The file holds
//   features  float32 [N, D]   the encoder's output (eval mode, images in [0, 1])
//   labels    int64 [N]
// and string metadata: selfsup.format = "features-v1", checkpoint, dataset, split, method,
// model, feature_dim, count. Python: safetensors.numpy.load_file("feats.safetensors").
#include <cstdio>
#include <map>
#include <memory>
#include <string>

#include "core/error.h"
#include "core/safetensors.h"
#include "ssl/eval/features.h"
#include "tools/cli/command.h"
#include "tools/cli/eval_common.h"

namespace selfsup::cli {
namespace {

struct EmbedArgs {
  std::string checkpoint;
  std::string dataset;
  std::string split = "test";
  std::string out;
  std::string data_dir;
  int64_t limit = 0;
  int64_t batch_size = 256;
};

std::map<std::string, std::string> metadata(const EmbedArgs& a, const LoadedCheckpoint& c,
                                            const DataSource& source, const Tensor& features) {
  return {{"selfsup.format", "features-v1"},
          {"checkpoint", c.path},
          {"dataset", source.dataset},
          {"split", a.split},
          {"method", c.config.method},
          {"model", c.config.method_options.model},
          {"feature_dim", std::to_string(features.size(1))},
          {"count", std::to_string(features.size(0))}};
}

void run_embed(const EmbedArgs& a) {
  SELFSUP_CHECK(!a.out.empty(), "embed: --out is required (the .safetensors file to write)");
  SELFSUP_CHECK(a.split == "train" || a.split == "test", "embed: unknown split '", a.split,
                "' (train or test)");
  SELFSUP_CHECK(a.batch_size >= 1, "embed: --batch-size must be positive, got ", a.batch_size);
  LoadedCheckpoint c = open_checkpoint(a.checkpoint, "embed");
  DataSource source = resolve_data_source(c.config, a.dataset, a.data_dir);
  data::Dataset ds = load_split(source, a.split, a.limit, c.config, "embed");
  Tensor features = ssl::extract_features(c.method->encoder(), ds, 0, a.batch_size);
  Tensor labels = ssl::first_labels(ds);
  save_safetensors(a.out, {{"features", features}, {"labels", labels}},
                   metadata(a, c, source, features));
  std::printf("wrote %lld x %lld features of %s (%s) to %s\n",
              static_cast<long long>(features.size(0)), static_cast<long long>(features.size(1)),
              ds.name.c_str(), c.config.method.c_str(), a.out.c_str());
}

void setup_embed(CLI::App& sub) {
  auto a = std::make_shared<EmbedArgs>();  // outlives setup: the callback runs at parse time
  sub.add_option("--checkpoint", a->checkpoint, "checkpoint of a `selfsup train` run (required)");
  sub.add_option("--out", a->out, "safetensors file to write (required)");
  sub.add_option("--dataset", a->dataset, "dataset to embed (default: the checkpoint's)");
  sub.add_option("--split", a->split, "train or test")->capture_default_str();
  sub.add_option("--data-dir", a->data_dir, "read the dataset's files from this folder");
  sub.add_option("--limit", a->limit, "embed the first N images (0: all)")->capture_default_str();
  sub.add_option("--batch-size", a->batch_size, "images per forward pass")->capture_default_str();
  sub.callback([a] { run_embed(*a); });
}

const Registrar kRegistrar("embed", "Write an encoder's features of a dataset to safetensors",
                           &setup_embed);

}  // namespace
}  // namespace selfsup::cli
