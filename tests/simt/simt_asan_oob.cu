// tests/simt/simt_asan_oob.cu — planted out-of-bounds writes, caught by AddressSanitizer in the
// sanitizer build (KILN_SANITIZE=ON): one past a KILN_SHARED array (the emulator poisons the gaps
// between shared variables) and one past a cudaMalloc'd buffer (exact-sized allocations).
#include "core/device_code.h"
#include "core/launch.h"

namespace kiln::simt_test {

namespace {

__global__ void shared_oob_kernel(float* out) {
  KILN_SHARED(float, tile, [32]);
  const int t = static_cast<int>(threadIdx.x);
  float* row = tile;  // through a pointer: UBSan's bounds check cannot see it, ASan must
  row[t + 1] = 1.0f;  // planted: thread 31 writes tile[32]
  __syncthreads();
  out[t] = tile[t];
}

__global__ void global_oob_kernel(float* out, int n) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  out[i] = 1.0f;  // planted: no `if (i >= n) return;` guard
  (void)n;
}

}  // namespace

void shared_oob(float* out) {
  kiln::launch({dim3(1), dim3(32), 0, nullptr}, shared_oob_kernel, out);
}

void global_oob(float* out, int n) {
  kiln::launch({dim3((n + 63) / 64), dim3(64), 0, nullptr}, global_oob_kernel, out, n);
}

}  // namespace kiln::simt_test
