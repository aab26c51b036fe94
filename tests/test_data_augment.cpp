// ssl/data augmentations: every transform against hand-computed values or a naive reference,
// shapes and value ranges of every transform and recipe, determinism per (seed, view), and the
// argument checks.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>
#include <tuple>

#include "core/error.h"
#include "ssl/data/augment.h"
#include "ssl/data/transforms.h"

using namespace selfsup;
using namespace selfsup::data;
namespace T = selfsup::data::transforms;

namespace {

Image random_image(int64_t c, int64_t h, int64_t w, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  Image img(c, h, w);
  for (float& x : img.data)
    x = u(gen);
  return img;
}

// Values 0 and 1 exactly at a few places: the edges of the range must survive every op.
Image awkward_image(int64_t c, int64_t h, int64_t w, uint32_t seed) {
  Image img = random_image(c, h, w, seed);
  for (size_t i = 0; i < img.data.size(); i += 7)
    img.data[i] = (i / 7) % 2 ? 1.0f : 0.0f;
  return img;
}

Image from_rows(int64_t h, int64_t w, std::vector<float> values) {
  Image img(1, h, w);
  img.data = std::move(values);
  return img;
}

void expect_in_unit_range(const Image& img, const std::string& what) {
  for (float x : img.data) {
    ASSERT_TRUE(std::isfinite(x)) << what;
    ASSERT_GE(x, 0.0f) << what;
    ASSERT_LE(x, 1.0f) << what;
  }
}

void expect_shape(const Image& img, int64_t c, int64_t h, int64_t w) {
  EXPECT_EQ(img.c, c);
  EXPECT_EQ(img.h, h);
  EXPECT_EQ(img.w, w);
  EXPECT_EQ(static_cast<int64_t>(img.data.size()), c * h * w);
}

void expect_near_image(const Image& a, const Image& b, float tol, const std::string& what = "") {
  ASSERT_EQ(a.c, b.c) << what;
  ASSERT_EQ(a.h, b.h) << what;
  ASSERT_EQ(a.w, b.w) << what;
  for (size_t i = 0; i < a.data.size(); ++i)
    ASSERT_NEAR(a.data[i], b.data[i], tol) << what << " at flat index " << i;
}

// Runs f and checks it throws selfsup::Error whose message contains every needle.
void expect_error(const std::function<void()>& f, std::vector<std::string> needles) {
  try {
    f();
    ADD_FAILURE() << "no selfsup::Error thrown (expected one naming '" << needles[0] << "')";
  } catch (const Error& e) {
    for (const auto& n : needles)
      EXPECT_NE(std::string(e.what()).find(n), std::string::npos)
          << "message '" << e.what() << "' lacks '" << n << "'";
  }
}

// Every transform with its expected output shape for an input [c, h, w].
struct Case {
  TransformPtr t;
  std::function<std::array<int64_t, 2>(int64_t h, int64_t w)> out_hw;
};

std::vector<Case> every_range_preserving_transform() {
  auto same = [](int64_t h, int64_t w) { return std::array<int64_t, 2>{h, w}; };
  return {
      {T::identity(), same},
      {T::random_resized_crop(17),
       [](int64_t, int64_t) {
         return std::array<int64_t, 2>{17, 17};
       }},
      {T::random_resized_crop(40, {0.3f, 0.6f}, {0.5f, 2.0f}),
       [](int64_t, int64_t) {
         return std::array<int64_t, 2>{40, 40};
       }},
      {T::resize(13, 19),
       [](int64_t, int64_t) {
         return std::array<int64_t, 2>{13, 19};
       }},
      {T::center_crop(11),
       [](int64_t, int64_t) {
         return std::array<int64_t, 2>{11, 11};
       }},
      {T::center_crop(35),
       [](int64_t, int64_t) {
         return std::array<int64_t, 2>{35, 35};
       }},
      {T::horizontal_flip(0.5f), same},
      {T::color_jitter(0.4f, 0.4f, 0.4f, 0.1f, 0.8f), same},
      {T::color_jitter(0.8f, 0.8f, 0.8f, 0.5f, 1.0f), same},
      {T::random_grayscale(0.5f), same},
      {T::gaussian_blur(5, {0.1f, 2.0f}, 0.7f), same},
      {T::solarize(0.5f, 0.5f), same},
      {T::rotate90(1),
       [](int64_t h, int64_t w) {
         return std::array<int64_t, 2>{w, h};
       }},
      {T::rotate90(2), same},
      {T::jigsaw(7, 1), same},
      {T::random_patch_mask(3, 0.75f), same},
      {T::random_apply(T::rotate90(2), 0.5f), same},
  };
}

const std::vector<std::string> kRecipes = {"none", "simclr", "byol",   "moco", "barlow",
                                           "swav", "rotnet", "jigsaw", "mae"};

}  // namespace

// =============================================================================================
// Shapes and ranges
// =============================================================================================

TEST(Augment, EveryTransformGivesItsShapeAndStaysInUnitRange) {
  for (int64_t c : {1, 3, 2}) {
    for (const Case& k : every_range_preserving_transform()) {
      for (uint64_t sample = 0; sample < 12; ++sample) {
        const Image img = awkward_image(c, 27, 21, static_cast<uint32_t>(sample + 10 * c));
        AugRng rng(7, 1, sample, 0);
        const Image out = k.t->apply(img, rng);
        const auto hw = k.out_hw(img.h, img.w);
        expect_shape(out, c, hw[0], hw[1]);
        expect_in_unit_range(out, k.t->name());
      }
    }
  }
}

TEST(Augment, EveryRecipeGivesItsViewCountShapesAndUnitRange) {
  const std::map<std::string, size_t> default_views = {{"none", 1},   {"simclr", 2}, {"byol", 2},
                                                       {"moco", 2},   {"barlow", 2}, {"swav", 6},
                                                       {"rotnet", 4}, {"jigsaw", 1}, {"mae", 1}};
  for (const std::string& name : kRecipes) {
    for (int64_t c : {1, 3}) {
      for (int64_t size : {28, 32}) {
        const ViewRecipes r = make_recipes(name, c, size, 0);
        EXPECT_EQ(r.name, name);
        ASSERT_EQ(r.views.size(), default_views.at(name)) << name;
        ASSERT_EQ(r.view_sizes.size(), r.views.size()) << name;
        for (size_t v = 0; v < r.views.size(); ++v) {
          for (uint64_t sample = 0; sample < 4; ++sample) {
            const Image img = awkward_image(c, size, size, static_cast<uint32_t>(sample));
            AugRng rng(3, 0, sample, v);
            const Image out = r.views[v]->apply(img, rng);
            expect_shape(out, c, r.view_sizes[v], r.view_sizes[v]);
            expect_in_unit_range(out, name + " view " + std::to_string(v));
          }
        }
      }
    }
  }
}

