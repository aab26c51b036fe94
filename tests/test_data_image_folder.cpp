// ssl/data/image_folder: class folders of PNG/BMP/JPEG files written with stb_image_write, broken
// and oversize files, and the resize filter against a naive reference.
#include <gtest/gtest.h>

#include <cmath>

#include "data_test_util.h"
#include "ssl/data/dataset.h"
#include "ssl/data/image_folder.h"

#define STBI_NO_STDIO
#include <stb_image.h>
#include <stb_image_write.h>

using namespace selfsup;
using namespace selfsup::data;
using namespace selfsup::data::testing;

namespace {

// An interleaved [h, w, c] image.
struct Hwc {
  int h, w, c;
  std::vector<uint8_t> px;
  uint8_t at(int y, int x, int ch) const { return px[(y * w + x) * c + ch]; }
};

Hwc random_hwc(int h, int w, int c, uint32_t seed) {
  return {h, w, c, random_bytes(static_cast<size_t>(h * w * c), seed)};
}

// Smooth content survives JPEG's loss well enough to compare within a small tolerance.
Hwc gradient_hwc(int h, int w) {
  Hwc img{h, w, 3, std::vector<uint8_t>(static_cast<size_t>(h * w * 3))};
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      img.px[(y * w + x) * 3 + 0] = static_cast<uint8_t>(40 + 10 * x);
      img.px[(y * w + x) * 3 + 1] = static_cast<uint8_t>(60 + 8 * y);
      img.px[(y * w + x) * 3 + 2] = 128;
    }
  }
  return img;
}

void write_png_file(const std::string& path, const Hwc& img) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  ASSERT_TRUE(stbi_write_png(path.c_str(), img.w, img.h, img.c, img.px.data(), img.w * img.c));
}
void write_bmp_file(const std::string& path, const Hwc& img) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  ASSERT_TRUE(stbi_write_bmp(path.c_str(), img.w, img.h, img.c, img.px.data()));
}
void write_jpg_file(const std::string& path, const Hwc& img) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  ASSERT_TRUE(stbi_write_jpg(path.c_str(), img.w, img.h, img.c, img.px.data(), 100));
}

// Pixel (ch, y, x) of sample i of a dataset.
int pixel(const Dataset& ds, int64_t i, int64_t ch, int64_t y, int64_t x) {
  const int64_t c = ds.channels(), s = ds.height();
  return ds.images.data_ptr<uint8_t>()[((i * c + ch) * s + y) * s + x];
}

// Naive 2-d triangle filter, straight from the definition: weight of source pixel (i, j) for
// output (y, x) is tri((i + 0.5 - cy) / ry) * tri((j + 0.5 - cx) / rx), cy = (y + 0.5) * h / oh,
// ry = max(h / oh, 1); weights normalised over the pixels inside the image.
std::vector<double> naive_resize(const Hwc& src, int oh, int ow) {
  auto tri = [](double t) { return std::max(0.0, 1.0 - std::abs(t)); };
  const double sy = double(src.h) / oh, sx = double(src.w) / ow;
  const double ry = std::max(sy, 1.0), rx = std::max(sx, 1.0);
  std::vector<double> out(static_cast<size_t>(src.c * oh * ow));
  for (int ch = 0; ch < src.c; ++ch) {
    for (int y = 0; y < oh; ++y) {
      for (int x = 0; x < ow; ++x) {
        double acc = 0, total = 0;
        for (int i = 0; i < src.h; ++i) {
          for (int j = 0; j < src.w; ++j) {
            double w = tri((i + 0.5 - (y + 0.5) * sy) / ry) * tri((j + 0.5 - (x + 0.5) * sx) / rx);
            acc += w * src.at(i, j, ch);
            total += w;
          }
        }
        out[(ch * oh + y) * ow + x] = acc / total;
      }
    }
  }
  return out;
}

void expect_resize_matches_naive(const Hwc& src, int oh, int ow) {
  std::vector<uint8_t> got(static_cast<size_t>(src.c * oh * ow), 0xAB);  // poisoned
  resize_bilinear(src.px.data(), src.h, src.w, src.c, got.data(), oh, ow);
  const std::vector<double> want = naive_resize(src, oh, ow);
  for (size_t k = 0; k < got.size(); ++k) {
    ASSERT_NEAR(got[k], want[k], 0.51)
        << src.h << "x" << src.w << " -> " << oh << "x" << ow << " at " << k;
  }
}

}  // namespace

