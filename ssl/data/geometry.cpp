// Geometric augmentations: resampling (crop + resize), centre crop, flip, 90-degree rotations,
// and their Transform factories.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "ssl/data/transform_util.h"
#include "ssl/data/transforms.h"

namespace selfsup::data {

using detail::check_image;
using detail::pixel_ptr;

// =============================================================================================
// Resampling
// =============================================================================================
namespace {

// The filter taps of one axis, the same number for every output sample: output o reads input
// samples first[o] .. first[o] + taps - 1 with weights weight[t * out_len + o], which sum to 1
// (unused taps weigh 0). Tap-major weights let the passes run one tap over a whole row at a
// time: independent multiply-adds instead of a short dependent chain per output.
struct AxisTaps {
  std::vector<int64_t> first;
  std::vector<float> weight;
  int64_t taps = 0;
};

// Triangle filter from input samples [in_start, in_start + in_len) to out_len samples, pixel
// centres aligned. Its half-width is max(1, scale) input pixels: 1 is bilinear interpolation,
// a wider one when shrinking averages every input pixel (no aliasing). Near the edges only
// in-range taps are used and renormalised, which equals clamping the coordinate when upsampling.
AxisTaps triangle_taps(int64_t in_start, int64_t in_len, int64_t out_len) {
  const double scale = static_cast<double>(in_len) / static_cast<double>(out_len);
  const double support = std::max(scale, 1.0);
  // Input x (centre x + 0.5) has a positive weight when |x + 0.5 - centre| < support.
  auto lo_of = [&](double center) {
    return std::max<int64_t>(0, static_cast<int64_t>(std::floor(center - support - 0.5)) + 1);
  };
  auto hi_of = [&](double center) {
    return std::min<int64_t>(in_len, static_cast<int64_t>(std::ceil(center + support - 0.5)));
  };
  auto center_of = [&](int64_t o) { return (static_cast<double>(o) + 0.5) * scale; };
  AxisTaps taps;
  for (int64_t o = 0; o < out_len; ++o)
    taps.taps = std::max(taps.taps, hi_of(center_of(o)) - lo_of(center_of(o)));
  taps.first.resize(static_cast<size_t>(out_len));
  taps.weight.assign(static_cast<size_t>(out_len * taps.taps), 0.0f);
  for (int64_t o = 0; o < out_len; ++o) {
    const double center = center_of(o);
    const int64_t lo = lo_of(center), hi = hi_of(center);
    // Slide the window left where it would run past the end; the extra taps weigh 0.
    const int64_t first = std::min(lo, in_len - taps.taps);
    double total = 0.0;
    for (int64_t x = lo; x < hi; ++x)
      total += 1.0 - std::abs(static_cast<double>(x) + 0.5 - center) / support;
    for (int64_t x = lo; x < hi; ++x)
      taps.weight[static_cast<size_t>((x - first) * out_len + o)] = static_cast<float>(
          (1.0 - std::abs(static_cast<double>(x) + 0.5 - center) / support) / total);
    taps.first[static_cast<size_t>(o)] = in_start + first;
  }
  return taps;
}

void check_box(const char* op, const Image& img, const CropBox& box) {
  SELFSUP_CHECK(box.height > 0 && box.width > 0 && box.top >= 0 && box.left >= 0 &&
                    box.top + box.height <= img.h && box.left + box.width <= img.w,
                op, ": crop box (top ", box.top, ", left ", box.left, ", height ", box.height,
                ", width ", box.width, ") does not fit the image [", img.c, ", ", img.h, ", ",
                img.w, "]");
}

}  // namespace

Image crop_resize(const Image& img, const CropBox& box, int64_t out_h, int64_t out_w) {
  check_image("crop_resize", img);
  check_box("crop_resize", img, box);
  SELFSUP_CHECK(out_h > 0 && out_w > 0, "crop_resize: output size ", out_h, "x", out_w,
                " must be positive");
  if (box.top == 0 && box.left == 0 && box.height == img.h && box.width == img.w &&
      out_h == img.h && out_w == img.w)
    return img;

  const AxisTaps tx = triangle_taps(box.left, box.width, out_w);
  const AxisTaps ty = triangle_taps(box.top, box.height, out_h);
  // Horizontal pass over the box's rows, then vertical pass over whole rows (vectorises over x).
  Image rows(img.c, box.height, out_w, 0.0f);  // [c, box.height, out_w]
  for (int64_t ch = 0; ch < img.c; ++ch) {
    for (int64_t y = 0; y < box.height; ++y) {
      const float* src = pixel_ptr(img, ch, box.top + y, 0);
      float* dst = pixel_ptr(rows, ch, y, 0);
      for (int64_t t = 0; t < tx.taps; ++t) {
        const float* w = &tx.weight[static_cast<size_t>(t * out_w)];
        const int64_t* first = tx.first.data();
        for (int64_t ox = 0; ox < out_w; ++ox)
          dst[ox] += w[ox] * src[first[ox] + t];
      }
    }
  }
  Image out(img.c, out_h, out_w, 0.0f);  // [c, out_h, out_w]
  for (int64_t ch = 0; ch < img.c; ++ch) {
    for (int64_t oy = 0; oy < out_h; ++oy) {
      float* dst = pixel_ptr(out, ch, oy, 0);
      const int64_t y0 = ty.first[static_cast<size_t>(oy)] - box.top;
      for (int64_t t = 0; t < ty.taps; ++t) {
        const float* src = pixel_ptr(rows, ch, y0 + t, 0);
        const float w = ty.weight[static_cast<size_t>(t * out_h + oy)];
        for (int64_t ox = 0; ox < out_w; ++ox)
          dst[ox] += w * src[ox];
      }
    }
  }
  return out;
}

Image resize(const Image& img, int64_t out_h, int64_t out_w) {
  return crop_resize(img, CropBox{0, 0, img.h, img.w}, out_h, out_w);
}

// =============================================================================================
// Crops, flips, rotations
// =============================================================================================
namespace {

// torchvision's offset of a centred window along one axis: round-half-even of the margin / 2
// when the window fits, minus the (floored) top padding when it does not.
int64_t center_offset(int64_t in_len, int64_t out_len) {
  if (out_len <= in_len)
    return static_cast<int64_t>(std::nearbyint(static_cast<double>(in_len - out_len) / 2.0));
  return -((out_len - in_len) / 2);
}

}  // namespace

Image center_crop(const Image& img, int64_t out_h, int64_t out_w) {
  check_image("center_crop", img);
  SELFSUP_CHECK(out_h > 0 && out_w > 0, "center_crop: output size ", out_h, "x", out_w,
                " must be positive");
  const int64_t top = center_offset(img.h, out_h), left = center_offset(img.w, out_w);
  Image out(img.c, out_h, out_w, 0.0f);
  const int64_t x0 = std::max<int64_t>(0, -left), x1 = std::min(out_w, img.w - left);
  for (int64_t ch = 0; ch < img.c; ++ch) {
    for (int64_t y = 0; y < out_h; ++y) {
      const int64_t sy = y + top;
      if (sy < 0 || sy >= img.h || x1 <= x0) continue;
      std::memcpy(pixel_ptr(out, ch, y, x0), pixel_ptr(img, ch, sy, x0 + left),
                  static_cast<size_t>(x1 - x0) * sizeof(float));
    }
  }
  return out;
}

Image hflip(const Image& img) {
  check_image("hflip", img);
  Image out(img.c, img.h, img.w);
  for (int64_t row = 0; row < img.c * img.h; ++row) {
    const float* src = &img.data[static_cast<size_t>(row * img.w)];
    float* dst = &out.data[static_cast<size_t>(row * img.w)];
    for (int64_t x = 0; x < img.w; ++x)
      dst[x] = src[img.w - 1 - x];
  }
  return out;
}

Image rotate90(const Image& img, int k) {
  check_image("rotate90", img);
  k = ((k % 4) + 4) % 4;
  if (k == 0) return img;
  const int64_t h = img.h, w = img.w;
  Image out = (k == 2) ? Image(img.c, h, w) : Image(img.c, w, h);
  for (int64_t ch = 0; ch < img.c; ++ch) {
    for (int64_t y = 0; y < out.h; ++y) {
      float* dst = pixel_ptr(out, ch, y, 0);
      // Counter-clockwise: out row y of a quarter turn is input column w - 1 - y read downwards.
      if (k == 1)
        for (int64_t x = 0; x < out.w; ++x)
          dst[x] = img.at(ch, x, w - 1 - y);
      else if (k == 2)
        for (int64_t x = 0; x < out.w; ++x)
          dst[x] = img.at(ch, h - 1 - y, w - 1 - x);
      else
        for (int64_t x = 0; x < out.w; ++x)
          dst[x] = img.at(ch, h - 1 - x, y);
    }
  }
  return out;
}

RotatedImage random_rotate90(const Image& img, AugRng& rng) {
  const int label = static_cast<int>(rng.randint(0, 4));
  return {rotate90(img, label), label};
}

CropBox random_resized_crop_box(int64_t height, int64_t width, std::pair<float, float> scale,
                                std::pair<float, float> ratio, AugRng& rng) {
  SELFSUP_CHECK(height > 0 && width > 0, "random_resized_crop: image size ", height, "x", width,
                " must be positive");
  const double area = static_cast<double>(height) * static_cast<double>(width);
  const float log_lo = std::log(ratio.first), log_hi = std::log(ratio.second);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target_area = area * rng.uniform(scale.first, scale.second);
    const double aspect = std::exp(rng.uniform(log_lo, log_hi));
    const auto w = static_cast<int64_t>(std::nearbyint(std::sqrt(target_area * aspect)));
    const auto h = static_cast<int64_t>(std::nearbyint(std::sqrt(target_area / aspect)));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const int64_t top = rng.randint(0, height - h + 1);
      const int64_t left = rng.randint(0, width - w + 1);
      return {top, left, h, w};
    }
  }
  // Fallback: the largest centred window whose aspect ratio is clamped into the range.
  const double in_ratio = static_cast<double>(width) / static_cast<double>(height);
  int64_t w = width, h = height;
  if (in_ratio < ratio.first) {
    h = static_cast<int64_t>(std::nearbyint(static_cast<double>(w) / ratio.first));
  } else if (in_ratio > ratio.second) {
    w = static_cast<int64_t>(std::nearbyint(static_cast<double>(h) * ratio.second));
  }
  h = std::clamp<int64_t>(h, 1, height);
  w = std::clamp<int64_t>(w, 1, width);
  return {(height - h) / 2, (width - w) / 2, h, w};
}

