// Vision Transformer encoders (Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021),
// with timm's pre-norm layout and parameter names, sized for small images on a CPU.
//
//   image [N, C, H, W] -> patch_embed (conv, kernel = stride = patch) -> tokens [N, L, D]
//   + pos_embed -> [cls_token] -> blocks.0 .. blocks.{depth-1} -> norm -> pooled [N, D]
//
//   block:  x = x + attn(norm1(x));  x = x + mlp(norm2(x))   (mlp = fc1 -> GELU -> fc2, ratio 4)
//   attn:   qkv = Linear(D, 3D); per head softmax(q k^T / sqrt(d_head)) v; proj = Linear(D, D)
//
// Choices for small images:
// - Patch 4: a 28x28 image is a 7x7 grid (L = 49 tokens), a 32x32 image an 8x8 grid (L = 64).
// - The learnable position table covers a max_grid x max_grid grid (16 x 16: images up to 64 px
//   at patch 4); a smaller image uses its top-left gh x gw corner, so one encoder serves 28 px
//   and 32 px datasets and its state dict does not depend on the image size. Rows outside the
//   grid a dataset uses never receive gradient. Initialised, like the class token, from a normal
//   of std 0.02 truncated at +-2 std (ViT / DeiT).
// - Features: by default no class token, and the feature is the mean of the final-normalised
//   patch tokens (global average pooling, which the issue allows and which MAE's masked
//   training needs no special case for). class_token = true prepends a learnable [CLS] token
//   and uses its final-normalised output as the feature instead.
// - Linear and patch-embedding weights: Xavier-uniform (the patch conv's on its [D, C p p]
//   matrix view), biases 0, LayerNorm 1 / 0 with eps 1e-6 (timm's ViT / MAE initialisation).
//
// vit-tiny (the registry's name): ViT-Ti's width 192 and 3 heads (d_head 64), MLP 768, depth 6
// instead of 12 to halve the CPU cost at 28 px. 2.72M parameters for 1 channel (2.68M in the
// blocks, 49k in the 16x16 position table, 3k in the patch embedding). Forward + backward of a
// batch of 64 images 1x28x28 (49 tokens, float32), timed in a scratch program on the 2-core
// build machine (AMD EPYC, AVX2) while other builds shared it (load average ~5): 2.6 s with
// one OpenMP thread (resnet-small: 1.0 s alike), 4.7-11 s in other runs and with 2 threads,
// where Eigen's threaded GEMM waits at its barriers. Noisy numbers: read them as an order of
// magnitude (about 2.5x resnet-small's cost), not a benchmark.
//
// For MAE the encoder also runs on a subset of the patches (forward_visible: the blocks see the
// visible tokens only, each with its own position embedding), and patchify / unpatchify turn
// images into per-patch pixel vectors and back.
#pragma once

#include <memory>
#include <utility>
#include <vector>

#include "nn/layers.h"

namespace selfsup::nn {

struct ViTOptions {
  int64_t in_channels = 3;
  int64_t patch_size = 4;
  int64_t embed_dim = 192;
  int64_t depth = 6;
  int64_t num_heads = 3;  // embed_dim must be a multiple
  int64_t mlp_ratio = 4;  // MLP hidden width = mlp_ratio * embed_dim
  int64_t max_grid = 16;  // side of the position table, in patches
  bool class_token = false;
  double norm_eps = 1e-6;
};

// Multi-head self-attention over tokens [B, T, D]: the heads are folded into the batch of
// one bmm for the scores and one for the weighted sum. Parameters "qkv" (D -> 3D, the q, k, v
// blocks of D rows each, heads in order within each block) and "proj" (D -> D).
class MultiHeadAttention : public Module {
 public:
  MultiHeadAttention(int64_t dim, int64_t num_heads, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;  // [B, T, D] -> [B, T, D]
  std::string extra_repr() const override;

  int64_t dim, num_heads;
  std::shared_ptr<Linear> qkv, proj;
};

// softmax(q k^T * scale, dim = -1) v for q [B, Tq, d], k and v [B, Tk, d] -> [B, Tq, d].
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    double scale);

// The pre-norm Transformer block: x + attn(norm1(x)), then + mlp(norm2(x)).
class TransformerBlock : public Module {
 public:
  TransformerBlock(int64_t dim, int64_t num_heads, int64_t mlp_ratio, double norm_eps = 1e-6,
                   Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;  // [B, T, D] -> [B, T, D]

  std::shared_ptr<LayerNorm> norm1, norm2;
  std::shared_ptr<MultiHeadAttention> attn;
  std::shared_ptr<Sequential> mlp;  // fc1 (D -> ratio D), GELU, fc2
};

class VisionTransformer : public Module {
 public:
  explicit VisionTransformer(const ViTOptions& options, Generator* gen = nullptr);

