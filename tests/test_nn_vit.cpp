// The Vision Transformer of nn/models/vit.h: shapes for 28 and 32 px with 1 and 3 channels, a
// parameter count worked out by hand, multi-head attention against a naive float64 loop,
// float64 gradchecks of a block and of the masked encoder path, patchify / unpatchify against
// the index formula, the conv patch embedding against patchify + linear, the visible-token
// path, and the errors for bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "nn/models/registry.h"
#include "nn/models/vit.h"

using namespace selfsup;
using namespace selfsup::nn;

namespace {

// The message of the Error f throws, or "(no error)".
template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// A small ViT for the tests: 2 heads of 3, depth 2, patch 2.
ViTOptions small_options(int64_t channels, bool class_token = false) {
  ViTOptions o;
  o.in_channels = channels;
  o.patch_size = 2;
  o.embed_dim = 6;
  o.depth = 2;
  o.num_heads = 2;
  o.mlp_ratio = 2;
  o.max_grid = 5;
  o.class_token = class_token;
  return o;
}

// Gives every bias (zero after initialisation) random values, so tests see them used.
void randomise_biases(Module& m, uint64_t seed) {
  Generator gen(seed);
  NoGradGuard no_grad;
  for (auto& [name, p] : m.named_parameters())
    if (name.size() >= 4 && name.compare(name.size() - 4, 4, "bias") == 0)
      p.copy_(mul(randn(p.shape(), p.dtype(), &gen), 0.3));
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  auto va = a.to_vector<double>(), vb = b.to_vector<double>();
  EXPECT_EQ(va.size(), vb.size());
  double m = 0;
  for (size_t i = 0; i < va.size() && i < vb.size(); ++i)
    m = std::max(m, std::abs(va[i] - vb[i]));
  return m;
}

}  // namespace

// ---------------------------------------------------------------- shapes and size

TEST(NnViT, ShapesFor28And32PixelsAndOneOrThreeChannels) {
  for (int64_t channels : {1, 3}) {
    for (int64_t side : {28, 32}) {
      Generator gen(1);
      Encoder enc = make_encoder("vit-tiny", channels, 0.25, &gen);
      auto* vit = dynamic_cast<VisionTransformer*>(enc.module.get());
      ASSERT_NE(vit, nullptr);
      EXPECT_EQ(enc.feature_dim, 48);  // 192 / 4, three heads of 16
      Tensor x = rand({3, channels, side, side}, kFloat32, &gen);
      const int64_t grid = side / 4;
      EXPECT_EQ(vit->grid(x), std::make_pair(grid, grid));
      EXPECT_EQ(vit->embed(x).shape(), (Shape{3, grid * grid, 48}));
      Tensor y = enc.module->forward(x);
      EXPECT_EQ(y.shape(), (Shape{3, 48})) << channels << " " << side;
      for (float v : y.to_vector<float>())
        EXPECT_TRUE(std::isfinite(v));
      EXPECT_EQ(vit->patchify(x).shape(), (Shape{3, grid * grid, channels * 16}));
    }
  }
}

TEST(NnViT, ParameterCountByHand) {
  auto linear = [](int64_t in, int64_t out) { return in * out + out; };
  const int64_t d = 192, h = 4 * d;
  const int64_t block = 2 * (2 * d) + linear(d, 3 * d) + linear(d, d) + linear(d, h) +
                        linear(h, d);  // two LayerNorms, qkv, proj, fc1, fc2
  for (int64_t channels : {1, 3}) {
    const int64_t patch_embed = channels * 16 * d + d;
    const int64_t want = patch_embed + 16 * 16 * d + 6 * block + 2 * d;  // + pos table + norm
    EXPECT_EQ(make_encoder("vit-tiny", channels).module->num_parameters(), want) << channels;
  }
  EXPECT_EQ(make_encoder("vit-tiny", 1).module->num_parameters(), 2721984);
  // Width 0.5: 96 = 3 heads of 32.
  EXPECT_EQ(make_encoder("vit-tiny", 1, 0.5).feature_dim, 96);
}