TEST(Augment, SwavHasTwoGlobalAndSmallerLocalViews) {
  const ViewRecipes r28 = make_recipes("swav", 1, 28, 0);
  EXPECT_EQ(r28.view_sizes, (std::vector<int64_t>{28, 28, 16, 16, 16, 16}));
  const ViewRecipes r32 = make_recipes("swav", 3, 32, 8);
  EXPECT_EQ(r32.view_sizes, (std::vector<int64_t>{32, 32, 18, 18, 18, 18, 18, 18}));
  EXPECT_EQ(make_recipes("simclr", 3, 32, 5).views.size(), 5u);
}

TEST(Augment, ByolViewsAreAsymmetricAndBarlowReusesThem) {
  const ViewRecipes byol = make_recipes("byol", 3, 32, 0);
  const std::string v0 = byol.views[0]->name(), v1 = byol.views[1]->name();
  EXPECT_NE(v0.find("GaussianBlur(kernel_size=3, sigma=(0.1, 2), p=1)"), std::string::npos) << v0;
  EXPECT_EQ(v0.find("Solarize"), std::string::npos) << v0;
  EXPECT_NE(v1.find("GaussianBlur(kernel_size=3, sigma=(0.1, 2), p=0.1)"), std::string::npos) << v1;
  EXPECT_NE(v1.find("RandomSolarize(threshold=0.5, p=0.2)"), std::string::npos) << v1;
  const ViewRecipes barlow = make_recipes("barlow", 3, 32, 0);
  EXPECT_EQ(barlow.name, "barlow");
  EXPECT_EQ(barlow.views[0]->name(), v0);
  EXPECT_EQ(barlow.views[1]->name(), v1);
  // SimCLR on small images: no blur; the 28 px grayscale crop starts at 0.2.
  const std::string simclr28 = make_recipes("simclr", 1, 28, 0).views[0]->name();
  EXPECT_EQ(simclr28.find("GaussianBlur"), std::string::npos);
  EXPECT_NE(simclr28.find("scale=(0.2, 1)"), std::string::npos) << simclr28;
  EXPECT_NE(make_recipes("simclr", 3, 32, 0).views[0]->name().find("scale=(0.08, 1)"),
            std::string::npos);
  // BYOL's recipe (also Barlow Twins' and VICReg's) takes the same small-image floor.
  for (int64_t v : {0, 1}) {
    const std::string byol28 = make_recipes("byol", 1, 28, 0).views[v]->name();
    EXPECT_NE(byol28.find("scale=(0.2, 1)"), std::string::npos) << byol28;
    const std::string byol32 = make_recipes("byol", 3, 32, 0).views[v]->name();
    EXPECT_NE(byol32.find("scale=(0.08, 1)"), std::string::npos) << byol32;
  }
  EXPECT_NE(make_recipes("simclr", 3, 96, 0).views[0]->name().find("GaussianBlur"),
            std::string::npos);
}

TEST(Augment, RecipeOptionsOverrideCropScaleAndViewSize) {
  const RecipeOptions o{0.5f, 20};
  for (const char* name : {"simclr", "byol", "moco", "rotnet", "mae"}) {
    const ViewRecipes r = make_recipes(name, 1, 28, 0, o);
    for (size_t v = 0; v < r.views.size(); ++v) {
      const std::string n = r.views[v]->name();
      EXPECT_NE(n.find("scale=(0.5, 1)"), std::string::npos) << name << ": " << n;
      EXPECT_EQ(r.view_sizes[v], 20) << name;
      AugRng rng(3, 1, 0, v);
      const Image out = r.views[v]->apply(random_image(1, 28, 28, 2), rng);
      EXPECT_EQ(out.h, 20) << name;
      EXPECT_EQ(out.w, 20) << name;
    }
  }
  // SwAV: the override reaches the two global crops; the local ones keep their own range.
  const ViewRecipes swav = make_recipes("swav", 1, 28, 0, o);
  EXPECT_NE(swav.views[0]->name().find("scale=(0.5, 1)"), std::string::npos);
  EXPECT_NE(swav.views[2]->name().find("scale=(0.05, 0.14)"), std::string::npos)
      << swav.views[2]->name();
  // Zero keeps the recipe's own values.
  const ViewRecipes plain = make_recipes("simclr", 1, 28, 0, RecipeOptions{});
  EXPECT_NE(plain.views[0]->name().find("scale=(0.2, 1)"), std::string::npos);
  EXPECT_EQ(plain.view_sizes[0], 28);
}

TEST(Augment, RotnetViewIsViewZeroRotatedByItsLabel) {
  const ViewRecipes r = make_recipes("rotnet", 3, 28, 0);
  const Image img = random_image(3, 28, 28, 5);
  for (uint64_t v = 0; v < 4; ++v) {
    // The same AugRng stream makes the crop and flip of both views the same.
    AugRng a(11, 2, 9, v), b(11, 2, 9, v);
    const Image rotated = r.views[v]->apply(img, a);
    const Image upright = r.views[0]->apply(img, b);
    expect_near_image(rotated, rotate90(upright, static_cast<int>(v)), 0.0f,
                      "view " + std::to_string(v));
  }
}

TEST(Augment, WithNormalizeAppendsNormalizeToEveryView) {
  const ViewRecipes r = with_normalize(make_recipes("none", 2, 9, 2), {0.5f, 0.25f}, {0.5f, 0.5f});
  const Image img = random_image(2, 9, 9, 1);
  AugRng rng(0, 0, 0, 1);
  const Image out = r.views[1]->apply(img, rng);
  for (int64_t i = 0; i < 81; ++i) {
    EXPECT_NEAR(out.data[i], (img.data[i] - 0.5f) / 0.5f, 1e-6f);
    EXPECT_NEAR(out.data[81 + i], (img.data[81 + i] - 0.25f) / 0.5f, 1e-6f);
  }
}

