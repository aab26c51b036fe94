// The view recipes of the published SSL methods, adapted to small images (28x28 Fashion-MNIST,
// 32x32 CIFAR). Every recipe ends with values in [0, 1]: normalisation is left to the caller
// (with_normalize() appends it to every view) so that the same recipes serve any dataset.
//
// Adaptations to small images, and why:
//  - Gaussian blur is dropped below 64 px, as in SimCLR's CIFAR setup: at that size it destroys
//    most of the signal. Where a method's defining asymmetry is the blur (BYOL, Barlow Twins)
//    or MoCo v2's recipe has it, it is kept with a kernel of about 10% of the side
//    (blur_kernel_size: 3 px for 28 and 32) and sigma in [0.1, 2].
//  - SimCLR, BYOL (and so Barlow Twins and VICReg) crop at least 20% of a grayscale or sub-32 px
//    image (the papers' 0.08 on 32 px RGB and up): an 8% crop of a 28 px garment is an 8x8 patch
//    with little left to match.
//  - SwAV's local crops are 0.57 of the side (16 px for 28, 18 for 32), like 96/224 and 160/224.
//  - Colour ops on 1-channel images: saturation, hue and grayscale are no-ops (transforms.h).
#include <cmath>

#include "ssl/data/transform_util.h"
#include "ssl/data/transforms.h"

