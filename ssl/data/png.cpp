// The PNG grid writer (stb_image_write's implementation is compiled in stb_impl.cpp).
#include "ssl/data/png.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include <stb_image_write.h>

#include "core/error.h"

namespace selfsup::data {

namespace {

// The image in [0, 1]: unchanged when it already is, else rescaled by its own min and max.
Image display_range(const Image& img) {
  if (img.data.empty()) return img;
  auto [lo, hi] = std::minmax_element(img.data.begin(), img.data.end());
  if (*lo >= 0.0f && *hi <= 1.0f) return img;
  Image out = img;
  const float span = *hi - *lo > 0.0f ? *hi - *lo : 1.0f;
  for (float& v : out.data)
    v = (v - *lo) / span;
  return out;
}

// Copies img into canvas with its top-left corner at (y0, x0); grey is repeated over RGB.
void paste(const Image& img, int64_t y0, int64_t x0, Image& canvas) {
  for (int64_t ch = 0; ch < canvas.c; ++ch) {
    const int64_t src_ch = img.c == 1 ? 0 : ch;
    for (int64_t y = 0; y < img.h; ++y) {
      for (int64_t x = 0; x < img.w; ++x)
        canvas.at(ch, y0 + y, x0 + x) = img.at(src_ch, y, x);
    }
  }
}

}  // namespace

Image make_grid(const std::vector<std::vector<Image>>& rows, int64_t pad, float pad_value) {
  SELFSUP_CHECK(pad >= 0, "make_grid: negative padding ", pad);
  int64_t cell_h = 0, cell_w = 0, cols = 0, channels = 1;
  for (const auto& row : rows) {
    cols = std::max<int64_t>(cols, static_cast<int64_t>(row.size()));
    for (const Image& img : row) {
      SELFSUP_CHECK(img.c == 1 || img.c == 3, "make_grid: images must have 1 or 3 channels, got ",
                    img.c);
      cell_h = std::max(cell_h, img.h);
      cell_w = std::max(cell_w, img.w);
      channels = std::max(channels, img.c);
    }
  }
  SELFSUP_CHECK(cols > 0 && cell_h > 0 && cell_w > 0, "make_grid: no images to lay out");
  const int64_t n_rows = static_cast<int64_t>(rows.size());
  Image canvas(channels, pad + n_rows * (cell_h + pad), pad + cols * (cell_w + pad), pad_value);
  for (int64_t r = 0; r < n_rows; ++r) {
    for (size_t col = 0; col < rows[r].size(); ++col) {
      const Image& img = rows[r][col];
      const int64_t y0 = pad + r * (cell_h + pad) + (cell_h - img.h) / 2;
      const int64_t x0 = pad + static_cast<int64_t>(col) * (cell_w + pad) + (cell_w - img.w) / 2;
      paste(display_range(img), y0, x0, canvas);
    }
  }
  return canvas;
}

void write_png(const std::string& path, const Image& img) {
  SELFSUP_CHECK(img.c == 1 || img.c == 3, "write_png: ", path, ": images must have 1 or 3 ",
                "channels, got ", img.c);
  SELFSUP_CHECK(img.h > 0 && img.w > 0 && img.h <= (1 << 20) && img.w <= (1 << 20),
                "write_png: ", path, ": bad image size ", img.h, "x", img.w);
  // stb wants interleaved [h, w, c] bytes.
  std::vector<uint8_t> pixels(static_cast<size_t>(img.h * img.w * img.c));
  for (int64_t y = 0; y < img.h; ++y) {
    for (int64_t x = 0; x < img.w; ++x) {
      for (int64_t ch = 0; ch < img.c; ++ch) {
        const float v = std::clamp(img.at(ch, y, x), 0.0f, 1.0f);
        pixels[(y * img.w + x) * img.c + ch] = static_cast<uint8_t>(std::lround(v * 255.0f));
      }
    }
  }
  const std::string tmp = path + ".tmp";
  const int ok =
      stbi_write_png(tmp.c_str(), static_cast<int>(img.w), static_cast<int>(img.h),
                     static_cast<int>(img.c), pixels.data(), static_cast<int>(img.w * img.c));
  SELFSUP_CHECK(ok, "write_png: cannot write ", path);
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) std::remove(tmp.c_str());
  SELFSUP_CHECK(!ec, "write_png: cannot move ", tmp, " to ", path, " (", ec.message(), ")");
}

}  // namespace selfsup::data
