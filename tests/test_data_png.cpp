// ssl/data/png: the grid layout and the PNG writer, read back with stb_image.
#include <gtest/gtest.h>

#include <cmath>

#include "data_test_util.h"
#include "ssl/data/dataset.h"
#include "ssl/data/png.h"

#define STBI_NO_STDIO
#include <stb_image.h>

using namespace selfsup;
using namespace selfsup::data;
using namespace selfsup::data::testing;

namespace {

Image ramp(int64_t c, int64_t h, int64_t w, float scale = 1.0f) {
  Image img(c, h, w);
  for (size_t k = 0; k < img.data.size(); ++k)
    img.data[k] = scale * (k % 17) / 16.0f;
  return img;
}

}  // namespace

TEST(Grid, LayoutCentresSmallerImagesAndPads) {
  Image big = ramp(1, 5, 4), small = ramp(1, 3, 2);
  std::fill(small.data.begin(), small.data.end(), 0.25f);
  Image grid = make_grid({{big, small}, {small}}, 1, 0.5f);
  // Cells 5x4, pad 1: width 1 + 2 * (4 + 1) = 11, height 1 + 2 * (5 + 1) = 13; grey stays grey.
  ASSERT_EQ(grid.c, 1);
  ASSERT_EQ(grid.h, 13);
  ASSERT_EQ(grid.w, 11);
  EXPECT_EQ(grid.at(0, 0, 0), 0.5f);
  for (int64_t y = 0; y < 5; ++y) {
    for (int64_t x = 0; x < 4; ++x)
      ASSERT_EQ(grid.at(0, 1 + y, 1 + x), big.at(0, y, x));
  }
  // small (3x2) centred in the second cell: offset (1, 1) inside the cell at (1, 6).
  EXPECT_EQ(grid.at(0, 2, 7), 0.25f);
  EXPECT_EQ(grid.at(0, 4, 8), 0.25f);
  EXPECT_EQ(grid.at(0, 1, 7), 0.5f);  // the cell's unused border shows the pad value
  EXPECT_EQ(grid.at(0, 2, 10), 0.5f);
  EXPECT_EQ(grid.at(0, 12, 10), 0.5f);  // the missing second cell of row 2
}

TEST(Grid, GreyBecomesRgbAndNormalisedViewsAreRescaled) {
  Image grey = ramp(1, 2, 2), rgb = ramp(3, 2, 2);
  Image normalised(3, 2, 2);
  for (size_t k = 0; k < normalised.data.size(); ++k)
    normalised.data[k] = -2.0f + k;  // -2..9
  Image grid = make_grid({{grey, rgb, normalised}}, 0);
  ASSERT_EQ(grid.c, 3);
  for (int64_t ch = 0; ch < 3; ++ch)
    EXPECT_EQ(grid.at(ch, 1, 1), grey.at(0, 1, 1));
  EXPECT_EQ(grid.at(2, 1, 3), rgb.at(2, 1, 1));
  EXPECT_FLOAT_EQ(grid.at(0, 0, 4), 0.0f);  // min -> 0
  EXPECT_FLOAT_EQ(grid.at(2, 1, 5), 1.0f);  // max -> 1
  EXPECT_FLOAT_EQ(grid.at(1, 0, 5), 5.0f / 11.0f);
  expect_error([] { make_grid({}); }, {"no images"});
  expect_error([] { make_grid({{Image(2, 3, 3)}}); }, {"1 or 3 channels, got 2"});
}

TEST(WritePng, RoundTripsThroughStbImage) {
  TempDir dir;
  for (int64_t c : {1, 3}) {
    Image img = ramp(c, 7, 5);
    img.data[0] = -0.5f;  // clamped to 0
    img.data[1] = 2.0f;   // clamped to 1
    const std::string path = dir / (c == 1 ? "grey.png" : "rgb.png");
    write_png(path, img);
    EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
    std::vector<uint8_t> bytes = read_file_bytes(path);
    int w = 0, h = 0, comp = 0;
    uint8_t* px =
        stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &comp, 0);
    ASSERT_NE(px, nullptr);
    EXPECT_EQ(w, 5);
    EXPECT_EQ(h, 7);
    EXPECT_EQ(comp, c);
    for (int64_t ch = 0; ch < c; ++ch) {
      for (int64_t y = 0; y < 7; ++y) {
        for (int64_t x = 0; x < 5; ++x) {
          const float v = std::clamp(img.at(ch, y, x), 0.0f, 1.0f);
          ASSERT_EQ(px[(y * 5 + x) * c + ch], std::lround(v * 255.0f));
        }
      }
    }
    stbi_image_free(px);
  }
  expect_error([&] { write_png(dir / "no/such/dir/x.png", ramp(1, 2, 2)); },
               {"cannot write", dir / "no/such/dir/x.png"});
}
