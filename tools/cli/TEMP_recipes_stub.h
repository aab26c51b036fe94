// TEMPORARY (delete at merge, together with TEMP_recipes_stub.cpp): the declaration of the
// augmentation presets' look-up, which ssl/data/augment.h will carry once the augment helper's
// work lands. cmd_preview.cpp includes this file only while it exists (__has_include), and the
// declaration is identical to the real one, so both may coexist until it is deleted.
#pragma once

#include <cstdint>
#include <string>

#include "ssl/data/augment.h"

namespace selfsup::data {
ViewRecipes make_recipes(const std::string& name, int64_t channels, int64_t image_size,
                         int64_t num_views);
}  // namespace selfsup::data
