// IDX readers: header checks, exact size checks, and the MNIST / Fashion-MNIST file layout.
#include "ssl/data/idx.h"

#include <cstdio>
#include <filesystem>

namespace selfsup::data {

namespace {

uint32_t read_be32(const uint8_t* p) {
  return (static_cast<uint32_t>(p[0]) << 24) | (p[1] << 16) | (p[2] << 8) | p[3];
}

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%08X", v);
  return buf;
}

// Checks the magic number and reads `ndims` dims; returns the offset of the data.
size_t parse_idx_header(const std::vector<uint8_t>& bytes, const std::string& path, uint32_t magic,
                        const char* kind, int ndims, uint32_t* dims) {
  const size_t header = 4 + 4 * static_cast<size_t>(ndims);
  SELFSUP_CHECK(bytes.size() >= 4, path, ": truncated IDX file (", bytes.size(),
                " bytes, no magic number)");
  uint32_t got = read_be32(bytes.data());
  SELFSUP_CHECK(got == magic, path, ": wrong IDX magic number ", hex32(got), " (expected ",
                hex32(magic), " for an IDX ", kind, " file)");
  SELFSUP_CHECK(bytes.size() >= header, path, ": truncated IDX header (", bytes.size(),
                " bytes, expected at least ", header, ")");
  for (int d = 0; d < ndims; ++d)
    dims[d] = read_be32(bytes.data() + 4 + 4 * d);
  return header;
}

// The data size must be exactly what the dims declare. Dims are u32, so the product of three
// fits in 96 bits: compare step by step to avoid overflowing 64.
void check_idx_payload(size_t have, const std::string& path, const uint32_t* dims, int ndims,
                       const char* what) {
  unsigned __int128 want = 1;
  for (int d = 0; d < ndims; ++d)
    want *= dims[d];
  std::string declared = std::to_string(dims[0]) + " " + what;
  for (int d = 1; d < ndims; ++d)
    declared += (d == 1 ? " of " : "x") + std::to_string(dims[d]);
  SELFSUP_CHECK(want <= have, path, ": truncated: the header declares ", declared, " (",
                static_cast<uint64_t>(want), " bytes) but only ", have, " bytes follow");
  SELFSUP_CHECK(want == have, path, ": ", have - static_cast<size_t>(want),
                " bytes of trailing data after the ", declared, " the header declares");
}

}  // namespace

Tensor parse_idx_images(const std::vector<uint8_t>& bytes, const std::string& path) {
  uint32_t dims[3];
  size_t header = parse_idx_header(bytes, path, kIdxImagesMagic, "image", 3, dims);
  SELFSUP_CHECK(dims[1] > 0 && dims[2] > 0, path, ": image size ", dims[1], "x", dims[2],
                " declared in the header is empty");
  check_idx_payload(bytes.size() - header, path, dims, 3, "images");
  Tensor images = empty({dims[0], 1, dims[1], dims[2]}, kUInt8);
  std::copy(bytes.begin() + header, bytes.end(), images.data_ptr<uint8_t>());
  return images;
}

Tensor parse_idx_labels(const std::vector<uint8_t>& bytes, const std::string& path) {
  uint32_t n;
  size_t header = parse_idx_header(bytes, path, kIdxLabelsMagic, "label", 1, &n);
  check_idx_payload(bytes.size() - header, path, &n, 1, "labels");
  Tensor labels = empty({n}, kInt64);
  std::copy(bytes.begin() + header, bytes.end(), labels.data_ptr<int64_t>());
  return labels;
}

Tensor read_idx_images(const std::string& path) {
  return parse_idx_images(read_file_bytes(path), path);
}
Tensor read_idx_labels(const std::string& path) {
  return parse_idx_labels(read_file_bytes(path), path);
}

namespace {

std::string install_hint(const std::string& name) {
  if (name == "fashion-mnist") return "install it with: apt-get install dataset-fashion-mnist";
  return "put the " + name + " IDX files (gzipped or raw) there";
}

// dir/stem.gz if present, else dir/stem; a one-line Error when neither exists.
std::string find_idx_file(const std::string& name, const std::string& dir,
                          const std::string& stem) {
  namespace fs = std::filesystem;
  for (const std::string& candidate : {stem + ".gz", stem}) {
    fs::path p = fs::path(dir) / candidate;
    std::error_code ec;
    if (fs::is_regular_file(p, ec)) return p.string();
  }
  throw Error(name + ": dataset not found: no " + stem + "(.gz) in " + dir + " (" +
              install_hint(name) + ", or pass --data-dir DIR)");
}

}  // namespace

Dataset load_idx_dataset(const std::string& name, const std::string& dir, bool train) {
  const std::string prefix = train ? "train" : "t10k";
  std::string images_file = find_idx_file(name, dir, prefix + "-images-idx3-ubyte");
  std::string labels_file = find_idx_file(name, dir, prefix + "-labels-idx1-ubyte");
  Tensor images = read_idx_images(images_file);
  Tensor labels = read_idx_labels(labels_file);
  Dataset ds = make_dataset(name + (train ? "/train" : "/test"), images, labels, 10, images_file,
                            labels_file);
  if (name == "fashion-mnist") {
    ds.class_names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  } else {
    for (int d = 0; d < 10; ++d)
      ds.class_names.push_back(std::to_string(d));
  }
  return ds;
}

}  // namespace selfsup::data
