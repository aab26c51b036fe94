// TEMPORARY (delete at merge, together with TEMP_recipes_stub.h): stands in for the
// augmentation presets until ssl/data/augment.cpp defines make_recipes. Knows only "none".
#include "tools/cli/TEMP_recipes_stub.h"

#include "core/error.h"

namespace selfsup::data {

ViewRecipes make_recipes(const std::string& name, int64_t channels, int64_t image_size,
                         int64_t num_views) {
  (void)channels;
  SELFSUP_CHECK(name == "none", "make_recipes: unknown augmentation '", name,
                "' (this build has only 'none': the presets are not merged yet)");
  ViewRecipes recipes;
  recipes.name = "none";
  recipes.views.assign(static_cast<size_t>(num_views), nullptr);  // null = identity (Loader)
  recipes.view_sizes.assign(static_cast<size_t>(num_views), image_size);
  return recipes;
}

}  // namespace selfsup::data
