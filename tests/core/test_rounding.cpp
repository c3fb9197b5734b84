// tests/core/test_rounding.cpp — core/rounding.h, the host-side tf32 and bf16 roundings, bit for
// bit against the same roundings computed independently in double
// (tests/support/rounding_reference.h) over a large sample of fp32 bit patterns: every
// sign/exponent/high-mantissa combination with the low 16 bits at and around each tie, plus random
// patterns; NaNs, infinities, subnormals, overflow.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/rounding.h"
#include "tests/support/rounding_reference.h"

namespace {

float from_bits(std::uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

// The sample: for each of the 65536 upper halves, these lower halves (ties of tf32 at 0x1000 and
// of bf16 at 0x8000 with the kept lowest bit 0 and 1, their neighbours, the extremes), then random
// patterns.
std::vector<std::uint32_t> sample_patterns() {
  const std::uint32_t lows[] = {0x0000, 0x0001, 0x0FFF, 0x1000, 0x1001, 0x1FFF, 0x2000,
                                0x2FFF, 0x3000, 0x3001, 0x5000, 0x7FFF, 0x8000, 0x8001,
                                0x9000, 0xB000, 0xE000, 0xEFFF, 0xF000, 0xFFFF};
  std::vector<std::uint32_t> v;
  v.reserve(65536 * std::size(lows) + (1u << 21));
  for (std::uint32_t hi = 0; hi < 65536; ++hi)
    for (std::uint32_t lo : lows) v.push_back(hi << 16 | lo);
  std::mt19937 rng(12);
  for (int i = 0; i < (1 << 21); ++i) v.push_back(static_cast<std::uint32_t>(rng()));
  return v;
}

std::string hex(std::uint32_t u) {
  std::ostringstream os;
  os << "0x" << std::hex << u;
  return os.str();
}

// Counts the sample patterns where `ok(x)` fails and names the first.
template <class Ok>
void check_sample(Ok ok) {
  std::int64_t wrong = 0;
  std::string first;
  for (std::uint32_t u : sample_patterns()) {
    const std::string why = ok(from_bits(u));
    if (!why.empty() && wrong++ == 0) first = hex(u) + ": " + why;
  }
  INFO(wrong << " wrong; first: " << first);
  CHECK(wrong == 0);
}

}  // namespace

TEST_CASE("tf32 round-to-nearest-away agrees with the double reference bit for bit", "[cpu]") {
  check_sample([](float x) -> std::string {
    const std::uint32_t got = kiln::tf32_bits(x), want = kiln::test::reference_tf32_bits(x);
    if (got == want && kiln::float_bits(kiln::round_tf32(x)) == want) return "";
    return "got " + hex(got) + ", expected " + hex(want);
  });
}

TEST_CASE("bf16 round-to-nearest-even agrees with the double reference bit for bit", "[cpu]") {
  check_sample([](float x) -> std::string {
    const std::uint16_t got = kiln::bf16_bits(x), want = kiln::test::reference_bf16_bits(x);
    if (got == want && kiln::float_bits(kiln::round_bf16(x)) == std::uint32_t{want} << 16)
      return "";
    return "got " + hex(got) + ", expected " + hex(want);
  });
}

TEST_CASE("tf32 and bf16 rounding: named cases", "[cpu]") {
  using kiln::bf16_bits;
  using kiln::tf32_bits;
  // Ties: tf32 goes away from zero, bf16 to the even neighbour.
  CHECK(tf32_bits(1.0f + 0x1p-11f) == kiln::float_bits(1.0f + 0x1p-10f));
  CHECK(tf32_bits(-(1.0f + 0x1p-11f)) == kiln::float_bits(-(1.0f + 0x1p-10f)));
  CHECK(tf32_bits(1.0f + 0x1p-11f - 0x1p-23f) == kiln::float_bits(1.0f));
  CHECK(bf16_bits(1.0f + 0x1p-8f) == 0x3F80);             // tie, 1.0 is even
  CHECK(bf16_bits(1.0f + 3 * 0x1p-8f) == 0x3F82);         // tie, up to the even 1 + 2^-6
  CHECK(bf16_bits(1.0f + 0x1p-8f + 0x1p-23f) == 0x3F81);  // just above the tie
  // Specials: NaN, infinities kept, overflow to infinity, signed zero, subnormals.
  CHECK(tf32_bits(from_bits(0x7FC01FFFu)) == 0x7FC00000u);  // tf32: NaN keeps its upper bits,
  CHECK(tf32_bits(from_bits(0xFFC00000u)) == 0xFFC00000u);
  CHECK(tf32_bits(from_bits(0x7F800001u)) == 0x7F800000u);  // so a low-payload NaN becomes Inf
  CHECK(tf32_bits(from_bits(0x7F801FFFu)) == 0x7F800000u);
  CHECK(bf16_bits(from_bits(0x7F800001u)) == 0x7FFF);
  CHECK(bf16_bits(from_bits(0xFFFFFFFFu)) == 0x7FFF);
  CHECK(tf32_bits(from_bits(0x7F800000u)) == 0x7F800000u);
  CHECK(bf16_bits(from_bits(0xFF800000u)) == 0xFF80);
  CHECK(tf32_bits(from_bits(0x7F7FFFFFu)) == 0x7F800000u);
  CHECK(bf16_bits(from_bits(0xFF7FFFFFu)) == 0xFF80);
  CHECK(tf32_bits(-0.0f) == 0x80000000u);
  CHECK(bf16_bits(from_bits(0x00000001u)) == 0x0000);       // 2^-149 rounds to zero
  CHECK(tf32_bits(from_bits(0x00001000u)) == 0x00002000u);  // a subnormal tie, away
  CHECK(bf16_bits(from_bits(0x00018000u)) == 0x0002);       // a subnormal tie, to even
  CHECK(tf32_bits(from_bits(0x007FFFFFu)) == 0x00800000u);  // the largest subnormal: up to 2^-126
  // bf16x2: lo in bits 0..15, hi in 16..31; the widening is exact.
  CHECK(kiln::bf16x2_bits(1.0f, -2.0f) == 0xC0003F80u);
  CHECK(kiln::bf16_to_float(0x3F81) == 1.0f + 0x1p-7f);
}
