// tests/simt/simt_cub_kernels.cu — CUB's block/warp primitives in a kernel: real CUB under nvcc,
// Kiln's shims (core/simt/cub_shim) under the SIMT emulator. Contracts: simt_test_kernels.h.
#include "core/device_code.h"
#include "core/launch.h"
#include "tests/simt/simt_test_kernels.h"

#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <cub/warp/warp_reduce.cuh>

namespace kiln::simt_test {

namespace {

constexpr int kThreads = 256;

__global__ void cub_block_ops_kernel(float* __restrict__ sum, float* __restrict__ incl,
                                     float* __restrict__ excl, float* __restrict__ warp_sums,
                                     const float* __restrict__ x) {
  using Reduce = cub::BlockReduce<float, kThreads>;
  using Scan = cub::BlockScan<float, kThreads>;
  using WarpReduce = cub::WarpReduce<float>;
  KILN_SHARED(typename Reduce::TempStorage, reduce_storage, );
  KILN_SHARED(typename Scan::TempStorage, scan_storage, );
  KILN_SHARED(typename WarpReduce::TempStorage, warp_storage, [kThreads / 32]);
  const int t = static_cast<int>(threadIdx.x);
  const int i = static_cast<int>(blockIdx.x) * kThreads + t;
  const float v = x[i];

  const float total = Reduce(reduce_storage).Sum(v);
  if (t == 0) sum[blockIdx.x] = total;

  float inclusive = 0.0f, exclusive = 0.0f;
  Scan(scan_storage).InclusiveSum(v, inclusive);
  __syncthreads();  // the scan's TempStorage is reused below
  Scan(scan_storage).ExclusiveSum(v, exclusive);
  incl[i] = inclusive;
  excl[i] = exclusive;

  const float warp_total = WarpReduce(warp_storage[t / 32]).Sum(v);
  if (t % 32 == 0) warp_sums[blockIdx.x * (kThreads / 32) + t / 32] = warp_total;
}

}  // namespace

void cub_block_ops(float* sum, float* incl, float* excl, float* warp_sums, const float* x,
                   int blocks) {
  kiln::launch({dim3(blocks), dim3(kThreads), 0, nullptr}, cub_block_ops_kernel, sum, incl, excl,
               warp_sums, x);
}

}  // namespace kiln::simt_test
