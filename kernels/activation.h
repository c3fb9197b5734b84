// kernels/activation.h — LeakyReLU.
// y = x > 0 ? x : slope * x;  dx = dy * (x > 0 ? 1 : slope), x the forward input (the output has the
// same sign for slope > 0, so y may be passed instead). dx overwritten. In-place (y == x) is allowed.
#pragma once

#include <cstdint>

#include "core/stream.h"
#include "core/tensor.h"

namespace kiln {

namespace cpu {
template <typename T>
void leaky_relu_forward(T* y, const T* x, int64_t n, double slope);
template <typename T>
void leaky_relu_backward(T* dx, const T* dy, const T* x, int64_t n, double slope);
}  // namespace cpu

namespace cuda {
void leaky_relu_forward(float* y, const float* x, int64_t n, double slope, Stream stream);
void leaky_relu_backward(float* dx, const float* dy, const float* x, int64_t n, double slope,
                         Stream stream);
}  // namespace cuda

void leaky_relu_forward(Tensor& y, const Tensor& x, double slope = 0.01);
void leaky_relu_backward(Tensor& dx, const Tensor& dy, const Tensor& x, double slope = 0.01);

}  // namespace kiln
