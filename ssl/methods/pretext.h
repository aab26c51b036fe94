// The pieces of the pretext-task methods that can be checked on their own: RotNet's labels,
// Jigsaw's tiles and their shuffling, the denoising autoencoder's corruption. The methods
// (rotnet.cpp, jigsaw.cpp, dae.cpp) are built from them; the tests check them by hand.
#pragma once

#include <cstdint>
#include <vector>

#include "core/random.h"
#include "core/tensor.h"
#include "core/views.h"
#include "nn/module.h"

namespace selfsup::ssl {

// ---- shared ----

// Copies of a module's buffers (BatchNorm's running statistics), written back when it goes out
// of scope: a forward inside its lifetime trains as usual but leaves the statistics as they
// were. Jigsaw and the DAE train their encoder on inputs unlike the whole, clean images the
// evaluation shows it (tiles; corrupted views); they update the statistics from a gradient-free
// forward of the clean views and keep the training forward out of them.
class KeepBuffers {
 public:
  explicit KeepBuffers(const nn::Module& m) : live_(m.buffers()) {
    for (const Tensor& b : live_)
      saved_.push_back(raw::clone(b));
  }
  ~KeepBuffers() {
    for (size_t i = 0; i < live_.size(); ++i)
      raw::copy_(live_[i], saved_[i]);
  }
  KeepBuffers(const KeepBuffers&) = delete;
  KeepBuffers& operator=(const KeepBuffers&) = delete;

 private:
  std::vector<Tensor> live_, saved_;
};

// ---- RotNet (Gidaris et al. 2018) ----

// The labels of the rotnet views concatenated along the batch: [num_views * batch] int64, the
// block of view v (rows v * batch .. (v + 1) * batch - 1) holding v % 4, because the rotnet
// recipe rotates view v by (v % 4) * 90 degrees counter-clockwise.
Tensor rotation_labels(int64_t batch, int64_t num_views);

// ---- Jigsaw (Noroozi & Favaro 2016) ----

// Where the 3x3 tiles of an H x W image lie. The image is cut into 3x3 cells of
// floor(H / 3) x floor(W / 3) (centred; a remainder of 1-2 px is dropped) and the tile of each
// cell is a (cell - jitter)-sided window at a random offset in [0, jitter] inside it, so
// neighbouring tiles are 0 to 2 * jitter px apart (on average jitter): the paper's guard
// against solving the puzzle by continuing edges and textures across tile borders.
struct JigsawGrid {
  int64_t cell_h = 0, cell_w = 0;      // cell size
  int64_t tile_h = 0, tile_w = 0;      // tile size: cell - jitter
  int64_t origin_y = 0, origin_x = 0;  // top-left corner of cell 0
  int64_t jitter = 0;                  // largest offset of a tile inside its cell
};
JigsawGrid jigsaw_grid(int64_t height, int64_t width, int64_t jitter);

// The tiles of every cell of every image: images [B, C, H, W] (float32 or float64, any
// strides), offsets [B, 9, 2] int64 holding (dy, dx) in [0, jitter] for each cell (row-major
// cell order k = 3 * row + col). Returns [B * 9, C, tile_h, tile_w], row b * 9 + k being cell k
// of image b, in its natural (unshuffled) order. No gradient (the views are data).
Tensor cut_jigsaw_tiles(const Tensor& images, const Tensor& offsets, const JigsawGrid& grid);

// Standardises each tile [C, h, w] of tiles [N, C, h, w] (contiguous) in place to mean 0 and
// variance var / (var + eps): the paper normalises every tile on its own so that the network
// cannot order tiles by their brightness or contrast; eps keeps the near-blank tiles of a
// dark background from blowing their noise up to unit variance.
void standardize_tiles_(Tensor& tiles, double eps = 1e-2);

// The puzzle of each image: features [B * 9, D] of the tiles in natural order (as cut above)
// and labels [B] int64 indexing jigsaw_permutations(). Returns [B, 9 * D], slot i of image b
// holding the features of tile perm[i] (perm = jigsaw_permutations()[labels[b]]), i.e. the
// tiles as the shuffled puzzle shows them, the convention of data::jigsaw(). Differentiable.
Tensor shuffle_tile_features(const Tensor& features, const Tensor& labels);

// ---- denoising autoencoder (Vincent et al. 2008) ----

struct DaeNoise {
  double mask = 0.25;  // masking noise: the fraction of pixels set to 0 (all channels alike)
  double stdev = 0.0;  // additive Gaussian noise of this standard deviation
};
// Throws an Error naming the option when mask is outside [0, 1) or stdev is negative.
void check_dae_noise(const DaeNoise& noise);
// keep * (x + stdev * n): n standard normal per element, keep a Bernoulli(1 - mask) per pixel
// [B, 1, H, W] shared by the channels, so a masked pixel is exactly 0. images [B, C, H, W];
// the result has their dtype and no gradient. Draws from gen.
Tensor corrupt(const Tensor& images, const DaeNoise& noise, Generator& gen);

}  // namespace selfsup::ssl