TEST(NnViT, TimmParameterNames) {
  VisionTransformer vit(small_options(3, true));
  std::vector<std::string> keys;
  for (auto& [k, _] : vit.named_parameters())
    keys.push_back(k);
  for (const char* want :
       {"pos_embed", "cls_token", "patch_embed.weight", "patch_embed.bias", "blocks.0.norm1.weight",
        "blocks.0.attn.qkv.weight", "blocks.0.attn.proj.bias", "blocks.1.mlp.0.weight",
        "blocks.1.mlp.2.bias", "blocks.1.norm2.bias", "norm.weight"})
    EXPECT_NE(std::find(keys.begin(), keys.end(), want), keys.end()) << want;
  EXPECT_EQ(vit.pos_embed.shape(), (Shape{5, 5, 6}));
}

TEST(NnViT, RegistryAndSeededConstruction) {
  auto names = encoder_names();
  EXPECT_NE(std::find(names.begin(), names.end(), "vit-tiny"), names.end());
  Generator a(3), b(3);
  auto sa = make_encoder("vit-tiny", 1, 0.25, &a).module->state_dict();
  auto sb = make_encoder("vit-tiny", 1, 0.25, &b).module->state_dict();
  ASSERT_EQ(sa.size(), sb.size());
  for (size_t i = 0; i < sa.size(); ++i)
    EXPECT_EQ(sa[i].second.to_vector<double>(), sb[i].second.to_vector<double>()) << sa[i].first;
}

TEST(NnViT, Initialisation) {
  Generator gen(4);
  VisionTransformer vit(vit_tiny_options(1), &gen);
  // Position table: N(0, 0.02) truncated at +-0.04.
  auto pos = vit.pos_embed.to_vector<double>();
  double s2 = 0;
  for (double v : pos) {
    EXPECT_LE(std::abs(v), 0.04);
    s2 += v * v;
  }
  const double rms = std::sqrt(s2 / static_cast<double>(pos.size()));
  EXPECT_GT(rms, 0.015);
  EXPECT_LT(rms, 0.02);  // truncation at 2 std shrinks the std to 0.88 x 0.02
  // Xavier-uniform qkv: bound sqrt(6 / (192 + 576)).
  const double bound = std::sqrt(6.0 / (192 + 576));
  double top = 0;
  for (double v : vit.blocks[0]->attn->qkv->weight.to_vector<double>())
    top = std::max(top, std::abs(v));
  EXPECT_LE(top, bound);
  EXPECT_GT(top, 0.95 * bound);
  for (double v : vit.blocks[0]->attn->qkv->bias.to_vector<double>())
    EXPECT_EQ(v, 0.0);
}

// ---------------------------------------------------------------- attention

