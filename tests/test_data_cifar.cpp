// ssl/data/cifar: CIFAR-10 and CIFAR-100 binary files written by the test, good and broken.
#include <gtest/gtest.h>

#include <filesystem>

#include "data_test_util.h"
#include "ssl/data/cifar.h"
#include "ssl/data/dataset.h"

using namespace selfsup;
using namespace selfsup::data;
using namespace selfsup::data::testing;

namespace {

constexpr size_t kPixels = 3072;

// `count` records with the given label bytes in front of random pixels.
struct CifarFile {
  std::vector<std::vector<uint8_t>> label_bytes;  // per record
  std::vector<std::vector<uint8_t>> pixels;       // per record, 3072 bytes
  std::vector<uint8_t> bytes() const {
    std::vector<uint8_t> out;
    for (size_t r = 0; r < pixels.size(); ++r) {
      out.insert(out.end(), label_bytes[r].begin(), label_bytes[r].end());
      out.insert(out.end(), pixels[r].begin(), pixels[r].end());
    }
    return out;
  }
};

CifarFile make_cifar10(int count, uint32_t seed) {
  CifarFile f;
  for (int r = 0; r < count; ++r) {
    f.label_bytes.push_back({static_cast<uint8_t>((seed * 7 + r * 3) % 10)});
    f.pixels.push_back(random_bytes(kPixels, seed * 100 + r));
  }
  return f;
}

CifarFile make_cifar100(int count, uint32_t seed) {
  CifarFile f;
  for (int r = 0; r < count; ++r) {
    const uint8_t fine = static_cast<uint8_t>((seed * 31 + r * 17) % 100);
    f.label_bytes.push_back({static_cast<uint8_t>(fine / 5), fine});
    f.pixels.push_back(random_bytes(kPixels, seed * 100 + r));
  }
  return f;
}

// Dataset rows must be the records in order: label from `label_index`, pixel (c, y, x) the
// record's byte c*1024 + y*32 + x.
void expect_records(const Dataset& ds, const std::vector<CifarFile>& files, size_t label_index) {
  int64_t n = 0;
  for (const CifarFile& f : files) {
    for (size_t r = 0; r < f.pixels.size(); ++r, ++n) {
      ASSERT_LT(n, ds.size());
      EXPECT_EQ(ds.label(n), f.label_bytes[r][label_index]) << n;
      const uint8_t* img = ds.images.data_ptr<uint8_t>() + n * kPixels;
      for (int64_t c : {0, 1, 2}) {
        for (int64_t y : {0, 13, 31}) {
          for (int64_t x : {0, 5, 31}) {
            ASSERT_EQ(img[(c * 32 + y) * 32 + x], f.pixels[r][c * 1024 + y * 32 + x]);
          }
        }
      }
      EXPECT_EQ(std::vector<uint8_t>(img, img + kPixels), f.pixels[r]);
    }
  }
  EXPECT_EQ(n, ds.size());
}

void write_cifar10(const std::string& dir, const std::vector<CifarFile>& train,
                   const CifarFile& test) {
  for (size_t b = 0; b < train.size(); ++b) {
    write_file(dir + "/data_batch_" + std::to_string(b + 1) + ".bin", train[b].bytes());
  }
  write_file(dir + "/test_batch.bin", test.bytes());
}

}  // namespace

TEST(Cifar10, ReadsAllBatchesInOrder) {
  TempDir dir;
  std::vector<CifarFile> train;
  for (int b = 0; b < 5; ++b)
    train.push_back(make_cifar10(b % 3 + 1, b + 1));  // 1,2,3,1,2
  CifarFile test = make_cifar10(3, 9);
  write_cifar10(dir.str(), train, test);
  Dataset ds = load_dataset("cifar10", "train", dir.str());
  EXPECT_EQ(ds.images.shape(), (Shape{9, 3, 32, 32}));
  EXPECT_EQ(ds.num_classes, 10);
  EXPECT_EQ(ds.class_names.at(9), "truck");
  expect_records(ds, train, 0);
  Dataset t = load_dataset("cifar10", "test", dir.str());
  EXPECT_EQ(t.size(), 3);
  expect_records(t, {test}, 0);
}

