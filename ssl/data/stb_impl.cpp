// The one translation unit that compiles stb_image (decoding) and stb_image_write (PNG output).
//
// stb_image has known bugs in decoders we do not need (GIF, PSD, PIC, ...) and in its
// vertical-flip path, so only PNG, JPEG and BMP are compiled in, image sides are capped at
// kMaxImageDimension, and stbi_set_flip_vertically_on_load is never called anywhere.
#include "ssl/data/image_folder.h"

#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STBI_NO_STDIO  // we decode from memory (read_image_file_bytes), never from a FILE*
#define STBI_MAX_DIMENSIONS 8192
static_assert(STBI_MAX_DIMENSIONS == selfsup::data::kMaxImageDimension,
              "stb_image's cap must match the one image_folder.cpp checks");
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#include <stb_image.h>
#include <stb_image_write.h>
#pragma GCC diagnostic pop
