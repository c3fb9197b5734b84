// tests/simt/simt_only_kernels.cu — kernels that exercise emulator-only behaviour (an exception
// thrown inside a kernel, kernel arguments converted and copied by value). Compiled only under the
// SIMT emulator: device code on a GPU cannot throw.
#include "core/device_code.h"
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

}  // namespace

void throwing(int bad_thread) {
  kiln::launch({dim3(3), dim3(128), 0, nullptr}, throwing_kernel, bad_thread);
}

void args(float* out, int scale, const ByValue& v) {
  kiln::launch({dim3(1), dim3(8), 0, nullptr}, args_kernel, out, scale, v);
}

}  // namespace kiln::simt_test
