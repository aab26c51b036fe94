// ssl/data/idx and the dataset entry point: IDX files (raw and gzipped) and every way they can
// be broken, plus the real Fashion-MNIST test split when the Debian package is installed.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "data_test_util.h"
#include "ssl/data/dataset.h"
#include "ssl/data/idx.h"

using namespace selfsup;
using namespace selfsup::data;
using namespace selfsup::data::testing;

namespace {

void put_be32(std::vector<uint8_t>& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<uint8_t>(v >> shift));
}

std::vector<uint8_t> idx_images(uint32_t n, uint32_t h, uint32_t w,
                                const std::vector<uint8_t>& pixels) {
  std::vector<uint8_t> out;
  put_be32(out, kIdxImagesMagic);
  put_be32(out, n);
  put_be32(out, h);
  put_be32(out, w);
  out.insert(out.end(), pixels.begin(), pixels.end());
  return out;
}

std::vector<uint8_t> idx_labels(const std::vector<uint8_t>& labels) {
  std::vector<uint8_t> out;
  put_be32(out, kIdxLabelsMagic);
  put_be32(out, static_cast<uint32_t>(labels.size()));
  out.insert(out.end(), labels.begin(), labels.end());
  return out;
}

// A small MNIST-format set: 7 images of 5x3 (awkward sizes), labels 0..9.
struct SmallIdx {
  static constexpr uint32_t n = 7, h = 5, w = 3;
  std::vector<uint8_t> pixels = random_bytes(n * h * w, 1);
  std::vector<uint8_t> labels = random_bytes(n, 2, 9);
  std::vector<uint8_t> images_file() const { return idx_images(n, h, w, pixels); }
  std::vector<uint8_t> labels_file() const { return idx_labels(labels); }
};

void expect_matches(const Dataset& ds, const SmallIdx& ref) {
  ASSERT_EQ(ds.images.shape(), (Shape{7, 1, 5, 3}));
  ASSERT_EQ(ds.labels.shape(), (Shape{7}));
  EXPECT_EQ(ds.images.to_vector<uint8_t>(), ref.pixels);
  for (int64_t i = 0; i < 7; ++i)
    EXPECT_EQ(ds.label(i), ref.labels[i]) << i;
  EXPECT_EQ(ds.num_classes, 10);
}

}  // namespace

TEST(Idx, RawAndGzipFilesReadTheSame) {
  TempDir dir;
  SmallIdx ref;
  write_file(dir / "raw.idx", ref.images_file());
  write_file(dir / "img.gz", gzip_bytes(ref.images_file()));
  Tensor raw = read_idx_images(dir / "raw.idx");
  Tensor gz = read_idx_images(dir / "img.gz");
  EXPECT_EQ(raw.shape(), (Shape{7, 1, 5, 3}));
  EXPECT_EQ(raw.dtype(), kUInt8);
  EXPECT_EQ(raw.to_vector<uint8_t>(), ref.pixels);
  EXPECT_EQ(gz.to_vector<uint8_t>(), ref.pixels);
  write_file(dir / "lab.gz", gzip_bytes(ref.labels_file()));
  Tensor labels = read_idx_labels(dir / "lab.gz");
  EXPECT_EQ(labels.dtype(), kInt64);
  std::vector<int64_t> want(ref.labels.begin(), ref.labels.end());
  EXPECT_EQ(labels.to_vector<int64_t>(), want);
}

TEST(Idx, LoadDatasetFindsGzippedAndRawFiles) {
  TempDir dir;
  SmallIdx ref;
  // Training files gzipped, test files raw: both spellings are looked for.
  write_file(dir / "train-images-idx3-ubyte.gz", gzip_bytes(ref.images_file()));
  write_file(dir / "train-labels-idx1-ubyte.gz", gzip_bytes(ref.labels_file()));
  write_file(dir / "t10k-images-idx3-ubyte", ref.images_file());
  write_file(dir / "t10k-labels-idx1-ubyte", ref.labels_file());
  Dataset train = load_dataset("fashion-mnist", "train", dir.str());
  expect_matches(train, ref);
  EXPECT_EQ(train.name, "fashion-mnist/train");
  EXPECT_EQ(train.class_names.size(), 10u);
  Dataset test = load_dataset("mnist", "test", dir.str());
  expect_matches(test, ref);
  EXPECT_EQ(test.name, "mnist/test");
  // Image i as float [0, 1].
  Image img = train.image(4);
  ASSERT_EQ(img.data.size(), 15u);
  for (int k = 0; k < 15; ++k)
    EXPECT_FLOAT_EQ(img.data[k], ref.pixels[4 * 15 + k] / 255.0f);
}

