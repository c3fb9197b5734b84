// tests/support/rounding_reference.h — the tensor cores' input roundings computed a second way, in
// double arithmetic from the value rather than by bit tricks on its encoding: the oracle of
// core/rounding.h (tests/core/test_rounding.cpp) and of the device conversions
// (tests/simt/test_simt_tensor_core.cpp).
//
// A format with p significant bits and smallest subnormal 2^emin_sub rounds |x| = f·2^e
// (f in [0.5, 1)) to a multiple of the quantum q = max(2^(e−p), 2^emin_sub): n = |x|/q is exact in
// double, n is rounded to an integer (ties away from zero for tf32, to even for bf16), and n·q is
// the result, ±Inf from 2^128 on. NaN: bf16 gives NVIDIA's canonical NaN 0x7FFF; tf32 keeps the
// pattern's upper 19 bits, Inf too (what the GPU's code for cvt.rna.tf32.f32 does).
//   tf32: p = 11, quantum of the subnormals 2^−136 (fp32's 2^−149 with 13 bits dropped);
//   bf16: p = 8,  quantum of the subnormals 2^−133 (16 bits dropped).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace kiln::test {

enum class Ties { kAway, kEven };

inline float reference_round(float x, int precision, int subnormal_exp, Ties ties) {
  if (std::isnan(x) || std::isinf(x) || x == 0.0f) return x;
  int e = 0;
  std::frexp(static_cast<double>(x), &e);
  const double q = std::ldexp(1.0, std::max(e - precision, subnormal_exp));
  const double n = std::fabs(static_cast<double>(x)) / q;
  const double lo = std::floor(n), frac = n - lo;
  double r = lo;
  if (frac > 0.5 || (frac == 0.5 && (ties == Ties::kAway || std::fmod(lo, 2.0) != 0.0))) r += 1.0;
  const double v = r * q;
  const double mag = v >= std::ldexp(1.0, 128) ? HUGE_VAL : v;
  return static_cast<float>(std::copysign(mag, static_cast<double>(x)));
}

inline std::uint32_t reference_bits(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}

// The expected bits of cvt.rna.tf32.f32 (32 bits) and cvt.rn.bf16.f32 (16 bits).
inline std::uint32_t reference_tf32_bits(float x) {
  if (std::isnan(x)) return reference_bits(x) & 0xFFFFE000u;
  return reference_bits(reference_round(x, 11, -136, Ties::kAway));
}
inline std::uint16_t reference_bf16_bits(float x) {
  if (std::isnan(x)) return 0x7FFFu;
  return static_cast<std::uint16_t>(reference_bits(reference_round(x, 8, -133, Ties::kEven)) >> 16);
}

}  // namespace kiln::test