TEST(NnViT, AttentionMatchesANaiveLoopInFloat64) {
  const int64_t b = 2, t = 5, dim = 6, heads = 2, dh = 3;
  Generator gen(5);
  MultiHeadAttention attn(dim, heads, &gen);
  randomise_biases(attn, 6);
  attn.to(kFloat64);
  // A non-contiguous input: the transpose of a [B, D, T] tensor.
  Tensor x = transpose(randn({b, dim, t}, kFloat64, &gen), 1, 2);
  ASSERT_FALSE(x.is_contiguous());
  Tensor got = attn.forward(x);
  got = contiguous(got);
  ASSERT_EQ(got.shape(), (Shape{b, t, dim}));

  auto X = contiguous(x).to_vector<double>();
  auto Wqkv = attn.qkv->weight.to_vector<double>(), Bqkv = attn.qkv->bias.to_vector<double>();
  auto Wp = attn.proj->weight.to_vector<double>(), Bp = attn.proj->bias.to_vector<double>();
  auto g = got.to_vector<double>();
  for (int64_t n = 0; n < b; ++n) {
    // qkv[i][r] = b[r] + sum_c W[r][c] x[i][c], r in [0, 3D).
    std::vector<std::vector<double>> qkv(t, std::vector<double>(3 * dim));
    for (int64_t i = 0; i < t; ++i)
      for (int64_t r = 0; r < 3 * dim; ++r) {
        double s = Bqkv[r];
        for (int64_t c = 0; c < dim; ++c)
          s += Wqkv[r * dim + c] * X[(n * t + i) * dim + c];
        qkv[i][r] = s;
      }
    std::vector<std::vector<double>> heads_out(t, std::vector<double>(dim));
    for (int64_t hd = 0; hd < heads; ++hd) {
      for (int64_t i = 0; i < t; ++i) {
        std::vector<double> score(t);
        double top = -1e300;
        for (int64_t j = 0; j < t; ++j) {
          double s = 0;
          for (int64_t e = 0; e < dh; ++e)
            s += qkv[i][hd * dh + e] * qkv[j][dim + hd * dh + e];
          score[j] = s / std::sqrt(static_cast<double>(dh));
          top = std::max(top, score[j]);
        }
        double z = 0;
        for (double& s : score)
          z += (s = std::exp(s - top));
        for (int64_t e = 0; e < dh; ++e) {
          double o = 0;
          for (int64_t j = 0; j < t; ++j)
            o += score[j] / z * qkv[j][2 * dim + hd * dh + e];
          heads_out[i][hd * dh + e] = o;
        }
      }
    }
    for (int64_t i = 0; i < t; ++i)
      for (int64_t r = 0; r < dim; ++r) {
        double want = Bp[r];
        for (int64_t c = 0; c < dim; ++c)
          want += Wp[r * dim + c] * heads_out[i][c];
        EXPECT_NEAR(g[(n * t + i) * dim + r], want, 1e-12) << n << " " << i << " " << r;
      }
  }
}

TEST(NnViT, ScaledDotProductAttentionRowsAreConvexCombinations) {
  // With v the identity, the output rows are the attention weights: non-negative, summing to 1.
  Generator gen(7);
  Tensor q = randn({3, 4, 5}, kFloat32, &gen), k = randn({3, 4, 5}, kFloat32, &gen);
  Tensor v = contiguous(expand(unsqueeze(eye(4), 0), {3, 4, 4}));
  auto w = scaled_dot_product_attention(q, k, v, 0.5).to_vector<float>();
  for (int64_t r = 0; r < 12; ++r) {
    float s = 0;
    for (int64_t c = 0; c < 4; ++c) {
      EXPECT_GE(w[r * 4 + c], 0.0f);
      s += w[r * 4 + c];
    }
    EXPECT_NEAR(s, 1.0f, 1e-5);
  }
}

// ---------------------------------------------------------------- gradients

TEST(NnViT, GradcheckOfATransformerBlockInFloat64) {
  Generator gen(8);
  TransformerBlock block(4, 2, 2, 1e-6, &gen);
  randomise_biases(block, 9);
  block.to(kFloat64);
  std::vector<Tensor> inputs{randn({2, 3, 4}, kFloat64, &gen).requires_grad_()};
  for (const Tensor& p : block.parameters())
    inputs.push_back(p);
  auto result = gradcheck([&](const std::vector<Tensor>& in) { return block.forward(in[0]); },
                          inputs, {1e-6, 1e-6, 1e-4, 10});
  EXPECT_TRUE(result.ok) << result.message;
}

TEST(NnViT, GradcheckOfTheVisibleTokenPathInFloat64) {
  // Patch embedding, the position table's corner, the gather of visible tokens, a class token,
  // the blocks and the final norm, through the pooled feature.
  ViTOptions o = small_options(1, true);
  o.embed_dim = 4;
  o.depth = 1;
  Generator gen(10);
  VisionTransformer vit(o, &gen);
  randomise_biases(vit, 11);
  vit.to(kFloat64);
  Tensor x = randn({2, 1, 4, 6}, kFloat64, &gen).requires_grad_();  // a 2x3 patch grid
  Tensor keep = from_vector<int64_t>({4, 0, 2, 5, 1, 3}, {2, 3});
  std::vector<Tensor> inputs{x, vit.pos_embed, vit.cls_token, vit.patch_embed->weight,
                             vit.blocks[0]->attn->qkv->weight};
  auto f = [&](const std::vector<Tensor>& in) {
    return vit.pool(vit.forward_visible(in[0], keep));
  };
  auto result = gradcheck(f, inputs, {1e-6, 1e-6, 1e-4, 12});
  EXPECT_TRUE(result.ok) << result.message;
  // Rows of the position table outside the 2x3 grid get a zero gradient.
  auto g = vit.pos_embed.grad().to_vector<double>();
  for (int64_t r = 0; r < 5; ++r)
    for (int64_t c = 0; c < 5; ++c)
      for (int64_t e = 0; e < 4; ++e)
        if (r >= 2 || c >= 3) {
          EXPECT_EQ(g[(r * 5 + c) * 4 + e], 0.0) << r << " " << c;
        }
}

