// kernels/activation.cu — LeakyReLU forward and backward on the CUDA device.
//
// y = x > 0 ? x : slope·x;  dx = dy·(x > 0 ? 1 : slope). Memory-bound: a grid-stride loop moving
// float4 when every pointer is 16-byte aligned (scalar tail for n % 4), scalar otherwise. In-place
// use (y == x, or dx == dy) is allowed, so the pointers are not __restrict__: every element is read
// and then written by the same thread, which keeps in-place use race-free. dx is overwritten.
// Error bound: one rounding of a product, |err| <= 2^-24·|ref| (docs/kernels-elementwise.md).
#include "core/device_code.h"

#include <cstdint>

#include "core/error.h"
#include "core/launch.h"
#include "kernels/activation.h"

namespace kiln::cuda {
namespace {

__device__ __forceinline__ float leaky(float x, float slope) {
  return x > 0.f ? x : slope * x;
}
__device__ __forceinline__ float leaky_grad(float dy, float x, float slope) {
  return x > 0.f ? dy : slope * dy;
}

// kVec: y and x 16-byte aligned.
template <bool kVec>
__global__ void KILN_LAUNCH_BOUNDS(kStreamBlock)
    leaky_relu_forward_kernel(float* y, const float* x, int64_t n, float slope) {
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  if constexpr (kVec) {
    const float4* x4 = reinterpret_cast<const float4*>(x);
    float4* y4 = reinterpret_cast<float4*>(y);
    for (int64_t j = i; j < n / 4; j += stride) {
      const float4 v = x4[j];
      y4[j] =
          make_float4(leaky(v.x, slope), leaky(v.y, slope), leaky(v.z, slope), leaky(v.w, slope));
    }
    i += n / 4 * 4;
  }
  for (; i < n; i += stride) y[i] = leaky(x[i], slope);
}

// kVec: dx, dy and x 16-byte aligned.
template <bool kVec>
__global__ void KILN_LAUNCH_BOUNDS(kStreamBlock)
    leaky_relu_backward_kernel(float* dx, const float* dy, const float* x, int64_t n, float slope) {
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  if constexpr (kVec) {
    const float4* x4 = reinterpret_cast<const float4*>(x);
    const float4* dy4 = reinterpret_cast<const float4*>(dy);
    float4* dx4 = reinterpret_cast<float4*>(dx);
    for (int64_t j = i; j < n / 4; j += stride) {
      const float4 v = x4[j];
      const float4 g = dy4[j];
      dx4[j] = make_float4(leaky_grad(g.x, v.x, slope), leaky_grad(g.y, v.y, slope),
                           leaky_grad(g.z, v.z, slope), leaky_grad(g.w, v.w, slope));
    }
    i += n / 4 * 4;
  }
  for (; i < n; i += stride) dx[i] = leaky_grad(dy[i], x[i], slope);
}

}  // namespace

void leaky_relu_forward(float* y, const float* x, int64_t n, double slope, Stream stream) {
  KILN_CHECK(n >= 0, "cuda::leaky_relu_forward: negative size ", n);
  if (n == 0) return;
  KILN_CHECK(y != nullptr && x != nullptr, "cuda::leaky_relu_forward: null pointer");
  const float s = static_cast<float>(slope);
  cost::simt("leaky_relu_forward", n, cost::f32(2 * n));
  if (aligned16(y) && aligned16(x)) {
    launch({stream_grid(n / 4 + 1), kStreamBlock, 0, stream}, leaky_relu_forward_kernel<true>, y, x,
           n, s);
  } else {
    launch({stream_grid(n), kStreamBlock, 0, stream}, leaky_relu_forward_kernel<false>, y, x, n, s);
  }
}

void leaky_relu_backward(float* dx, const float* dy, const float* x, int64_t n, double slope,
                         Stream stream) {
  KILN_CHECK(n >= 0, "cuda::leaky_relu_backward: negative size ", n);
  if (n == 0) return;
  KILN_CHECK(dx != nullptr && dy != nullptr && x != nullptr,
             "cuda::leaky_relu_backward: null pointer");
  const float s = static_cast<float>(slope);
  cost::simt("leaky_relu_backward", n, cost::f32(3 * n));
  if (aligned16(dx) && aligned16(dy) && aligned16(x)) {
    launch({stream_grid(n / 4 + 1), kStreamBlock, 0, stream}, leaky_relu_backward_kernel<true>, dx,
           dy, x, n, s);
  } else {
    launch({stream_grid(n), kStreamBlock, 0, stream}, leaky_relu_backward_kernel<false>, dx, dy, x,
           n, s);
  }
}

}  // namespace kiln::cuda