TEST(Idx, WrongMagicNumberNamesFileAndMagic) {
  TempDir dir;
  SmallIdx ref;
  write_file(dir / "a", ref.labels_file());
  expect_error([&] { read_idx_images(dir / "a"); },
               {dir / "a", "wrong IDX magic number 0x00000801", "expected 0x00000803"});
  write_file(dir / "b.gz", gzip_bytes(ref.images_file()));
  expect_error([&] { read_idx_labels(dir / "b.gz"); },
               {dir / "b.gz", "0x00000803", "expected 0x00000801"});
}

TEST(Idx, EveryTruncationIsAnError) {
  TempDir dir;
  SmallIdx ref;
  const std::vector<uint8_t> images = ref.images_file(), labels = ref.labels_file();
  // Cut inside the magic, the dims, and the pixels, down to one byte short.
  for (size_t cut :
       {size_t{0}, size_t{3}, size_t{6}, size_t{15}, size_t{16}, size_t{40}, images.size() - 1}) {
    std::vector<uint8_t> part(images.begin(), images.begin() + cut);
    write_file(dir / "img", part);
    expect_error([&] { read_idx_images(dir / "img"); }, {dir / "img", "truncated"});
    write_file(dir / "img.gz", gzip_bytes(part));
    expect_error([&] { read_idx_images(dir / "img.gz"); }, {dir / "img.gz", "truncated"});
  }
  for (size_t cut : {size_t{2}, size_t{7}, size_t{8}, labels.size() - 1}) {
    write_file(dir / "lab", std::vector<uint8_t>(labels.begin(), labels.begin() + cut));
    expect_error([&] { read_idx_labels(dir / "lab"); }, {dir / "lab", "truncated"});
  }
  // The declared size is named: 7 images of 5x3 = 105 bytes, 104 present.
  write_file(dir / "img", std::vector<uint8_t>(images.begin(), images.end() - 1));
  expect_error([&] { read_idx_images(dir / "img"); }, {"7 images of 5x3", "105", "104"});
}

TEST(Idx, TrailingBytesAreAnError) {
  TempDir dir;
  SmallIdx ref;
  std::vector<uint8_t> images = ref.images_file(), labels = ref.labels_file();
  images.push_back(0);
  labels.insert(labels.end(), {1, 2, 3});
  write_file(dir / "img.gz", gzip_bytes(images));
  expect_error([&] { read_idx_images(dir / "img.gz"); }, {dir / "img.gz", "1 bytes of trailing"});
  write_file(dir / "lab", labels);
  expect_error([&] { read_idx_labels(dir / "lab"); }, {dir / "lab", "3 bytes of trailing"});
}

TEST(Idx, HugeDeclaredDimsDoNotOverflow) {
  TempDir dir;
  write_file(dir / "img", idx_images(0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, {1, 2, 3}));
  expect_error([&] { read_idx_images(dir / "img"); }, {dir / "img", "truncated"});
  write_file(dir / "img", idx_images(2, 0, 4, {}));
  expect_error([&] { read_idx_images(dir / "img"); }, {dir / "img", "empty"});
}

TEST(Idx, CorruptOrTruncatedGzipIsAnError) {
  TempDir dir;
  SmallIdx ref;
  const std::vector<uint8_t> gz = gzip_bytes(ref.images_file());
  // The CRC-32 in the trailer no longer matches the data.
  std::vector<uint8_t> bad_crc = gz;
  bad_crc[gz.size() - 8] ^= 0x55;
  write_file(dir / "crc.gz", bad_crc);
  expect_error([&] { read_idx_images(dir / "crc.gz"); }, {dir / "crc.gz", "corrupt gzip"});
  // An invalid deflate block type (0b11) in the first block header.
  std::vector<uint8_t> bad_block = gz;
  bad_block[10] |= 0x06;
  write_file(dir / "block.gz", bad_block);
  expect_error([&] { read_idx_images(dir / "block.gz"); }, {dir / "block.gz", "corrupt gzip"});
  // Cut inside the compressed data and inside the trailer.
  for (size_t cut : {size_t{12}, gz.size() / 2, gz.size() - 3}) {
    write_file(dir / "cut.gz", std::vector<uint8_t>(gz.begin(), gz.begin() + cut));
    expect_error([&] { read_idx_images(dir / "cut.gz"); }, {dir / "cut.gz", "truncated gzip"});
  }
  // Garbage after the gzip stream.
  std::vector<uint8_t> tail = gz;
  tail.insert(tail.end(), {'j', 'u', 'n', 'k'});
  write_file(dir / "tail.gz", tail);
  expect_error([&] { read_idx_images(dir / "tail.gz"); },
               {dir / "tail.gz", "4 bytes of trailing data after the gzip stream"});
}

TEST(Idx, ConcatenatedGzipMembersAreOneFile) {
  TempDir dir;
  SmallIdx ref;
  const std::vector<uint8_t> file = ref.images_file();
  std::vector<uint8_t> two = gzip_bytes({file.begin(), file.begin() + 20});
  const std::vector<uint8_t> second = gzip_bytes({file.begin() + 20, file.end()});
  two.insert(two.end(), second.begin(), second.end());
  write_file(dir / "two.gz", two);
  EXPECT_EQ(read_idx_images(dir / "two.gz").to_vector<uint8_t>(), ref.pixels);
}

