// bench/simt/bench_simt_kernels.cu — kernels whose cost is the emulator's own overhead: an almost
// empty kernel (thread launches), a loop of barriers, a loop of shuffles, a block reduction.
#include "core/device_code.h"
#include "core/launch.h"

namespace kiln::simt_bench {

namespace {

__global__ void touch_kernel(float* out) {
  if (threadIdx.x == 0) out[blockIdx.x] = 1.0f;
}

__global__ void barrier_kernel(float* out, int rounds) {
  float acc = 0.0f;
  for (int r = 0; r < rounds; ++r) {
    acc += 1.0f;
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = acc;
}

__global__ void shuffle_kernel(float* out, int rounds) {
  float v = static_cast<float>(threadIdx.x);
  for (int r = 0; r < rounds; ++r) v += __shfl_xor_sync(0xffffffffu, v, r & 31);
  if (threadIdx.x == 0) out[blockIdx.x] = v;
}

__global__ void reduce_kernel(float* out, const float* __restrict__ x, int n) {
  KILN_SHARED(float, partial, [256]);
  const int t = static_cast<int>(threadIdx.x);
  float acc = 0.0f;
  for (int i = static_cast<int>(blockIdx.x) * 256 + t; i < n;
       i += static_cast<int>(gridDim.x) * 256)
    acc += x[i];
  partial[t] = acc;
  __syncthreads();
  for (int stride = 128; stride >= 32; stride /= 2) {
    if (t < stride) partial[t] += partial[t + stride];
    __syncthreads();
  }
  if (t < 32) {
    float v = partial[t];
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
    if (t == 0) out[blockIdx.x] = v;
  }
}

}  // namespace

void touch(float* out, int blocks, int threads) {
  kiln::launch({dim3(blocks), dim3(threads), 0, nullptr}, touch_kernel, out);
}
void barriers(float* out, int blocks, int threads, int rounds) {
  kiln::launch({dim3(blocks), dim3(threads), 0, nullptr}, barrier_kernel, out, rounds);
}
void shuffles(float* out, int blocks, int threads, int rounds) {
  kiln::launch({dim3(blocks), dim3(threads), 0, nullptr}, shuffle_kernel, out, rounds);
}
void reduce(float* out, const float* x, int n, int blocks) {
  kiln::launch({dim3(blocks), dim3(256), 0, nullptr}, reduce_kernel, out, x, n);
}

}  // namespace kiln::simt_bench
