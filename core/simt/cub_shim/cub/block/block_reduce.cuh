// cub/block/block_reduce.cuh — Kiln's shim of cub::BlockReduce for the SIMT emulator (g++).
//
// Same template and TempStorage shape as CUB; the nvcc build uses the real CUB. The reduction order
// is fixed (thread 0 folds items in linear-thread order), so results are deterministic but may differ
// from CUB's tree order in the last bits. As in CUB the aggregate is valid in thread 0 only: other
// threads get an all-ones poison (NaN for floats) so code that uses it elsewhere shows. As in CUB, a
// __syncthreads() is needed before TempStorage is reused.
#pragma once

#include "cub/util_shim.cuh"

namespace cub {

enum BlockReduceAlgorithm {
  BLOCK_REDUCE_RAKING_COMMUTATIVE_ONLY,
  BLOCK_REDUCE_RAKING,
  BLOCK_REDUCE_WARP_REDUCTIONS,
};

template <typename T, int BLOCK_DIM_X,
          BlockReduceAlgorithm ALGORITHM = BLOCK_REDUCE_WARP_REDUCTIONS, int BLOCK_DIM_Y = 1,
          int BLOCK_DIM_Z = 1, int LEGACY_PTX_ARCH = 0>
class BlockReduce {
 public:
  static constexpr int BLOCK_THREADS = BLOCK_DIM_X * BLOCK_DIM_Y * BLOCK_DIM_Z;
  struct TempStorage {
    T items[BLOCK_THREADS];
  };

  explicit BlockReduce(TempStorage& storage)
      : storage_(storage), tid_(kiln_shim::linear_tid(BLOCK_DIM_X, BLOCK_DIM_Y)) {}

  T Sum(T input) { return Reduce(input, kiln_shim::Plus{}); }
  T Sum(T input, int num_valid) { return Reduce(input, kiln_shim::Plus{}, num_valid); }
  template <int ITEMS_PER_THREAD>
  T Sum(T (&inputs)[ITEMS_PER_THREAD]) {
    return Reduce(inputs, kiln_shim::Plus{});
  }

  template <typename ReductionOp>
  T Reduce(T input, ReductionOp op) {
    return Reduce(input, op, BLOCK_THREADS);
  }

  template <int ITEMS_PER_THREAD, typename ReductionOp>
  T Reduce(T (&inputs)[ITEMS_PER_THREAD], ReductionOp op) {
    T partial = inputs[0];
    for (int i = 1; i < ITEMS_PER_THREAD; ++i) partial = op(partial, inputs[i]);
    return Reduce(partial, op, BLOCK_THREADS);
  }

  // Reduces the inputs of threads [0, num_valid).
  template <typename ReductionOp>
  T Reduce(T input, ReductionOp op, int num_valid) {
    storage_.items[tid_] = input;
    __syncthreads();
    if (tid_ != 0) return kiln_shim::poison<T>();
    T acc = storage_.items[0];
    for (int i = 1; i < num_valid && i < BLOCK_THREADS; ++i) acc = op(acc, storage_.items[i]);
    return acc;
  }

 private:
  TempStorage& storage_;
  int tid_;
};

}  // namespace cub
