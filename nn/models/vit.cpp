#include "nn/models/vit.h"

#include <algorithm>
#include <cmath>

#include "autograd/ops.h"
#include "core/views.h"
#include "nn/init.h"

namespace selfsup::nn {

namespace {

// timm's ViT initialisation of a Linear: Xavier-uniform weight, zero bias.
std::shared_ptr<Linear> xavier_linear(int64_t in, int64_t out, Generator* gen) {
  auto fc = std::make_shared<Linear>(in, out, true, gen);
  init::xavier_uniform_(fc->weight, 1.0, gen);
  init::zeros_(fc->bias);
  return fc;
}

// N(0, 0.02) truncated at +-2 std: the ViT / DeiT initialisation of position embeddings and
// the class token.
void trunc_normal_02(Tensor& t, Generator* gen) {
  init::trunc_normal_(t, 0.0, 0.02, -0.04, 0.04, gen);
}

}  // namespace

// ---------------------------------------------------------------- attention

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    double scale) {
  // Scaling q (T d values) costs less than scaling the scores (T^2).
  Tensor scores = bmm(mul(q, scale), transpose(k, 1, 2));  // [B, Tq, Tk]
  return bmm(softmax(scores, -1), v);                      // [B, Tq, d]
}

MultiHeadAttention::MultiHeadAttention(int64_t dim_, int64_t heads, Generator* gen)
    : Module("MultiHeadAttention"), dim(dim_), num_heads(heads) {
  SELFSUP_CHECK(dim > 0 && heads > 0 && dim % heads == 0, "MultiHeadAttention: dim ", dim,
                " must be a positive multiple of num_heads ", heads);
  qkv = register_module("qkv", xavier_linear(dim, 3 * dim, gen));
  proj = register_module("proj", xavier_linear(dim, dim, gen));
}

Tensor MultiHeadAttention::forward(const Tensor& x) {
  SELFSUP_CHECK(x.dim() == 3 && x.size(2) == dim, "MultiHeadAttention(dim=", dim,
                "): expected tokens [B, T, ", dim, "], got ", shape_str(x.shape()));
  const int64_t b = x.size(0), t = x.size(1), d_head = dim / num_heads;
  // [B, T, 3D] -> [3, B, heads, T, d_head] (a strided view); each of q, k, v is then copied
  // into [B heads, T, d_head] so one bmm serves every head of every image.
  Tensor qkv5 = permute(reshape(qkv->forward(x), {b, t, 3, num_heads, d_head}), {2, 0, 3, 1, 4});
  auto heads = [&](int64_t i) { return reshape(select(qkv5, 0, i), {b * num_heads, t, d_head}); };
  Tensor out = scaled_dot_product_attention(heads(0), heads(1), heads(2),
                                            1.0 / std::sqrt(static_cast<double>(d_head)));
  // [B heads, T, d_head] -> [B, T, heads, d_head] -> [B, T, D]: the heads side by side.
  out = reshape(permute(reshape(out, {b, num_heads, t, d_head}), {0, 2, 1, 3}), {b, t, dim});
  return proj->forward(out);
}

std::string MultiHeadAttention::extra_repr() const {
  return "dim=" + std::to_string(dim) + ", num_heads=" + std::to_string(num_heads);
}

// ---------------------------------------------------------------- block

TransformerBlock::TransformerBlock(int64_t dim, int64_t num_heads, int64_t mlp_ratio,
                                   double norm_eps, Generator* gen)
    : Module("TransformerBlock") {
  SELFSUP_CHECK(mlp_ratio > 0, "TransformerBlock: mlp_ratio must be positive, got ", mlp_ratio);
  norm1 = register_module("norm1", std::make_shared<LayerNorm>(Shape{dim}, norm_eps));
  attn = register_module("attn", std::make_shared<MultiHeadAttention>(dim, num_heads, gen));
  norm2 = register_module("norm2", std::make_shared<LayerNorm>(Shape{dim}, norm_eps));
  mlp =
      register_module("mlp", std::make_shared<Sequential>(std::initializer_list<ModulePtr>{
                                 xavier_linear(dim, mlp_ratio * dim, gen), std::make_shared<GELU>(),
                                 xavier_linear(mlp_ratio * dim, dim, gen)}));
}

Tensor TransformerBlock::forward(const Tensor& x) {
  Tensor h = add(x, attn->forward(norm1->forward(x)));
  return add(h, mlp->forward(norm2->forward(h)));
}

