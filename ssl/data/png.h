// PNG output for looking at data: a grid of images (one row per sample: the image, then its
// augmented views) written with stb_image_write.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ssl/data/image.h"

namespace selfsup::data {

// Lays rows of images out on a canvas. Every cell is as large as the largest image; smaller
// images (multi-crop's local views) are centred in theirs; `pad` pixels of pad_value separate
// the cells. Grey images are repeated to RGB when any image is RGB. An image whose values leave
// [0, 1] (a normalised view) is min-max rescaled to [0, 1] for display.
Image make_grid(const std::vector<std::vector<Image>>& rows, int64_t pad = 2,
                float pad_value = 1.0f);

// Writes a 1- or 3-channel image, values in [0, 1] (clamped), as an 8-bit PNG. The file appears
// complete or not at all (written to PATH.tmp, then renamed). An Error names the path on failure.
void write_png(const std::string& path, const Image& img);

}  // namespace selfsup::data
