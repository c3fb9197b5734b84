// core/workspace_counters.h — per-stream zeroed counters for kernels that finish a reduction in
// their own launch (kernels/gemm_tile.cuh: split-K GEMMs and split column sums; the batchnorm
// reductions of kernels/batchnorm.cu and kernels/fused_block.cu).
//
// The last block of a group to arrive (counted with an integer atomicAdd on the group's counter)
// sums the group's partials in a fixed order. Every such kernel leaves the counters it used at zero
// again (the last block resets its counter), so the area is zero-filled only when it is
// (re)allocated, the step needs no memset, and a captured graph finds the counters zero on every
// replay. Kernels on one stream run in order, so successive requests on a stream may return the
// same counters; work on another stream must not use them. Grown like kiln::workspace
// (core/memory.h): synchronising the stream, so the first step sizes it and later steps allocate
// nothing; released with the stream's workspace (release_workspace, reset_workspace).
#pragma once

#include <cstdint>

#include "core/stream.h"

namespace kiln {

// At least `count` 32-bit counters, all zero, 256-byte aligned. Needs a CUDA device.
int* workspace_counters(int64_t count, Stream stream);

}  // namespace kiln
