// IDX, the file format of MNIST and Fashion-MNIST (LeCun et al.). All integers big-endian:
//
//   images: magic 0x00000803 (unsigned bytes, 3 dims), N, H, W (u32 each), then N*H*W pixels
//   labels: magic 0x00000801 (unsigned bytes, 1 dim),  N (u32),            then N label bytes
//
// Files may be raw or gzipped (the Debian package ships them gzipped). The readers check the
// magic number and that the declared dims match the bytes present exactly (a truncated file and
// trailing data are both errors), and every error names the file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "ssl/data/dataset.h"

namespace selfsup::data {

constexpr uint32_t kIdxImagesMagic = 0x00000803;
constexpr uint32_t kIdxLabelsMagic = 0x00000801;

// uint8 [N, 1, H, W] from the bytes of an IDX image file; `path` only names it in errors.
Tensor parse_idx_images(const std::vector<uint8_t>& bytes, const std::string& path);
// int64 [N] from the bytes of an IDX label file.
Tensor parse_idx_labels(const std::vector<uint8_t>& bytes, const std::string& path);

Tensor read_idx_images(const std::string& path);  // raw or gzipped
Tensor read_idx_labels(const std::string& path);

// MNIST-format dataset in `dir`: {train,t10k}-{images-idx3,labels-idx1}-ubyte, each either with
// or without .gz. 10 classes. `name` is "fashion-mnist" or "mnist" (used in messages).
Dataset load_idx_dataset(const std::string& name, const std::string& dir, bool train);

}  // namespace selfsup::data
