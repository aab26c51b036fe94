// Jigsaw puzzles (Noroozi & Favaro: "Unsupervised Learning of Visual Representations by Solving
// Jigsaw Puzzles", ECCV 2016).
//
// Each image is cut into 3x3 tiles, the tiles are shuffled by one of a fixed set of
// permutations (jigsaw_permutations(): greedily chosen for maximal Hamming distance, index 0 the
// identity) and the network predicts which one. A siamese "context-free network": every tile
// goes through the shared encoder on its own (all 9B tiles of a batch in one forward), the 9
// tile features are concatenated in the shuffled order, and an MLP head classifies the
// permutation index. Solving the puzzle needs to know what the parts of an object look like and
// where they belong.
//
// Adapted to 28 px images (the paper cuts 64 px tiles from the 75 px cells of a 225 px crop):
//  - cells of floor(side / 3) = 9 px, tiles of cell - jitter px at a random offset in each cell;
//    the default jitter 1 gives 8x8 tiles 0-2 px apart (1 px on average, 1/8 of a tile; the
//    paper's gaps average 11 px, 1/6 of a tile). resnet-small (strides 1, 2, 2) takes them
//    down to 2x2 before its global pool.
//  - every tile is standardised on its own (the paper's guard against ordering tiles by their
//    brightness and contrast); the recipe already turns 30% of colour images gray.
//  - the head is feature * 9 -> 512 -> classes (Linear-BN-ReLU, Linear; --proj-hidden sets
//    the width), a scaled-down form of the paper's fc7 (4096) and fc8; the encoder's output
//    plays the part of the paper's per-tile fc6.
//  - 100 permutation classes by default (the paper's best trade-off); --jigsaw-classes takes
//    the first N of the set, which is itself a greedy maximal-Hamming set.
//
// Evaluation uses the encoder on whole images, which it never sees in training. So that its
// BatchNorm running statistics describe whole images and not 8x8 standardised tiles, each step
// also runs the whole views through the encoder (no gradient, train mode: the statistics are
// updated) and the tile forward leaves them untouched. Those whole-image features are also the
// step's embedding for the collapse diagnostics. The puzzles come from the method's own
// generator, seeded from the run's seed. The step reports the puzzle accuracy as "puzzle_acc".
#include <algorithm>
#include <cmath>
#include <cstring>

#include "autograd/ops.h"
#include "core/views.h"
#include "ssl/data/transforms.h"
#include "ssl/eval/linear_probe.h"
#include "ssl/methods/method.h"
#include "ssl/methods/pretext.h"

namespace selfsup::ssl {

namespace {
constexpr int64_t kTiles = 9;
}  // namespace

// =============================================================================================
// Tiles
// =============================================================================================

JigsawGrid jigsaw_grid(int64_t height, int64_t width, int64_t jitter) {
  SELFSUP_CHECK(jitter >= 0, "jigsaw: --tile-jitter must be >= 0, got ", jitter);
  JigsawGrid g;
  g.cell_h = height / 3;
  g.cell_w = width / 3;
  g.jitter = jitter;
  g.tile_h = g.cell_h - jitter;
  g.tile_w = g.cell_w - jitter;
  SELFSUP_CHECK(g.tile_h >= 1 && g.tile_w >= 1, "jigsaw: ", height, "x", width,
                " images have cells of ", g.cell_h, "x", g.cell_w,
                " px: no room for tiles with --tile-jitter ", jitter);
  g.origin_y = (height - 3 * g.cell_h) / 2;
  g.origin_x = (width - 3 * g.cell_w) / 2;
  return g;
}

namespace {

// Copies tile rows: src [B, C, H, W] contiguous, offsets [B, 9, 2], dst [B * 9, C, th, tw].
template <typename T>
void cut_tiles(const T* src, const int64_t* offsets, T* dst, int64_t batch, int64_t channels,
               int64_t height, int64_t width, const JigsawGrid& g) {
  const int64_t tile_numel = channels * g.tile_h * g.tile_w;
#pragma omp parallel for if (batch * tile_numel * kTiles > (1 << 16))
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t k = 0; k < kTiles; ++k) {
      const int64_t* off = offsets + (b * kTiles + k) * 2;  // (dy, dx)
      const int64_t y0 = g.origin_y + (k / 3) * g.cell_h + off[0];
      const int64_t x0 = g.origin_x + (k % 3) * g.cell_w + off[1];
      T* tile = dst + (b * kTiles + k) * tile_numel;
      for (int64_t c = 0; c < channels; ++c) {
        const T* plane = src + (b * channels + c) * height * width;
        for (int64_t y = 0; y < g.tile_h; ++y)
          std::memcpy(tile + (c * g.tile_h + y) * g.tile_w, plane + (y0 + y) * width + x0,
                      static_cast<size_t>(g.tile_w) * sizeof(T));
      }
    }
}

template <typename T>
void standardize(T* tiles, int64_t count, int64_t tile_numel, double eps) {
#pragma omp parallel for if (count * tile_numel > (1 << 16))
  for (int64_t i = 0; i < count; ++i) {
    T* t = tiles + i * tile_numel;
    double sum = 0, sum_sq = 0;
    for (int64_t j = 0; j < tile_numel; ++j)
      sum += static_cast<double>(t[j]);
    const double mean = sum / static_cast<double>(tile_numel);
    for (int64_t j = 0; j < tile_numel; ++j) {
      const double d = static_cast<double>(t[j]) - mean;
      sum_sq += d * d;
    }
    const double inv = 1.0 / std::sqrt(sum_sq / static_cast<double>(tile_numel) + eps);
    for (int64_t j = 0; j < tile_numel; ++j)
      t[j] = static_cast<T>((static_cast<double>(t[j]) - mean) * inv);
  }
}

void check_float_cpu(const char* op, const Tensor& t) {
  SELFSUP_CHECK(t.dtype() == kFloat32 || t.dtype() == kFloat64, op,
                ": expected a float32 or float64 tensor, got ", dtype_name(t.dtype()));
  SELFSUP_CHECK(t.device() == kCPU, op, ": expected a CPU tensor");
}

}  // namespace