TEST(NnViT, BackwardReachesEveryParameter) {
  Generator gen(13);
  Encoder enc = make_encoder("vit-tiny", 3, 0.125, &gen);
  enc.module->forward(randn({2, 3, 32, 32}, kFloat32, &gen)).pow(2.0).sum().backward();
  for (auto& [name, p] : enc.module->named_parameters()) {
    Tensor g = p.grad();
    ASSERT_TRUE(g.defined()) << name;
    double s = 0;
    for (double v : g.to_vector<double>())
      s += std::abs(v);
    EXPECT_GT(s, 0.0) << name;
  }
}

// ---------------------------------------------------------------- patches

TEST(NnViT, PatchifyFollowsTheIndexFormulaAndUnpatchifyInvertsIt) {
  const int64_t n = 2, c = 3, h = 6, w = 10, p = 2, gw = w / p;
  Generator gen(14);
  // A non-contiguous image batch: narrowed from a wider one.
  Tensor wide = randn({n, c, h, w + 3}, kFloat64, &gen);
  Tensor img = narrow(wide, 3, 1, w);
  Tensor patches = patchify(img, p);
  ASSERT_EQ(patches.shape(), (Shape{n, (h / p) * gw, c * p * p}));
  auto pv = contiguous(patches).to_vector<double>(), iv = contiguous(img).to_vector<double>();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t y = 0; y < h; ++y)
        for (int64_t x = 0; x < w; ++x) {
          const int64_t l = (y / p) * gw + x / p, e = ch * p * p + (y % p) * p + x % p;
          EXPECT_EQ(pv[(i * (h / p) * gw + l) * c * p * p + e], iv[((i * c + ch) * h + y) * w + x]);
        }
  Tensor back = unpatchify(patches, p, h, w);
  ASSERT_EQ(back.shape(), img.shape());
  EXPECT_EQ(max_abs_diff(back, img), 0.0);
}

TEST(NnViT, ConvPatchEmbeddingIsPatchifyThenLinear) {
  Generator gen(15);
  VisionTransformer vit(small_options(3), &gen);
  randomise_biases(vit, 16);
  Tensor x = randn({2, 3, 8, 6}, kFloat32, &gen);
  Tensor w = reshape(vit.patch_embed->weight, {6, -1});
  Tensor want = add(linear(patchify(x, 2), w, vit.patch_embed->bias), vit.position_embedding(4, 3));
  EXPECT_LT(max_abs_diff(vit.embed(x), want), 1e-5);
}

// ---------------------------------------------------------------- the visible-token path

TEST(NnViT, EveryTokenVisibleInAnyOrderIsTheFullForward) {
  for (bool cls : {false, true}) {
    Generator gen(17);
    VisionTransformer vit(small_options(1, cls), &gen);
    randomise_biases(vit, 18);
    Tensor x = randn({2, 1, 6, 4}, kFloat32, &gen);  // 3x2 grid
    Tensor full = vit.forward(x);
    Tensor in_order = from_vector<int64_t>({0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5}, {2, 6});
    Tensor shuffled = from_vector<int64_t>({5, 3, 1, 0, 2, 4, 2, 0, 4, 1, 5, 3}, {2, 6});
    EXPECT_LT(max_abs_diff(vit.pool(vit.forward_visible(x, in_order)), full), 1e-5) << cls;
    // Attention is equivariant to the token order and the features pool over it.
    EXPECT_LT(max_abs_diff(vit.pool(vit.forward_visible(x, shuffled)), full), 1e-5) << cls;
    EXPECT_EQ(vit.forward_visible(x, shuffled).shape(), (Shape{2, 6 + (cls ? 1 : 0), 6}));
  }
}

