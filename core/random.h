// Counter-based random numbers: Philox 4x32-10 (Salmon et al., "Parallel random numbers: as easy
// as 1, 2, 3", SC 2011).
//
// A Philox draw is a pure function of (key, counter): no hidden state, so any element of a
// random tensor can be computed independently, on any thread or device, and the CPU and the
// GPU produce the same numbers for the same seed. The convention used everywhere in selfsup:
//
//   element i of a draw that starts at generator offset o uses
//   philox4x32(key = seed, counter = {o + i (64 bits, low word first), stream, 0})
//
// and the generator's offset then advances by the number of elements drawn.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define SELFSUP_HD __host__ __device__
#else
#define SELFSUP_HD
#endif

namespace selfsup {

struct PhiloxOut {
  uint32_t v[4];
};

// Ten rounds of Philox 4x32 with the published multipliers and Weyl key increments.
SELFSUP_HD inline PhiloxOut philox4x32(uint64_t key, uint64_t counter, uint32_t stream = 0) {
  uint32_t c0 = static_cast<uint32_t>(counter), c1 = static_cast<uint32_t>(counter >> 32);
  uint32_t c2 = stream, c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * c0;
    uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * c2;
    uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return {{c0, c1, c2, c3}};
}

// Uniform in [0, 1) with 24 bits (float) or 53 bits (double) of randomness.
SELFSUP_HD inline float uniform_float(uint32_t x) {
  return (x >> 8) * (1.0f / 16777216.0f);
}
SELFSUP_HD inline double uniform_double(uint32_t lo, uint32_t hi) {
  uint64_t bits = (static_cast<uint64_t>(hi) << 21) ^ (lo >> 11);
  return static_cast<double>(bits & ((1ull << 53) - 1)) * (1.0 / 9007199254740992.0);
}

// Standard normal by Box-Muller from two uniforms of one Philox draw.
SELFSUP_HD inline double normal_from(const PhiloxOut& r) {
  double u1 = uniform_double(r.v[0], r.v[1]);
  double u2 = uniform_double(r.v[2], r.v[3]);
  u1 = u1 < 1e-300 ? 1e-300 : u1;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

// A seed and a position in its Philox stream. Not thread-safe: one generator per thread of use.
class Generator {
 public:
  explicit Generator(uint64_t seed = 0x5eed) : seed_(seed) {}
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void manual_seed(uint64_t seed) {
    seed_ = seed;
    offset_ = 0;
  }
  void set_offset(uint64_t offset) { offset_ = offset; }
  // Reserves n counters and returns the first.
  uint64_t advance(uint64_t n) {
    uint64_t first = offset_;
    offset_ += n;
    return first;
  }

 private:
  uint64_t seed_;
  uint64_t offset_ = 0;
};

// The process-wide default generator used when a function is given none.
Generator& default_generator();
// Seeds the default generator: manual_seed(42) makes every unseeded draw repeatable.
void manual_seed(uint64_t seed);

}  // namespace selfsup
