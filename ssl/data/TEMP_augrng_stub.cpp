// TEMPORARY stand-in for AugRng's methods so the augmentation code builds and tests before the
// real definitions (ssl/data/image.cpp) land. DELETE THIS FILE WHEN image.cpp IS MERGED: both
// define the same symbols and the link would fail.
//
// The stream: Philox keyed by the seed; the (epoch, sample, view) triple is hashed into the
// 32-bit stream word and the high half of the 64-bit counter, so different views never share
// counters in practice.
#include <cmath>

#include "core/error.h"
#include "ssl/data/image.h"

namespace selfsup::data {

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace

AugRng::AugRng(uint64_t seed, uint64_t epoch, uint64_t sample, uint64_t view) : key_(seed) {
  uint64_t h = splitmix64(splitmix64(splitmix64(epoch) ^ sample) ^ view);
  stream_ = static_cast<uint32_t>(h);
  counter_ = (h >> 32) << 32;
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
  return lo + (hi - lo) * uniform();
}

int64_t AugRng::randint(int64_t lo, int64_t hi) {
  SELFSUP_CHECK(hi > lo, "AugRng::randint: empty range [", lo, ", ", hi, ")");
  uint64_t span = static_cast<uint64_t>(hi - lo);
  uint64_t bits = (static_cast<uint64_t>(next_u32()) << 32) | next_u32();
  return lo + static_cast<int64_t>(bits % span);
}

bool AugRng::bernoulli(float p) {
  return uniform() < p;
}

float AugRng::normal() {
  float u1 = uniform(), u2 = uniform();
  u1 = u1 < 1e-7f ? 1e-7f : u1;
  return std::sqrt(-2.0f * std::log(u1)) * std::cos(6.2831853f * u2);
}

}  // namespace selfsup::data
