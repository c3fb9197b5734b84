// cub/warp/warp_reduce.cuh — Kiln's shim of cub::WarpReduce for the SIMT emulator (g++).
//
// Same template and TempStorage shape as CUB; the nvcc build uses the real CUB. Reduces each logical
// warp of LOGICAL_WARP_THREADS lanes (a power of two <= 32) with a fixed shuffle tree (no shared
// memory, as CUB does for power-of-two warps), using the lanes of the block that exist as the mask.
// The aggregate is valid in the first lane of each logical warp only: other lanes get an all-ones
// poison (NaN for floats), as CUB leaves their value undefined.
#pragma once

#include "cub/util_shim.cuh"

namespace cub {

template <typename T, int LOGICAL_WARP_THREADS = 32, int LEGACY_PTX_ARCH = 0>
class WarpReduce {
  static_assert(LOGICAL_WARP_THREADS >= 1 && LOGICAL_WARP_THREADS <= 32 &&
                    (LOGICAL_WARP_THREADS & (LOGICAL_WARP_THREADS - 1)) == 0,
                "the shim supports power-of-two logical warps of at most 32 lanes");

 public:
  struct TempStorage {
    unsigned char unused;
  };

  explicit WarpReduce(TempStorage&) {}

  T Sum(T input) { return Reduce(input, kiln_shim::Plus{}, LOGICAL_WARP_THREADS); }
  T Sum(T input, int valid_items) { return Reduce(input, kiln_shim::Plus{}, valid_items); }
  template <typename ReductionOp>
  T Reduce(T input, ReductionOp op) {
    return Reduce(input, op, LOGICAL_WARP_THREADS);
  }

  // Reduces the inputs of the first valid_items lanes of each logical warp.
  template <typename ReductionOp>
  T Reduce(T input, ReductionOp op, int valid_items) {
    const int tid =
        kiln_shim::linear_tid(static_cast<int>(blockDim.x), static_cast<int>(blockDim.y));
    const int nthreads = static_cast<int>(blockDim.x * blockDim.y * blockDim.z);
    const int warp_base = tid / 32 * 32;
    const int lanes = nthreads - warp_base < 32 ? nthreads - warp_base : 32;
    const unsigned mask = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1u;
    const int logical_lane = tid % LOGICAL_WARP_THREADS;
    T acc = input;
    for (int offset = LOGICAL_WARP_THREADS / 2; offset > 0; offset /= 2) {
      const T other = __shfl_down_sync(mask, acc, offset, LOGICAL_WARP_THREADS);
      if (logical_lane + offset < valid_items) acc = op(acc, other);
    }
    return logical_lane == 0 ? acc : kiln_shim::poison<T>();
  }

 private:
};

}  // namespace cub
