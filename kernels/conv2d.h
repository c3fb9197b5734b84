// kernels/conv2d.h — 2-D convolution: forward, backward-data, backward-filter.
//
// Layouts: x [N][H][W][C_in], y [N][OH][OW][C_out] (NHWC), w [C_out][KH][KW][C_in], b [C_out].
// OH = floor((H + 2*pad_h - KH) / stride_h) + 1 (docs/math.md §1), OW likewise.
// Gradient semantics: dx is overwritten; dw and db accumulate (+=).
// Precision (Conv2dParams::precision, core/precision.h): fp32, or the tensor cores' tf32 / bf16
// arithmetic, on every device that supports it (kernels/precision.h).
#pragma once

#include <cstdint>

#include "core/precision.h"
#include "core/stream.h"
#include "core/tensor.h"

namespace kiln {

struct Conv2dShape {
  int n = 1, h = 1, w = 1, c_in = 1;  // input
  int c_out = 1, kh = 1, kw = 1;      // filter
  int stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0;
  int out_h() const { return (h + 2 * pad_h - kh) / stride_h + 1; }
  int out_w() const { return (w + 2 * pad_w - kw) / stride_w + 1; }
};

namespace cpu {
// Plain loops; the double instance is the oracle.
template <typename T>
void conv2d_forward(T* y, const T* x, const T* w, const T* b /* nullable */, const Conv2dShape& s);
template <typename T>
void conv2d_backward_data(T* dx, const T* dy, const T* w, const Conv2dShape& s);
template <typename T>
void conv2d_backward_filter(T* dw, T* db /* nullable */, const T* dy, const T* x,
                            const Conv2dShape& s);
}  // namespace cpu

namespace cpu::fast {
// The float CPU path users train with: im2col + OpenBLAS sgemm, OpenMP over the batch.
void conv2d_forward(float* y, const float* x, const float* w, const float* b, const Conv2dShape& s);
void conv2d_backward_data(float* dx, const float* dy, const float* w, const Conv2dShape& s);
void conv2d_backward_filter(float* dw, float* db, const float* dy, const float* x,
                            const Conv2dShape& s);
}  // namespace cpu::fast

namespace cuda {
void conv2d_forward(float* y, const float* x, const float* w, const float* b, const Conv2dShape& s,
                    Stream stream);
void conv2d_backward_data(float* dx, const float* dy, const float* w, const Conv2dShape& s,
                          Stream stream);
void conv2d_backward_filter(float* dw, float* db, const float* dy, const float* x,
                            const Conv2dShape& s, Stream stream);
}  // namespace cuda

// Functional API: checks shapes/dtypes/devices (throws naming the op and the shapes), dispatches:
// CPU f64 -> cpu:: plain loops, CPU f32 -> cpu::fast::, CUDA f32 -> cuda::. With a precision
// other than fp32 the CPU runs the same code on rounded copies of the GEMM's inputs (forward: x
// and w; backward-data: dy and w; backward-filter: dy and x, db from the rounded dy) and, for
// bf16, rounds y and dx (kernels/precision.h); the bias is added in fp32 before that rounding.
struct Conv2dParams {
  int stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0;
  Precision precision = Precision::fp32;
};
void conv2d_forward(Tensor& y, const Tensor& x, const Tensor& w, const Tensor* b,
                    const Conv2dParams& p);
void conv2d_backward_data(Tensor& dx, const Tensor& dy, const Tensor& w, const Conv2dParams& p);
void conv2d_backward_filter(Tensor& dw, Tensor* db, const Tensor& dy, const Tensor& x,
                            const Conv2dParams& p);

}  // namespace kiln
