// Dataset: the common checks, whole-file reading with transparent gunzip, and the name -> reader
// dispatch of load_dataset.
#include "ssl/data/dataset.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "ssl/data/cifar.h"
#include "ssl/data/idx.h"
#include "ssl/data/image_folder.h"

namespace selfsup::data {

Image Dataset::image(int64_t i) const {
  SELFSUP_CHECK(i >= 0 && i < size(), "dataset ", name, ": image index ", i, " out of range [0, ",
                size(), ")");
  Image img(channels(), height(), width());
  const uint8_t* src = images.data_ptr<uint8_t>() + i * img.c * img.h * img.w;
  for (size_t k = 0; k < img.data.size(); ++k)
    img.data[k] = src[k] * (1.0f / 255.0f);
  return img;
}

// ---------------------------------------------------------------------------------------------
// Reading files
// ---------------------------------------------------------------------------------------------

namespace {

// Ends the inflate stream however gunzip leaves.
struct InflateGuard {
  z_stream* zs;
  ~InflateGuard() { inflateEnd(zs); }
};

// The first output allocation: the uncompressed size a single-member gzip file declares in its
// last 4 bytes (mod 2^32), but no more than 64x the input, because a cut or corrupt file's last
// bytes are not a size. The output grows by doubling past it.
size_t gzip_size_hint(const std::vector<uint8_t>& in) {
  if (in.size() < 18) return 4096;
  const uint8_t* t = in.data() + in.size() - 4;
  uint32_t isize = t[0] | (t[1] << 8) | (t[2] << 16) | (static_cast<uint32_t>(t[3]) << 24);
  return std::clamp<size_t>(isize, 4096, 64 * in.size() + 4096);
}

bool starts_with_gzip_magic(const uint8_t* p, size_t n) {
  return n >= 2 && p[0] == 0x1f && p[1] == 0x8b;
}

// Decompresses a gzip file held in memory (several concatenated members are allowed, as gzip
// itself allows). zlib's avail_in/avail_out are 32-bit, so input and output go in chunks.
std::vector<uint8_t> gunzip(const std::vector<uint8_t>& in, const std::string& path,
                            size_t max_bytes) {
  constexpr size_t kChunk = size_t{1} << 30;
  z_stream zs{};
  SELFSUP_CHECK(inflateInit2(&zs, 16 + MAX_WBITS) == Z_OK, path, ": cannot start zlib inflate");
  InflateGuard guard{&zs};
  std::vector<uint8_t> out(std::min(gzip_size_hint(in), max_bytes));
  size_t in_pos = 0, produced = 0;
  for (;;) {
    if (zs.avail_in == 0 && in_pos < in.size()) {
      zs.next_in = const_cast<Bytef*>(in.data() + in_pos);
      zs.avail_in = static_cast<uInt>(std::min(in.size() - in_pos, kChunk));
      in_pos += zs.avail_in;
    }
    if (produced == out.size()) {
      SELFSUP_CHECK(out.size() < max_bytes, path, ": decompresses to more than ", max_bytes,
                    " bytes; refusing it");
      out.resize(std::min(out.size() * 2, max_bytes));
    }
    zs.next_out = out.data() + produced;
    zs.avail_out = static_cast<uInt>(std::min(out.size() - produced, kChunk));
    uInt before = zs.avail_out;
    int rc = inflate(&zs, Z_NO_FLUSH);
    produced += before - zs.avail_out;
    size_t input_left = zs.avail_in + (in.size() - in_pos);
    if (rc == Z_STREAM_END) {
      if (input_left == 0) break;
      const uint8_t* rest = in.data() + (in.size() - input_left);
      SELFSUP_CHECK(starts_with_gzip_magic(rest, input_left), path, ": ", input_left,
                    " bytes of trailing data after the gzip stream");
      inflateReset(&zs);
      continue;
    }
    SELFSUP_CHECK(rc != Z_DATA_ERROR, path, ": corrupt gzip data (",
                  zs.msg ? zs.msg : "invalid deflate stream", ")");
    SELFSUP_CHECK(rc == Z_OK || rc == Z_BUF_ERROR, path, ": zlib inflate failed (code ", rc, ")");
    // No progress possible: all input consumed but the stream has not ended.
    SELFSUP_CHECK(!(rc == Z_BUF_ERROR && input_left == 0), path,
                  ": truncated gzip stream (the file ends before the compressed data does)");
  }
  out.resize(produced);
  return out;
}

}  // namespace

std::vector<uint8_t> read_file_bytes(const std::string& path, size_t max_bytes) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  SELFSUP_CHECK(f.is_open(), path, ": cannot open (", std::strerror(errno), ")");
  std::streamoff size = f.tellg();
  SELFSUP_CHECK(size >= 0, path, ": cannot determine the file size");
  SELFSUP_CHECK(static_cast<size_t>(size) <= max_bytes, path, ": ", size,
                " bytes is more than the limit of ", max_bytes);
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  f.seekg(0);
  f.read(reinterpret_cast<char*>(bytes.data()), size);
  SELFSUP_CHECK(f.gcount() == size, path, ": read ", f.gcount(), " of ", size, " bytes");
  if (starts_with_gzip_magic(bytes.data(), bytes.size())) return gunzip(bytes, path, max_bytes);
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------------

void validate_dataset(const Dataset& ds, const std::string& source) {
  SELFSUP_CHECK(ds.images.defined() && ds.labels.defined(), source, ": no images or labels");
  SELFSUP_CHECK(ds.images.dtype() == kUInt8 && ds.images.dim() == 4 && ds.images.is_contiguous(),
                source, ": images must be contiguous uint8 [N, C, H, W], got ",
                dtype_name(ds.images.dtype()), " ", shape_str(ds.images.shape()));
  SELFSUP_CHECK(ds.size() > 0, source, ": the dataset has no images");
  SELFSUP_CHECK(ds.labels.dtype() == kInt64 && ds.labels.dim() == 1 && ds.labels.is_contiguous(),
                source, ": labels must be contiguous int64 [N], got ",
                dtype_name(ds.labels.dtype()), " ", shape_str(ds.labels.shape()));
  SELFSUP_CHECK(ds.labels.size(0) == ds.size(), source, ": ", ds.size(), " images but ",
                ds.labels.size(0), " labels");
  SELFSUP_CHECK(ds.num_classes > 0, source, ": num_classes must be positive, got ", ds.num_classes);
  const int64_t* lab = ds.labels.data_ptr<int64_t>();
  for (int64_t i = 0; i < ds.size(); ++i) {
    SELFSUP_CHECK(lab[i] >= 0 && lab[i] < ds.num_classes, source, ": label ", lab[i], " of sample ",
                  i, " is outside [0, ", ds.num_classes, ")");
  }
}

Dataset make_dataset(std::string name, Tensor images, Tensor labels, int64_t num_classes,
                     const std::string& images_file, const std::string& labels_file) {
  SELFSUP_CHECK(images.size(0) == labels.size(0), name, ": ", images_file, " has ", images.size(0),
                " images but ", labels_file, " has ", labels.size(0), " labels");
  Dataset ds;
  ds.name = std::move(name);
  ds.images = std::move(images);
  ds.labels = std::move(labels);
  ds.num_classes = num_classes;
  validate_dataset(ds, labels_file);
  return ds;
}

// ---------------------------------------------------------------------------------------------
// load_dataset
// ---------------------------------------------------------------------------------------------

std::string default_data_dir(const std::string& name) {
  if (name == "fashion-mnist" || name == "mnist" || name == "cifar10" || name == "cifar100") {
    return "/usr/share/datasets/" + name;
  }
  return "";
}

Dataset load_dataset(const std::string& name, const std::string& split, const std::string& data_dir,
                     const FolderOptions& folder) {
  SELFSUP_CHECK(split == "train" || split == "test", "load_dataset: unknown split '", split,
                "' (expected train or test)");
  const bool train = split == "train";
  const std::string dir = data_dir.empty() ? default_data_dir(name) : data_dir;
  if (name == "fashion-mnist" || name == "mnist") return load_idx_dataset(name, dir, train);
  if (name == "cifar10") return load_cifar10(dir, train);
  if (name == "cifar100") return load_cifar100(dir, train);
  if (name.rfind("folder:", 0) == 0) return load_image_folder(name.substr(7), split, folder);
  throw Error("load_dataset: unknown dataset '" + name +
              "' (known: fashion-mnist, mnist, cifar10, cifar100, folder:PATH)");
}

}  // namespace selfsup::data
