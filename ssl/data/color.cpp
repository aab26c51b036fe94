// Photometric augmentations (grayscale, brightness, contrast, saturation, hue, solarize), the
// Gaussian blur, normalisation, and their Transform factories. The formulas are torchvision's
// functional ones on float tensors, so published recipes mean the same thing here.
#include <algorithm>
#include <cmath>

#include "ssl/data/transform_util.h"
#include "ssl/data/transforms.h"

namespace selfsup::data {

using detail::check_image;
using detail::pixel_ptr;

namespace {

float clamp01(float x) {
  return std::min(1.0f, std::max(0.0f, x));
}

// The gray image into gray[h * w]: luma for RGB, the channel mean for other counts. Whole
// planes at a time, so the loops vectorise.
void gray_plane(const Image& img, float* gray) {
  const int64_t plane = img.h * img.w;
  const float* x = img.data.data();
  if (img.c == 3) {
    for (int64_t i = 0; i < plane; ++i)
      gray[i] = 0.2989f * x[i] + 0.587f * x[plane + i] + 0.114f * x[2 * plane + i];
    return;
  }
  std::copy(x, x + plane, gray);
  for (int64_t ch = 1; ch < img.c; ++ch)
    for (int64_t i = 0; i < plane; ++i)
      gray[i] += x[ch * plane + i];
  const float inv = 1.0f / static_cast<float>(img.c);
  for (int64_t i = 0; i < plane; ++i)
    gray[i] *= inv;
}

// Hue shift of one RGB pixel in place, shift6 in sixths of a turn. This is torchvision's
// RGB -> HSV -> RGB round trip with the algebra done: with v = max, m = min, d = v - m and
// s = d / v, HSV's p = v (1 - s) is m, q = v (1 - s f) is v - d f and t = v (1 - s (1 - f)) is
// m + d f, so the only division left is by d.
void shift_hue(float& r, float& g, float& b, float shift6) {
  const float v = std::max(r, std::max(g, b)), m = std::min(r, std::min(g, b)), d = v - m;
  if (d <= 0.0f) return;  // a gray pixel has no hue
  float h6;               // hue in sixths of a turn, in [-1, 5]
  if (v == r)
    h6 = (g - b) / d;
  else if (v == g)
    h6 = 2.0f + (b - r) / d;
  else
    h6 = 4.0f + (r - g) / d;
  h6 += shift6;  // now in [-4, 8]
  // Wrap into [0, 6). The second test also catches a tiny negative that rounded up to 6.0f
  // when 6 was added, so the order of the two lines matters.
  if (h6 < 0.0f) h6 += 6.0f;
  if (h6 >= 6.0f) h6 -= 6.0f;
  const int sector = static_cast<int>(h6);  // h6 >= 0: truncation is floor
  const float f = h6 - static_cast<float>(sector);
  const float q = v - d * f, t = m + d * f;
  switch (sector) {
    case 0:
      r = v, g = t, b = m;
      break;
    case 1:
      r = q, g = v, b = m;
      break;
    case 2:
      r = m, g = v, b = t;
      break;
    case 3:
      r = m, g = q, b = v;
      break;
    case 4:
      r = t, g = m, b = v;
      break;
    default:
      r = v, g = m, b = q;
      break;
  }
}

// Mirror index without repeating the edge: -1 -> 1, n -> n - 2 (torch's "reflect" padding),
// folded as often as needed so any kernel works on any image.
int64_t reflect_index(int64_t i, int64_t n) {
  if (n == 1) return 0;
  const int64_t period = 2 * (n - 1);
  i = std::abs(i) % period;
  return i < n ? i : period - i;
}

}  // namespace

// =============================================================================================
// Pure operations
// =============================================================================================

void to_grayscale_(Image& img) {
  check_image("to_grayscale", img);
  if (img.c == 1) return;
  const int64_t plane = img.h * img.w;
  gray_plane(img, img.data.data());  // the first plane is read before it is written
  for (int64_t ch = 1; ch < img.c; ++ch)
    std::copy(img.data.begin(), img.data.begin() + plane, img.data.begin() + ch * plane);
}

void adjust_brightness_(Image& img, float factor) {
  SELFSUP_CHECK(factor >= 0.0f, "adjust_brightness: factor ", factor, " must be >= 0");
  for (float& x : img.data)
    x = clamp01(factor * x);
}

void adjust_contrast_(Image& img, float factor) {
  SELFSUP_CHECK(factor >= 0.0f, "adjust_contrast: factor ", factor, " must be >= 0");
  check_image("adjust_contrast", img);
  std::vector<float> gray(static_cast<size_t>(img.h * img.w));
  gray_plane(img, gray.data());
  double sum = 0.0;
  for (float g : gray)
    sum += g;
  const float offset = (1.0f - factor) * static_cast<float>(sum / static_cast<double>(gray.size()));
  for (float& x : img.data)
    x = clamp01(factor * x + offset);
}

void adjust_saturation_(Image& img, float factor) {
  SELFSUP_CHECK(factor >= 0.0f, "adjust_saturation: factor ", factor, " must be >= 0");
  check_image("adjust_saturation", img);
  if (img.c == 1) return;
  const int64_t plane = img.h * img.w;
  std::vector<float> gray(static_cast<size_t>(plane));
  gray_plane(img, gray.data());
  for (float& g : gray)
    g *= 1.0f - factor;
  for (int64_t ch = 0; ch < img.c; ++ch) {
    float* x = pixel_ptr(img, ch, 0, 0);
    for (int64_t i = 0; i < plane; ++i)
      x[i] = clamp01(factor * x[i] + gray[i]);
  }
}

void adjust_hue_(Image& img, float shift) {
  SELFSUP_CHECK(shift >= -0.5f && shift <= 0.5f, "adjust_hue: shift ", shift,
                " is outside [-0.5, 0.5]");
  check_image("adjust_hue", img);
  if (img.c != 3 || shift == 0.0f) return;
  const int64_t plane = img.h * img.w;
  float* r = img.data.data();
  float* g = r + plane;
  float* b = g + plane;
  for (int64_t i = 0; i < plane; ++i)
    shift_hue(r[i], g[i], b[i], 6.0f * shift);
}

void solarize_(Image& img, float threshold) {
  // A conditional store (GCC will not vectorise the select under -ftrapping-math); on natural
  // images neighbouring pixels fall on the same side, so the branch predicts well.
  for (float& x : img.data)
    x = x >= threshold ? 1.0f - x : x;
}

void normalize_(Image& img, const std::vector<float>& mean, const std::vector<float>& stdev) {
  check_image("normalize", img);
  const auto n = static_cast<int64_t>(mean.size());
  SELFSUP_CHECK(mean.size() == stdev.size() && (n == 1 || n == img.c), "normalize: ", n,
                " means and ", stdev.size(), " stds for an image of ", img.c, " channels");
  const int64_t plane = img.h * img.w;
  for (int64_t ch = 0; ch < img.c; ++ch) {
    const float m = mean[static_cast<size_t>(n == 1 ? 0 : ch)];
    const float inv = 1.0f / stdev[static_cast<size_t>(n == 1 ? 0 : ch)];
    float* x = pixel_ptr(img, ch, 0, 0);
    for (int64_t i = 0; i < plane; ++i)
      x[i] = (x[i] - m) * inv;
  }
}

std::vector<float> gaussian_kernel1d(int64_t kernel_size, float sigma) {
  SELFSUP_CHECK(kernel_size > 0 && kernel_size % 2 == 1, "gaussian_blur: kernel_size ", kernel_size,
                " must be odd and positive");
  SELFSUP_CHECK(sigma > 0.0f, "gaussian_blur: sigma ", sigma, " must be positive");
  std::vector<float> k(static_cast<size_t>(kernel_size));
  const double half = static_cast<double>(kernel_size - 1) / 2.0;
  double total = 0.0;
  for (int64_t t = 0; t < kernel_size; ++t) {
    const double x = (static_cast<double>(t) - half) / sigma;
    total += (k[static_cast<size_t>(t)] = static_cast<float>(std::exp(-0.5 * x * x)));
  }
  for (float& v : k)
    v = static_cast<float>(v / total);
  return k;
}

Image gaussian_blur(const Image& img, int64_t kernel_size, float sigma) {
  check_image("gaussian_blur", img);
  const std::vector<float> k = gaussian_kernel1d(kernel_size, sigma);
  const int64_t r = kernel_size / 2, h = img.h, w = img.w;
  // Horizontal pass: copy each row into a reflect-padded buffer once, then every tap is a
  // shifted contiguous multiply-add over the row (vectorises; no edge tests inside).
  std::vector<int64_t> src_x(static_cast<size_t>(w + 2 * r));
  for (int64_t i = 0; i < w + 2 * r; ++i)
    src_x[static_cast<size_t>(i)] = reflect_index(i - r, w);
  std::vector<float> padded(static_cast<size_t>(w + 2 * r));
  Image rows(img.c, h, w, 0.0f);  // [c, h, w]
  for (int64_t row = 0; row < img.c * h; ++row) {
    const float* src = img.data.data() + row * w;
    float* dst = rows.data.data() + row * w;
    for (int64_t i = 0; i < w + 2 * r; ++i)
      padded[static_cast<size_t>(i)] = src[src_x[static_cast<size_t>(i)]];
    for (int64_t t = 0; t < kernel_size; ++t) {
      const float kt = k[static_cast<size_t>(t)];
      const float* p = padded.data() + t;
      for (int64_t x = 0; x < w; ++x)
        dst[x] += kt * p[x];
    }
  }
  // Vertical pass: whole rows at a time, the reflected row chosen per tap.
  Image out(img.c, h, w, 0.0f);  // [c, h, w]
  for (int64_t ch = 0; ch < img.c; ++ch) {
    for (int64_t y = 0; y < h; ++y) {
      float* dst = pixel_ptr(out, ch, y, 0);
      for (int64_t t = 0; t < kernel_size; ++t) {
        const float* src = pixel_ptr(rows, ch, reflect_index(y + t - r, h), 0);
        const float kt = k[static_cast<size_t>(t)];
        for (int64_t x = 0; x < w; ++x)
          dst[x] += kt * src[x];
      }
    }
  }
  return out;
}

int64_t blur_kernel_size(int64_t image_size) {
  auto k = static_cast<int64_t>(std::lround(0.1 * static_cast<double>(image_size)));
  if (k % 2 == 0) ++k;
  return std::max<int64_t>(3, k);
}

// =============================================================================================
// Transform factories
// =============================================================================================
namespace transforms {

using detail::check_probability;
using detail::check_range;
using detail::num;
using detail::range_str;

namespace {

// A factor range centred on 1 (brightness, contrast, saturation): [max(0, 1 - v), 1 + v].
float draw_factor(float v, AugRng& rng) {
  return rng.uniform(std::max(0.0f, 1.0f - v), 1.0f + v);
}

}  // namespace

TransformPtr color_jitter(float brightness, float contrast, float saturation, float hue, float p) {
  SELFSUP_CHECK(brightness >= 0.0f, "color_jitter: brightness ", brightness, " must be >= 0");
  SELFSUP_CHECK(contrast >= 0.0f, "color_jitter: contrast ", contrast, " must be >= 0");
  SELFSUP_CHECK(saturation >= 0.0f, "color_jitter: saturation ", saturation, " must be >= 0");
  SELFSUP_CHECK(hue >= 0.0f && hue <= 0.5f, "color_jitter: hue ", hue, " is outside [0, 0.5]");
  check_probability("color_jitter", p);
  std::string name = "ColorJitter(brightness=" + num(brightness) + ", contrast=" + num(contrast) +
                     ", saturation=" + num(saturation) + ", hue=" + num(hue) + ", p=" + num(p) +
                     ")";
  return from_function(std::move(name), [=](const Image& img, AugRng& rng) {
    if (!rng.bernoulli(p)) return img;
    // As torchvision: a random order first, then one factor per enabled adjustment.
    int order[4] = {0, 1, 2, 3};
    for (int i = 3; i > 0; --i)
      std::swap(order[i], order[rng.randint(0, i + 1)]);
    const float fb = brightness > 0.0f ? draw_factor(brightness, rng) : 1.0f;
    const float fc = contrast > 0.0f ? draw_factor(contrast, rng) : 1.0f;
    const float fs = saturation > 0.0f ? draw_factor(saturation, rng) : 1.0f;
    const float fh = hue > 0.0f ? rng.uniform(-hue, hue) : 0.0f;
    Image out = img;
    for (int op : order) {
      if (op == 0 && brightness > 0.0f) adjust_brightness_(out, fb);
      if (op == 1 && contrast > 0.0f) adjust_contrast_(out, fc);
      if (op == 2 && saturation > 0.0f) adjust_saturation_(out, fs);
      if (op == 3 && hue > 0.0f) adjust_hue_(out, fh);
    }
    return out;
  });
}

TransformPtr random_grayscale(float p) {
  check_probability("random_grayscale", p);
  return from_function("RandomGrayscale(p=" + num(p) + ")", [=](const Image& img, AugRng& rng) {
    Image out = img;
    if (rng.bernoulli(p)) to_grayscale_(out);
    return out;
  });
}

TransformPtr gaussian_blur(int64_t kernel_size, Range sigma, float p) {
  SELFSUP_CHECK(kernel_size > 0 && kernel_size % 2 == 1, "gaussian_blur: kernel_size ", kernel_size,
                " must be odd and positive");
  check_range("gaussian_blur", "sigma", sigma, 0.0f);
  SELFSUP_CHECK(sigma.first > 0.0f, "gaussian_blur: sigma range ", range_str(sigma),
                " must be positive");
  check_probability("gaussian_blur", p);
  std::string name = "GaussianBlur(kernel_size=" + num(kernel_size) +
                     ", sigma=" + range_str(sigma) + ", p=" + num(p) + ")";
  return from_function(std::move(name), [=](const Image& img, AugRng& rng) {
    if (!rng.bernoulli(p)) return img;
    return data::gaussian_blur(img, kernel_size, rng.uniform(sigma.first, sigma.second));
  });
}

TransformPtr solarize(float threshold, float p) {
  SELFSUP_CHECK(std::isfinite(threshold), "solarize: threshold ", threshold, " must be finite");
  check_probability("solarize", p);
  return from_function("RandomSolarize(threshold=" + num(threshold) + ", p=" + num(p) + ")",
                       [=](const Image& img, AugRng& rng) {
                         Image out = img;
                         if (rng.bernoulli(p)) solarize_(out, threshold);
                         return out;
                       });
}

TransformPtr normalize(std::vector<float> mean, std::vector<float> stdev) {
  SELFSUP_CHECK(!mean.empty() && mean.size() == stdev.size(), "normalize: ", mean.size(),
                " means and ", stdev.size(), " stds (need the same positive count)");
  std::string name = "Normalize(mean=[";
  for (size_t i = 0; i < mean.size(); ++i)
    name.append(i ? ", " : "").append(num(mean[i]));
  name += "], std=[";
  for (size_t i = 0; i < stdev.size(); ++i) {
    SELFSUP_CHECK(stdev[i] > 0.0f && std::isfinite(stdev[i]), "normalize: std[", i,
                  "] = ", stdev[i], " must be positive and finite");
    name.append(i ? ", " : "").append(num(stdev[i]));
  }
  name += "])";
  return from_function(std::move(name), [mean = std::move(mean), stdev = std::move(stdev)](
                                            const Image& img, AugRng&) {
    Image out = img;
    normalize_(out, mean, stdev);
    return out;
  });
}

}  // namespace transforms
}  // namespace selfsup::data