// ---------------------------------------------------------------- the encoder

VisionTransformer::VisionTransformer(const ViTOptions& o, Generator* gen)
    : Module("VisionTransformer"), options(o) {
  SELFSUP_CHECK(o.in_channels > 0 && o.patch_size > 0 && o.depth > 0 && o.max_grid > 0,
                "VisionTransformer: in_channels ", o.in_channels, ", patch_size ", o.patch_size,
                ", depth ", o.depth, " and max_grid ", o.max_grid, " must be positive");
  const int64_t d = o.embed_dim;
  patch_embed = register_module(
      "patch_embed", std::make_shared<Conv2d>(
                         Conv2dOptions(o.in_channels, d, o.patch_size).stride(o.patch_size), gen));
  // Xavier on the [D, C p p] matrix the conv is (MAE's choice), bias 0.
  Tensor w2 = raw::view(patch_embed->weight, {d, -1});
  init::xavier_uniform_(w2, 1.0, gen);
  init::zeros_(patch_embed->bias);

  pos_embed = register_parameter("pos_embed", empty({o.max_grid, o.max_grid, d}));
  trunc_normal_02(pos_embed, gen);
  if (o.class_token) {
    cls_token = register_parameter("cls_token", empty({1, 1, d}));
    trunc_normal_02(cls_token, gen);
  }
  auto list = std::make_shared<Module>("ModuleList");
  for (int64_t i = 0; i < o.depth; ++i)
    blocks.push_back(list->register_module(
        std::to_string(i),
        std::make_shared<TransformerBlock>(d, o.num_heads, o.mlp_ratio, o.norm_eps, gen)));
  register_module("blocks", list);
  norm = register_module("norm", std::make_shared<LayerNorm>(Shape{d}, o.norm_eps));
}

std::pair<int64_t, int64_t> VisionTransformer::grid(const Tensor& x) const {
  const int64_t p = options.patch_size;
  SELFSUP_CHECK(x.dim() == 4 && x.size(1) == options.in_channels,
                "VisionTransformer: expected input [N, ", options.in_channels, ", H, W], got ",
                shape_str(x.shape()));
  SELFSUP_CHECK(x.size(2) % p == 0 && x.size(3) % p == 0, "VisionTransformer: image ", x.size(2),
                "x", x.size(3), " of ", shape_str(x.shape()), " is not a whole number of ", p, "x",
                p, " patches");
  const int64_t gh = x.size(2) / p, gw = x.size(3) / p;
  SELFSUP_CHECK(gh > 0 && gw > 0 && gh <= options.max_grid && gw <= options.max_grid,
                "VisionTransformer: a ", gh, "x", gw, " patch grid (image ", x.size(2), "x",
                x.size(3), ", patch ", p, ") does not fit the ", options.max_grid, "x",
                options.max_grid, " position table");
  return {gh, gw};
}

Tensor VisionTransformer::position_embedding(int64_t gh, int64_t gw) const {
  return position_corner(pos_embed, gh, gw);
}

Tensor VisionTransformer::embed(const Tensor& x) {
  auto [gh, gw] = grid(x);
  Tensor tokens = transpose(flatten(patch_embed->forward(x), 2), 1, 2);  // [N, L, D]
  return add(tokens, position_embedding(gh, gw));
}

Tensor VisionTransformer::encode(const Tensor& tokens) {
  SELFSUP_CHECK(tokens.dim() == 3 && tokens.size(2) == options.embed_dim,
                "VisionTransformer: expected tokens [N, T, ", options.embed_dim, "], got ",
                shape_str(tokens.shape()));
  Tensor h = tokens;
  if (options.class_token)
    h = cat({expand(cls_token, {tokens.size(0), 1, options.embed_dim}), tokens}, 1);
  for (auto& block : blocks)
    h = block->forward(h);
  return norm->forward(h);
}

Tensor VisionTransformer::forward_visible(const Tensor& x, const Tensor& keep) {
  return encode(gather_tokens(embed(x), keep));
}

Tensor VisionTransformer::pool(const Tensor& encoded) const {
  if (options.class_token) return select(encoded, 1, 0);
  return mean(encoded, {1});
}

Tensor VisionTransformer::forward(const Tensor& x) {
  return pool(encode(embed(x)));
}

