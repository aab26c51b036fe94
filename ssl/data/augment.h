// Augmentations: seeded, composable transforms of one Image, and the multi-view recipes of the
// published SSL methods (adapted to small images).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "ssl/data/image.h"

namespace selfsup::data {

class Transform {
 public:
  virtual ~Transform() = default;
  virtual Image apply(const Image& img, AugRng& rng) const = 0;
  virtual std::string name() const = 0;
};
using TransformPtr = std::shared_ptr<const Transform>;

// Applies transforms in order.
TransformPtr compose(std::vector<TransformPtr> transforms);

// The views a method trains on: views[k] is the recipe of view k. SimCLR has two identical
// recipes; BYOL's two differ (asymmetric blur/solarisation); SwAV's multi-crop has 2 global
// and N local recipes (local views are smaller: out_size of each view may differ).
struct ViewRecipes {
  std::string name;
  std::vector<TransformPtr> views;
  std::vector<int64_t> view_sizes;  // output height = width of each view
};

// Overrides of a recipe's defaults, for tuning a method to a dataset (0: the recipe's own).
struct RecipeOptions {
  float crop_min_scale = 0;  // lower end of the random-resized-crop area of the (global) views
  int64_t view_size = 0;     // side of the (global) views: train at a lower resolution than
                             // the images; a convolutional encoder still sees full images later
};

// Named recipes: none, simclr, byol, moco, barlow (=byol recipe), swav (multi-crop),
// rotnet, jigsaw, mae. num_views <= 0 means the recipe's default.
ViewRecipes make_recipes(const std::string& name, int64_t channels, int64_t image_size,
                         int64_t num_views, const RecipeOptions& options = {});

}  // namespace selfsup::data
