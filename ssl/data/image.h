// The image type of the data layer: one float32 image, CHW, values in [0, 1] (before
// normalisation). Datasets decode into uint8 tensors [N, C, H, W]; augmentations work on Image;
// the loader stacks Images of one view into a batch tensor [B, C, H, W].
#pragma once

#include <cstdint>
#include <vector>

#include "core/random.h"

namespace selfsup::data {

struct Image {
  int64_t c = 0, h = 0, w = 0;
  std::vector<float> data;  // [c, h, w] row-major

  Image() = default;
  Image(int64_t c_, int64_t h_, int64_t w_, float value = 0.0f)
      : c(c_), h(h_), w(w_), data(static_cast<size_t>(c_ * h_ * w_), value) {}
  float& at(int64_t ch, int64_t y, int64_t x) { return data[(ch * h + y) * w + x]; }
  float at(int64_t ch, int64_t y, int64_t x) const { return data[(ch * h + y) * w + x]; }
};

// The random numbers of one augmented view: a Philox stream keyed by the run's seed and a
// stream id derived from (epoch, sample index, view index). Because the stream depends only on
// those, a batch is identical whatever thread produces it.
class AugRng {
 public:
  AugRng(uint64_t seed, uint64_t epoch, uint64_t sample, uint64_t view);
  float uniform();                          // [0, 1)
  float uniform(float lo, float hi);        // [lo, hi)
  int64_t randint(int64_t lo, int64_t hi);  // [lo, hi)
  bool bernoulli(float p);                  // true with probability p
  float normal();                           // standard normal

 private:
  uint32_t next_u32();
  uint64_t key_;
  uint64_t counter_ = 0;
  uint32_t stream_;
  PhiloxOut block_{};
  int used_ = 4;
};

}  // namespace selfsup::data