Tensor VisionTransformer::patchify(const Tensor& images) const {
  return nn::patchify(images, options.patch_size);
}

Tensor VisionTransformer::unpatchify(const Tensor& patches, int64_t height, int64_t width) const {
  return nn::unpatchify(patches, options.patch_size, height, width);
}

// ---------------------------------------------------------------- helpers

Tensor patchify(const Tensor& images, int64_t p) {
  SELFSUP_CHECK(p > 0 && images.dim() == 4 && images.size(2) % p == 0 && images.size(3) % p == 0,
                "patchify: images ", shape_str(images.shape()), " are not [N, C, H, W] with H and ",
                "W multiples of the patch ", p);
  const int64_t n = images.size(0), c = images.size(1), gh = images.size(2) / p,
                gw = images.size(3) / p;
  Tensor six = reshape(images, {n, c, gh, p, gw, p});  // [N, C, gh, p, gw, p]
  return reshape(permute(six, {0, 2, 4, 1, 3, 5}), {n, gh * gw, c * p * p});
}

Tensor unpatchify(const Tensor& patches, int64_t p, int64_t height, int64_t width) {
  SELFSUP_CHECK(p > 0 && height % p == 0 && width % p == 0 && patches.dim() == 3 &&
                    patches.size(1) == (height / p) * (width / p) && patches.size(2) % (p * p) == 0,
                "unpatchify: patches ", shape_str(patches.shape()), " are not [N, L, C*", p, "*", p,
                "] of a ", height, "x", width, " image");
  const int64_t n = patches.size(0), c = patches.size(2) / (p * p), gh = height / p, gw = width / p;
  Tensor six = reshape(patches, {n, gh, gw, c, p, p});  // [N, gh, gw, C, p, p]
  return reshape(permute(six, {0, 3, 1, 4, 2, 5}), {n, c, height, width});
}

Tensor position_corner(const Tensor& table, int64_t gh, int64_t gw) {
  SELFSUP_CHECK(table.dim() == 3 && gh > 0 && gw > 0 && gh <= table.size(0) && gw <= table.size(1),
                "position_corner: a ", gh, "x", gw, " grid does not fit the position table ",
                shape_str(table.shape()));
  Tensor corner = narrow(narrow(table, 0, 0, gh), 1, 0, gw);  // [gh, gw, D], strided
  return reshape(corner, {gh * gw, table.size(2)});
}

Tensor gather_tokens(const Tensor& tokens, const Tensor& ids) {
  SELFSUP_CHECK(
      tokens.dim() == 3 && ids.dim() == 2 && ids.size(0) == tokens.size(0) && ids.dtype() == kInt64,
      "gather_tokens: tokens ", shape_str(tokens.shape()), " and int64 ids [N, K] ",
      "expected, got ids ", dtype_name(ids.dtype()), " ", shape_str(ids.shape()));
  const int64_t n = tokens.size(0), l = tokens.size(1), k = ids.size(1);
  // Row r of image i is row i L + r of the flattened [N L, D] tokens.
  Tensor flat_ids = empty({n * k}, kInt64);
  Tensor src = raw::to_device(raw::contiguous(ids), kCPU);  // checked and offset on the host
  const int64_t* in = src.data_ptr<int64_t>();
  int64_t* out = flat_ids.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < k; ++j) {
      const int64_t r = in[i * k + j];
      SELFSUP_CHECK(r >= 0 && r < l, "gather_tokens: id ", r, " at [", i, ", ", j,
                    "] is outside [0, ", l, ")");
      out[i * k + j] = i * l + r;
    }
  Tensor flat = reshape(tokens, {n * l, tokens.size(2)});
  return reshape(index_select(flat, 0, raw::to_device(flat_ids, tokens.device())),
                 {n, k, tokens.size(2)});
}

ViTOptions vit_tiny_options(int64_t in_channels, double width_multiplier) {
  SELFSUP_CHECK(width_multiplier > 0, "vit-tiny: width_multiplier must be positive, got ",
                width_multiplier);
  ViTOptions o;
  o.in_channels = in_channels;
  // 192 scaled, rounded to a whole number of heads (at least one 1-wide head each).
  const double per_head = 192.0 * width_multiplier / static_cast<double>(o.num_heads);
  o.embed_dim = o.num_heads * std::max<int64_t>(1, std::llround(per_head));
  return o;
}

}  // namespace selfsup::nn