// =============================================================================================
// Transform factories
// =============================================================================================
namespace transforms {

using detail::check_probability;
using detail::check_range;
using detail::num;
using detail::range_str;

TransformPtr random_resized_crop(int64_t out_size, Range scale, Range ratio) {
  SELFSUP_CHECK(out_size > 0, "random_resized_crop: out_size ", out_size, " must be positive");
  check_range("random_resized_crop", "scale", scale, 0.0f);
  SELFSUP_CHECK(scale.second > 0.0f, "random_resized_crop: scale range ", range_str(scale),
                " must contain positive values");
  check_range("random_resized_crop", "ratio", ratio, 0.0f);
  SELFSUP_CHECK(ratio.first > 0.0f, "random_resized_crop: ratio range ", range_str(ratio),
                " must be positive");
  std::string name = "RandomResizedCrop(size=" + num(out_size) + ", scale=" + range_str(scale) +
                     ", ratio=" + range_str(ratio) + ")";
  return from_function(std::move(name), [=](const Image& img, AugRng& rng) {
    check_image("random_resized_crop", img);
    const CropBox box = random_resized_crop_box(img.h, img.w, scale, ratio, rng);
    return data::crop_resize(img, box, out_size, out_size);
  });
}

TransformPtr resize(int64_t out_h, int64_t out_w) {
  SELFSUP_CHECK(out_h > 0 && out_w > 0, "resize: output size ", out_h, "x", out_w,
                " must be positive");
  return from_function("Resize(" + num(out_h) + ", " + num(out_w) + ")",
                       [=](const Image& img, AugRng&) { return data::resize(img, out_h, out_w); });
}

TransformPtr resize(int64_t size) {
  SELFSUP_CHECK(size > 0, "resize: size ", size, " must be positive");
  return from_function("Resize(" + num(size) + ")", [=](const Image& img, AugRng&) {
    check_image("resize", img);
    // torchvision: the smaller side becomes size, the other keeps the ratio (truncated).
    if (img.h <= img.w) return data::resize(img, size, std::max<int64_t>(1, size * img.w / img.h));
    return data::resize(img, std::max<int64_t>(1, size * img.h / img.w), size);
  });
}

TransformPtr center_crop(int64_t size) {
  SELFSUP_CHECK(size > 0, "center_crop: size ", size, " must be positive");
  return from_function("CenterCrop(" + num(size) + ")", [=](const Image& img, AugRng&) {
    return data::center_crop(img, size, size);
  });
}

TransformPtr horizontal_flip(float p) {
  check_probability("horizontal_flip", p);
  return from_function(
      "RandomHorizontalFlip(p=" + num(p) + ")",
      [=](const Image& img, AugRng& rng) { return rng.bernoulli(p) ? data::hflip(img) : img; });
}

TransformPtr rotate90(int k) {
  return from_function("Rotate90(k=" + num(k) + ")",
                       [=](const Image& img, AugRng&) { return data::rotate90(img, k); });
}

}  // namespace transforms
}  // namespace selfsup::data
