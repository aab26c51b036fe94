// MAE (He, Chen, Xie, Li, Dollar, Girshick: "Masked Autoencoders Are Scalable Vision Learners",
// CVPR 2022).
//
// Each image is cut into patches and 75% of them, chosen at random per image, are dropped. The
// ViT encoder sees only the visible patches (each with its position embedding); a lighter
// Transformer decoder gets the encoded visible tokens back in their grid places, a learnable
// mask token in every masked place, its own position embedding, and predicts the pixels of
// every patch. The loss is the mean squared error on the masked patches only, against targets
// normalised per patch (norm_pix_loss, the paper's default; --norm-pix false predicts the raw
// pixels). Evaluation uses the full, unmasked encoder's pooled feature (Method::features).
//
// Defaults adapted to 28 / 32 px images: encoder vit-tiny (patch 4: 49 or 64 patches, 12 or 16
// visible), decoder width 128, depth 2, 4 heads, MLP ratio 4 (the paper's 512 x 8 decoder is
// for 196-patch ImageNet images), a learnable decoder position table (the paper uses fixed
// sin-cos tables), the mae augmentation preset (crop 0.2-1 and flip), one view. The paper
// trains with AdamW, base lr 1.5e-4, weight decay 0.05, betas (0.9, 0.95): pass --lr and
// --weight-decay to follow it. With a class token the decoder drops it and sees patch tokens
// only.
//
// The masks draw from the method's generator (seeded by MethodOptions::seed); a resumed run
// starts that stream again. StepOutput::embedding is the encoder's pooled feature of the
// visible patches: MAE has no projector, and nothing in its loss spreads the pooled features
// over the sphere, so they share a large image-independent component and the trainer's
// collapse diagnostic (which normalises uncentred embeddings) can warn although the
// reconstruction loss keeps falling; judge MAE by kNN / linear probe instead.
#include "ssl/methods/mae.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "autograd/ops.h"
#include "core/views.h"
#include "nn/init.h"
#include "nn/models/vit.h"
#include "ssl/methods/method.h"

namespace selfsup::ssl {

// ---------------------------------------------------------------- masking, targets, loss

PatchMasking random_masking(int64_t n, int64_t num_patches, double mask_ratio, Generator& gen) {
  const int64_t l = num_patches;
  SELFSUP_CHECK(n > 0 && l > 0, "mae: cannot mask ", n, " images of ", l, " patches");
  SELFSUP_CHECK(mask_ratio > 0 && mask_ratio < 1, "mae: --mask-ratio ", mask_ratio,
                " must lie in (0, 1)");
  const auto k = static_cast<int64_t>(static_cast<double>(l) * (1.0 - mask_ratio));
  SELFSUP_CHECK(k >= 1 && k < l, "mae: --mask-ratio ", mask_ratio, " leaves ", k, " of ", l,
                " patches visible; at least one must be visible and one masked");
  // Sorting uniform noise gives each row an independent uniformly random permutation; its
  // first K entries are the visible patches.
  Tensor noise = rand({n, l}, kFloat64, &gen);
  const double* u = noise.data_ptr<double>();
  PatchMasking m{empty({n, k}, kInt64), empty({n, l}, kInt64), empty({n, l}, kFloat32), k};
  int64_t* keep = m.keep.data_ptr<int64_t>();
  int64_t* restore = m.restore.data_ptr<int64_t>();
  float* mask = m.mask.data_ptr<float>();
  std::vector<int64_t> order(static_cast<size_t>(l));
  for (int64_t i = 0; i < n; ++i) {
    const double* row = u + i * l;
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [row](int64_t a, int64_t b) { return row[a] < row[b]; });
    for (int64_t j = 0; j < l; ++j) {
      const int64_t patch = order[static_cast<size_t>(j)];
      if (j < k) keep[i * k + j] = patch;
      restore[i * l + patch] = j;
      mask[i * l + patch] = j < k ? 0.0f : 1.0f;
    }
  }
  return m;
}

Tensor normalize_patches(const Tensor& patches) {
  SELFSUP_CHECK(patches.dim() >= 1 && patches.size(-1) >= 2, "mae: cannot normalise patches ",
                shape_str(patches.shape()), " (need at least 2 pixels per patch)");
  Tensor centred = sub(patches, mean(patches, {-1}, true));
  return div(centred, sqrt(add(var(patches, {-1}, 1, true), 1e-6)));
}

Tensor mae_loss(const Tensor& pred, const Tensor& target, const Tensor& mask) {
  SELFSUP_CHECK(pred.dim() == 3 && pred.shape() == target.shape() && mask.dim() == 2 &&
                    mask.size(0) == pred.size(0) && mask.size(1) == pred.size(1),
                "mae_loss: pred ", shape_str(pred.shape()), ", target ", shape_str(target.shape()),
                " and mask ", shape_str(mask.shape()),
                " do not match [N, L, P], [N, L, P], [N, L]");
  Tensor m = raw::to_dtype(mask, pred.dtype());
  const double masked = sum(m).item();
  SELFSUP_CHECK(masked > 0, "mae_loss: the mask ", shape_str(mask.shape()), " masks no patch");
  Tensor per_patch = mean(square(sub(pred, target.detach())), {2});  // [N, L]
  return mul(sum(mul(per_patch, m)), 1.0 / masked);
}

