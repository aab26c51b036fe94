// Image folders: a labelled set laid out as one sub-folder per class, the layout of ImageNet-style
// datasets and of anyone's own photos:
//
//   ROOT/train/<class>/*.png|jpg|jpeg|bmp      (or ROOT/<class>/... when there is no train/)
//   ROOT/test/<class>/...                     (or ROOT/val/<class>/...)
//
// Class ids are the sorted class-folder names of the training folder, so train and test agree.
// Files with other extensions and hidden entries are skipped. Images are decoded with stb_image
// (only its PNG, JPEG and BMP decoders are compiled in), converted to a fixed channel count and
// resized to a fixed square size.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ssl/data/dataset.h"

namespace selfsup::data {

// Images wider or taller than this are refused before decoding (stb_image is compiled with
// the same STBI_MAX_DIMENSIONS, see stb_impl.cpp).
constexpr int kMaxImageDimension = 8192;

// Resizes an interleaved uint8 image [h, w, c] into a planar one [c, out_h, out_w] with a
// bilinear (triangle) filter. Enlarging it is plain bilinear interpolation between the pixel
// centres, edges clamped; shrinking it widens the triangle to the scale factor so every source
// pixel contributes (as PIL does) - plain bilinear would alias badly when a photo shrinks 50x.
void resize_bilinear(const uint8_t* src, int64_t h, int64_t w, int64_t c, uint8_t* dst,
                     int64_t out_h, int64_t out_w);

// Decodes one PNG/JPEG/BMP file into dst, uint8 [channels, size, size]. The header is checked
// (stbi_info) before anything is decoded; every failure is an Error naming the file.
void decode_image_file(const std::string& path, int64_t channels, int64_t size, uint8_t* dst);

// The sorted, non-hidden sub-folders of dir (the class names).
std::vector<std::string> list_class_folders(const std::string& dir);

// split is "train" or "test".
Dataset load_image_folder(const std::string& root, const std::string& split,
                          const FolderOptions& options);

}  // namespace selfsup::data
