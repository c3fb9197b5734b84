// kernels/pooling.h — max pooling, NHWC.
//
// x [N][H][W][C], y and argmax [N][OH][OW][C]. argmax is one uint8_t per output element: the
// row-major position (kh_i * KW + kw_i) of the maximum inside its window (docs/design.md §3), so a
// window holds at most 256 elements. Padded positions never win; ties go to the first position in
// row-major order. Backward: dx overwritten (zero, then dy routed to each argmax).
#pragma once

#include <cstdint>

#include "core/stream.h"
#include "core/tensor.h"

namespace kiln {

struct Pool2dShape {
  int n = 1, h = 1, w = 1, c = 1;
  int kh = 2, kw = 2, stride_h = 2, stride_w = 2, pad_h = 0, pad_w = 0;
  int out_h() const { return (h + 2 * pad_h - kh) / stride_h + 1; }
  int out_w() const { return (w + 2 * pad_w - kw) / stride_w + 1; }
};

namespace cpu {
template <typename T>
void maxpool2d_forward(T* y, uint8_t* argmax, const T* x, const Pool2dShape& s);
template <typename T>
void maxpool2d_backward(T* dx, const T* dy, const uint8_t* argmax, const Pool2dShape& s);
}  // namespace cpu

namespace cuda {
void maxpool2d_forward(float* y, uint8_t* argmax, const float* x, const Pool2dShape& s,
                       Stream stream);
void maxpool2d_backward(float* dx, const float* dy, const uint8_t* argmax, const Pool2dShape& s,
                        Stream stream);
}  // namespace cuda

struct Pool2dParams {
  int kh = 2, kw = 2, stride_h = 2, stride_w = 2, pad_h = 0, pad_w = 0;
};
void maxpool2d_forward(Tensor& y, Tensor& argmax, const Tensor& x, const Pool2dParams& p);
void maxpool2d_backward(Tensor& dx, const Tensor& dy, const Tensor& argmax, const Pool2dParams& p);

}  // namespace kiln
