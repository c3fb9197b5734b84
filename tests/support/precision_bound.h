// tests/support/precision_bound.h — the derived bound of a tf32 or bf16 conv/linear result (the
// CPU path in tests/precision, the CUDA dispatch in tests/parity).
//
// With a and b the rounded inputs, every product is exact in fp32 (11 × 11 or 8 × 8 significant
// bits), so a result differs from the exact sum only by its fp32 additions: at most T inside the
// GEMM (T the most products summed into one element) and at most 10 outside it (bias, partial
// sums, the accumulated value), each off by at most 2⁻²⁴ of a partial sum bounded by
// S = Σ|a·b| (+ |bias| or |initial value|):  |got − exact| ≤ e = (T + 10)·2⁻²⁴·S.
// Where bf16 rounds the output, got is round_bf16 of a value within e of exact, and rounding is
// monotone: got ∈ [round_bf16(exact − e), round_bf16(exact + e)].
#pragma once

#include <cmath>
#include <cstdint>

#include "core/rounding.h"

namespace kiln::test {

// e above, for T = `products` and S = `sum_abs`.
inline double precision_error_bound(int64_t products, double sum_abs) {
  return static_cast<double>(products + 10) * std::ldexp(sum_abs, -24);
}

// Whether `got` satisfies the bound around `exact`; NaN (an element left unwritten) never does.
inline bool within_precision_bound(double got, double exact, double sum_abs, int64_t products,
                                   bool rounds_bf16) {
  const double e = precision_error_bound(products, sum_abs);
  if (!rounds_bf16) return std::fabs(got - exact) <= e;
  const double lo = kiln::round_bf16(static_cast<float>(exact - e));
  const double hi = kiln::round_bf16(static_cast<float>(exact + e));
  return got >= lo && got <= hi;
}

}  // namespace kiln::test
