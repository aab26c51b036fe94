// CIFAR-10 / CIFAR-100 binary readers.
#include "ssl/data/cifar.h"

#include <cstring>
#include <filesystem>

namespace selfsup::data {

namespace {

constexpr int64_t kCifarSide = 32;
constexpr int64_t kCifarPixels = 3 * kCifarSide * kCifarSide;  // 3072

// The folder that holds `first_file`: dir itself or the archive's sub-folder.
std::string locate_cifar_dir(const std::string& name, const std::string& dir,
                             const std::string& archive_folder, const std::string& first_file) {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (const fs::path& d : {fs::path(dir), fs::path(dir) / archive_folder}) {
    if (fs::is_regular_file(d / first_file, ec)) return d.string();
  }
  throw Error(name + ": dataset not found: no " + first_file + " in " + dir + " or " +
              (fs::path(dir) / archive_folder).string() + " (extract the binary version of " +
              name + " there, or pass --data-dir DIR)");
}

}  // namespace

Dataset read_cifar_files(const std::string& name, const std::vector<std::string>& files,
                         int64_t header_bytes, int64_t label_offset, int64_t num_classes) {
  const int64_t record = header_bytes + kCifarPixels;
  std::vector<std::vector<uint8_t>> contents;
  int64_t total = 0;
  for (const std::string& file : files) {
    contents.push_back(read_file_bytes(file));
    const int64_t size = static_cast<int64_t>(contents.back().size());
    SELFSUP_CHECK(size > 0 && size % record == 0, file, ": size ", size,
                  " bytes is not a whole number of ", record, "-byte ", name,
                  " records (truncated or not a ", name, " binary file)");
    total += size / record;
  }
  Tensor images = empty({total, 3, kCifarSide, kCifarSide}, kUInt8);
  Tensor labels = empty({total}, kInt64);
  uint8_t* img = images.data_ptr<uint8_t>();
  int64_t* lab = labels.data_ptr<int64_t>();
  int64_t n = 0;
  for (size_t f = 0; f < files.size(); ++f) {
    const std::vector<uint8_t>& bytes = contents[f];
    for (size_t pos = 0; pos < bytes.size(); pos += record, ++n) {
      lab[n] = bytes[pos + label_offset];
      SELFSUP_CHECK(lab[n] < num_classes, files[f], ": label ", lab[n], " of record ", pos / record,
                    " is outside [0, ", num_classes, ")");
      std::memcpy(img + n * kCifarPixels, bytes.data() + pos + header_bytes, kCifarPixels);
    }
  }
  Dataset ds;
  ds.name = name;
  ds.images = images;
  ds.labels = labels;
  ds.num_classes = num_classes;
  validate_dataset(ds, files.front());
  return ds;
}

Dataset load_cifar10(const std::string& dir, bool train) {
  const std::string first = train ? "data_batch_1.bin" : "test_batch.bin";
  std::string root = locate_cifar_dir("cifar10", dir, "cifar-10-batches-bin", first);
  std::vector<std::string> files;
  if (train) {
    for (int b = 1; b <= 5; ++b) {
      std::string file = root + "/data_batch_" + std::to_string(b) + ".bin";
      SELFSUP_CHECK(std::filesystem::is_regular_file(file), "cifar10: ", file,
                    " is missing (the training set is data_batch_1.bin .. data_batch_5.bin)");
      files.push_back(file);
    }
  } else {
    files.push_back(root + "/" + first);
  }
  Dataset ds = read_cifar_files(train ? "cifar10/train" : "cifar10/test", files, 1, 0, 10);
  ds.class_names = {"airplane", "automobile", "bird",  "cat",  "deer",
                    "dog",      "frog",       "horse", "ship", "truck"};
  return ds;
}

Dataset load_cifar100(const std::string& dir, bool train) {
  const std::string file = train ? "train.bin" : "test.bin";
  std::string root = locate_cifar_dir("cifar100", dir, "cifar-100-binary", file);
  return read_cifar_files(train ? "cifar100/train" : "cifar100/test", {root + "/" + file}, 2, 1,
                          100);
}

}  // namespace selfsup::data
