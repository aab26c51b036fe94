// The inputs of the pretext-task methods: Jigsaw puzzles (Noroozi & Favaro 2016), MAE's random
// patch masks (He et al. 2022), and their Transform factories. RotNet's rotations live in
// geometry.cpp beside the other geometric ops.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "ssl/data/transform_util.h"
#include "ssl/data/transforms.h"

namespace selfsup::data {

using detail::check_image;
using detail::pixel_ptr;

// =============================================================================================
// Jigsaw
// =============================================================================================
namespace {

constexpr int kJigsawClasses = 100;

// Greedy maximal-Hamming selection over all 9! permutations: start from the identity, then
// repeatedly add the permutation whose distance to its nearest chosen one is largest (first in
// lexicographic order among ties). min_dist[i] holds that nearest distance for candidate i and
// is updated with each new pick, so a step costs one pass over the 362880 candidates. The
// digits are stored position-major so that pass is a tight byte loop the compiler vectorises.
std::vector<std::array<int, 9>> greedy_hamming_permutations(int count) {
  constexpr int64_t kAll = 362880;            // 9!
  std::array<std::vector<uint8_t>, 9> digit;  // digit[pos][i]: the tile at pos in candidate i
  for (auto& d : digit)
    d.resize(kAll);
  std::array<int, 9> perm;
  std::iota(perm.begin(), perm.end(), 0);
  int64_t n = 0;
  do {
    for (int pos = 0; pos < 9; ++pos)
      digit[pos][n] = static_cast<uint8_t>(perm[pos]);
    ++n;
  } while (std::next_permutation(perm.begin(), perm.end()));

  std::vector<uint8_t> min_dist(kAll, 255), dist(kAll);
  std::vector<std::array<int, 9>> chosen;
  int64_t pick = 0;  // the identity comes first lexicographically
  while (static_cast<int>(chosen.size()) < count) {
    std::array<int, 9> p;
    for (int pos = 0; pos < 9; ++pos)
      p[pos] = digit[pos][pick];
    chosen.push_back(p);
    std::fill(dist.begin(), dist.end(), 0);
    for (int pos = 0; pos < 9; ++pos) {
      const uint8_t v = digit[pos][pick];
      const uint8_t* d = digit[pos].data();
      for (int64_t i = 0; i < kAll; ++i)
        dist[i] += static_cast<uint8_t>(d[i] != v);
    }
    for (int64_t i = 0; i < kAll; ++i)
      min_dist[i] = std::min(min_dist[i], dist[i]);
    pick = std::max_element(min_dist.begin(), min_dist.end()) - min_dist.begin();
  }
  return chosen;
}

int hamming(const std::array<int, 9>& a, const std::array<int, 9>& b) {
  int d = 0;
  for (int i = 0; i < 9; ++i)
    d += a[i] != b[i];
  return d;
}

}  // namespace

const std::vector<std::array<int, 9>>& jigsaw_permutations() {
  static const std::vector<std::array<int, 9>> perms = greedy_hamming_permutations(kJigsawClasses);
  return perms;
}

int jigsaw_min_hamming_distance() {
  const auto& perms = jigsaw_permutations();
  int best = 9;
  for (size_t i = 0; i < perms.size(); ++i)
    for (size_t j = i + 1; j < perms.size(); ++j)
      best = std::min(best, hamming(perms[i], perms[j]));
  return best;
}

Image jigsaw(const Image& img, int perm_index, int gap) {
  check_image("jigsaw", img);
  const auto& perms = jigsaw_permutations();
  SELFSUP_CHECK(perm_index >= 0 && perm_index < static_cast<int>(perms.size()),
                "jigsaw: permutation index ", perm_index, " is outside [0, ", perms.size(), ")");
  SELFSUP_CHECK(gap >= 0, "jigsaw: gap ", gap, " must be >= 0");
  const int64_t tile_h = (img.h - 2 * gap) / 3, tile_w = (img.w - 2 * gap) / 3;
  SELFSUP_CHECK(tile_h >= 1 && tile_w >= 1, "jigsaw: image ", img.h, "x", img.w,
                " is too small for 3x3 tiles with gap ", gap);
  // The grid of tiles (pitch tile + gap) sits in the middle; what is left over stays zero.
  const int64_t top = (img.h - (3 * tile_h + 2 * gap)) / 2;
  const int64_t left = (img.w - (3 * tile_w + 2 * gap)) / 2;
  const std::array<int, 9>& perm = perms[static_cast<size_t>(perm_index)];
  Image out(img.c, img.h, img.w, 0.0f);
  for (int pos = 0; pos < 9; ++pos) {
    const int64_t dst_y = top + (pos / 3) * (tile_h + gap),
                  dst_x = left + (pos % 3) * (tile_w + gap);
    const int64_t src_y = top + (perm[pos] / 3) * (tile_h + gap);
    const int64_t src_x = left + (perm[pos] % 3) * (tile_w + gap);
    for (int64_t ch = 0; ch < img.c; ++ch)
      for (int64_t y = 0; y < tile_h; ++y)
        std::memcpy(pixel_ptr(out, ch, dst_y + y, dst_x), pixel_ptr(img, ch, src_y + y, src_x),
                    static_cast<size_t>(tile_w) * sizeof(float));
  }
  return out;
}

JigsawImage random_jigsaw(const Image& img, int gap, AugRng& rng) {
  const int label =
      static_cast<int>(rng.randint(0, static_cast<int64_t>(jigsaw_permutations().size())));
  return {jigsaw(img, label, gap), label};
}

// =============================================================================================
// MAE patch masks
// =============================================================================================

std::vector<uint8_t> random_patch_mask(int64_t grid_h, int64_t grid_w, float mask_ratio,
                                       AugRng& rng) {
  SELFSUP_CHECK(grid_h > 0 && grid_w > 0, "random_patch_mask: grid ", grid_h, "x", grid_w,
                " must be positive");
  SELFSUP_CHECK(mask_ratio >= 0.0f && mask_ratio <= 1.0f, "random_patch_mask: mask_ratio ",
                mask_ratio, " is outside [0, 1]");
  const int64_t total = grid_h * grid_w;
  // MAE keeps int(L * (1 - ratio)) patches and masks the rest.
  const auto keep = static_cast<int64_t>(
      std::floor(static_cast<double>(total) * (1.0 - static_cast<double>(mask_ratio))));
  const int64_t masked = total - keep;
  // A partial Fisher-Yates shuffle picks the masked patches uniformly.
  std::vector<int64_t> order(static_cast<size_t>(total));
  std::iota(order.begin(), order.end(), 0);
  std::vector<uint8_t> mask(static_cast<size_t>(total), 0);
  for (int64_t i = 0; i < masked; ++i) {
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(rng.randint(i, total))]);
    mask[static_cast<size_t>(order[static_cast<size_t>(i)])] = 1;
  }
  return mask;
}