// =============================================================================================
// Determinism
// =============================================================================================

TEST(Augment, SameStreamSameOutputOtherViewOrSampleDifferent) {
  for (const std::string& name : kRecipes) {
    if (name == "none") continue;  // deterministic by definition
    const ViewRecipes r = make_recipes(name, 3, 32, 0);
    const Image img = random_image(3, 32, 32, 42);
    AugRng a(5, 1, 17, 0), b(5, 1, 17, 0), other_view(5, 1, 17, 1), other_sample(5, 1, 18, 0),
        other_seed(6, 1, 17, 0);
    const Image out = r.views[0]->apply(img, a);
    expect_near_image(out, r.views[0]->apply(img, b), 0.0f, name);
    EXPECT_NE(out.data, r.views[0]->apply(img, other_view).data) << name;
    EXPECT_NE(out.data, r.views[0]->apply(img, other_sample).data) << name;
    EXPECT_NE(out.data, r.views[0]->apply(img, other_seed).data) << name;
  }
}

TEST(Augment, ThreadsReproduceTheSerialOutput) {
  const ViewRecipes r = make_recipes("simclr", 3, 32, 0);
  const int n = 37;
  std::vector<Image> images, serial(n), parallel(n);
  for (int i = 0; i < n; ++i)
    images.push_back(random_image(3, 32, 32, static_cast<uint32_t>(i)));
  for (int i = 0; i < n; ++i) {
    AugRng rng(9, 3, static_cast<uint64_t>(i), 1);
    serial[i] = r.views[1]->apply(images[i], rng);
  }
#pragma omp parallel for schedule(dynamic)
  for (int i = 0; i < n; ++i) {
    AugRng rng(9, 3, static_cast<uint64_t>(i), 1);
    parallel[i] = r.views[1]->apply(images[i], rng);
  }
  for (int i = 0; i < n; ++i)
    EXPECT_EQ(serial[i].data, parallel[i].data) << i;
}

// =============================================================================================
// Geometry
// =============================================================================================

