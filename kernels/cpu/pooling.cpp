// kernels/cpu/pooling.cpp — CPU reference of max pooling, NHWC: plain loops templated on float and
// double (the double instance is the oracle; the float instance is also the CPU training path).
//
//   forward   y[n,oh,ow,c] = max over the window positions (i, j) inside x of
//             x[n, oh·stride_h − pad_h + i, ow·stride_w − pad_w + j, c]  (docs/math.md §1's index
//             relation); argmax = i·KW + j of the winner. Padded positions never win (they are not
//             candidates at all); ties go to the first position in row-major order (strict >).
//   backward  dx = 0, then dx[winner of each output] += dy[output] (overlapping windows add up).
// Requires every window to hold at least one position inside x (the functional API enforces
// PyTorch's rule pad ≤ k/2) and KH·KW ≤ 256 so the argmax fits in a uint8_t.
#include <cstdint>

#include "kernels/pooling.h"

namespace kiln::cpu {

template <typename T>
void maxpool2d_forward(T* y, uint8_t* argmax, const T* x, const Pool2dShape& s) {
  const int OH = s.out_h(), OW = s.out_w();
  const int64_t rows = static_cast<int64_t>(s.n) * OH;
#pragma omp parallel for schedule(static) if (rows * OW * s.c >= (1 << 14))
  for (int64_t r = 0; r < rows; ++r) {  // r = n·OH + oh: outputs of different rows are independent
    const int64_t n = r / OH;
    const int oh = static_cast<int>(r % OH);
    for (int ow = 0; ow < OW; ++ow) {
      // All channels of one output position at once (contiguous in NHWC): the first tap inside x
      // seeds the maximum, later taps replace it only when strictly greater.
      T* yo = y + (r * OW + ow) * s.c;
      uint8_t* ao = argmax + (r * OW + ow) * s.c;
      bool found = false;
      for (int i = 0; i < s.kh; ++i) {
        const int ih = oh * s.stride_h - s.pad_h + i;
        if (ih < 0 || ih >= s.h) continue;
        for (int j = 0; j < s.kw; ++j) {
          const int iw = ow * s.stride_w - s.pad_w + j;
          if (iw < 0 || iw >= s.w) continue;
          const T* xt = x + ((n * s.h + ih) * s.w + iw) * s.c;
          const uint8_t pos = static_cast<uint8_t>(i * s.kw + j);
          if (!found) {
            for (int c = 0; c < s.c; ++c) {
              yo[c] = xt[c];
              ao[c] = pos;
            }
            found = true;
            continue;
          }
          // A select, not a branch, so that it runs as SIMD compare-and-blend (see the note on
          // -fno-trapping-math in CMakeLists.txt); NaN never replaces the maximum, as before.
#pragma omp simd
          for (int c = 0; c < s.c; ++c) {
            const T xv = xt[c], yv = yo[c];
            const bool greater = xv > yv;
            yo[c] = greater ? xv : yv;
            const uint8_t take = static_cast<uint8_t>(-static_cast<int>(greater));  // 0 or 0xFF
            ao[c] = static_cast<uint8_t>((pos & take) | (ao[c] & ~take));
          }
        }
      }
    }
  }
}

template <typename T>
void maxpool2d_backward(T* dx, const T* dy, const uint8_t* argmax, const Pool2dShape& s) {
  const int OH = s.out_h(), OW = s.out_w();
  const int64_t image = static_cast<int64_t>(s.h) * s.w * s.c;
  // One sample per iteration: its dx is written by no other iteration, and within it the adds
  // happen in a fixed order.
#pragma omp parallel for schedule(static) if (s.n * image >= (1 << 14))
  for (int n = 0; n < s.n; ++n) {
    T* dxn = dx + n * image;
    for (int64_t k = 0; k < image; ++k) dxn[k] = T(0);
    for (int oh = 0; oh < OH; ++oh)
      for (int ow = 0; ow < OW; ++ow)
        for (int c = 0; c < s.c; ++c) {
          const int64_t o = ((static_cast<int64_t>(n) * OH + oh) * OW + ow) * s.c + c;
          const int i = argmax[o] / s.kw, j = argmax[o] % s.kw;
          const int ih = oh * s.stride_h - s.pad_h + i, iw = ow * s.stride_w - s.pad_w + j;
          dxn[(static_cast<int64_t>(ih) * s.w + iw) * s.c + c] += dy[o];
        }
  }
}

#define KILN_INSTANTIATE_POOLING(T)                                               \
  template void maxpool2d_forward<T>(T*, uint8_t*, const T*, const Pool2dShape&); \
  template void maxpool2d_backward<T>(T*, const T*, const uint8_t*, const Pool2dShape&);
KILN_INSTANTIATE_POOLING(float)
KILN_INSTANTIATE_POOLING(double)
#undef KILN_INSTANTIATE_POOLING

}  // namespace kiln::cpu