namespace {

// ---------------------------------------------------------------- the decoder

// Encoded visible tokens [N, K, D] -> pixel predictions of every patch [N, L, C p p].
class MaeDecoder : public nn::Module {
 public:
  MaeDecoder(int64_t encoder_dim, int64_t dim, int64_t depth, int64_t heads, int64_t max_grid,
             int64_t patch_pixels, Generator* gen)
      : nn::Module("MaeDecoder"), dim_(dim) {
    embed_ = register_module("embed", std::make_shared<nn::Linear>(encoder_dim, dim, true, gen));
    mask_token = register_parameter("mask_token", empty({1, 1, dim}));
    nn::init::normal_(mask_token, 0.0, 0.02, gen);  // the paper's initialisation
    pos_embed = register_parameter("pos_embed", empty({max_grid, max_grid, dim}));
    nn::init::trunc_normal_(pos_embed, 0.0, 0.02, -0.04, 0.04, gen);
    auto list = std::make_shared<nn::Module>("ModuleList");
    for (int64_t i = 0; i < depth; ++i)
      blocks_.push_back(list->register_module(
          std::to_string(i), std::make_shared<nn::TransformerBlock>(dim, heads, 4, 1e-6, gen)));
    register_module("blocks", list);
    norm_ = register_module("norm", std::make_shared<nn::LayerNorm>(Shape{dim}, 1e-6));
    pred_ = register_module("pred", std::make_shared<nn::Linear>(dim, patch_pixels, true, gen));
    for (nn::Linear* fc : {embed_.get(), pred_.get()}) {
      nn::init::xavier_uniform_(fc->weight, 1.0, gen);
      nn::init::zeros_(fc->bias);
    }
  }

  // visible [N, K, D]; restore [N, L] from random_masking; the grid is gh x gw = L.
  Tensor forward_tokens(const Tensor& visible, const Tensor& restore, int64_t gh, int64_t gw) {
    const int64_t n = visible.size(0), k = visible.size(1), l = gh * gw;
    Tensor x = embed_->forward(visible);  // [N, K, dim]
    // [visible..., mask tokens...] is the shuffled order; restore puts each token in its place.
    Tensor shuffled = cat({x, expand(mask_token, {n, l - k, dim_})}, 1);  // [N, L, dim]
    Tensor h = add(nn::gather_tokens(shuffled, restore), nn::position_corner(pos_embed, gh, gw));
    for (auto& block : blocks_)
      h = block->forward(h);
    return pred_->forward(norm_->forward(h));  // [N, L, C p p]
  }

  Tensor mask_token, pos_embed;

 private:
  int64_t dim_;
  std::shared_ptr<nn::Linear> embed_, pred_;
  std::vector<std::shared_ptr<nn::TransformerBlock>> blocks_;
  std::shared_ptr<nn::LayerNorm> norm_;
};

// ---------------------------------------------------------------- the method

constexpr int64_t kDecoderDim = 128, kDecoderDepth = 2, kDecoderHeads = 4;

class MAE : public Method {
 public:
  explicit MAE(const MethodOptions& o) : Method("mae", o) {
    vit_ = dynamic_cast<nn::VisionTransformer*>(&encoder());
    SELFSUP_CHECK(vit_ != nullptr, "mae: --model ", o.model,
                  " cannot mask patches; MAE needs a Vision Transformer (--model vit-tiny)");
    SELFSUP_CHECK(o.mask_ratio > 0 && o.mask_ratio < 1, "mae: --mask-ratio ", o.mask_ratio,
                  " must lie in (0, 1)");
    const nn::ViTOptions& v = vit_->options;
    decoder_ = register_module(
        "decoder", std::make_shared<MaeDecoder>(
                       v.embed_dim, kDecoderDim, kDecoderDepth, kDecoderHeads, v.max_grid,
                       v.in_channels * v.patch_size * v.patch_size, &gen_));
  }

  std::string augment_preset() const override { return "mae"; }
  int64_t num_views() const override { return 1; }
  void before_epoch(const EpochContext& ctx) override {
    gen_.set_offset(epoch_rng_offset(ctx.epoch));
  }

  StepOutput step(const std::vector<Tensor>& views) override {
    const Tensor& images = views[0];  // [N, C, H, W]
    auto [gh, gw] = vit_->grid(images);
    PatchMasking m = random_masking(images.size(0), gh * gw, options().mask_ratio, gen_);
    m.mask = raw::to_device(m.mask, images.device());        // keep/restore stay on the host
    Tensor encoded = vit_->forward_visible(images, m.keep);  // [N, prefix + K, D]
    Tensor visible = narrow(encoded, 1, vit_->num_prefix_tokens(), m.num_visible);
    Tensor pred = decoder_->forward_tokens(visible, m.restore, gh, gw);
    Tensor target = vit_->patchify(images.detach());
    if (options().norm_pix) target = normalize_patches(target);
    StepOutput out;
    out.loss = mae_loss(pred, target, m.mask);
    out.embedding = vit_->pool(encoded).detach();
    return out;
  }

 private:
  nn::VisionTransformer* vit_ = nullptr;  // the encoder, owned by Method
  std::shared_ptr<MaeDecoder> decoder_;
};

}  // namespace

std::shared_ptr<Method> make_mae(const MethodOptions& o) {
  return std::make_shared<MAE>(o);
}

}  // namespace selfsup::ssl
