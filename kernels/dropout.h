// kernels/dropout.h — inverted dropout with a Philox mask (docs/design.md §4).
// Element i is kept when philox_uniform(seed, offset, i) >= p and then scaled by 1/(1-p); dropped
// elements are 0. No mask is stored: backward regenerates it from (seed, offset). dx overwritten.
// p in [0, 1).
//
// The CUDA and functional entry points take the offset as a PhiloxOffset (core/philox.h): a number,
// or (CUDA only) a device address the kernel reads it from, so a replayed CUDA graph draws the
// offset of the step it replays.
//
// DropoutSamples places a batch inside a larger one whose mask it must share (data parallelism:
// rank r of N holds the samples r, r + N, r + 2N ... of the global batch, docs/distributed.md):
// element e of sample k (`elems` elements per sample) draws the mask of element
// (k·stride + first)·elems + e of the larger batch. The default (elems = 0) is the identity.
#pragma once

#include <cstdint>

#include "core/host_device.h"
#include "core/philox.h"
#include "core/stream.h"
#include "core/tensor.h"

namespace kiln {

struct DropoutSamples {
  int64_t elems = 0;  // elements per sample; 0: element i draws mask i
  int64_t stride = 1, first = 0;
  bool identity() const { return elems == 0 || (stride == 1 && first == 0); }
};

// The mask index of element i.
KILN_HD inline int64_t dropout_mask_index(const DropoutSamples& s, int64_t i) {
  return s.elems == 0 ? i : ((i / s.elems) * s.stride + s.first) * s.elems + i % s.elems;
}

namespace cpu {
template <typename T>
void dropout_forward(T* y, const T* x, int64_t n, float p, uint64_t seed, uint64_t offset,
                     const DropoutSamples& samples = {});
template <typename T>
void dropout_backward(T* dx, const T* dy, int64_t n, float p, uint64_t seed, uint64_t offset,
                      const DropoutSamples& samples = {});
}  // namespace cpu

namespace cuda {
void dropout_forward(float* y, const float* x, int64_t n, float p, uint64_t seed,
                     PhiloxOffset offset, Stream stream, const DropoutSamples& samples = {});
void dropout_backward(float* dx, const float* dy, int64_t n, float p, uint64_t seed,
                      PhiloxOffset offset, Stream stream, const DropoutSamples& samples = {});
}  // namespace cuda

void dropout_forward(Tensor& y, const Tensor& x, float p, uint64_t seed, PhiloxOffset offset,
                     const DropoutSamples& samples = {});
void dropout_backward(Tensor& dx, const Tensor& dy, float p, uint64_t seed, PhiloxOffset offset,
                      const DropoutSamples& samples = {});

}  // namespace kiln
