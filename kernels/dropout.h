// kernels/dropout.h — inverted dropout with a Philox mask (docs/design.md §4).
// Element i is kept when philox_uniform(seed, offset, i) >= p and then scaled by 1/(1-p); dropped
// elements are 0. No mask is stored: backward regenerates it from (seed, offset). dx overwritten.
// p in [0, 1).
#pragma once

#include <cstdint>

#include "core/stream.h"
#include "core/tensor.h"

namespace kiln {

namespace cpu {
template <typename T>
void dropout_forward(T* y, const T* x, int64_t n, float p, uint64_t seed, uint64_t offset);
template <typename T>
void dropout_backward(T* dx, const T* dy, int64_t n, float p, uint64_t seed, uint64_t offset);
}  // namespace cpu

namespace cuda {
void dropout_forward(float* y, const float* x, int64_t n, float p, uint64_t seed, uint64_t offset,
                     Stream stream);
void dropout_backward(float* dx, const float* dy, int64_t n, float p, uint64_t seed,
                      uint64_t offset, Stream stream);
}  // namespace cuda

void dropout_forward(Tensor& y, const Tensor& x, float p, uint64_t seed, uint64_t offset);
void dropout_backward(Tensor& dx, const Tensor& dy, float p, uint64_t seed, uint64_t offset);

}  // namespace kiln