TEST(NnViT, TheEncoderSeesOnlyTheVisiblePatches) {
  Generator gen(19);
  VisionTransformer vit(small_options(1), &gen);
  Tensor x = randn({1, 1, 6, 6}, kFloat32, &gen);  // 3x3 grid
  Tensor keep = from_vector<int64_t>({7, 2, 4}, {1, 3});
  Tensor base = vit.forward_visible(x, keep);
  ASSERT_EQ(base.shape(), (Shape{1, 3, 6}));
  auto changed = [&](int64_t patch) {  // patch (r, c) of the grid gets new pixels
    Tensor y = clone(x);
    {
      NoGradGuard no_grad;
      narrow(narrow(y, 2, (patch / 3) * 2, 2), 3, (patch % 3) * 2, 2).fill_(5.0);
    }
    return max_abs_diff(vit.forward_visible(y, keep), base);
  };
  EXPECT_EQ(changed(0), 0.0);   // masked
  EXPECT_EQ(changed(8), 0.0);   // masked
  EXPECT_GT(changed(4), 1e-3);  // visible
  EXPECT_GT(changed(7), 1e-3);  // visible
}

TEST(NnViT, GatherTokensPicksRowsPerImage) {
  Tensor tokens = reshape(arange(2 * 4 * 3, kFloat32), {2, 4, 3});
  Tensor ids = from_vector<int64_t>({3, 0, 1, 1}, {2, 2});
  auto v = gather_tokens(tokens, ids).to_vector<float>();
  EXPECT_EQ(v, (std::vector<float>{9, 10, 11, 0, 1, 2, 15, 16, 17, 15, 16, 17}));
  std::string msg = error_of([&] { gather_tokens(tokens, from_vector<int64_t>({0, 4}, {2, 1})); });
  EXPECT_TRUE(contains(msg, "gather_tokens") && contains(msg, "id 4")) << msg;
}

// ---------------------------------------------------------------- bad input

TEST(NnViT, BadInputIsAClearError) {
  Encoder enc = make_encoder("vit-tiny", 3, 0.25);
  std::string msg = error_of([&] { enc.module->forward(zeros({2, 3, 30, 30})); });
  EXPECT_TRUE(contains(msg, "30x30") && contains(msg, "4x4 patches")) << msg;
  msg = error_of([&] { enc.module->forward(zeros({2, 1, 28, 28})); });
  EXPECT_TRUE(contains(msg, "[N, 3, H, W]") && contains(msg, "[2, 1, 28, 28]")) << msg;
  msg = error_of([&] { enc.module->forward(zeros({1, 3, 72, 72})); });
  EXPECT_TRUE(contains(msg, "18x18") && contains(msg, "16x16 position table")) << msg;
  msg = error_of([&] { enc.module->forward(zeros({3, 28, 28})); });
  EXPECT_TRUE(contains(msg, "[3, 28, 28]")) << msg;
  msg = error_of([] { MultiHeadAttention(10, 3); });
  EXPECT_TRUE(contains(msg, "dim 10") && contains(msg, "num_heads 3")) << msg;
  msg = error_of([] { make_encoder("vit-tiny", 1, 0.0); });
  EXPECT_TRUE(contains(msg, "width_multiplier")) << msg;
  msg = error_of([] { unpatchify(zeros({1, 5, 4}), 2, 4, 4); });
  EXPECT_TRUE(contains(msg, "unpatchify") && contains(msg, "[1, 5, 4]")) << msg;
  msg = error_of([] { patchify(zeros({1, 1, 5, 4}), 2); });
  EXPECT_TRUE(contains(msg, "patchify") && contains(msg, "[1, 1, 5, 4]")) << msg;
}