TEST(Resize, HandComputedValues) {
  uint8_t up[4], down[2];
  const uint8_t two[2] = {0, 100}, four[4] = {0, 40, 80, 120};
  resize_bilinear(two, 1, 2, 1, up, 1, 4);  // bilinear between centres, edges clamped
  EXPECT_EQ(std::vector<int>(up, up + 4), (std::vector<int>{0, 25, 75, 100}));
  resize_bilinear(four, 1, 4, 1, down, 1, 2);  // triangle of radius 2: weights .75 .75 .25
  EXPECT_EQ(std::vector<int>(down, down + 2), (std::vector<int>{29, 91}));
}

TEST(Resize, SameSizeIsExactAndPlanar) {
  Hwc src = random_hwc(7, 5, 3, 3);
  std::vector<uint8_t> out(7 * 5 * 3, 0);
  resize_bilinear(src.px.data(), 7, 5, 3, out.data(), 7, 5);
  for (int ch = 0; ch < 3; ++ch) {
    for (int y = 0; y < 7; ++y) {
      for (int x = 0; x < 5; ++x)
        ASSERT_EQ(out[(ch * 7 + y) * 5 + x], src.at(y, x, ch));
    }
  }
}

TEST(Resize, MatchesNaiveTriangleFilter) {
  expect_resize_matches_naive(random_hwc(5, 7, 3, 1), 13, 11);   // enlarge
  expect_resize_matches_naive(random_hwc(37, 29, 3, 2), 8, 10);  // shrink
  expect_resize_matches_naive(random_hwc(9, 23, 1, 4), 17, 5);   // one of each
  expect_resize_matches_naive(random_hwc(3, 3, 1, 5), 1, 1);
}

TEST(Resize, ConstantStaysConstant) {
  Hwc src{31, 19, 1, std::vector<uint8_t>(31 * 19, 77)};
  std::vector<uint8_t> out(11 * 43);
  resize_bilinear(src.px.data(), 31, 19, 1, out.data(), 11, 43);
  for (uint8_t v : out)
    ASSERT_EQ(v, 77);
  EXPECT_THROW(resize_bilinear(src.px.data(), 31, 19, 1, out.data(), 0, 43), Error);
}

TEST(ImageFolder, ReadsPngBmpJpegWithSortedClasses) {
  TempDir dir;
  Hwc a = random_hwc(6, 6, 3, 1), b = random_hwc(6, 6, 1, 2), c = gradient_hwc(6, 6);
  Hwc d = random_hwc(6, 6, 3, 4), e = random_hwc(6, 6, 3, 5);
  write_png_file(dir / "photos/train/cat/a.png", a);
  write_bmp_file(dir / "photos/train/cat/B.BMP", b);
  write_jpg_file(dir / "photos/train/dog/c.jpeg", c);
  write_file(dir / "photos/train/dog/notes.txt", {'h', 'i'});  // not an image: skipped
  write_file(dir / "photos/train/dog/.hidden.png", {'x'});     // hidden: skipped
  write_png_file(dir / "photos/train/zebra/d.png", d);
  write_png_file(dir / "photos/test/dog/e.png", e);
  FolderOptions opts{6, 3};
  Dataset ds = load_dataset("folder:" + dir / "photos", "train", "", opts);
  ASSERT_EQ(ds.images.shape(), (Shape{4, 3, 6, 6}));
  EXPECT_EQ(ds.class_names, (std::vector<std::string>{"cat", "dog", "zebra"}));
  EXPECT_EQ(ds.num_classes, 3);
  EXPECT_EQ(ds.labels.to_vector<int64_t>(), (std::vector<int64_t>{0, 0, 1, 2}));
  int jpeg_err = 0;
  for (int ch = 0; ch < 3; ++ch) {
    for (int y = 0; y < 6; ++y) {
      for (int x = 0; x < 6; ++x) {
        // Sorted names: "B.BMP" < "a.png", so the grey BMP comes first (repeated over RGB).
        ASSERT_EQ(pixel(ds, 0, ch, y, x), b.at(y, x, 0));
        ASSERT_EQ(pixel(ds, 1, ch, y, x), a.at(y, x, ch));
        ASSERT_EQ(pixel(ds, 3, ch, y, x), d.at(y, x, ch));
        jpeg_err = std::max(jpeg_err, std::abs(pixel(ds, 2, ch, y, x) - c.at(y, x, ch)));
      }
    }
  }
  EXPECT_LE(jpeg_err, 6);
  // The test split takes its class ids from train: dog is 1 though it is test's only class.
  Dataset test = load_dataset("folder:" + dir / "photos", "test", "", opts);
  EXPECT_EQ(test.labels.to_vector<int64_t>(), (std::vector<int64_t>{1}));
  EXPECT_EQ(test.name, "folder:" + dir / "photos" + "/test");
}

