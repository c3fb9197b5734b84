// kernels/linear.h — fully connected layer on our own GEMM.
// x [N][IN], w [OUT][IN], b [OUT], y [N][OUT]:  y = x · wᵀ + b.
// Backward: dx = dy · w (overwritten); dw += dyᵀ · x; db += Σ_n dy (accumulated).
#pragma once

#include <cstdint>

#include "core/precision.h"
#include "core/stream.h"
#include "core/tensor.h"

namespace kiln {

struct LinearShape {
  int n = 1, in = 1, out = 1;
};

namespace cpu {
template <typename T>
void linear_forward(T* y, const T* x, const T* w, const T* b /* nullable */, const LinearShape& s);
template <typename T>
void linear_backward_data(T* dx, const T* dy, const T* w, const LinearShape& s);
template <typename T>
void linear_backward_weight(T* dw, T* db /* nullable */, const T* dy, const T* x,
                            const LinearShape& s);
}  // namespace cpu

namespace cpu::fast {
void linear_forward(float* y, const float* x, const float* w, const float* b, const LinearShape& s);
void linear_backward_data(float* dx, const float* dy, const float* w, const LinearShape& s);
void linear_backward_weight(float* dw, float* db, const float* dy, const float* x,
                            const LinearShape& s);
}  // namespace cpu::fast

namespace cuda {
void linear_forward(float* y, const float* x, const float* w, const float* b, const LinearShape& s,
                    Stream stream);
void linear_backward_data(float* dx, const float* dy, const float* w, const LinearShape& s,
                          Stream stream);
void linear_backward_weight(float* dw, float* db, const float* dy, const float* x,
                            const LinearShape& s, Stream stream);
}  // namespace cuda

// Functional API: checks, then dispatches (CPU f64: the reference loops; CPU f32: the fast path;
// CUDA f32: kiln::cuda::). `precision` other than fp32: the GEMM's inputs (forward: x and w;
// backward-data: dy and w; backward-weight: dy and x, db from the rounded dy) are rounded as the
// tensor cores round them and, for bf16, y and dx are rounded after the bias (kernels/precision.h).
void linear_forward(Tensor& y, const Tensor& x, const Tensor& w, const Tensor* b,
                    Precision precision = Precision::fp32);
void linear_backward_data(Tensor& dx, const Tensor& dy, const Tensor& w,
                          Precision precision = Precision::fp32);
void linear_backward_weight(Tensor& dw, Tensor* db, const Tensor& dy, const Tensor& x,
                            Precision precision = Precision::fp32);

}  // namespace kiln