TEST(Cifar10, FindsTheArchiveFolder) {
  TempDir dir;
  std::vector<CifarFile> train(5, make_cifar10(1, 4));
  write_cifar10(dir / "cifar-10-batches-bin", train, make_cifar10(2, 5));
  EXPECT_EQ(load_dataset("cifar10", "test", dir.str()).size(), 2);
  EXPECT_EQ(load_dataset("cifar10", "train", dir.str()).size(), 5);
}

TEST(Cifar10, TruncatedOrPaddedFileNamesFileAndRecordSize) {
  TempDir dir;
  std::vector<CifarFile> train(5, make_cifar10(2, 3));
  write_cifar10(dir.str(), train, make_cifar10(2, 5));
  const std::vector<uint8_t> good = train[2].bytes();
  for (size_t cut : {size_t{1}, size_t{3073 - 1}, size_t{3073 + 5}, good.size() - 1}) {
    write_file(dir / "data_batch_3.bin", {good.begin(), good.begin() + cut});
    expect_error([&] { load_dataset("cifar10", "train", dir.str()); },
                 {dir / "data_batch_3.bin", "3073-byte", "truncated"});
  }
  std::vector<uint8_t> padded = good;
  padded.push_back(0);
  write_file(dir / "data_batch_3.bin", padded);
  expect_error([&] { load_dataset("cifar10", "train", dir.str()); },
               {dir / "data_batch_3.bin", "6147 bytes"});
  write_file(dir / "test_batch.bin", {});
  expect_error([&] { load_dataset("cifar10", "test", dir.str()); },
               {dir / "test_batch.bin", "size 0"});
}

TEST(Cifar10, LabelOutOfRange) {
  TempDir dir;
  CifarFile test = make_cifar10(3, 2);
  test.label_bytes[1][0] = 10;
  write_cifar10(dir.str(), {}, test);
  expect_error([&] { load_dataset("cifar10", "test", dir.str()); },
               {dir / "test_batch.bin", "label 10 of record 1", "[0, 10)"});
}

TEST(Cifar10, MissingFilesAreNamed) {
  TempDir dir;
  expect_error([&] { load_dataset("cifar10", "train", dir.str()); },
               {"cifar10", "data_batch_1.bin", dir.str(), "--data-dir"});
  std::vector<CifarFile> train(3, make_cifar10(1, 1));
  write_cifar10(dir.str(), train, make_cifar10(1, 2));
  expect_error([&] { load_dataset("cifar10", "train", dir.str()); }, {dir / "data_batch_4.bin"});
}

TEST(Cifar100, UsesTheFineLabel) {
  TempDir dir;
  CifarFile train = make_cifar100(7, 1), test = make_cifar100(4, 2);
  write_file(dir / "cifar-100-binary/train.bin", train.bytes());
  write_file(dir / "cifar-100-binary/test.bin", test.bytes());
  Dataset ds = load_dataset("cifar100", "train", dir.str());
  EXPECT_EQ(ds.images.shape(), (Shape{7, 3, 32, 32}));
  EXPECT_EQ(ds.num_classes, 100);
  expect_records(ds, {train}, 1);
  bool fine_differs_from_coarse = false;
  for (int64_t i = 0; i < ds.size(); ++i)
    fine_differs_from_coarse |= ds.label(i) >= 20;
  EXPECT_TRUE(fine_differs_from_coarse);
  expect_records(load_dataset("cifar100", "test", dir.str()), {test}, 1);
}

TEST(Cifar100, BrokenFiles) {
  TempDir dir;
  // A CIFAR-10 file is not a whole number of 3074-byte records.
  write_file(dir / "train.bin", make_cifar10(2, 1).bytes());
  expect_error([&] { load_dataset("cifar100", "train", dir.str()); },
               {dir / "train.bin", "3074-byte"});
  CifarFile bad = make_cifar100(3, 1);
  bad.label_bytes[2][1] = 100;
  write_file(dir / "test.bin", bad.bytes());
  expect_error([&] { load_dataset("cifar100", "test", dir.str()); },
               {dir / "test.bin", "label 100 of record 2", "[0, 100)"});
}