TEST(ImageFolder, ConvertsChannelsAndResizes) {
  TempDir dir;
  Hwc a = random_hwc(9, 7, 3, 1);
  write_png_file(dir / "x/a.png", a);
  // No train/ folder: the root holds the classes. Grey is stb's luma (77 r + 150 g + 29 b) / 256.
  Dataset grey = load_dataset("folder:" + dir.str(), "train", "", {7, 1});
  ASSERT_EQ(grey.images.shape(), (Shape{1, 1, 7, 7}));
  Hwc luma{9, 7, 1, {}};
  for (int y = 0; y < 9; ++y) {
    for (int x = 0; x < 7; ++x) {
      luma.px.push_back(static_cast<uint8_t>(
          (a.at(y, x, 0) * 77 + a.at(y, x, 1) * 150 + a.at(y, x, 2) * 29) >> 8));
    }
  }
  std::vector<double> want = naive_resize(luma, 7, 7);
  for (int k = 0; k < 49; ++k) {
    ASSERT_NEAR(grey.images.data_ptr<uint8_t>()[k], want[k], 0.51) << k;
  }
  Dataset rgb = load_dataset("folder:" + dir.str(), "train", "", {4, 3});
  want = naive_resize(a, 4, 4);
  for (int k = 0; k < 48; ++k)
    ASSERT_NEAR(rgb.images.data_ptr<uint8_t>()[k], want[k], 0.51);
}

TEST(ImageFolder, NonImageFileWithImageNameIsNamed) {
  TempDir dir;
  write_png_file(dir / "r/train/a/ok.png", random_hwc(4, 4, 3, 1));
  write_file(dir / "r/train/a/text.png", {'n', 'o', 't', ' ', 'p', 'n', 'g'});
  expect_error([&] { load_dataset("folder:" + dir / "r", "train"); },
               {dir / "r/train/a/text.png", "not a readable PNG, JPEG or BMP image"});
}

TEST(ImageFolder, TruncatedImageIsNamed) {
  TempDir dir;
  write_png_file(dir / "full.png", random_hwc(40, 40, 3, 1));
  std::vector<uint8_t> bytes = read_file_bytes(dir / "full.png");
  bytes.resize(bytes.size() / 2);
  write_file(dir / "r/a/cut.png", bytes);
  expect_error([&] { load_dataset("folder:" + dir / "r", "train"); },
               {dir / "r/a/cut.png", "cannot decode"});
}

TEST(ImageFolder, OversizeHeadersAreRefusedBeforeDecoding) {
  TempDir dir;
  // A PNG signature and an IHDR chunk declaring 100000 x 100000 RGB pixels, nothing else.
  std::vector<uint8_t> png = {0x89, 'P',  'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A, 0,    0, 0,
                              13,   'I',  'H', 'D', 'R',  0x00, 0x01, 0x86, 0xA0, 0, 1,
                              0x86, 0xA0, 8,   2,   0,    0,    0,    0,    0,    0, 0};
  write_file(dir / "p/a/big.png", png);
  expect_error([&] { load_dataset("folder:" + dir / "p", "train"); }, {dir / "p/a/big.png"});
  // A BMP header declaring 20000 x 20000 24-bit pixels (stb's BMP header parser does not check
  // the size; the loader's own check must).
  std::vector<uint8_t> bmp(54, 0);
  auto le32 = [&](size_t at, uint32_t v) {
    for (int k = 0; k < 4; ++k)
      bmp[at + k] = static_cast<uint8_t>(v >> (8 * k));
  };
  bmp[0] = 'B';
  bmp[1] = 'M';
  le32(2, 54);
  le32(10, 54);
  le32(14, 40);
  le32(18, 20000);
  le32(22, 20000);
  bmp[26] = 1;
  bmp[28] = 24;
  write_file(dir / "b/a/big.bmp", bmp);
  expect_error([&] { load_dataset("folder:" + dir / "b", "train"); },
               {dir / "b/a/big.bmp", "20000x20000", "limit"});
}

