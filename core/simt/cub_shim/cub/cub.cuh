// cub/cub.cuh — Kiln's CUB shims for the SIMT emulator (emulated build only).
//
// g++ cannot compile CCCL's CUB (device built-ins, unguarded inline PTX), so core/simt/cub_shim is
// put first on the include path of emulated .cu files only (kiln_emulate_cu), and CCCL never is.
// Provided: cub::BlockReduce, cub::WarpReduce, cub::BlockScan with CUB's templates, TempStorage and
// the methods Kiln's kernels use; see each header for the deterministic order and the poison values.
#pragma once

#include "cub/block/block_reduce.cuh"
#include "cub/block/block_scan.cuh"
#include "cub/warp/warp_reduce.cuh"