Tensor cut_jigsaw_tiles(const Tensor& images, const Tensor& offsets, const JigsawGrid& g) {
  check_float_cpu("cut_jigsaw_tiles", images);
  SELFSUP_CHECK(images.dim() == 4, "cut_jigsaw_tiles: images must be [B, C, H, W], got ",
                shape_str(images.shape()));
  const int64_t batch = images.size(0), channels = images.size(1), height = images.size(2),
                width = images.size(3);
  SELFSUP_CHECK(g.tile_h >= 1 && g.tile_w >= 1 && g.tile_h + g.jitter <= g.cell_h &&
                    g.tile_w + g.jitter <= g.cell_w && g.origin_y >= 0 && g.origin_x >= 0 &&
                    g.origin_y + 3 * g.cell_h <= height && g.origin_x + 3 * g.cell_w <= width,
                "cut_jigsaw_tiles: the grid of ", g.cell_h, "x", g.cell_w, " cells with ", g.tile_h,
                "x", g.tile_w, " tiles does not fit images ", shape_str(images.shape()));
  SELFSUP_CHECK(offsets.dtype() == kInt64 && offsets.shape() == Shape({batch, kTiles, 2}),
                "cut_jigsaw_tiles: offsets must be int64 [", batch, ", 9, 2], got ",
                dtype_name(offsets.dtype()), " ", shape_str(offsets.shape()));
  Tensor offs = raw::contiguous(offsets);
  const int64_t* off = offs.data_ptr<int64_t>();
  for (int64_t i = 0; i < offs.numel(); ++i)
    SELFSUP_CHECK(off[i] >= 0 && off[i] <= g.jitter, "cut_jigsaw_tiles: offset ", off[i],
                  " of tile ", i / 2, " is outside [0, ", g.jitter, "]");
  Tensor src = raw::contiguous(images);
  Tensor tiles = empty({batch * kTiles, channels, g.tile_h, g.tile_w}, images.dtype());
  if (images.dtype() == kFloat32)
    cut_tiles(src.data_ptr<float>(), off, tiles.data_ptr<float>(), batch, channels, height, width,
              g);
  else
    cut_tiles(src.data_ptr<double>(), off, tiles.data_ptr<double>(), batch, channels, height, width,
              g);
  return tiles;
}

void standardize_tiles_(Tensor& tiles, double eps) {
  check_float_cpu("standardize_tiles_", tiles);
  SELFSUP_CHECK(tiles.dim() >= 2 && tiles.is_contiguous(),
                "standardize_tiles_: expected contiguous tiles [N, ...], got ",
                shape_str(tiles.shape()));
  SELFSUP_CHECK(eps >= 0, "standardize_tiles_: eps ", eps, " must be >= 0");
  const int64_t count = tiles.size(0), tile_numel = count > 0 ? tiles.numel() / count : 0;
  if (tiles.dtype() == kFloat32)
    standardize(tiles.data_ptr<float>(), count, tile_numel, eps);
  else
    standardize(tiles.data_ptr<double>(), count, tile_numel, eps);
  tiles.bump_version();
}

Tensor shuffle_tile_features(const Tensor& features, const Tensor& labels) {
  SELFSUP_CHECK(labels.dim() == 1 && labels.dtype() == kInt64,
                "shuffle_tile_features: labels must be int64 [B], got ", dtype_name(labels.dtype()),
                " ", shape_str(labels.shape()));
  const int64_t batch = labels.size(0);
  SELFSUP_CHECK(features.dim() == 2 && features.size(0) == batch * kTiles,
                "shuffle_tile_features: features must be [9 * B, D] = [", batch * kTiles,
                ", D] for ", batch, " labels, got ", shape_str(features.shape()));
  const auto& perms = data::jigsaw_permutations();
  auto label = labels.to_vector<int64_t>();
  Tensor index = empty({batch * kTiles}, kInt64);  // slot i of image b <- row b * 9 + perm[i]
  int64_t* idx = index.data_ptr<int64_t>();
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t l = label[static_cast<size_t>(b)];
    SELFSUP_CHECK(l >= 0 && l < static_cast<int64_t>(perms.size()), "shuffle_tile_features: label ",
                  l, " of image ", b, " is outside [0, ", perms.size(), ")");
    for (int64_t i = 0; i < kTiles; ++i)
      idx[b * kTiles + i] = b * kTiles + perms[static_cast<size_t>(l)][static_cast<size_t>(i)];
  }
  return reshape(index_select(features, 0, raw::to_device(index, features.device())),
                 {batch, kTiles * features.size(1)});
}

