// tests/simt/simt_only_kernels.cu — kernels that exercise emulator-only behaviour (an exception
// thrown inside a kernel, kernel arguments converted and copied by value). Compiled only under the
// SIMT emulator: device code on a GPU cannot throw.
#include "core/device_code.h"
#include "core/cuda_check.h"
#include "core/error.h"
#include "core/launch.h"
#include "tests/simt/simt_only_kernels.h"

namespace kiln::simt_test {

namespace {

__global__ void throwing_kernel(int bad_thread) {
  KILN_SHARED(int, s, [128]);
  const int t = static_cast<int>(threadIdx.x);
  s[t] = t;
  __syncthreads();
  KILN_CHECK(t != bad_thread || blockIdx.x != 1, "thread ", t, " of block 1 refuses");
  __syncthreads();
}

__global__ void args_kernel(float* out, float scale, ByValue v) {
  v.values[0] += static_cast<int>(threadIdx.x);  // a thread's own copy: others must not see it
  out[threadIdx.x] = scale * static_cast<float>(v.values[0] + v.values[1]);
}

__global__ void empty_kernel() {}

__global__ void KILN_LAUNCH_BOUNDS(128) bounded_128_kernel() {}

__global__ void static_plus_dynamic_kernel() {
  KILN_SHARED(float, fixed, [50 * 1024]);  // 200 KiB
  KILN_DYNAMIC_SHARED(float, extra);
  fixed[threadIdx.x] = extra != nullptr ? 1.f : 0.f;
}

template <int kThreads>
__global__ void KILN_LAUNCH_BOUNDS(kThreads, 2) bounded_template_kernel() {}

__global__ void staged_sum_kernel(float* __restrict__ out, const float* __restrict__ x, int n) {
  KILN_DYNAMIC_SHARED(float, staged);  // [n]
  for (int i = static_cast<int>(threadIdx.x); i < n; i += static_cast<int>(blockDim.x))
    staged[i] = x[i];
  __syncthreads();
  if (threadIdx.x != 0) return;
  float sum = 0.f;
  for (int i = 0; i < n; ++i) sum += staged[i];
  *out = sum;
}

}  // namespace

void empty(dim3 grid, dim3 block, size_t shared_bytes) {
  kiln::launch({grid, block, shared_bytes, nullptr}, empty_kernel);
}

void bounded_128(dim3 block) {
  kiln::launch({dim3(1), block, 0, nullptr}, bounded_128_kernel);
}

void bounded_template_256(dim3 block) {
  kiln::launch({dim3(1), block, 0, nullptr}, bounded_template_kernel<256>);
}

void static_plus_dynamic(size_t dynamic_bytes) {
  KILN_CUDA_CHECK(cudaFuncSetAttribute(static_plus_dynamic_kernel,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, 227 * 1024));
  kiln::launch({dim3(1), dim3(32), dynamic_bytes, nullptr}, static_plus_dynamic_kernel);
}

const void* empty_kernel_address() {
  return reinterpret_cast<const void*>(empty_kernel);
}

void staged_sum(float* out, const float* x, int n, bool opt_in) {
  KILN_CHECK(n >= 1 && n <= 16384, "staged_sum: n = ", n, " is outside 1..16384");
  const size_t bytes = sizeof(float) * static_cast<size_t>(n);
  if (opt_in)
    KILN_CUDA_CHECK(cudaFuncSetAttribute(
        staged_sum_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
  kiln::launch({dim3(1), dim3(256), bytes, nullptr}, staged_sum_kernel, out, x, n);
}

void reset_staged_sum_attribute() {
  KILN_CUDA_CHECK(cudaFuncSetAttribute(staged_sum_kernel,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, 48 * 1024));
}

void throwing(int bad_thread) {
  kiln::launch({dim3(3), dim3(128), 0, nullptr}, throwing_kernel, bad_thread);
}

void args(float* out, int scale, const ByValue& v) {
  kiln::launch({dim3(1), dim3(8), 0, nullptr}, args_kernel, out, scale, v);
}

}  // namespace kiln::simt_test
