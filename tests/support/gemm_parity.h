// tests/support/gemm_parity.h — what the parity tests of the GEMM-shaped kernels
// (tests/parity/test_linear_parity.cpp, test_conv2d_parity.cpp) share, so that one loop per pass
// checks the SIMT fp32 kernels and the tensor-core ones alike: the three precisions as the tests
// see them (storage, the rounding the kernel applies to its operands, widening back), guarded
// outputs, and the error bound of each.
//
// The oracle is the double CPU reference run on the SAME operands the kernel multiplies.
//   - fp32 (the SIMT kernels): the inputs as drawn; each of the K fp32 additions of a product
//     rounds once, so |got − ref| <= (K + 8)·2⁻²⁴·max|ref_abs| (+ 2·2⁻²⁴·|ref| for an output
//     accumulated onto a sentinel) — check_dot, tests/support/compare.h.
//   - TF32 and BF16 (the tensor cores): TF32 inputs rounded by round_tf32 (cvt.rna; the kernels
//     round fp32 storage as they load it), BF16 inputs stored as bf16 (round_bf16). Products of
//     rounded inputs are exact (11×11 and 8×8 significant bits), and each of the K fp32 additions
//     costs at most one ulp (a GPU's tensor cores may truncate, so 2⁻²³ rather than the rounding's
//     2⁻²⁴):
//       |got − ref| <= (K + 2)·2⁻²³·max|ref_abs|  (+ 2⁻²³·|ref| for outputs accumulated onto a
//                                                   sentinel, + 2⁻⁸·|ref| for a bf16 output's
//                                                   rounding)
//     Tight enough to fail when an input is not rounded, or rounded another way (TF32 truncation
//     instead of RNA moves a product by up to 2⁻¹¹ of itself).
// ref_abs is the oracle on |operands|.
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
#include "tests/support/parity.h"

namespace kiln::test {

inline constexpr std::size_t kGuardElems = 8;

// fp32 storage and fp32 math (the SIMT kernels): the oracle takes the inputs as drawn.
struct Fp32 {
  using T = float;
  static constexpr const char* kName = "fp32";
  static constexpr bool kTensorCore = false;
  static constexpr bool kBf16Out = false;
  static T store(float x) { return x; }
  static float operand(float x) { return x; }
  static float value(T v) { return v; }
  static T nan() { return std::numeric_limits<float>::quiet_NaN(); }
};

// fp32 storage, TF32 math: inputs uploaded as drawn; the kernel rounds them (cvt.rna).
struct Tf32 {
  using T = float;
  static constexpr const char* kName = "tf32";
  static constexpr bool kTensorCore = true;
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
  static constexpr bool kTensorCore = true;
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

// |got − (sentinel + ref)| <= atol + rtol·|sentinel + ref| element by element, with the tensor-core
// bound of the file comment for a dot product of length k.
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

// An output of a product of length k in precision P, checked with P's bound; `stored` says the
// output is stored as P::T (y, dx), not as fp32 (dw, db).
template <class P>
void check_product(const std::string& what, const std::vector<float>& got,
                   const std::vector<double>& ref, const std::vector<double>& ref_abs, int64_t k,
                   bool stored, double sentinel = 0.0) {
  if constexpr (P::kTensorCore)
    check_tc(what, got, ref, ref_abs, k, stored && P::kBf16Out, sentinel);
  else
    check_dot(what, got, ref, ref_abs, k, sentinel);
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
struct Operand {
  std::vector<typename P::T> stored;
  std::vector<double> op, op_abs;
  explicit Operand(const std::vector<float>& v) {
    for (float e : v) {
      stored.push_back(P::store(e));
      op.push_back(P::operand(e));
      op_abs.push_back(std::fabs(P::operand(e)));
    }
  }
};

inline constexpr float kDwSentinel = 0.5f, kDbSentinel = -0.25f;

// The weight-gradient pass of a GEMM-shaped kernel whose dy is [rows][cols] (rows: the product's
// length k; cols: the outputs, db's length): `run(dw, db)` accumulates dw (fp32, ref_w.size()) and
// db (fp32 [cols], or nullptr: none). Runs it in every order from the sentinels kDwSentinel and
// kDbSentinel (guarded), checks dw against the oracle (ref_w, abs_w) with P's bound, db against the
// column sums of dy as the GEMM reads it (`dy_op`: TF32-rounded for TF32, as stored for BF16 and
// fp32) — the rounding point of the CPU's reduced-precision db — and that dw without db is the
// same bit for bit.
template <class P, typename Run>
void check_weight_gradient(const std::string& name, Run run, const std::vector<double>& ref_w,
                           const std::vector<double>& abs_w,
                           const std::vector<double>& dy_op, int64_t rows, int64_t cols,
                           bool misaligned) {
  const std::size_t w_n = ref_w.size();
  GuardedOut<float> dw(w_n, kDwSentinel, misaligned);
  GuardedOut<float> db(static_cast<std::size_t>(cols), kDbSentinel, misaligned);
  // One run returns dw followed by db.
  const std::vector<float> got = same_in_every_order(name, [&] {
    dw.reset();
    db.reset();
    run(dw.data(), db.data());
    std::vector<float> out = dw.payload();
    const std::vector<float> bias = db.payload();
    out.insert(out.end(), bias.begin(), bias.end());
    return out;
  });
  const auto split = got.begin() + static_cast<std::ptrdiff_t>(w_n);
  check_product<P>("dw", std::vector<float>(got.begin(), split), ref_w, abs_w, rows, false,
                   kDwSentinel);
  std::vector<double> db_ref(static_cast<std::size_t>(cols), 0.0), db_abs(db_ref);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < cols; ++o) {
      const double v = dy_op[static_cast<std::size_t>(r * cols + o)];
      db_ref[static_cast<std::size_t>(o)] += v;
      db_abs[static_cast<std::size_t>(o)] += std::fabs(v);
    }
  check_dot("db", std::vector<float>(split, got.end()), db_ref, db_abs, rows, kDbSentinel);

  // Without db: dw alone, the same values bit for bit (db's reduction is independent).
  dw.reset();
  run(dw.data(), nullptr);
  const std::vector<float> dw_only = dw.payload();
  CHECK(std::memcmp(dw_only.data(), got.data(), dw_only.size() * sizeof(float)) == 0);
}

}  // namespace kiln::test