// =============================================================================================
// The method
// =============================================================================================
namespace {

constexpr int64_t kDefaultClasses = 100;
constexpr uint64_t kPuzzleStream = 0x6a6967736177ull;  // "jigsaw": a key apart from gen_'s

class Jigsaw : public Method {
 public:
  explicit Jigsaw(const MethodOptions& o)
      : Method("jigsaw", o), puzzle_gen_(o.seed ^ kPuzzleStream) {
    const auto available = static_cast<int64_t>(data::jigsaw_permutations().size());
    classes_ = or_default(o.jigsaw_classes, kDefaultClasses);
    SELFSUP_CHECK(classes_ >= 2 && classes_ <= available, "jigsaw: --jigsaw-classes ",
                  o.jigsaw_classes, " must lie in [2, ", available, "]");
    SELFSUP_CHECK(o.tile_jitter >= 0, "jigsaw: --tile-jitter must be >= 0, got ", o.tile_jitter);
    SELFSUP_CHECK(o.proj_hidden >= 0, "jigsaw: --proj-hidden must be >= 0, got ", o.proj_hidden);
    classifier_ = register_module(
        "classifier",
        make_head({kTiles * feature_dim(), or_default(o.proj_hidden, int64_t{512}), classes_},
                  false, gen_));
    // Where the image size is known, refuse an encoder that cannot take the tiles now rather
    // than at the first step.
    if (o.image_size > 0) probe_tiles(jigsaw_grid(o.image_size, o.image_size, o.tile_jitter));
  }

  std::string augment_preset() const override { return "jigsaw"; }
  int64_t num_views() const override { return 1; }
  void before_epoch(const EpochContext& ctx) override {
    puzzle_gen_.set_offset(epoch_rng_offset(ctx.epoch));
  }

  StepOutput step(const std::vector<Tensor>& views) override {
    SELFSUP_CHECK(views.size() == 1, "jigsaw: expected 1 view, got ", views.size());
    const Tensor& images = views[0];
    SELFSUP_CHECK(images.dim() == 4, "jigsaw: expected a view [B, C, H, W], got ",
                  shape_str(images.shape()));
    const int64_t n = images.size(0);
    JigsawGrid grid = jigsaw_grid(images.size(2), images.size(3), options().tile_jitter);
    Tensor labels = randint(0, classes_, {n}, kInt64, &puzzle_gen_);
    Tensor offsets = randint(0, grid.jitter + 1, {n, kTiles, 2}, kInt64, &puzzle_gen_);
    // Tiles are cut and standardised on the host, then join the encoder on its device.
    Tensor tiles =
        cut_jigsaw_tiles(raw::to_device(images, kCPU), offsets, grid);  // [9n, C, th, tw]
    standardize_tiles_(tiles);
    tiles = raw::to_device(tiles, images.device());

    StepOutput out;
    {
      NoGradGuard no_grad;  // whole images: BatchNorm's running statistics, the embedding
      out.embedding = features(images);
    }
    Tensor tile_features;
    {
      KeepBuffers keep(encoder());
      tile_features = encode_tiles(tiles, grid);  // [9n, D]
    }
    Tensor logits = classifier_->forward(shuffle_tile_features(tile_features, labels));
    labels = raw::to_device(labels, logits.device());
    out.loss = cross_entropy(logits, labels);
    out.metrics = {{"puzzle_acc", top1_accuracy(logits, labels)}};
    return out;
  }

 private:
  Tensor encode_tiles(const Tensor& tiles, const JigsawGrid& grid) {
    try {
      return features(tiles);
    } catch (const Error& e) {
      throw Error("jigsaw: the encoder " + options().model + " cannot take " +
                  std::to_string(grid.tile_h) + "x" + std::to_string(grid.tile_w) +
                  " tiles: " + e.what());
    }
  }

  // One eval-mode forward of two blank tiles (no statistics change, no graph).
  void probe_tiles(const JigsawGrid& grid) {
    NoGradGuard no_grad;
    const bool was_training = encoder().is_training();
    encoder().eval();
    Tensor blank = zeros({2, options().in_channels, grid.tile_h, grid.tile_w});
    try {
      encode_tiles(blank, grid);
    } catch (...) {
      encoder().train(was_training);
      throw;
    }
    encoder().train(was_training);
  }

  Generator puzzle_gen_;
  int64_t classes_ = kDefaultClasses;
  std::shared_ptr<nn::Module> classifier_;
};

}  // namespace

std::shared_ptr<Method> make_jigsaw(const MethodOptions& o) {
  return std::make_shared<Jigsaw>(o);
}

}  // namespace selfsup::ssl
