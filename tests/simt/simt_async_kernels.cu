// tests/simt/simt_async_kernels.cu — cp.async through core/async_copy.h: inline PTX under nvcc,
// queued copies completed at the covering wait under the SIMT emulator. Contracts:
// simt_test_kernels.h.
#include "core/async_copy.h"
#include "core/device_code.h"
#include "core/launch.h"
#include "tests/simt/simt_test_kernels.h"

namespace kiln::simt_test {

namespace {

constexpr int kTileFloats = 256;
constexpr int kThreads = kTileFloats / 4;  // one 16-byte copy per thread per tile

// Double buffering: the copy of tile k+1 is in flight while tile k is written out.
__global__ void async_copy_tiles_kernel(float* __restrict__ out, const float* __restrict__ x,
                                        int tiles, bool skip_wait) {
  KILN_SHARED(float, stage, [2][kTileFloats]);  // (buffer, float in tile)
  const int t = static_cast<int>(threadIdx.x);
  kiln::cp_async_16(&stage[0][t * 4], &x[t * 4]);
  kiln::cp_async_commit();
  for (int k = 0; k < tiles; ++k) {
    const int buf = k % 2;
    if (k + 1 < tiles) {
      kiln::cp_async_16(&stage[1 - buf][t * 4], &x[(k + 1) * kTileFloats + t * 4]);
      kiln::cp_async_commit();
      kiln::cp_async_wait<1>();  // tile k has landed; tile k+1 may still be in flight
    } else if (!skip_wait) {
      kiln::cp_async_wait<0>();
    }
    __syncthreads();
    // Read another thread's part of the tile: only correct after the wait and the barrier.
    for (int j = 0; j < 4; ++j) {
      const int e = ((t + 1) % kThreads) * 4 + j;
      out[k * kTileFloats + e] = stage[buf][e];
    }
    __syncthreads();  // buffer `buf` is refilled in the next iteration
  }
}

__global__ void async_copy4_kernel(float* __restrict__ out, const float* __restrict__ x, int n) {
  KILN_DYNAMIC_SHARED(float, staged);  // [n]
  const int t = static_cast<int>(threadIdx.x);
  for (int i = t; i < n; i += static_cast<int>(blockDim.x)) kiln::cp_async_4(&staged[i], &x[i]);
  kiln::cp_async_commit();
  kiln::cp_async_wait<0>();
  __syncthreads();
  for (int i = t; i < n; i += static_cast<int>(blockDim.x)) out[i] = staged[n - 1 - i];
}

}  // namespace

void async_copy_tiles(float* out, const float* x, int tiles, bool skip_wait) {
  kiln::launch({dim3(1), dim3(kThreads), 0, nullptr}, async_copy_tiles_kernel, out, x, tiles,
               skip_wait);
}

void async_copy4(float* out, const float* x, int n) {
  kiln::launch({dim3(1), dim3(96), n * sizeof(float), nullptr}, async_copy4_kernel, out, x, n);
}

}  // namespace kiln::simt_test