TEST(Geometry, FlipTwiceIsIdentityAndMatchesHandValues) {
  const Image img = from_rows(2, 3, {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(hflip(img).data, (std::vector<float>{3, 2, 1, 6, 5, 4}));
  const Image r = random_image(3, 7, 11, 2);
  EXPECT_EQ(hflip(hflip(r)).data, r.data);
  // p = 1 always flips, p = 0 never.
  AugRng rng(1, 0, 0, 0);
  EXPECT_EQ(T::horizontal_flip(1.0f)->apply(r, rng).data, hflip(r).data);
  EXPECT_EQ(T::horizontal_flip(0.0f)->apply(r, rng).data, r.data);
}

TEST(Geometry, Rotate90OfAKnown2x3Image) {
  // [[1 2 3]      k=1 (counter-clockwise)   k=2        k=3 (clockwise)
  //  [4 5 6]]     [[3 6] [2 5] [1 4]]       [[6 5 4]   [[4 1] [5 2] [6 3]]
  //                                          [3 2 1]]
  const Image img = from_rows(2, 3, {1, 2, 3, 4, 5, 6});
  const Image k1 = rotate90(img, 1), k2 = rotate90(img, 2), k3 = rotate90(img, 3);
  expect_shape(k1, 1, 3, 2);
  EXPECT_EQ(k1.data, (std::vector<float>{3, 6, 2, 5, 1, 4}));
  expect_shape(k2, 1, 2, 3);
  EXPECT_EQ(k2.data, (std::vector<float>{6, 5, 4, 3, 2, 1}));
  expect_shape(k3, 1, 3, 2);
  EXPECT_EQ(k3.data, (std::vector<float>{4, 1, 5, 2, 6, 3}));
  EXPECT_EQ(rotate90(img, -1).data, k3.data);
  EXPECT_EQ(rotate90(img, 5).data, k1.data);
}

TEST(Geometry, Rotate90FourTimesIsIdentity) {
  const Image img = random_image(3, 5, 9, 4);
  Image r = img;
  for (int i = 0; i < 4; ++i)
    r = rotate90(r, 1);
  EXPECT_EQ(r.data, img.data);
  expect_shape(r, 3, 5, 9);
  EXPECT_EQ(rotate90(rotate90(img, 1), 3).data, img.data);
  // The labelled helper: label uniform over 0..3, image rotated by it.
  std::set<int> labels;
  for (uint64_t s = 0; s < 40; ++s) {
    AugRng rng(2, 0, s, 0);
    const RotatedImage out = random_rotate90(img, rng);
    ASSERT_GE(out.label, 0);
    ASSERT_LT(out.label, 4);
    labels.insert(out.label);
    EXPECT_EQ(out.image.data, rotate90(img, out.label).data);
  }
  EXPECT_EQ(labels.size(), 4u);
}

// Naive bilinear on pixel centres with the coordinate clamped to the image (PyTorch's
// align_corners=False), for upsampling.
float bilinear_reference(const Image& img, int64_t ch, double sy, double sx) {
  sy = std::max(0.0, sy);
  sx = std::max(0.0, sx);
  const auto y0 = std::min<int64_t>(static_cast<int64_t>(sy), img.h - 1);
  const auto x0 = std::min<int64_t>(static_cast<int64_t>(sx), img.w - 1);
  const int64_t y1 = std::min(y0 + 1, img.h - 1), x1 = std::min(x0 + 1, img.w - 1);
  const double fy = std::min(sy - y0, 1.0), fx = std::min(sx - x0, 1.0);
  return static_cast<float>((1 - fy) * ((1 - fx) * img.at(ch, y0, x0) + fx * img.at(ch, y0, x1)) +
                            fy * ((1 - fx) * img.at(ch, y1, x0) + fx * img.at(ch, y1, x1)));
}

TEST(Geometry, UpsamplingIsBilinearOnPixelCentres) {
  const Image img = random_image(2, 7, 5, 8);
  const int64_t oh = 17, ow = 13;
  const Image out = resize(img, oh, ow);
  for (int64_t ch = 0; ch < 2; ++ch)
    for (int64_t y = 0; y < oh; ++y)
      for (int64_t x = 0; x < ow; ++x) {
        const double sy = (y + 0.5) * 7.0 / oh - 0.5, sx = (x + 0.5) * 5.0 / ow - 0.5;
        ASSERT_NEAR(out.at(ch, y, x), bilinear_reference(img, ch, sy, sx), 1e-5f)
            << ch << " " << y << " " << x;
      }
  // A crop box resamples only the box: compare with cropping by hand first.
  const CropBox box{2, 1, 4, 3};
  Image cropped(2, 4, 3);
  for (int64_t ch = 0; ch < 2; ++ch)
    for (int64_t y = 0; y < 4; ++y)
      for (int64_t x = 0; x < 3; ++x)
        cropped.at(ch, y, x) = img.at(ch, y + 2, x + 1);
  expect_near_image(crop_resize(img, box, 9, 10), resize(cropped, 9, 10), 1e-6f);
}

TEST(Geometry, CropResizeReadsOnlyTheBox) {
  // Poison everything outside the box: one NaN read (even with weight 0) shows in the output.
  const CropBox box{3, 4, 9, 7};
  Image img(2, 15, 14, std::nanf(""));
  const Image inside = random_image(2, 9, 7, 17);
  for (int64_t ch = 0; ch < 2; ++ch)
    for (int64_t y = 0; y < 9; ++y)
      for (int64_t x = 0; x < 7; ++x)
        img.at(ch, 3 + y, 4 + x) = inside.at(ch, y, x);
  for (auto [oh, ow] : {std::pair<int64_t, int64_t>{9, 7}, {20, 13}, {4, 3}, {17, 5}}) {
    const Image out = crop_resize(img, box, oh, ow);
    expect_near_image(out, resize(inside, oh, ow), 1e-6f,
                      std::to_string(oh) + "x" + std::to_string(ow));
  }
}

TEST(Geometry, HalvingAveragesWithTheWidenedTriangle) {
  // Shrinking by 2 uses a triangle of half-width 2: interior taps 1/8, 3/8, 3/8, 1/8.
  const Image img = random_image(1, 10, 14, 3);
  const Image out = resize(img, 5, 7);
  const float w[4] = {0.125f, 0.375f, 0.375f, 0.125f};
  for (int64_t y = 1; y < 4; ++y)
    for (int64_t x = 1; x < 6; ++x) {
      double ref = 0.0;
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j)
          ref += w[i] * w[j] * img.at(0, 2 * y - 1 + i, 2 * x - 1 + j);
      EXPECT_NEAR(out.at(0, y, x), ref, 1e-5) << y << " " << x;
    }
  // Edges renormalise: a constant stays constant whatever the scale.
  const Image flat(3, 13, 11, 0.37f);
  for (auto [h, w2] : {std::pair<int64_t, int64_t>{5, 4}, {29, 3}, {1, 1}, {13, 11}})
    for (float v : resize(flat, h, w2).data)
      ASSERT_NEAR(v, 0.37f, 1e-6f);
}

TEST(Geometry, RandomResizedCropWithFullScaleIsAResize) {
  const Image img = random_image(3, 19, 19, 6);
  for (uint64_t s = 0; s < 5; ++s) {
    AugRng rng(1, 0, s, 0);
    const Image same = T::random_resized_crop(19, {1.0f, 1.0f}, {1.0f, 1.0f})->apply(img, rng);
    EXPECT_EQ(same.data, img.data);  // exact copy at the same size
    const Image bigger = T::random_resized_crop(23, {1.0f, 1.0f}, {1.0f, 1.0f})->apply(img, rng);
    expect_near_image(bigger, resize(img, 23, 23), 0.0f);
  }
}

TEST(Geometry, RandomResizedCropBoxesStayInsideAndInRange) {
  for (uint64_t s = 0; s < 200; ++s) {
    AugRng rng(4, 0, s, 0);
    const CropBox b = random_resized_crop_box(29, 23, {0.2f, 0.6f}, {0.75f, 4.0f / 3.0f}, rng);
    ASSERT_GE(b.top, 0);
    ASSERT_GE(b.left, 0);
    ASSERT_LE(b.top + b.height, 29);
    ASSERT_LE(b.left + b.width, 23);
    // Rounding each side to whole pixels moves the area a little.
    // The aspect ratio, up to half a pixel of rounding on each side, lies in the range.
    EXPECT_LE((b.width - 0.5) / (b.height + 0.5), 4.0 / 3.0);
    EXPECT_GE((b.width + 0.5) / (b.height - 0.5), 0.75);
    const double frac = static_cast<double>(b.height * b.width) / (29.0 * 23.0);
    EXPECT_GE(frac, 0.2 * 0.85);
    EXPECT_LE(frac, 0.6 * 1.15);
  }
  // Fallback: an area of 2x the image never fits, so the centre crop clamped to ratio 1 wins.
  AugRng rng(0, 0, 0, 0);
  const CropBox b = random_resized_crop_box(20, 30, {2.0f, 2.0f}, {1.0f, 1.0f}, rng);
  EXPECT_EQ(b.top, 0);
  EXPECT_EQ(b.left, 5);
  EXPECT_EQ(b.height, 20);
  EXPECT_EQ(b.width, 20);
  const CropBox tall = random_resized_crop_box(30, 10, {2.0f, 2.0f}, {0.5f, 2.0f}, rng);
  EXPECT_EQ(tall.height, 20);  // width 10 / min ratio 0.5
  EXPECT_EQ(tall.top, 5);
  EXPECT_EQ(tall.width, 10);
}

TEST(Geometry, CenterCropOffsetsAndPadding) {
  Image img(1, 5, 5);
  for (int64_t i = 0; i < 25; ++i)
    img.data[i] = static_cast<float>(i);
  EXPECT_EQ(center_crop(img, 3, 3).data, (std::vector<float>{6, 7, 8, 11, 12, 13, 16, 17, 18}));
  // Margin 1: torchvision's round(0.5) = 0 puts the window at the top-left.
  EXPECT_EQ(center_crop(img, 4, 4).data[0], 0.0f);
  const Image padded = center_crop(img, 7, 6);  // pad top 1, left 0 (pads (6-5)//2 = 0)
  expect_shape(padded, 1, 7, 6);
  for (int64_t x = 0; x < 6; ++x)
    EXPECT_EQ(padded.at(0, 0, x), 0.0f);
  EXPECT_EQ(padded.at(0, 1, 0), 0.0f);  // input (0, 0)
  EXPECT_EQ(padded.at(0, 1, 4), 4.0f);
  EXPECT_EQ(padded.at(0, 1, 5), 0.0f);
  EXPECT_EQ(padded.at(0, 5, 4), 24.0f);
  for (int64_t x = 0; x < 6; ++x)
    EXPECT_EQ(padded.at(0, 6, x), 0.0f);
  AugRng rng(0, 0, 0, 0);
  expect_shape(T::resize(10)->apply(random_image(2, 20, 30, 1), rng), 2, 10, 15);
  expect_shape(T::resize(10)->apply(random_image(2, 30, 20, 1), rng), 2, 15, 10);
}

// =============================================================================================
// Colour
// =============================================================================================

TEST(Color, GrayscaleHasEqualChannelsHoldingTheLuma) {
  const Image img = random_image(3, 6, 7, 12);
  AugRng rng(0, 0, 0, 0);
  const Image gray = T::random_grayscale(1.0f)->apply(img, rng);
  for (int64_t y = 0; y < 6; ++y)
    for (int64_t x = 0; x < 7; ++x) {
      const float luma =
          0.2989f * img.at(0, y, x) + 0.587f * img.at(1, y, x) + 0.114f * img.at(2, y, x);
      EXPECT_NEAR(gray.at(0, y, x), luma, 1e-6f);
      EXPECT_EQ(gray.at(1, y, x), gray.at(0, y, x));
      EXPECT_EQ(gray.at(2, y, x), gray.at(0, y, x));
    }
  const Image one = random_image(1, 6, 7, 13);
  EXPECT_EQ(T::random_grayscale(1.0f)->apply(one, rng).data, one.data);
  Image two = random_image(2, 3, 3, 14);
  const Image two_in = two;
  to_grayscale_(two);
  for (int64_t i = 0; i < 9; ++i) {
    EXPECT_NEAR(two.data[i], 0.5f * (two_in.data[i] + two_in.data[9 + i]), 1e-6f);
    EXPECT_EQ(two.data[9 + i], two.data[i]);
  }
}

TEST(Color, BrightnessContrastSaturationByHand) {
  Image img(3, 1, 2);
  img.data = {0.2f, 0.8f, 0.4f, 0.6f, 0.9f, 0.1f};  // R = {.2, .8}, G = {.4, .6}, B = {.9, .1}
  Image b = img;
  adjust_brightness_(b, 1.5f);
  const std::vector<float> bright = {0.3f, 1.0f, 0.6f, 0.9f, 1.0f, 0.15f};
  for (size_t i = 0; i < 6; ++i)
    EXPECT_NEAR(b.data[i], bright[i], 1e-6f);
  const float g0 = 0.2989f * 0.2f + 0.587f * 0.4f + 0.114f * 0.9f;
  const float g1 = 0.2989f * 0.8f + 0.587f * 0.6f + 0.114f * 0.1f;
  Image c = img;
  adjust_contrast_(c, 0.5f);
  const float mean = 0.5f * (g0 + g1);
  for (size_t i = 0; i < 6; ++i)
    EXPECT_NEAR(c.data[i], 0.5f * img.data[i] + 0.5f * mean, 1e-6f);
  Image s = img;
  adjust_saturation_(s, 0.25f);
  for (int64_t ch = 0; ch < 3; ++ch) {
    EXPECT_NEAR(s.data[ch * 2], 0.25f * img.data[ch * 2] + 0.75f * g0, 1e-6f);
    EXPECT_NEAR(s.data[ch * 2 + 1], 0.25f * img.data[ch * 2 + 1] + 0.75f * g1, 1e-6f);
  }
  Image s0 = img;
  adjust_saturation_(s0, 0.0f);  // zero saturation is the grayscale image
  Image gray = img;
  to_grayscale_(gray);
  expect_near_image(s0, gray, 1e-6f);
  // 1 channel: saturation and hue leave it alone; contrast blends with its own mean.
  const Image one = random_image(1, 4, 5, 3);
  Image one_s = one, one_h = one;
  adjust_saturation_(one_s, 0.3f);
  adjust_hue_(one_h, 0.25f);
  EXPECT_EQ(one_s.data, one.data);
  EXPECT_EQ(one_h.data, one.data);
}

TEST(Color, HueRotatesPrimariesAndRoundTrips) {
  Image red(3, 1, 1);
  red.data = {1.0f, 0.0f, 0.0f};
  Image green = red;
  adjust_hue_(green, 1.0f / 3.0f);
  EXPECT_NEAR(green.data[0], 0.0f, 1e-5f);
  EXPECT_NEAR(green.data[1], 1.0f, 1e-5f);
  EXPECT_NEAR(green.data[2], 0.0f, 1e-5f);
  Image blue = red;
  adjust_hue_(blue, -1.0f / 3.0f);
  EXPECT_NEAR(blue.data[2], 1.0f, 1e-5f);
  EXPECT_NEAR(blue.data[0], 0.0f, 1e-5f);
  // Orange (1, 0.5, 0) shifted by a sixth of a turn is chartreuse (0.5, 1, 0).
  Image orange(3, 1, 1);
  orange.data = {1.0f, 0.5f, 0.0f};
  adjust_hue_(orange, 1.0f / 6.0f);
  EXPECT_NEAR(orange.data[0], 0.5f, 1e-5f);
  EXPECT_NEAR(orange.data[1], 1.0f, 1e-5f);
  EXPECT_NEAR(orange.data[2], 0.0f, 1e-5f);
  const Image img = random_image(3, 9, 8, 21);
  Image round_trip = img;
  adjust_hue_(round_trip, 0.2f);
  adjust_hue_(round_trip, -0.2f);
  expect_near_image(round_trip, img, 2e-5f);
  Image gray(3, 2, 2, 0.4f);  // gray pixels have no hue to rotate
  adjust_hue_(gray, 0.3f);
  for (float v : gray.data)
    EXPECT_NEAR(v, 0.4f, 1e-6f);
}

// torchvision's _rgb2hsv / _hsv2rgb, transcribed literally (with its s = cr / maxc and the
// clamped p, q, t), as the reference for the algebraically simplified adjust_hue_.
void hue_reference(float& r, float& g, float& b, float shift) {
  const float maxc = std::max(r, std::max(g, b)), minc = std::min(r, std::min(g, b));
  const bool eqc = maxc == minc;
  const float cr = maxc - minc;
  const float s = cr / (eqc ? 1.0f : maxc);
  const float div = eqc ? 1.0f : cr;
  const float rc = (maxc - r) / div, gc = (maxc - g) / div, bc = (maxc - b) / div;
  const float hr = (maxc == r) ? bc - gc : 0.0f;
  const float hg = (maxc == g && maxc != r) ? 2.0f + rc - bc : 0.0f;
  const float hb = (maxc != g && maxc != r) ? 4.0f + gc - rc : 0.0f;
  float h = std::fmod((hr + hg + hb) / 6.0f + 1.0f, 1.0f);
  h = std::fmod(h + shift + 1.0f, 1.0f);
  const float v = maxc;
  const float i = std::floor(h * 6.0f), f = h * 6.0f - i;
  const int sector = static_cast<int>(i) % 6;
  auto clamp = [](float x) { return std::min(1.0f, std::max(0.0f, x)); };
  const float p = clamp(v * (1.0f - s)), q = clamp(v * (1.0f - s * f)),
              t = clamp(v * (1.0f - s * (1.0f - f)));
  const float rs[6] = {v, q, p, p, t, v}, gs[6] = {t, v, v, q, p, p}, bs[6] = {p, p, t, v, v, q};
  r = rs[sector];
  g = gs[sector];
  b = bs[sector];
}

TEST(Color, HueMatchesTorchvisionsHsvRoundTrip) {
  const Image img = awkward_image(3, 13, 11, 44);
  for (float shift : {-0.5f, -0.37f, -0.1f, 0.05f, 0.25f, 0.4999f, 0.5f}) {
    Image out = img;
    adjust_hue_(out, shift);
    const int64_t plane = 13 * 11;
    for (int64_t i = 0; i < plane; ++i) {
      float r = img.data[i], g = img.data[plane + i], b = img.data[2 * plane + i];
      hue_reference(r, g, b, shift);
      ASSERT_NEAR(out.data[i], r, 2e-5f) << shift << " pixel " << i;
      ASSERT_NEAR(out.data[plane + i], g, 2e-5f) << shift << " pixel " << i;
      ASSERT_NEAR(out.data[2 * plane + i], b, 2e-5f) << shift << " pixel " << i;
    }
  }
}

TEST(Color, HueWrapsAroundWithoutAJump) {
  // Pixel (1, 0.5, 0.50000006) has hue -1.2e-7 sixths; a shift of 6e-8 sixths leaves it a hair
  // below 0, which wraps to 6 - 6e-8 and rounds to 6.0f. That must read as the start of
  // sector 0 (the pixel barely changes), not the end of sector 5 (blue jumps to 1).
  Image img(3, 1, 1);
  img.data = {1.0f, 0.5f, 0.50000006f};
  adjust_hue_(img, 1e-8f);
  float r = 1.0f, g = 0.5f, b = 0.50000006f;
  hue_reference(r, g, b, 1e-8f);
  EXPECT_NEAR(img.data[0], r, 1e-5f);
  EXPECT_NEAR(img.data[1], g, 1e-5f);
  EXPECT_NEAR(img.data[2], b, 1e-5f);
  EXPECT_NEAR(img.data[2], 0.5f, 1e-5f);
}

TEST(Color, JitterIsIdentityWhenDisabledAndChangesTheImageOtherwise) {
  const Image img = random_image(3, 8, 9, 30);
  AugRng rng(1, 0, 0, 0);
  EXPECT_EQ(T::color_jitter(0, 0, 0, 0, 1.0f)->apply(img, rng).data, img.data);
  EXPECT_EQ(T::color_jitter(0.4f, 0.4f, 0.4f, 0.1f, 0.0f)->apply(img, rng).data, img.data);
  EXPECT_NE(T::color_jitter(0.4f, 0.4f, 0.4f, 0.1f, 1.0f)->apply(img, rng).data, img.data);
  // Brightness alone multiplies every value by one factor in [0.6, 1.4] (before clamping).
  const Image dim = random_image(3, 8, 9, 31);
  Image scaled_in = dim;
  for (float& v : scaled_in.data)
    v *= 0.5f;  // keeps products below 1
  const Image out = T::color_jitter(0.4f, 0, 0, 0, 1.0f)->apply(scaled_in, rng);
  const float factor = out.data[0] / scaled_in.data[0];
  EXPECT_GE(factor, 0.6f - 1e-5f);
  EXPECT_LE(factor, 1.4f + 1e-5f);
  for (size_t i = 0; i < out.data.size(); ++i)
    EXPECT_NEAR(out.data[i], factor * scaled_in.data[i], 1e-5f);
}

TEST(Color, SolarizeByHand) {
  const Image img = from_rows(1, 5, {0.1f, 0.49f, 0.5f, 0.9f, 1.0f});
  AugRng rng(0, 0, 0, 0);
  const Image out = T::solarize(0.5f, 1.0f)->apply(img, rng);
  EXPECT_EQ(out.data, (std::vector<float>{0.1f, 0.49f, 0.5f, 1.0f - 0.9f, 0.0f}));
  EXPECT_EQ(T::solarize(0.5f, 0.0f)->apply(img, rng).data, img.data);
  Image low = img;
  solarize_(low, 0.0f);  // everything inverted
  for (size_t i = 0; i < 5; ++i)
    EXPECT_EQ(low.data[i], 1.0f - img.data[i]);
}

TEST(Color, NormalizeByHand) {
  Image img(2, 1, 3);
  img.data = {0.0f, 0.5f, 1.0f, 0.25f, 0.5f, 0.75f};
  AugRng rng(0, 0, 0, 0);
  const Image out = T::normalize({0.5f, 0.25f}, {0.5f, 0.25f})->apply(img, rng);
  EXPECT_EQ(out.data, (std::vector<float>{-1.0f, 0.0f, 1.0f, 0.0f, 1.0f, 2.0f}));
  const Image one = T::normalize({0.5f}, {2.0f})->apply(img, rng);  // one value for all
  for (size_t i = 0; i < 6; ++i)
    EXPECT_FLOAT_EQ(one.data[i], (img.data[i] - 0.5f) / 2.0f);
  expect_error(
      [&] {
        T::normalize({0.1f, 0.2f, 0.3f}, {1, 1, 1})->apply(img, rng);
      },
      {"normalize", "3 means", "2 channels"});
}

// =============================================================================================
// Blur
// =============================================================================================

int64_t reflect_reference(int64_t i, int64_t n) {
  while (i < 0 || i >= n)
    i = i < 0 ? -i : 2 * (n - 1) - i;
  return i;
}

TEST(Blur, KernelMatchesTheFormula) {
  const std::vector<float> k = gaussian_kernel1d(3, 1.0f);
  const double e = std::exp(-0.5), total = 1.0 + 2.0 * e;
  EXPECT_NEAR(k[0], e / total, 1e-7);
  EXPECT_NEAR(k[1], 1.0 / total, 1e-7);
  EXPECT_NEAR(k[2], e / total, 1e-7);
  EXPECT_EQ(blur_kernel_size(28), 3);
  EXPECT_EQ(blur_kernel_size(32), 3);
  EXPECT_EQ(blur_kernel_size(96), 11);
  EXPECT_EQ(blur_kernel_size(224), 23);
}

TEST(Blur, MatchesANaive2DReflectConvolution) {
  for (auto [ks, h, w] : {std::tuple<int64_t, int64_t, int64_t>{3, 7, 9}, {5, 11, 6}, {9, 4, 5}}) {
    const Image img = random_image(2, h, w, static_cast<uint32_t>(ks));
    const float sigma = 1.3f;
    const Image out = gaussian_blur(img, ks, sigma);
    const int64_t r = ks / 2;
    for (int64_t ch = 0; ch < 2; ++ch)
      for (int64_t y = 0; y < h; ++y)
        for (int64_t x = 0; x < w; ++x) {
          double acc = 0.0, total = 0.0;
          for (int64_t dy = -r; dy <= r; ++dy)
            for (int64_t dx = -r; dx <= r; ++dx) {
              const double wgt = std::exp(-(dy * dy + dx * dx) / (2.0 * sigma * sigma));
              total += wgt;
              acc += wgt * img.at(ch, reflect_reference(y + dy, h), reflect_reference(x + dx, w));
            }
          ASSERT_NEAR(out.at(ch, y, x), acc / total, 1e-5) << ks << ": " << y << " " << x;
        }
  }
}

TEST(Blur, PreservesAConstantImageAndTheSum) {
  const Image flat(3, 10, 13, 0.6f);
  for (int64_t ks : {1, 3, 7, 23})  // 23 > both sides: the reflection folds more than once
    for (float v : gaussian_blur(flat, ks, 2.0f).data)
      ASSERT_NEAR(v, 0.6f, 1e-6f);
  // Content more than r pixels from every edge: the reflected taps (which reach rows and columns
  // 1..r) see only zeros, so no mass is lost or doubled at the border and the sum holds.
  Image spots(1, 15, 17, 0.0f);
  std::mt19937 gen(3);
  for (int64_t y = 4; y < 11; ++y)
    for (int64_t x = 4; x < 13; ++x)
      spots.at(0, y, x) = std::uniform_real_distribution<float>()(gen);
  const Image out = gaussian_blur(spots, 7, 1.5f);
  double in_sum = 0.0, out_sum = 0.0;
  for (float v : spots.data)
    in_sum += v;
  for (float v : out.data)
    out_sum += v;
  EXPECT_NEAR(out_sum, in_sum, 1e-4);
  EXPECT_NE(out.data, spots.data);
}

// =============================================================================================
// Jigsaw and masks
// =============================================================================================

TEST(Jigsaw, PermutationsAreDistinctValidAndFarApart) {
  const auto& perms = jigsaw_permutations();
  ASSERT_EQ(perms.size(), 100u);
  EXPECT_EQ(perms[0], (std::array<int, 9>{0, 1, 2, 3, 4, 5, 6, 7, 8}));
  std::set<std::array<int, 9>> unique(perms.begin(), perms.end());
  EXPECT_EQ(unique.size(), perms.size());
  int min_dist = 9;
  for (size_t i = 0; i < perms.size(); ++i) {
    std::array<int, 9> sorted = perms[i];
    std::sort(sorted.begin(), sorted.end());
    ASSERT_EQ(sorted, perms[0]) << "entry " << i << " is not a permutation";
    for (size_t j = 0; j < i; ++j) {
      int d = 0;
      for (int k = 0; k < 9; ++k)
        d += perms[i][k] != perms[j][k];
      min_dist = std::min(min_dist, d);
    }
  }
  RecordProperty("jigsaw_min_hamming_distance", min_dist);
  std::printf("jigsaw: %zu permutations, minimal pairwise Hamming distance %d\n", perms.size(),
              min_dist);
  EXPECT_EQ(jigsaw_min_hamming_distance(), min_dist);
  EXPECT_GE(min_dist, 6);
}

TEST(Jigsaw, IdentityWithoutGapReproducesTheImage) {
  const Image img = random_image(3, 27, 30, 1);
  EXPECT_EQ(jigsaw(img, 0, 0).data, img.data);
}

TEST(Jigsaw, TilesMoveAsThePermutationSays) {
  // 29 x 33 with gap 2: tiles 8 x 9 at pitch 10 x 11, the 28 x 31 grid centred (top 0, left 1).
  const Image img = random_image(2, 29, 33, 2);
  const int gap = 2, index = 37;
  const Image out = jigsaw(img, index, gap);
  const auto& perm = jigsaw_permutations()[index];
  const int64_t th = 8, tw = 9, top = 0, left = 1;
  Image expected(2, 29, 33, 0.0f);
  for (int pos = 0; pos < 9; ++pos)
    for (int64_t ch = 0; ch < 2; ++ch)
      for (int64_t y = 0; y < th; ++y)
        for (int64_t x = 0; x < tw; ++x)
          expected.at(ch, top + pos / 3 * (th + gap) + y, left + pos % 3 * (tw + gap) + x) = img.at(
              ch, top + perm[pos] / 3 * (th + gap) + y, left + perm[pos] % 3 * (tw + gap) + x);
  EXPECT_EQ(out.data, expected.data);
  AugRng rng(3, 0, 1, 0);
  const JigsawImage puzzle = random_jigsaw(img, gap, rng);
  EXPECT_EQ(puzzle.image.data, jigsaw(img, puzzle.label, gap).data);
}

TEST(Mask, MasksExactlyMaesCountAndOnlyThosePatches) {
  for (auto [gh, gw, ratio] : {std::tuple<int64_t, int64_t, float>{7, 7, 0.75f},
                               {4, 5, 0.5f},
                               {3, 3, 0.0f},
                               {2, 3, 1.0f}}) {
    AugRng rng(1, 0, static_cast<uint64_t>(gh * gw), 0);
    const auto mask = random_patch_mask(gh, gw, ratio, rng);
    const auto total = gh * gw;
    const auto keep = static_cast<int64_t>(std::floor(total * (1.0 - ratio)));
    EXPECT_EQ(std::count(mask.begin(), mask.end(), 1), total - keep) << gh << "x" << gw;
  }
  // Uniform over patches: each of 49 is masked with frequency 37/49 over many streams, and
  // different streams give different masks.
  std::vector<int> hits(49, 0);
  std::set<std::string> distinct;  // the masks as byte strings
  const int draws = 2000;
  for (int d = 0; d < draws; ++d) {
    AugRng rng(2, 0, static_cast<uint64_t>(d), 0);
    const auto mask = random_patch_mask(7, 7, 0.75f, rng);
    distinct.insert(std::string(mask.begin(), mask.end()));
    for (int i = 0; i < 49; ++i)
      hits[i] += mask[i];
  }
  EXPECT_GT(distinct.size(), static_cast<size_t>(draws * 0.99));
  for (int i = 0; i < 49; ++i)  // binomial sd is about 0.0096: 5 sd
    EXPECT_NEAR(hits[i] / static_cast<double>(draws), 37.0 / 49.0, 0.05) << "patch " << i;
  const Image img = random_image(3, 28, 24, 5);
  AugRng a(8, 0, 0, 0), b(8, 0, 0, 0);
  const MaskedImage m = mask_patches(img, 4, 0.75f, a);
  EXPECT_EQ(m.grid_h, 7);
  EXPECT_EQ(m.grid_w, 6);
  EXPECT_EQ(std::count(m.mask.begin(), m.mask.end(), 1), 42 - 10);
  for (int64_t ch = 0; ch < 3; ++ch)
    for (int64_t y = 0; y < 28; ++y)
      for (int64_t x = 0; x < 24; ++x) {
        const bool masked = m.mask[static_cast<size_t>((y / 4) * 6 + x / 4)] != 0;
        ASSERT_EQ(m.image.at(ch, y, x), masked ? 0.0f : img.at(ch, y, x));
      }
  // The transform draws the same mask from the same stream.
  EXPECT_EQ(T::random_patch_mask(4, 0.75f)->apply(img, b).data, m.image.data);
}

// =============================================================================================
// Composition and argument checks
// =============================================================================================

TEST(Augment, ComposeRunsInOrderAndNamesItsParts) {
  const Image img = random_image(1, 4, 6, 9);
  AugRng rng(0, 0, 0, 0);
  const TransformPtr flip_then_rot = compose({T::horizontal_flip(1.0f), T::rotate90(1)});
  EXPECT_EQ(flip_then_rot->apply(img, rng).data, rotate90(hflip(img), 1).data);
  EXPECT_EQ(compose({})->apply(img, rng).data, img.data);
  EXPECT_EQ(flip_then_rot->name(), "Compose[RandomHorizontalFlip(p=1), Rotate90(k=1)]");
}

TEST(Augment, BadArgumentsThrowNamingTheValue) {
  expect_error(
      [] {
        T::random_resized_crop(16, {0.9f, 0.1f});
      },
      {"random_resized_crop", "0.9", "0.1"});
  expect_error([] { T::random_resized_crop(16, {0.1f, 1.0f}, {2.0f, 0.5f}); }, {"ratio", "2"});
  expect_error([] { T::random_resized_crop(0); }, {"out_size 0"});
  expect_error([] { T::horizontal_flip(1.5f); }, {"horizontal_flip", "1.5"});
  expect_error([] { T::random_grayscale(-0.1f); }, {"random_grayscale", "-0.1"});
  expect_error([] { T::solarize(0.5f, 2.0f); }, {"solarize", "2"});
  expect_error([] { T::gaussian_blur(4); }, {"kernel_size 4"});
  expect_error([] { T::gaussian_blur(3, {2.0f, 1.0f}); }, {"sigma", "2", "1"});
  expect_error([] { T::color_jitter(0.4f, 0.4f, 0.4f, 0.6f); }, {"hue 0.6"});
  expect_error([] { T::color_jitter(-1.0f, 0, 0, 0); }, {"brightness -1"});
  expect_error([] { T::color_jitter(0.4f, 0.4f, 0.4f, 0.1f, 1.2f); }, {"color_jitter", "1.2"});
  expect_error([] { T::normalize({0.5f}, {0.0f}); }, {"normalize", "std[0] = 0"});
  expect_error([] { T::jigsaw(100, 0); }, {"permutation index 100"});
  expect_error([] { jigsaw(Image(1, 5, 5), 0, 2); }, {"5x5", "gap 2"});
  expect_error([] { T::random_patch_mask(4, 1.5f); }, {"mask_ratio 1.5"});
  expect_error(
      [] {
        Image img(1, 10, 10);
        apply_patch_mask_(img, {}, 4, 0.0f);
      },
      {"10x10", "4x4"});
  expect_error([] { crop_resize(Image(1, 5, 5), CropBox{3, 0, 3, 5}, 4, 4); }, {"top 3"});
  expect_error([] { make_recipes("simclr2", 3, 32, 0); }, {"unknown recipe 'simclr2'"});
  expect_error([] { make_recipes("swav", 3, 32, 1); }, {"swav", "got 1"});
  expect_error([] { make_recipes("simclr", 3, 4, 0); }, {"image_size 4"});
  expect_error([] { make_recipes("simclr", 0, 32, 0); }, {"channels 0"});
  expect_error([] { make_recipes("simclr", 1, 28, 0, RecipeOptions{0, 5}); }, {"view_size 5"});
  expect_error(
      [] {
        make_recipes("simclr", 1, 28, 0, RecipeOptions{1.5f, 0});
      },
      {"crop_min_scale 1.5"});
  expect_error([] { compose({T::identity(), nullptr}); }, {"compose", "transform 1"});
}