// stb_image 2.27 writes past its Huffman arrays for a table of more than 256 codes; the
// reader must refuse such a JPEG before stb decodes it.
TEST(ImageFolder, JpegHuffmanTableWithTooManyCodesIsRefused) {
  TempDir dir;
  write_jpg_file(dir / "good.jpg", gradient_hwc(8, 8));
  std::vector<uint8_t> bytes = read_file_bytes(dir / "good.jpg");
  size_t dht = 0;
  while (dht + 1 < bytes.size() && !(bytes[dht] == 0xFF && bytes[dht + 1] == 0xC4))
    ++dht;
  ASSERT_LT(dht + 21, bytes.size());
  for (int i = 0; i < 16; ++i)
    bytes[dht + 5 + i] = 20;  // 320 codes in the first table
  write_file(dir / "r/a/bad.jpg", bytes);
  expect_error([&] { load_dataset("folder:" + dir / "r", "train"); },
               {dir / "r/a/bad.jpg", "corrupt JPEG", "320 codes"});
}

TEST(ImageFolder, LayoutErrors) {
  TempDir dir;
  expect_error([&] { load_dataset("folder:" + dir / "none", "train"); }, {"not a directory"});
  std::filesystem::create_directories(dir / "empty/train/a");
  expect_error([&] { load_dataset("folder:" + dir / "empty", "train"); },
               {"no PNG, JPEG or BMP files"});
  write_png_file(dir / "r/train/a/x.png", random_hwc(4, 4, 3, 1));
  expect_error([&] { load_dataset("folder:" + dir / "r", "test"); }, {"no test/ or val/"});
  write_png_file(dir / "r/val/q/x.png", random_hwc(4, 4, 3, 1));
  expect_error([&] { load_dataset("folder:" + dir / "r", "test"); },
               {"class folder", "val/q", "no counterpart"});
  expect_error(
      [&] {
        load_dataset("folder:" + dir / "r", "train", "", {8, 2});
      },
      {"channels must be 1 or 3"});
}

// Random byte flips and cuts of valid files: each decode either succeeds or throws
// selfsup::Error; never a crash or a read past a buffer (run under ASan to see the latter).
TEST(ImageFolder, MutatedFilesFailCleanly) {
  TempDir dir;
  write_png_file(dir / "a.png", random_hwc(12, 9, 3, 1));
  write_bmp_file(dir / "a.bmp", random_hwc(12, 9, 3, 2));
  write_jpg_file(dir / "a.jpg", gradient_hwc(12, 9));
  std::mt19937 gen(7);
  int failures = 0, total = 0;
  for (const char* name : {"a.png", "a.bmp", "a.jpg"}) {
    const std::vector<uint8_t> good = read_file_bytes(dir / name);
    for (int trial = 0; trial < 150; ++trial) {
      std::vector<uint8_t> bad = good;
      const int flips = 1 + static_cast<int>(gen() % 4);
      for (int f = 0; f < flips; ++f)
        bad[gen() % bad.size()] ^= static_cast<uint8_t>(1 + gen() % 255);
      if (trial % 3 == 0) bad.resize(gen() % bad.size());
      write_file(dir / (std::string("m/") + name), bad);
      std::vector<uint8_t> out(3 * 8 * 8);
      ++total;
      try {
        decode_image_file(dir / (std::string("m/") + name), 3, 8, out.data());
      } catch (const Error& e) {
        ++failures;
        ASSERT_NE(std::string(e.what()).find(dir / (std::string("m/") + name)), std::string::npos)
            << e.what();
      }
    }
  }
  EXPECT_GT(failures, total / 10);  // the mutations do break files
}