  // Images [N, C, H, W] -> pooled features [N, D] of every patch (no masking).
  Tensor forward(const Tensor& x) override;
  int64_t feature_dim() const { return options.embed_dim; }
  // 1 with a class token, else 0: the tokens before the patch tokens in an encoded sequence.
  int64_t num_prefix_tokens() const { return options.class_token ? 1 : 0; }

  // The patch grid (gh, gw) of an image batch; checks the shape (4-d, the channel count, sides
  // multiples of the patch, grid within the position table).
  std::pair<int64_t, int64_t> grid(const Tensor& x) const;
  // Patch embeddings plus their position embeddings, for every patch: [N, L, D], L = gh gw.
  Tensor embed(const Tensor& x);
  // The position embeddings of a gh x gw grid, row-major: [gh gw, D].
  Tensor position_embedding(int64_t gh, int64_t gw) const;
  // Prepends the class token (if any), runs the blocks and the final norm:
  // [N, T, D] -> [N, prefix + T, D].
  Tensor encode(const Tensor& tokens);
  // The encoder on the patches keep[n, :] of each image only (int64 [N, K], indices into the
  // row-major grid): [N, prefix + K, D], the K tokens in the order of keep.
  Tensor forward_visible(const Tensor& x, const Tensor& keep);
  // The feature of an encoded sequence [N, prefix + T, D]: the class token's output or the
  // mean of the patch tokens -> [N, D].
  Tensor pool(const Tensor& encoded) const;

  Tensor patchify(const Tensor& images) const;  // see the free functions below
  Tensor unpatchify(const Tensor& patches, int64_t height, int64_t width) const;

  ViTOptions options;
  std::shared_ptr<Conv2d> patch_embed;
  Tensor pos_embed;  // [max_grid, max_grid, D]
  Tensor cls_token;  // [1, 1, D], undefined without a class token
  std::vector<std::shared_ptr<TransformerBlock>> blocks;  // registered as blocks.0, blocks.1, ...
  std::shared_ptr<LayerNorm> norm;
};

// Images [N, C, H, W] -> patches [N, L, C p p]: L in row-major grid order, each patch's pixels
// in (channel, row, column) order, the layout of a [D, C, p, p] conv weight's rows (so
// linear(patchify(x), w.view(D, -1)) is the patch embedding). H and W must be multiples of p.
Tensor patchify(const Tensor& images, int64_t patch);
// The inverse: patches [N, L, C p p] of an image of height x width -> [N, C, height, width].
Tensor unpatchify(const Tensor& patches, int64_t patch, int64_t height, int64_t width);
// The rows ids[n, :] of tokens[n]: tokens [N, L, D], ids int64 [N, K] in [0, L) -> [N, K, D].
// One index_select over the flattened tokens, so the gradient scatters back.
Tensor gather_tokens(const Tensor& tokens, const Tensor& ids);

// The top-left gh x gw corner of a learnable position table [G, G, D], row-major: [gh gw, D].
Tensor position_corner(const Tensor& table, int64_t gh, int64_t gw);

// vit-tiny: embed_dim 192 x width_multiplier (rounded to a multiple of the 3 heads), depth 6.
ViTOptions vit_tiny_options(int64_t in_channels = 3, double width_multiplier = 1.0);

}  // namespace selfsup::nn
