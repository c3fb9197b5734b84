// core/rounding.h — the roundings of fp32 to the tensor cores' input formats, bit for bit as the
// GPU's conversion instructions round, for host code (the CPU reference and fast path) and for
// device code without those instructions (the SIMT emulator; nvcc below sm_80).
//
//   round_tf32(x)      cvt.rna.tf32.f32: to 10 explicit mantissa bits, round to nearest, ties away
//                      from zero; the result is an fp32 whose 13 low bits are zero.
//   bf16_bits(x)       cvt.rn.bf16.f32: to 7 explicit mantissa bits, round to nearest, ties to
//                      even; the 16 bits of the bf16.
//   round_bf16(x)      the same rounding, returned as the fp32 that bf16 value is (exact).
//   bf16x2_bits(lo, hi) cvt.rn.bf16x2.f32: two bf16 in one 32-bit register, `lo` in bits 0..15.
//   bf16_to_float(b)   the exact widening (bits << 16).
//
// Every finite input, subnormals included, rounds by its bits (no flush to zero); ±Inf stays ±Inf;
// a value that rounds past the largest finite one becomes ±Inf, as IEEE round-to-nearest does.
// NaN: tf32 keeps the upper 19 bits of the pattern (so a NaN whose payload lies only in the 13 low
// bits becomes ±Inf, as on the GPU: see tf32_bits); bf16 gives NVIDIA's canonical NaN 0x7FFF
// (CUDA's cuda_bf16.hpp fallback; the sm_80+ F2FP instruction's NaN is not verified without a GPU).
// Tested in tests/core/test_rounding.cpp against a rounding computed independently in double.
#pragma once

#include <cstdint>
#include <cstring>

#include "core/host_device.h"

namespace kiln {

KILN_HD inline std::uint32_t float_bits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
#endif
}
KILN_HD inline float bits_float(std::uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
#endif
}

// Round half away from zero on the magnitude: adding half a tf32 ulp (bit 12) carries into the
// kept bits exactly when the dropped part is at least half, across exponents too (a carry out of
// the mantissa increments the exponent, up to Inf); then the 13 dropped bits are cleared. Inf and
// NaN only lose their 13 low bits. This is the code ptxas (CUDA 13.0) emits for cvt.rna.tf32.f32 on
// sm_80 and sm_90: FSETP.GEU |x|, +INF; IADD3 x + 0x1000; SEL; LOP3 & 0xffffe000.
KILN_HD inline std::uint32_t tf32_bits(float x) {
  const std::uint32_t u = float_bits(x);
  const bool finite = (u & 0x7F800000u) != 0x7F800000u;
  return (finite ? u + 0x1000u : u) & 0xFFFFE000u;
}
KILN_HD inline float round_tf32(float x) {
  return bits_float(tf32_bits(x));
}

// Round half to even: add 0x7FFF plus the lowest kept bit, so that an exact half carries only when
// the kept part is odd.
KILN_HD inline std::uint16_t bf16_bits(float x) {
  const std::uint32_t u = float_bits(x);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return 0x7FFFu;  // NaN
  return static_cast<std::uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}
KILN_HD inline float bf16_to_float(std::uint16_t b) {
  return bits_float(static_cast<std::uint32_t>(b) << 16);
}
KILN_HD inline float round_bf16(float x) {
  return bf16_to_float(bf16_bits(x));
}
KILN_HD inline std::uint32_t bf16x2_bits(float lo, float hi) {
  return static_cast<std::uint32_t>(bf16_bits(lo)) |
         (static_cast<std::uint32_t>(bf16_bits(hi)) << 16);
}

}  // namespace kiln
