// tests/support/tc_parity.h — what the tensor-core parity tests (tests/parity/test_*_tc_parity.cpp)
// share: the two precisions as the tests see them (storage, the rounding the tensor cores apply,
// widening back), guarded outputs, and the derived error bound.
//
// The oracle is the double CPU reference run on the SAME rounded inputs: TF32 inputs rounded by
// round_tf32 (cvt.rna; the kernels round fp32 storage as they load it), BF16 inputs stored as bf16
// (round_bf16). Products of rounded inputs are exact (11×11 and 8×8 significant bits), and each of
// the K fp32 additions costs at most one ulp (a GPU's tensor cores may truncate, so 2⁻²³ rather
// than the rounding's 2⁻²⁴):
//   |got − ref| <= (K + 2)·2⁻²³·max|ref_abs|  (+ 2⁻²³·|ref| for outputs accumulated onto a
//                                               sentinel, + 2⁻⁸·|ref| for a bf16 output's rounding)
// where ref_abs is the oracle on |inputs|. Tight enough to fail when an input is not rounded, or
// rounded another way (TF32 truncation instead of RNA moves a product by up to 2⁻¹¹ of itself).
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/rounding.h"
#include "tests/support/compare.h"
#include "tests/support/device_buffer.h"

namespace kiln::test {

inline constexpr std::size_t kGuardElems = 8;

// fp32 storage, TF32 math: inputs uploaded as drawn; the kernel rounds them (cvt.rna).
struct Tf32 {
  using T = float;
  static constexpr const char* kName = "tf32";
  static constexpr bool kBf16Out = false;
  static T store(float x) { return x; }
  static float operand(float x) { return kiln::round_tf32(x); }  // what the tensor cores take
  static float value(T v) { return v; }
  static T nan() { return std::numeric_limits<float>::quiet_NaN(); }
};

// bf16 storage (bits in std::uint16_t), BF16 math; y and dx come back as bf16.
struct Bf16 {
  using T = std::uint16_t;
  static constexpr const char* kName = "bf16";
  static constexpr bool kBf16Out = true;
  static T store(float x) { return kiln::bf16_bits(x); }
  static float operand(float x) { return kiln::round_bf16(x); }
  static float value(T v) { return kiln::bf16_to_float(v); }
  static T nan() { return 0x7FC0u; }
};

// An output of n elements with kGuardElems guards on each side, all starting at `fill`.
template <typename T>
struct GuardedOut {
  std::size_t n;
  T fill;
  DeviceBuffer<T> buf;
  GuardedOut(std::size_t n_, T fill_, bool misaligned)
      : n(n_), fill(fill_), buf(n_ + 2 * kGuardElems, misaligned) {}
  T* data() { return buf.get() + kGuardElems; }
  void reset() { buf.fill(fill); }
  // The payload; CHECKs that the guards still hold `fill`.
  std::vector<T> payload() const {
    const std::vector<T> all = buf.download();
    int bad = 0;
    for (std::size_t i = 0; i < all.size(); ++i)
      if ((i < kGuardElems || i >= kGuardElems + n) && std::memcmp(&all[i], &fill, sizeof(T)) != 0)
        ++bad;
    CHECK(bad == 0);
    return {all.begin() + kGuardElems, all.begin() + kGuardElems + static_cast<std::ptrdiff_t>(n)};
  }
};

// |got − (sentinel + ref)| <= atol + rtol·|sentinel + ref| element by element, with the bound of
// the bound of the file comment for a dot product of length k.
inline void check_tc(const std::string& what, const std::vector<float>& got,
                     const std::vector<double>& ref, const std::vector<double>& ref_abs, int64_t k,
                     bool bf16_out, double sentinel = 0.0) {
  const double atol = (static_cast<double>(k) + 2.0) * std::ldexp(1.0, -23) * max_abs(ref_abs);
  double rtol = sentinel != 0.0 ? std::ldexp(1.0, -23) : 0.0;
  if (bf16_out) rtol += std::ldexp(1.0, -8);
  std::vector<double> expected(ref.size());
  for (std::size_t i = 0; i < ref.size(); ++i) expected[i] = sentinel + ref[i];
  // The bf16 rounding is relative to the rounded value, within atol of the reference.
  expect_close(what, got, expected, atol * (1.0 + rtol), rtol);
}

template <class P>
std::vector<float> values(const std::vector<typename P::T>& v) {
  std::vector<float> out;
  for (const auto& e : v) out.push_back(P::value(e));
  return out;
}

// Inputs drawn as floats, as stored on the device (P::T) and as the oracle takes them (rounded,
// and their magnitudes).
template <class P>
struct TcOperand {
  std::vector<typename P::T> stored;
  std::vector<double> op, op_abs;
  explicit TcOperand(const std::vector<float>& v) {
    for (float e : v) {
      stored.push_back(P::store(e));
      op.push_back(P::operand(e));
      op_abs.push_back(std::fabs(P::operand(e)));
    }
  }
};

}  // namespace kiln::test
