// data/rng.h — the small deterministic random source of data/ (internal to data/).
//
// Data generation and augmentation need numbers that depend only on (seed, stream, index), on every
// platform and standard library: std:: distributions are implementation-defined, so they are not
// used. SplitMix64 (Steele, Lea & Flood 2014) mixes the keys; each draw is one more
// SplitMix64 step.
#pragma once

#include <cstdint>

namespace kiln::data::detail {

inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Hash of several keys, order-sensitive.
inline uint64_t hash_keys(uint64_t a, uint64_t b, uint64_t c = 0, uint64_t d = 0) {
  uint64_t h = mix64(a + 0x9e3779b97f4a7c15ULL);
  h = mix64(h ^ (b + 0x632be59bd9b4e019ULL));
  h = mix64(h ^ (c + 0x85157af5ULL));
  return mix64(h ^ (d + 0x2545f4914f6cdd1dULL));
}

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    state_ += 0x9e3779b97f4a7c15ULL;
    return mix64(state_);
  }
  // Uniform in [0, 1) with 24 random bits, exact in float and double alike.
  double uniform() { return double(next() >> 40) * (1.0 / 16777216.0); }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Uniform integer in [0, n), n > 0 (the modulo bias of a 64-bit draw is negligible here).
  uint64_t below(uint64_t n) { return next() % n; }
  bool chance(double p) { return uniform() < p; }
  // Approximately standard normal, cheaply: the sum of four 16-bit uniforms from one draw
  // (Irwin-Hall), centred and scaled to unit variance; tails end at +-3.46. For pixel noise.
  double approx_normal() {
    uint64_t r = next();
    double sum = double(r & 0xffff) + double((r >> 16) & 0xffff) + double((r >> 32) & 0xffff) +
                 double(r >> 48);
    return (sum * (1.0 / 65536.0) - 2.0) * 1.7320508075688772;
  }

 private:
  uint64_t state_;
};

}  // namespace kiln::data::detail
