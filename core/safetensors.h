// safetensors: the file format selfsup uses for checkpoints and feature dumps.
//
// Layout (the public format of huggingface/safetensors, readable from Python, Rust, ...):
//   8 bytes   N, the header length: uint64, little-endian
//   N bytes   a UTF-8 JSON object. For each tensor
//               "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}
//             with byte offsets relative to the start of the data section, plus an optional
//             "__metadata__": {"key": "value", ...} whose values are all strings.
//   the rest  the data section: each tensor's elements, row-major, little-endian.
//
// Writing (save_safetensors):
//  - tensors keep the given order, in the header and in the data section, packed back to back
//    with no gaps (stricter readers require that); "__metadata__" comes first and is left out
//    when empty;
//  - the header is padded with spaces so that N, and so the data section, is a multiple of 8;
//  - float32, float64, int64 and uint8 tensors of any strides (views are written contiguously)
//    on any device (copied to the CPU one tensor at a time);
//  - the file is written atomically (core/atomic_file.h): the old file, if any, stays intact
//    until the new one is complete and synced;
//  - duplicate names, the reserved name "__metadata__", undefined tensors and strings that are
//    not valid UTF-8 are refused before the file is touched.
//
// Loading (load_safetensors) trusts nothing in the file: sizes, offsets, dtypes and shapes are
// all checked (with overflow-safe arithmetic) before anything is allocated or read, and every
// problem is a one-line selfsup::Error naming the file and, where there is one, the tensor.
// F32, F64, I64 and U8 load as float32, float64, int64 and uint8. F16 and BF16 are widened to
// float32 (exactly; every half value is a float). Other dtypes (I32, BOOL, F8_*, ...) are refused
// by name. Overlapping byte ranges are refused; gaps between ranges are tolerated. Tensors come
// back in file order (by data offset), contiguous and on the CPU.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace selfsup {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

struct SafetensorsFile {
  NamedTensors tensors;                         // in file order
  std::map<std::string, std::string> metadata;  // "__metadata__", empty when absent

  // The tensor called name, or nullptr.
  const Tensor* find(const std::string& name) const;
};

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {});

SafetensorsFile load_safetensors(const std::string& path);

}  // namespace selfsup
