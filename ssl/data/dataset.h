// Dataset: a labelled image set held in memory, the common type every reader produces.
//
//   images  uint8 [N, C, H, W], contiguous, values 0..255
//   labels  int64 [N], each in [0, num_classes)
//
// load_dataset() is the one entry point the CLI and the trainer use:
//
//   load_dataset("fashion-mnist", "train")           gzipped IDX under the default folder
//   load_dataset("mnist", "test", "/data/mnist")     data_dir replaces the default folder
//   load_dataset("cifar10", "train", dir)            CIFAR-10 binary batches
//   load_dataset("cifar100", "test", dir)            CIFAR-100 binary (fine labels)
//   load_dataset("folder:/photos", "train")          one sub-folder per class
//
// Every failure (missing files, a wrong magic number, a truncated file, a label out of range)
// is a one-line selfsup::Error that names the file and what is wrong.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "ssl/data/image.h"

namespace selfsup::data {

struct Dataset {
  std::string name;  // e.g. "fashion-mnist/train"
  Tensor images;     // uint8 [N, C, H, W], contiguous
  Tensor labels;     // int64 [N]
  int64_t num_classes = 0;
  std::vector<std::string> class_names;  // empty when the format has none

  int64_t size() const { return images.defined() ? images.size(0) : 0; }
  int64_t channels() const { return images.size(1); }
  int64_t height() const { return images.size(2); }
  int64_t width() const { return images.size(3); }
  int64_t label(int64_t i) const { return labels.data_ptr<int64_t>()[i]; }
  // Image i as float32 CHW in [0, 1].
  Image image(int64_t i) const;
};

// Options only image folders need: every image is resized to image_size x image_size and
// converted to `channels` (1 = grey, 3 = RGB).
struct FolderOptions {
  int64_t image_size = 64;
  int64_t channels = 3;
};

// split is "train" or "test". data_dir, when not empty, replaces the dataset's default folder
// (the file names inside stay the same). For "folder:PATH" data_dir is ignored.
Dataset load_dataset(const std::string& name, const std::string& split,
                     const std::string& data_dir = "", const FolderOptions& folder = {});

// The folder load_dataset looks in when data_dir is empty, e.g.
// /usr/share/datasets/fashion-mnist. Empty for names it does not know.
std::string default_data_dir(const std::string& name);

// Checks shapes, dtypes and that every label is in [0, num_classes); `source` names the files
// in the error message. Every reader calls it before returning.
void validate_dataset(const Dataset& ds, const std::string& source);

// The whole content of a file; a gzip file (magic 1f 8b) is decompressed on the way, and its
// truncation, corruption or trailing garbage is an Error naming the file. A decompressed size
// above max_bytes is refused (a "gzip bomb" must not exhaust memory).
std::vector<uint8_t> read_file_bytes(const std::string& path, size_t max_bytes = size_t{1} << 32);

// Builds a Dataset from images and labels read from two files, checking that their counts
// agree and the labels are in range; the errors name the files.
Dataset make_dataset(std::string name, Tensor images, Tensor labels, int64_t num_classes,
                     const std::string& images_file, const std::string& labels_file);

}  // namespace selfsup::data
