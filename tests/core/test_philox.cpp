// Philox4x32-10 against Random123's known-answer vectors (docs/design.md §4) and the fixed mapping.
#include <catch2/catch.hpp>

#include "core/philox.h"

using kiln::Philox4;

TEST_CASE("philox4x32-10 matches Random123's known answers", "[cpu]") {
  struct Kat {
    Philox4 ctr;
    uint32_t k0, k1;
    Philox4 expected;
  };
  const Kat kats[] = {
      {{{0, 0, 0, 0}}, 0, 0, {{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}}},
      {{{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}},
       0xffffffff,
       0xffffffff,
       {{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}}},
      {{{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}},
       0xa4093822,
       0x299f31d0,
       {{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}}},
  };
  for (const Kat& k : kats) {
    Philox4 out = kiln::philox4x32_10(k.ctr, k.k0, k.k1);
    for (int i = 0; i < 4; ++i) CHECK(out.v[i] == k.expected.v[i]);
  }
}

TEST_CASE("philox mapping: seed to key, (i/4, offset) to counter, word i%4", "[cpu]") {
  const uint64_t seed = 0x299f31d0a4093822ull;
  const uint64_t offset = 0x0370734413198a2eull;
  const uint64_t block = 0x85a308d3243f6a88ull;
  Philox4 words = kiln::philox_block(seed, offset, block);
  CHECK(words.v[0] == 0xd16cfe09u);
  CHECK(words.v[3] == 0x24126ea1u);
  // Element i of a draw is word i % 4 of block i / 4 (the KAT block above has its top bit set, so
  // 4 * block would overflow 64 bits: use a smaller block here), uniform from the top 24 bits.
  const uint64_t i = 4 * 0x1234567890ull + 2;
  const uint32_t word = kiln::philox_block(seed, offset, i / 4).v[2];
  CHECK(kiln::philox_uniform(seed, offset, i) == static_cast<float>(word >> 8) / 16777216.0f);
  CHECK(kiln::philox_uniform(0, 0, 0) == static_cast<float>(0x6627e8d5u >> 8) / 16777216.0f);
  CHECK(kiln::philox_uniform(0, 0, 0) < 1.0f);
}
