// kernels/dropout.cu — inverted dropout on the CUDA device, mask from Philox (docs/design.md §4).
//
// Element i is kept when philox_uniform(seed, offset, i) >= p, then scaled by 1/(1-p). One Philox
// call yields the four words of elements 4g..4g+3, so each thread handles one group of four: with
// 16-byte aligned pointers that is exactly one float4 load and store. The mask is computed by the
// same __host__ __device__ code (core/philox.h) as the CPU reference, so it is bit-identical; no
// mask is stored, backward regenerates it. dx is overwritten. In-place use (y == x) is safe: each
// element is read, then written, by the same thread (hence no __restrict__).
// The offset is a PhiloxOffset: each thread reads it (from device memory when it lives there) once,
// before its first draw.
// Error bound: one rounding of a product, |err| <= 2^-24·|ref| (docs/kernels-elementwise.md).
#include "core/device_code.h"

#include <cstdint>

#include "core/error.h"
#include "core/launch.h"
#include "core/philox.h"
#include "kernels/dropout.h"

namespace kiln::cuda {
namespace {

__device__ __forceinline__ float keep_scale(uint32_t word, float p, float scale) {
  return philox_word_to_uniform(word) >= p ? scale : 0.f;
}

// out[i] = in[i]·(kept ? scale : 0); forward (in = x) and backward (in = dy) are the same map.
// kVec: out and in 16-byte aligned.
template <bool kVec>
__global__ void KILN_LAUNCH_BOUNDS(kStreamBlock)
    dropout_kernel(float* out, const float* in, int64_t n, float p, float scale, uint64_t seed,
                   PhiloxOffset offset_of_draw) {
  const uint64_t offset = offset_of_draw.get();
  const int64_t groups = (n + 3) / 4;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; g < groups;
       g += stride) {
    const Philox4 r = philox_block(seed, offset, static_cast<uint64_t>(g));
    const int64_t i = 4 * g;
    if (kVec && i + 4 <= n) {
      const float4 v = reinterpret_cast<const float4*>(in)[g];
      reinterpret_cast<float4*>(out)[g] =
          make_float4(v.x * keep_scale(r.v[0], p, scale), v.y * keep_scale(r.v[1], p, scale),
                      v.z * keep_scale(r.v[2], p, scale), v.w * keep_scale(r.v[3], p, scale));
    } else {
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        if (i + k < n) out[i + k] = in[i + k] * keep_scale(r.v[k], p, scale);
      }
    }
  }
}

// The same map for a batch placed in a larger one (DropoutSamples, kernels/dropout.h): element i
// draws mask index m(i), whose Philox block differs from its neighbours', so one block per element.
__global__ void KILN_LAUNCH_BOUNDS(kStreamBlock)
    dropout_placed_kernel(float* out, const float* in, int64_t n, float p, float scale,
                          uint64_t seed, PhiloxOffset offset_of_draw, DropoutSamples samples) {
  const uint64_t offset = offset_of_draw.get();
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    const uint64_t m = static_cast<uint64_t>(dropout_mask_index(samples, i));
    out[i] = in[i] * keep_scale(philox_block(seed, offset, m / 4).v[m % 4], p, scale);
  }
}

void run_dropout(const char* op, const char* kernel, float* out, const float* in, int64_t n,
                 float p, uint64_t seed, PhiloxOffset offset, Stream stream,
                 const DropoutSamples& samples) {
  KILN_CHECK(n >= 0, op, ": negative size ", n);
  KILN_CHECK(p >= 0.f && p < 1.f, op, ": p must be in [0, 1), got ", p);
  if (n == 0) return;
  KILN_CHECK(out != nullptr && in != nullptr, op, ": null pointer");
  cost::simt(kernel, n, cost::f32(2 * n));  // Philox's integer work is not modelled
  const float scale = 1.f / (1.f - p);
  if (!samples.identity()) {
    launch({stream_grid(n), kStreamBlock, 0, stream}, dropout_placed_kernel, out, in, n, p, scale,
           seed, offset, samples);
    return;
  }
  const unsigned grid = stream_grid((n + 3) / 4);
  if (aligned16(out) && aligned16(in)) {
    launch({grid, kStreamBlock, 0, stream}, dropout_kernel<true>, out, in, n, p, scale, seed,
           offset);
  } else {
    launch({grid, kStreamBlock, 0, stream}, dropout_kernel<false>, out, in, n, p, scale, seed,
           offset);
  }
}

}  // namespace

void dropout_forward(float* y, const float* x, int64_t n, float p, uint64_t seed,
                     PhiloxOffset offset, Stream stream, const DropoutSamples& samples) {
  run_dropout("cuda::dropout_forward", "dropout_forward", y, x, n, p, seed, offset, stream,
              samples);
}

void dropout_backward(float* dx, const float* dy, int64_t n, float p, uint64_t seed,
                      PhiloxOffset offset, Stream stream, const DropoutSamples& samples) {
  run_dropout("cuda::dropout_backward", "dropout_backward", dx, dy, n, p, seed, offset, stream,
              samples);
}

}  // namespace kiln::cuda