namespace selfsup::data {

namespace {

using namespace transforms;

constexpr int64_t kMinImageSize = 8;
constexpr int64_t kBlurMinSize = 64;

struct RecipeArgs {
  int64_t channels, size, views;  // size: the side of the (global) views
  float crop_min_scale;           // 0: the recipe's own
};

// The random-resized-crop area range of a recipe whose own lower end is `recipe_min`.
Range crop_scale(const RecipeArgs& a, float recipe_min) {
  return {a.crop_min_scale > 0 ? a.crop_min_scale : recipe_min, 1.0f};
}

// The papers' 0.08 floor, raised to 0.2 for grayscale or sub-32 px images.
float small_image_crop_floor(const RecipeArgs& a) {
  return (a.channels == 1 || a.size < 32) ? 0.2f : 0.08f;
}

ViewRecipes uniform_views(std::string name, TransformPtr view, int64_t size, int64_t n) {
  ViewRecipes r{std::move(name), {}, {}};
  for (int64_t v = 0; v < n; ++v) {
    r.views.push_back(view);
    r.view_sizes.push_back(size);
  }
  return r;
}

TransformPtr blur(int64_t size, float p) {
  return transforms::gaussian_blur(blur_kernel_size(size), {0.1f, 2.0f}, p);
}

// SimCLR: crop (small_image_crop_floor), flip, colour jitter (0.4, 0.4, 0.4, 0.1) p = 0.8,
// grayscale p = 0.2; blur p = 0.5 only from 64 px up.
ViewRecipes simclr(const RecipeArgs& a) {
  std::vector<TransformPtr> ts = {
      random_resized_crop(a.size, crop_scale(a, small_image_crop_floor(a))), horizontal_flip(0.5f),
      color_jitter(0.4f, 0.4f, 0.4f, 0.1f, 0.8f), random_grayscale(0.2f)};
  if (a.size >= kBlurMinSize) ts.push_back(blur(a.size, 0.5f));
  return uniform_views("simclr", compose(ts), a.size, a.views);
}

// BYOL (and Barlow Twins and VICReg, which reuse it): two asymmetric views. View 1 is always
// blurred and never solarised; view 2 is blurred with p = 0.1 and solarised with p = 0.2. Crops
// start at small_image_crop_floor. With more than two views the two recipes alternate (even views
// take view 1's).
ViewRecipes byol(const RecipeArgs& a, std::string name) {
  auto view = [&](float blur_p, float solarize_p) {
    std::vector<TransformPtr> ts = {
        random_resized_crop(a.size, crop_scale(a, small_image_crop_floor(a))),
        horizontal_flip(0.5f), color_jitter(0.4f, 0.4f, 0.2f, 0.1f, 0.8f), random_grayscale(0.2f),
        blur(a.size, blur_p)};
    if (solarize_p > 0.0f) ts.push_back(solarize(0.5f, solarize_p));
    return compose(ts);
  };
  const TransformPtr first = view(1.0f, 0.0f), second = view(0.1f, 0.2f);
  ViewRecipes r{std::move(name), {}, {}};
  for (int64_t v = 0; v < a.views; ++v) {
    r.views.push_back(v % 2 == 0 ? first : second);
    r.view_sizes.push_back(a.size);
  }
  return r;
}

// MoCo v2: crop 0.2-1, jitter (0.4, 0.4, 0.4, 0.1) p = 0.8, grayscale 0.2, blur 0.5, flip.
ViewRecipes moco(const RecipeArgs& a) {
  return uniform_views("moco",
                       compose({random_resized_crop(a.size, crop_scale(a, 0.2f)),
                                color_jitter(0.4f, 0.4f, 0.4f, 0.1f, 0.8f), random_grayscale(0.2f),
                                blur(a.size, 0.5f), horizontal_flip(0.5f)}),
                       a.size, a.views);
}

// SwAV multi-crop: views 0 and 1 are global (crop 0.14-1 at the full side), the rest local
// (crop 0.05-0.14 at 0.57 of the side); SwAV's colour distortion of strength 1
// (0.8, 0.8, 0.8, 0.2) p = 0.8 and grayscale 0.2 on all; blur p = 0.5 only from 64 px up.
ViewRecipes swav(const RecipeArgs& a) {
  SELFSUP_CHECK(a.views >= 2,
                "make_recipes: swav needs at least 2 views (2 global + N local), got ", a.views);
  const int64_t local_size = std::max<int64_t>(1, std::lround(0.57 * static_cast<double>(a.size)));
  auto view = [&](int64_t size, Range scale) {
    std::vector<TransformPtr> ts = {random_resized_crop(size, scale), horizontal_flip(0.5f),
                                    color_jitter(0.8f, 0.8f, 0.8f, 0.2f, 0.8f),
                                    random_grayscale(0.2f)};
    if (a.size >= kBlurMinSize) ts.push_back(blur(size, 0.5f));
    return compose(ts);
  };
  const TransformPtr global = view(a.size, crop_scale(a, 0.14f)),
                     local = view(local_size, {0.05f, 0.14f});
  ViewRecipes r{"swav", {}, {}};
  for (int64_t v = 0; v < a.views; ++v) {
    r.views.push_back(v < 2 ? global : local);
    r.view_sizes.push_back(v < 2 ? a.size : local_size);
  }
  return r;
}

// RotNet: view v is a mild crop (0.6-1) and flip, then rotated by (v % 4) * 90 degrees
// counter-clockwise, so the rotation label of view v is v % 4. The default 4 views give every
// image in all four rotations, which is how Gidaris et al. train.
ViewRecipes rotnet(const RecipeArgs& a) {
  ViewRecipes r{"rotnet", {}, {}};
  for (int64_t v = 0; v < a.views; ++v) {
    r.views.push_back(compose({random_resized_crop(a.size, crop_scale(a, 0.6f)),
                               horizontal_flip(0.5f), rotate90(static_cast<int>(v % 4))}));
    r.view_sizes.push_back(a.size);
  }
  return r;
}

// Jigsaw: the unshuffled image, mildly cropped (0.6-1), flipped, and gray with p = 0.3 (Noroozi
// & Favaro's guard against chromatic-aberration shortcuts). The method itself shuffles it with
// random_jigsaw() / jigsaw() and keeps the permutation index as the label.
ViewRecipes jigsaw_recipe(const RecipeArgs& a) {
  return uniform_views("jigsaw",
                       compose({random_resized_crop(a.size, crop_scale(a, 0.6f)),
                                horizontal_flip(0.5f), random_grayscale(0.3f)}),
                       a.size, a.views);
}

// MAE: crop 0.2-1 and flip only; the 75% patch masking happens on the encoder's tokens, with
// random_patch_mask() giving the mask.
ViewRecipes mae(const RecipeArgs& a) {
  return uniform_views(
      "mae", compose({random_resized_crop(a.size, crop_scale(a, 0.2f)), horizontal_flip(0.5f)}),
      a.size, a.views);
}

// none: the image as it is (resized to image_size if it differs), for evaluation and probes.
ViewRecipes none(const RecipeArgs& a) {
  return uniform_views("none", resize(a.size, a.size), a.size, a.views);
}

}  // namespace

ViewRecipes make_recipes(const std::string& name, int64_t channels, int64_t image_size,
                         int64_t num_views, const RecipeOptions& options) {
  SELFSUP_CHECK(channels >= 1, "make_recipes: channels ", channels, " must be >= 1");
  SELFSUP_CHECK(image_size >= kMinImageSize, "make_recipes: image_size ", image_size,
                " is too small (need >= ", kMinImageSize, ")");
  SELFSUP_CHECK(options.view_size == 0 || options.view_size >= kMinImageSize,
                "make_recipes: view_size ", options.view_size,
                " is too small (need >= ", kMinImageSize, ", or 0 for the image size)");
  SELFSUP_CHECK(options.crop_min_scale >= 0 && options.crop_min_scale <= 1,
                "make_recipes: crop_min_scale ", options.crop_min_scale, " is not in [0, 1]");
  const int64_t view_size = options.view_size > 0 ? options.view_size : image_size;
  auto args = [&](int64_t default_views) {
    return RecipeArgs{channels, view_size, num_views > 0 ? num_views : default_views,
                      options.crop_min_scale};
  };
  if (name == "none") return none(args(1));
  if (name == "simclr") return simclr(args(2));
  if (name == "byol") return byol(args(2), "byol");
  if (name == "barlow" || name == "barlow_twins" || name == "barlowtwins")
    return byol(args(2), "barlow");
  if (name == "moco") return moco(args(2));
  if (name == "swav") return swav(args(6));
  if (name == "rotnet") return rotnet(args(4));
  if (name == "jigsaw") return jigsaw_recipe(args(1));
  if (name == "mae") return mae(args(1));
  SELFSUP_CHECK(false, "make_recipes: unknown recipe '", name,
                "' (known: none, simclr, byol, moco, barlow, swav, rotnet, jigsaw, mae)");
  return {};
}

ViewRecipes with_normalize(ViewRecipes recipes, std::vector<float> mean, std::vector<float> stdev) {
  const TransformPtr norm = normalize(std::move(mean), std::move(stdev));
  for (TransformPtr& view : recipes.views)
    view = compose({view, norm});
  return recipes;
}

}  // namespace selfsup::data
