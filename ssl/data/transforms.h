// The concrete augmentations, in two tiers:
//   selfsup::data::             pure image operations (deterministic given their arguments), and
//   selfsup::data::transforms:: seeded Transform factories built on them, for compose() and the
//                               recipes of make_recipes().
//
// Conventions, chosen to match torchvision on float tensors so the published recipes carry over:
//  - Images are float32 CHW with values in [0, 1]; every op except normalize keeps them there.
//  - Any channel count works. The colour ops that need RGB reduce as follows for other counts:
//      gray image    luma (0.2989 R + 0.587 G + 0.114 B) for 3 channels, the channel mean for
//                    any other count (so it is the image itself for 1 channel);
//      grayscale     every channel becomes the gray image (a no-op for 1 channel);
//      saturation    blends with the gray image (a no-op for 1 channel, as in torchvision);
//      hue           rotates the hue in HSV for 3 channels only; skipped for any other count;
//      contrast      blends with the mean of the gray image;
//    brightness, blur, solarize, normalize and every geometric op act on each channel alike.
//  - A factory validates its arguments at once and throws selfsup::Error naming the bad value.
//  - Randomness comes only from the AugRng given to apply(): the same (seed, epoch, sample, view)
//    gives the same output on any thread. Transforms are single-threaded by design: the loader
//    runs many images in parallel, which is where the parallelism pays.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "ssl/data/augment.h"
#include "ssl/data/image.h"

