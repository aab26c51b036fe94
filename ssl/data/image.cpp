// AugRng: the random numbers of one augmented view.
//
// Scheme. Philox 4x32-10 (core/random.h) maps (key, counter[4 words]) to 4 random words. For
// view `view` of sample `sample` in epoch `epoch` of a run seeded with `seed`:
//
//   key      = seed
//   id       = H(epoch, sample, view)                       a 64-bit hash (below)
//   draw j   = philox4x32(key, counter = (id_hi << 32) + j, stream = id_lo)
//
// so the 32-bit stream word and the upper half of the 64-bit counter together carry all 64 bits
// of the id, and the lower half counts the Philox blocks the view draws (4 words per block; a
// view may draw up to 2^32 blocks before it would run into another id's counters). Two views
// share numbers only when their 64-bit ids collide: about n^2 / 2^65, e.g. 10^-5 for 10^7
// (epoch, sample, view) triples. H chains the splitmix64 finaliser (a bijection with full
// avalanche) over the three inputs, each step seeded with a distinct odd constant so that
// (e, s, v) permutations hash differently.
#include "ssl/data/image.h"

#include "core/error.h"

namespace selfsup::data {

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t view_stream_id(uint64_t epoch, uint64_t sample, uint64_t view) {
  uint64_t h = splitmix64(epoch ^ 0xA0761D6478BD642Full);
  h = splitmix64(h ^ sample ^ 0xE7037ED1A0B428DBull);
  return splitmix64(h ^ view ^ 0x8EBC6AF09C88C6E3ull);
}

}  // namespace

AugRng::AugRng(uint64_t seed, uint64_t epoch, uint64_t sample, uint64_t view) : key_(seed) {
  const uint64_t id = view_stream_id(epoch, sample, view);
  counter_ = id & 0xFFFFFFFF00000000ull;
  stream_ = static_cast<uint32_t>(id);
}

uint32_t AugRng::next_u32() {
  if (used_ == 4) {
    block_ = philox4x32(key_, counter_++, stream_);
    used_ = 0;
  }
  return block_.v[used_++];
}

float AugRng::uniform() {
  return uniform_float(next_u32());
}

float AugRng::uniform(float lo, float hi) {
  const float x = lo + (hi - lo) * uniform();
  return x < hi ? x : lo;  // rounding can land exactly on hi; keep the interval half-open
}

int64_t AugRng::randint(int64_t lo, int64_t hi) {
  SELFSUP_CHECK(hi > lo, "AugRng::randint: empty range [", lo, ", ", hi, ")");
  const uint64_t range = static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo);
  const uint64_t bits = (static_cast<uint64_t>(next_u32()) << 32) | next_u32();
  // 64 random bits modulo a range below 2^32 (any image size): bias under 2^-32.
  return lo + static_cast<int64_t>(bits % range);
}

bool AugRng::bernoulli(float p) {
  return uniform() < p;
}

float AugRng::normal() {
  PhiloxOut r;
  for (uint32_t& v : r.v)
    v = next_u32();
  return static_cast<float>(normal_from(r));
}

}  // namespace selfsup::data
