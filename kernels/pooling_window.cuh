// kernels/pooling_window.cuh — the max-pooling window walk shared by kernels/pooling.cu and
// kernels/fused_block.cu. Internal: included by .cu files only, never installed.
#pragma once

#include <limits>

#include "core/error.h"
#include "kernels/pooling.h"

namespace kiln::cuda {

// For kV channels of one output position whose window starts at (h0, w0) in an h × w input: the
// first maximum in row-major order (strict >: padded positions are never candidates, and a NaN
// wins only in the first position) and its position a·kw + b. tap(ih, iw, v) fills v[kV] with the
// candidates at input position (ih, iw).
template <int kV, typename Tap>
__device__ __forceinline__ void window_max(float (&best)[kV], int (&pos)[kV], int h0, int w0,
                                           int kh, int kw, int h, int w, Tap&& tap) {
#pragma unroll
  for (int k = 0; k < kV; ++k) {
    best[k] = -std::numeric_limits<float>::infinity();
    pos[k] = -1;
  }
  for (int a = 0; a < kh; ++a) {
    const int ih = h0 + a;
    if (ih < 0 || ih >= h) continue;
    for (int b = 0; b < kw; ++b) {
      const int iw = w0 + b;
      if (iw < 0 || iw >= w) continue;
      float v[kV];
      tap(ih, iw, v);
      const int p = a * kw + b;
#pragma unroll
      for (int k = 0; k < kV; ++k) {
        if (pos[k] < 0 || v[k] > best[k]) {
          best[k] = v[k];
          pos[k] = p;
        }
      }
    }
  }
}

// The launchers' check of a pooling shape (host code): extents, a window of 1 to 256 elements (the
// argmax is one byte), positive strides, padding that leaves an input element in every window.
inline void check_pool_window(const char* op, const Pool2dShape& s) {
  KILN_CHECK(s.n >= 1 && s.h >= 1 && s.w >= 1 && s.c >= 1, op, ": bad input shape n=", s.n,
             " h=", s.h, " w=", s.w, " c=", s.c);
  KILN_CHECK(s.kh >= 1 && s.kw >= 1 && s.kh * s.kw <= 256, op, ": window ", s.kh, "x", s.kw,
             " must hold 1 to 256 elements (argmax is one byte)");
  KILN_CHECK(s.stride_h >= 1 && s.stride_w >= 1, op, ": strides must be positive");
  KILN_CHECK(s.pad_h >= 0 && s.pad_w >= 0 && s.pad_h < s.kh && s.pad_w < s.kw, op,
             ": padding must be in [0, window) so that every window holds an input element");
  KILN_CHECK(s.h + 2 * s.pad_h >= s.kh && s.w + 2 * s.pad_w >= s.kw, op,
             ": window larger than the padded input");
}

}  // namespace kiln::cuda