namespace selfsup::data {

// ---------------------------------------------------------------------------------------------
// Geometry
// ---------------------------------------------------------------------------------------------

// A window of an image in pixels; it must lie inside the image.
struct CropBox {
  int64_t top = 0, left = 0, height = 0, width = 0;
};

// Resamples the box of img to out_h x out_w with a triangle filter on pixel centres
// (align_corners = false). Upsampling is exactly bilinear with edge clamping; downsampling widens
// the triangle to the scale factor so every input pixel contributes (antialiasing, the
// behaviour of torchvision's antialias=True and of PIL). Same size and full box: an exact copy.
Image crop_resize(const Image& img, const CropBox& box, int64_t out_h, int64_t out_w);
Image resize(const Image& img, int64_t out_h, int64_t out_w);

// The out_h x out_w window around the centre, at torchvision's offsets; where the window is
// larger than the image the outside is zero (torchvision pads with zeros).
Image center_crop(const Image& img, int64_t out_h, int64_t out_w);

// Mirrors left-right.
Image hflip(const Image& img);

// Rotates by k * 90 degrees counter-clockwise, as torch.rot90(img, k, dims=(1, 2)); k is taken
// mod 4 (negative k rotates clockwise). Odd k swaps height and width.
Image rotate90(const Image& img, int k);

// torchvision's RandomResizedCrop.get_params: up to 10 tries of an area fraction drawn from
// scale and a log-uniform aspect ratio (w / h) from ratio; when none fits, the centre crop of the
// largest window whose ratio is clamped into the range.
CropBox random_resized_crop_box(int64_t height, int64_t width, std::pair<float, float> scale,
                                std::pair<float, float> ratio, AugRng& rng);

// ---------------------------------------------------------------------------------------------
// Colour and filtering. The trailing-underscore forms work in place.
// ---------------------------------------------------------------------------------------------

// Every channel becomes the gray image (see the conventions above).
void to_grayscale_(Image& img);
// img * factor, clamped; factor >= 0.
void adjust_brightness_(Image& img, float factor);
// factor * img + (1 - factor) * mean(gray image), clamped.
void adjust_contrast_(Image& img, float factor);
// factor * img + (1 - factor) * gray image, clamped.
void adjust_saturation_(Image& img, float factor);
// Adds shift (in turns, |shift| <= 0.5) to the hue in HSV space; 3 channels only, else a no-op.
void adjust_hue_(Image& img, float shift);
// x >= threshold becomes 1 - x.
void solarize_(Image& img, float threshold);
// (x - mean[c]) / stdev[c]; mean and stdev hold one value per channel, or one value for all.
void normalize_(Image& img, const std::vector<float>& mean, const std::vector<float>& stdev);

// torchvision's Gaussian kernel: exp(-x^2 / (2 sigma^2)) at x = -(k-1)/2 .. (k-1)/2, summing to 1.
std::vector<float> gaussian_kernel1d(int64_t kernel_size, float sigma);
// Separable Gaussian blur with reflect padding (the edge pixel is not repeated: ... 2 1 | 0 1 2).
// kernel_size is odd and positive.
Image gaussian_blur(const Image& img, int64_t kernel_size, float sigma);

// The blur kernel the recipes use for an image side: about 10% of it, odd, at least 3.
int64_t blur_kernel_size(int64_t image_size);

// ---------------------------------------------------------------------------------------------
// Pretext tasks: RotNet, Jigsaw, MAE
// ---------------------------------------------------------------------------------------------

// RotNet: a rotation by label * 90 degrees, label uniform in 0..3.
struct RotatedImage {
  Image image;
  int label = 0;
};
RotatedImage random_rotate90(const Image& img, AugRng& rng);

// The Jigsaw permutation classes: 100 permutations of the 9 tiles, picked greedily from all 9!
// so that each new one maximises its minimal Hamming distance to those already picked (ties go
// to the lexicographically first). Index 0 is the identity. Deterministic; computed once.
const std::vector<std::array<int, 9>>& jigsaw_permutations();
// The smallest Hamming distance between two permutations of that set.
int jigsaw_min_hamming_distance();

// The 3x3 jigsaw puzzle of img: the tile side is t = (side - 2 gap) / 3 (rounded down), the
// tiles are cut at a pitch of t + gap around the centre and output tile position i shows input
// tile perm[i] at the same place. Gap pixels and any remainder are zero, so a network cannot
// solve the puzzle from edge continuity. Identity and gap 0 on a side divisible by 3: a copy.
Image jigsaw(const Image& img, int perm_index, int gap);
struct JigsawImage {
  Image image;
  int label = 0;  // index into jigsaw_permutations()
};
JigsawImage random_jigsaw(const Image& img, int gap, AugRng& rng);

// MAE's random masking over a grid_h x grid_w patch grid: exactly
// grid - floor(grid * (1 - mask_ratio)) patches are masked, chosen uniformly. 1 = masked,
// row-major over the grid.
std::vector<uint8_t> random_patch_mask(int64_t grid_h, int64_t grid_w, float mask_ratio,
                                       AugRng& rng);
// Sets the pixels of the masked patches of a patch x patch grid to fill (the image side must be
// a multiple of patch).
void apply_patch_mask_(Image& img, const std::vector<uint8_t>& mask, int64_t patch, float fill);
struct MaskedImage {
  Image image;
  std::vector<uint8_t> mask;  // [grid_h * grid_w], 1 = masked
  int64_t grid_h = 0, grid_w = 0;
};
MaskedImage mask_patches(const Image& img, int64_t patch, float mask_ratio, AugRng& rng,
                         float fill = 0.0f);

// Returns the recipes with normalize(mean, stdev) appended to every view.
ViewRecipes with_normalize(ViewRecipes recipes, std::vector<float> mean, std::vector<float> stdev);

// ---------------------------------------------------------------------------------------------
// Transform factories
// ---------------------------------------------------------------------------------------------
namespace transforms {

using Range = std::pair<float, float>;

TransformPtr identity();
// A transform from a function; name is what name() returns (for logs and checkpoints' configs).
TransformPtr from_function(std::string name, std::function<Image(const Image&, AugRng&)> fn);
// Applies t with probability p.
TransformPtr random_apply(TransformPtr t, float p);

TransformPtr random_resized_crop(int64_t out_size, Range scale = {0.08f, 1.0f},
                                 Range ratio = {3.0f / 4.0f, 4.0f / 3.0f});
// To exactly out_h x out_w.
TransformPtr resize(int64_t out_h, int64_t out_w);
// The smaller side to size, keeping the aspect ratio (torchvision's Resize(int)).
TransformPtr resize(int64_t size);
TransformPtr center_crop(int64_t size);
TransformPtr horizontal_flip(float p = 0.5f);

// torchvision's ColorJitter inside RandomApply(p): factors drawn from [max(0, 1 - b), 1 + b] etc.
// and hue shift from [-hue, hue]; the four adjustments run in a random order; 0 disables one.
TransformPtr color_jitter(float brightness, float contrast, float saturation, float hue,
                          float p = 1.0f);
TransformPtr random_grayscale(float p = 0.1f);
// sigma drawn uniformly from the range for each image.
TransformPtr gaussian_blur(int64_t kernel_size, Range sigma = {0.1f, 2.0f}, float p = 0.5f);
TransformPtr solarize(float threshold = 0.5f, float p = 0.5f);

// A fixed rotation by k * 90 degrees (the RotNet recipe uses one per view: label = view % 4).
TransformPtr rotate90(int k);
// A fixed jigsaw permutation (the label lives with the caller).
TransformPtr jigsaw(int perm_index, int gap);
// Fills a random mask_ratio of the patch x patch patches with fill (pixel-space masking); the
// same AugRng state gives the same mask from random_patch_mask().
TransformPtr random_patch_mask(int64_t patch, float mask_ratio = 0.75f, float fill = 0.0f);

TransformPtr normalize(std::vector<float> mean, std::vector<float> stdev);

}  // namespace transforms
}  // namespace selfsup::data