TEST(Idx, DecompressedSizeIsCapped) {
  TempDir dir;
  write_file(dir / "bomb.gz", gzip_bytes(std::vector<uint8_t>(1 << 20, 0)));
  expect_error([&] { read_file_bytes(dir / "bomb.gz", 100000); },
               {dir / "bomb.gz", "more than 100000 bytes"});
  EXPECT_EQ(read_file_bytes(dir / "bomb.gz").size(), size_t{1} << 20);
}

TEST(Idx, LabelOutOfRangeNamesTheLabelsFile) {
  TempDir dir;
  SmallIdx ref;
  ref.labels[5] = 10;
  write_file(dir / "t10k-images-idx3-ubyte.gz", gzip_bytes(ref.images_file()));
  write_file(dir / "t10k-labels-idx1-ubyte.gz", gzip_bytes(ref.labels_file()));
  expect_error([&] { load_dataset("fashion-mnist", "test", dir.str()); },
               {dir / "t10k-labels-idx1-ubyte.gz", "label 10 of sample 5", "[0, 10)"});
}

TEST(Idx, ImageAndLabelCountsMustAgree) {
  TempDir dir;
  SmallIdx ref;
  ref.labels.pop_back();
  write_file(dir / "train-images-idx3-ubyte", ref.images_file());
  write_file(dir / "train-labels-idx1-ubyte", ref.labels_file());
  expect_error([&] { load_dataset("mnist", "train", dir.str()); },
               {dir / "train-images-idx3-ubyte", "has 7 images", dir / "train-labels-idx1-ubyte",
                "has 6 labels"});
}

TEST(Idx, MissingDatasetSaysWhereAndHowToInstall) {
  TempDir dir;
  expect_error([&] { load_dataset("fashion-mnist", "train", dir.str()); },
               {"fashion-mnist", dir.str(), "train-images-idx3-ubyte",
                "apt-get install dataset-fashion-mnist"});
  expect_error([&] { load_dataset("mnist", "test", dir / "nowhere"); },
               {"mnist", dir / "nowhere", "t10k-images-idx3-ubyte", "--data-dir"});
  SmallIdx ref;  // images present, labels missing
  write_file(dir / "train-images-idx3-ubyte", ref.images_file());
  expect_error([&] { load_dataset("mnist", "train", dir.str()); }, {"train-labels-idx1-ubyte"});
  expect_error([&] { load_dataset("imagenet", "train"); }, {"unknown dataset 'imagenet'"});
  expect_error([&] { load_dataset("mnist", "validation"); }, {"unknown split 'validation'"});
  EXPECT_EQ(default_data_dir("fashion-mnist"), "/usr/share/datasets/fashion-mnist");
}

TEST(Idx, RealFashionMnistTestSplit) {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!std::filesystem::exists(dir + "/t10k-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << dir << " not installed (apt-get install dataset-fashion-mnist)";
  }
  Dataset ds = load_dataset("fashion-mnist", "test");
  EXPECT_EQ(ds.images.shape(), (Shape{10000, 1, 28, 28}));
  EXPECT_EQ(ds.num_classes, 10);
  std::vector<int64_t> per_class(10, 0);
  for (int64_t i = 0; i < ds.size(); ++i)
    ++per_class[ds.label(i)];
  EXPECT_EQ(per_class, std::vector<int64_t>(10, 1000));
  // Real pixels: the first image has a black background and bright parts.
  const uint8_t* px = ds.images.data_ptr<uint8_t>();
  EXPECT_EQ(*std::min_element(px, px + 784), 0);
  EXPECT_GT(*std::max_element(px, px + 784), 200);
}

// Random byte flips and cuts of a gzipped IDX file: each read either succeeds or throws
// selfsup::Error naming the file; never a crash or a read past a buffer (see ASan builds).
TEST(Idx, MutatedGzipFilesFailCleanly) {
  TempDir dir;
  SmallIdx ref;
  const std::vector<uint8_t> good = gzip_bytes(ref.images_file());
  std::mt19937 gen(3);
  int failures = 0;
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<uint8_t> bad = good;
    bad[gen() % bad.size()] ^= static_cast<uint8_t>(1 + gen() % 255);
    if (trial % 2 == 0) bad.resize(gen() % bad.size());
    write_file(dir / "m.gz", bad);
    try {
      read_idx_images(dir / "m.gz");
    } catch (const Error& e) {
      ++failures;
      ASSERT_NE(std::string(e.what()).find(dir / "m.gz"), std::string::npos) << e.what();
    }
  }
  EXPECT_GT(failures, 250);
}
