// kernels/elementwise.h — small helpers: fill, copy, scale, bias add, and the global L2 norm.
// norm is a deterministic reduction (fixed order) so repeated runs agree bit for bit.
#pragma once

#include <cstdint>

#include "core/stream.h"
#include "core/tensor.h"

namespace kiln {

namespace cpu {
template <typename T>
void fill(T* x, int64_t n, T value);
template <typename T>
void copy(T* dst, const T* src, int64_t n);
template <typename T>
void scale(T* x, int64_t n, T alpha);  // x *= alpha
template <typename T>
void bias_add(T* y, const T* b, int64_t m, int c);  // y[m][c] += b[c]
template <typename T>
void l2_norm(T* out /* [1] */, const T* x, int64_t n);  // sqrt(Σ x²)
}  // namespace cpu

namespace cuda {
void fill(float* x, int64_t n, float value, Stream stream);
void copy(float* dst, const float* src, int64_t n, Stream stream);
void scale(float* x, int64_t n, float alpha, Stream stream);
void bias_add(float* y, const float* b, int64_t m, int c, Stream stream);
// Floats of workspace cuda::l2_norm needs for n elements (its per-block partial sums).
int64_t l2_norm_workspace_floats(int64_t n);
// out[0] = sqrt(Σ x²) on the device. `workspace` holds l2_norm_workspace_floats(n) floats and
// overlaps neither out nor x; the caller takes it from its one workspace request.
void l2_norm(float* out, const float* x, int64_t n, float* workspace, Stream stream);
// Gradient clipping's second half, all on the device: reads norm[0] (l2_norm's result), writes
// not_finite[0] = 1 if it is not finite (else 0), and scales x by max_norm / (norm + 1e-6) when
// that is below 1 (PyTorch's clip_grad_norm_; the coefficient in double, applied as a float).
void clip_by_norm(float* x, int64_t n, const float* norm, double max_norm, int32_t* not_finite,
                  Stream stream);
}  // namespace cuda

// Functional API.
void scale(Tensor& x, double alpha);
void bias_add(Tensor& y, const Tensor& b);  // y [..][C], b [C]
// sqrt of the sum of squares of x (any device); returns the value on the host.
double l2_norm(const Tensor& x);
// Clips x (flat) to the global L2 norm max_norm (> 0) as optim's clip_grad_norm does, without
// bringing the norm to the host: not_finite (i32 [1], x's device) becomes 1 when the norm is not
// finite (x is then left unchanged), else 0. On CUDA two launches of l2_norm and one of clipping,
// queued on the current stream; nothing waits.
void clip_by_norm(Tensor& x, double max_norm, Tensor& not_finite);

}  // namespace kiln
