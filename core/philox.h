// core/philox.h — Philox4x32-10, the counter-based RNG shared by the CPU and every CUDA kernel.
//
// docs/design.md §4 fixes the mapping so every device draws identical numbers: element i of a draw
// with 64-bit seed and 64-bit offset uses key = {seed lo, seed hi}, counter = {(i/4) lo, (i/4) hi,
// offset lo, offset hi}, output word i % 4; uniform u = (word >> 8) * 2^-24 in [0, 1).
// Checked against Random123's known-answer vectors in tests/core/test_philox.cpp.
#pragma once

#include <cstdint>

#include "core/host_device.h"

namespace kiln {

struct Philox4 {
  uint32_t v[4];
};

KILN_HD inline void philox_mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  uint64_t p = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}

// Ten rounds; the key is bumped between rounds, not before the first.
KILN_HD inline Philox4 philox4x32_10(Philox4 ctr, uint32_t k0, uint32_t k1) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += kW0;
      k1 += kW1;
    }
    uint32_t hi0, lo0, hi1, lo1;
    philox_mulhilo(kM0, ctr.v[0], hi0, lo0);
    philox_mulhilo(kM1, ctr.v[2], hi1, lo1);
    ctr = Philox4{{hi1 ^ ctr.v[1] ^ k0, lo1, hi0 ^ ctr.v[3] ^ k1, lo0}};
  }
  return ctr;
}

// The four words of block `i / 4` of draw (seed, offset).
KILN_HD inline Philox4 philox_block(uint64_t seed, uint64_t offset, uint64_t block) {
  Philox4 ctr{{static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32),
               static_cast<uint32_t>(offset), static_cast<uint32_t>(offset >> 32)}};
  return philox4x32_10(ctr, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

KILN_HD inline float philox_word_to_uniform(uint32_t word) {
  return static_cast<float>(word >> 8) * (1.0f / 16777216.0f);
}

// The offset of a draw as a kernel receives it: `value`, or, when `at` is set, the uint64 at that
// device address, read by the kernel when it runs. A captured CUDA graph replays its kernels with
// the arguments of the capture, so a step that must draw a new offset every replay writes it to a
// fixed device address instead (train/graph_step.h). Only a CUDA kernel may call get() on an offset
// with `at` set; the functional APIs refuse one for the CPU.
struct PhiloxOffset {
  uint64_t value = 0;
  const uint64_t* at = nullptr;
  PhiloxOffset() = default;
  PhiloxOffset(uint64_t v) : value(v) {}  // implicit: a plain offset is the common case
  static PhiloxOffset device(const uint64_t* at) {
    PhiloxOffset o;
    o.at = at;
    return o;
  }
  KILN_HD uint64_t get() const { return at != nullptr ? *at : value; }
};

// Uniform in [0, 1) for element i of draw (seed, offset).
KILN_HD inline float philox_uniform(uint64_t seed, uint64_t offset, uint64_t i) {
  return philox_word_to_uniform(philox_block(seed, offset, i / 4).v[i % 4]);
}

}  // namespace kiln
