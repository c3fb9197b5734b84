// tests/simt/simt_stream_kernels.cu — small kernels launched on a given stream (see the header).
#include "core/device_code.h"
#include "core/launch.h"
#include "tests/simt/simt_stream_kernels.h"

namespace kiln::simt_test {

namespace {

__global__ void fill_kernel(float* out, int n, float value) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) out[i] = value;
}

__global__ void affine_kernel(float* out, const float* in, int n, float a, float b) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) out[i] = a * in[i] + b;
}

__global__ void tickets_kernel(unsigned* out, unsigned* counter) {
  out[threadIdx.x] = atomicAdd(counter, 1u);
}

}  // namespace

void fill_on(cudaStream_t stream, float* out, int n, float value) {
  kiln::launch({dim3((n + 127) / 128), dim3(128), 0, stream}, fill_kernel, out, n, value);
}

void affine_on(cudaStream_t stream, float* out, const float* in, int n, float a, float b) {
  kiln::launch({dim3((n + 127) / 128), dim3(128), 0, stream}, affine_kernel, out, in, n, a, b);
}

void tickets_on(cudaStream_t stream, unsigned* out, unsigned* counter, int n) {
  kiln::launch({dim3(1), dim3(n), 0, stream}, tickets_kernel, out, counter);
}

}  // namespace kiln::simt_test
