// kernels/cpu/conv2d.cpp — CPU reference of 2-D convolution: plain loops, templated on float and
// double; the double instance is the oracle every other implementation is tested against.
//
// Layouts (kernels/conv2d.h): x [N][H][W][C_in], y [N][OH][OW][C_out], w [C_out][KH][KW][C_in].
// All three ops walk the one index relation of docs/math.md §1 (positions outside x are zeros):
//   ih = oh·stride_h − pad_h + i,  iw = ow·stride_w − pad_w + j
//   forward          y[n,oh,ow,co] = b[co] + Σ_{i,j,ci} x[n,ih,iw,ci]·w[co,i,j,ci]
//   backward-data    dx[n,ih,iw,ci] = Σ dy[n,oh,ow,co]·w[co,i,j,ci] over co and every
//                    (oh,ow,i,j) whose window reaches (ih,iw)
//   backward-filter  dw[co,i,j,ci] += Σ_{n,oh,ow} dy[n,oh,ow,co]·x[n,ih,iw,ci]
//                    db[co] += Σ_{n,oh,ow} dy[n,oh,ow,co]
// Obviously right beats fast here: sums are accumulated in double, in a fixed order.
#include <cstdint>

#include "kernels/conv2d.h"

namespace kiln::cpu {
namespace {

// Index of element (n, h, w, c) of an NHWC tensor with extents [*][H][W][C].
inline int64_t nhwc(int64_t n, int64_t h, int64_t w, int64_t c, int64_t H, int64_t W, int64_t C) {
  return ((n * H + h) * W + w) * C + c;
}

}  // namespace

template <typename T>
void conv2d_forward(T* y, const T* x, const T* w, const T* b, const Conv2dShape& s) {
  const int OH = s.out_h(), OW = s.out_w();
  for (int n = 0; n < s.n; ++n)
    for (int oh = 0; oh < OH; ++oh)
      for (int ow = 0; ow < OW; ++ow)
        for (int co = 0; co < s.c_out; ++co) {
          double acc = b != nullptr ? static_cast<double>(b[co]) : 0.0;
          for (int i = 0; i < s.kh; ++i) {
            const int ih = oh * s.stride_h - s.pad_h + i;
            if (ih < 0 || ih >= s.h) continue;
            for (int j = 0; j < s.kw; ++j) {
              const int iw = ow * s.stride_w - s.pad_w + j;
              if (iw < 0 || iw >= s.w) continue;
              for (int ci = 0; ci < s.c_in; ++ci)
                acc += static_cast<double>(x[nhwc(n, ih, iw, ci, s.h, s.w, s.c_in)]) *
                       static_cast<double>(w[nhwc(co, i, j, ci, s.kh, s.kw, s.c_in)]);
            }
          }
          y[nhwc(n, oh, ow, co, OH, OW, s.c_out)] = static_cast<T>(acc);
        }
}

template <typename T>
void conv2d_backward_data(T* dx, const T* dy, const T* w, const Conv2dShape& s) {
  const int OH = s.out_h(), OW = s.out_w();
  // Gather form of the scatter "dx[ih,iw] += dy[oh,ow]·w[i,j]": for each input position, visit
  // every kernel tap (i, j) and keep the output position it came from, if there is one.
  for (int n = 0; n < s.n; ++n)
    for (int ih = 0; ih < s.h; ++ih)
      for (int iw = 0; iw < s.w; ++iw)
        for (int ci = 0; ci < s.c_in; ++ci) {
          double acc = 0.0;
          for (int i = 0; i < s.kh; ++i) {
            const int oh_s = ih + s.pad_h - i;  // = oh·stride_h
            if (oh_s < 0 || oh_s % s.stride_h != 0 || oh_s / s.stride_h >= OH) continue;
            const int oh = oh_s / s.stride_h;
            for (int j = 0; j < s.kw; ++j) {
              const int ow_s = iw + s.pad_w - j;  // = ow·stride_w
              if (ow_s < 0 || ow_s % s.stride_w != 0 || ow_s / s.stride_w >= OW) continue;
              const int ow = ow_s / s.stride_w;
              for (int co = 0; co < s.c_out; ++co)
                acc += static_cast<double>(dy[nhwc(n, oh, ow, co, OH, OW, s.c_out)]) *
                       static_cast<double>(w[nhwc(co, i, j, ci, s.kh, s.kw, s.c_in)]);
            }
          }
          dx[nhwc(n, ih, iw, ci, s.h, s.w, s.c_in)] = static_cast<T>(acc);
        }
}

template <typename T>
void conv2d_backward_filter(T* dw, T* db, const T* dy, const T* x, const Conv2dShape& s) {
  const int OH = s.out_h(), OW = s.out_w();
  for (int co = 0; co < s.c_out; ++co)
    for (int i = 0; i < s.kh; ++i)
      for (int j = 0; j < s.kw; ++j)
        for (int ci = 0; ci < s.c_in; ++ci) {
          double acc = 0.0;
          for (int n = 0; n < s.n; ++n)
            for (int oh = 0; oh < OH; ++oh) {
              const int ih = oh * s.stride_h - s.pad_h + i;
              if (ih < 0 || ih >= s.h) continue;
              for (int ow = 0; ow < OW; ++ow) {
                const int iw = ow * s.stride_w - s.pad_w + j;
                if (iw < 0 || iw >= s.w) continue;
                acc += static_cast<double>(dy[nhwc(n, oh, ow, co, OH, OW, s.c_out)]) *
                       static_cast<double>(x[nhwc(n, ih, iw, ci, s.h, s.w, s.c_in)]);
              }
            }
          T& out = dw[nhwc(co, i, j, ci, s.kh, s.kw, s.c_in)];
          out = static_cast<T>(static_cast<double>(out) + acc);
        }
  if (db == nullptr) return;
  for (int co = 0; co < s.c_out; ++co) {
    double acc = 0.0;
    for (int64_t r = 0; r < static_cast<int64_t>(s.n) * OH * OW; ++r)
      acc += static_cast<double>(dy[r * s.c_out + co]);
    db[co] = static_cast<T>(static_cast<double>(db[co]) + acc);
  }
}

#define KILN_INSTANTIATE_CONV2D(T)                                                       \
  template void conv2d_forward<T>(T*, const T*, const T*, const T*, const Conv2dShape&); \
  template void conv2d_backward_data<T>(T*, const T*, const T*, const Conv2dShape&);     \
  template void conv2d_backward_filter<T>(T*, T*, const T*, const T*, const Conv2dShape&);
KILN_INSTANTIATE_CONV2D(float)
KILN_INSTANTIATE_CONV2D(double)
#undef KILN_INSTANTIATE_CONV2D

}  // namespace kiln::cpu
