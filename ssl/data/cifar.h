// CIFAR-10 and CIFAR-100, binary version (Krizhevsky, 2009). Each file is a flat run of records:
//
//   CIFAR-10:  <label byte> <3072 pixel bytes>               (3073 bytes per record)
//              train = data_batch_1.bin .. data_batch_5.bin, test = test_batch.bin
//   CIFAR-100: <coarse label> <fine label> <3072 pixel bytes> (3074 bytes per record)
//              train = train.bin, test = test.bin; we use the fine (100-class) label
//
// The 3072 pixel bytes are the 32x32 red plane, then green, then blue, rows first: already the
// [C, H, W] layout of a Dataset. A file whose size is not a whole number of records, or a label
// out of range, is an Error naming the file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ssl/data/dataset.h"

namespace selfsup::data {

// Reads records from the given files, in order. label_offset is the byte of the label used
// (0 for CIFAR-10, 1 for CIFAR-100's fine label); header_bytes the label bytes per record.
Dataset read_cifar_files(const std::string& name, const std::vector<std::string>& files,
                         int64_t header_bytes, int64_t label_offset, int64_t num_classes);

// `dir` holds the .bin files directly or in the archive's folder (cifar-10-batches-bin,
// cifar-100-binary) below it.
Dataset load_cifar10(const std::string& dir, bool train);
Dataset load_cifar100(const std::string& dir, bool train);

}  // namespace selfsup::data
