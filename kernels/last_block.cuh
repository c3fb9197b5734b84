// kernels/last_block.cuh — the "last block to arrive" step of the reductions that finish inside
// their own launch (split-K GEMMs and split column sums, kernels/gemm_tile.cuh and linear.cu;
// batchnorm's statistics and gradient sums, kernels/batchnorm_tiles.cuh; the statistics in a
// convolution's epilogue, kernels/conv_batch_stats.cuh). Internal: included by .cu files only.
//
// Each block of a group writes its partial result, then calls arrive_last on the group's counter:
// __threadfence() publishes the block's writes device-wide, one thread counts the block with an
// integer atomicAdd, and the block that finds it was the last (count = expected − 1) resets the
// counter to zero for the next launch and fences again, after which every other block's partial is
// visible to it (read them with __ldcg, past the incoherent L1). The last block then combines the
// partials in a fixed order — never the arrival order — so the result is deterministic. Counters
// come from kiln::workspace_counters (core/workspace_counters.h): zero, and left zero.
#pragma once

#include "core/device_code.h"

namespace kiln::cuda {

__device__ __forceinline__ int flat_thread() {
  return static_cast<int>(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z));
}
__device__ __forceinline__ int block_threads() {
  return static_cast<int>(blockDim.x * blockDim.y * blockDim.z);
}

// True, for the whole block, when this block is the `expected`-th and last to arrive at *counter.
// Every thread of the block must call it.
__device__ __forceinline__ bool arrive_last(int* counter, int expected) {
  KILN_SHARED(int, s_last, [1]);
  __threadfence();
  __syncthreads();
  if (flat_thread() == 0) {
    const bool last = atomicAdd(counter, 1) == expected - 1;
    if (last) atomicExch(counter, 0);
    s_last[0] = last ? 1 : 0;
  }
  __syncthreads();
  const bool last = s_last[0] != 0;
  __syncthreads();  // every thread has read the flag before a later call writes it again
  if (last) __threadfence();
  return last;
}

}  // namespace kiln::cuda