void apply_patch_mask_(Image& img, const std::vector<uint8_t>& mask, int64_t patch, float fill) {
  check_image("apply_patch_mask", img);
  SELFSUP_CHECK(patch > 0 && img.h % patch == 0 && img.w % patch == 0, "apply_patch_mask: image ",
                img.h, "x", img.w, " is not a whole number of ", patch, "x", patch, " patches");
  const int64_t grid_h = img.h / patch, grid_w = img.w / patch;
  SELFSUP_CHECK(static_cast<int64_t>(mask.size()) == grid_h * grid_w, "apply_patch_mask: mask of ",
                mask.size(), " entries for a ", grid_h, "x", grid_w, " patch grid");
  for (int64_t ch = 0; ch < img.c; ++ch)
    for (int64_t y = 0; y < img.h; ++y) {
      const uint8_t* mask_row = &mask[static_cast<size_t>((y / patch) * grid_w)];
      float* row = pixel_ptr(img, ch, y, 0);
      for (int64_t x = 0; x < img.w; ++x)
        if (mask_row[x / patch]) row[x] = fill;
    }
}

MaskedImage mask_patches(const Image& img, int64_t patch, float mask_ratio, AugRng& rng,
                         float fill) {
  check_image("mask_patches", img);
  SELFSUP_CHECK(patch > 0 && img.h % patch == 0 && img.w % patch == 0, "mask_patches: image ",
                img.h, "x", img.w, " is not a whole number of ", patch, "x", patch, " patches");
  MaskedImage out{img, {}, img.h / patch, img.w / patch};
  out.mask = random_patch_mask(out.grid_h, out.grid_w, mask_ratio, rng);
  apply_patch_mask_(out.image, out.mask, patch, fill);
  return out;
}

// =============================================================================================
// Transform factories
// =============================================================================================
namespace transforms {

using detail::num;

TransformPtr jigsaw(int perm_index, int gap) {
  const auto classes = static_cast<int>(jigsaw_permutations().size());
  SELFSUP_CHECK(perm_index >= 0 && perm_index < classes, "jigsaw: permutation index ", perm_index,
                " is outside [0, ", classes, ")");
  SELFSUP_CHECK(gap >= 0, "jigsaw: gap ", gap, " must be >= 0");
  return from_function(
      "Jigsaw(perm=" + num(perm_index) + ", gap=" + num(gap) + ")",
      [=](const Image& img, AugRng&) { return data::jigsaw(img, perm_index, gap); });
}

TransformPtr random_patch_mask(int64_t patch, float mask_ratio, float fill) {
  SELFSUP_CHECK(patch > 0, "random_patch_mask: patch ", patch, " must be positive");
  SELFSUP_CHECK(mask_ratio >= 0.0f && mask_ratio <= 1.0f, "random_patch_mask: mask_ratio ",
                mask_ratio, " is outside [0, 1]");
  std::string name = "RandomPatchMask(patch=" + num(patch) + ", mask_ratio=" + num(mask_ratio) +
                     ", fill=" + num(fill) + ")";
  return from_function(std::move(name), [=](const Image& img, AugRng& rng) {
    return mask_patches(img, patch, mask_ratio, rng, fill).image;
  });
}

}  // namespace transforms
}  // namespace selfsup::data
