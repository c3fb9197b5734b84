// cub/block/block_scan.cuh — Kiln's shim of cub::BlockScan for the SIMT emulator (g++).
//
// Same template and TempStorage shape as CUB; the nvcc build uses the real CUB. Thread 0 scans the
// block's items sequentially in linear-thread order between two barriers (deterministic; float sums
// may differ from CUB's tree order in the last bits). Every thread gets its result, as in CUB; as in
// CUB, a __syncthreads() is needed before TempStorage is reused.
#pragma once

#include "cub/util_shim.cuh"

namespace cub {

enum BlockScanAlgorithm { BLOCK_SCAN_RAKING, BLOCK_SCAN_RAKING_MEMOIZE, BLOCK_SCAN_WARP_SCANS };

template <typename T, int BLOCK_DIM_X, BlockScanAlgorithm ALGORITHM = BLOCK_SCAN_RAKING,
          int BLOCK_DIM_Y = 1, int BLOCK_DIM_Z = 1, int LEGACY_PTX_ARCH = 0>
class BlockScan {
 public:
  static constexpr int BLOCK_THREADS = BLOCK_DIM_X * BLOCK_DIM_Y * BLOCK_DIM_Z;
  struct TempStorage {
    T inclusive[BLOCK_THREADS];
    T exclusive[BLOCK_THREADS];
  };

  explicit BlockScan(TempStorage& storage)
      : storage_(storage), tid_(kiln_shim::linear_tid(BLOCK_DIM_X, BLOCK_DIM_Y)) {}

  void InclusiveSum(T input, T& output) { InclusiveScan(input, output, kiln_shim::Plus{}); }
  void InclusiveSum(T input, T& output, T& block_aggregate) {
    InclusiveScan(input, output, kiln_shim::Plus{}, block_aggregate);
  }
  void ExclusiveSum(T input, T& output) {
    T aggregate;
    ExclusiveScan(input, output, T(0), kiln_shim::Plus{}, aggregate);
  }
  void ExclusiveSum(T input, T& output, T& block_aggregate) {
    ExclusiveScan(input, output, T(0), kiln_shim::Plus{}, block_aggregate);
  }

  template <typename ScanOp>
  void InclusiveScan(T input, T& output, ScanOp op) {
    T aggregate;
    InclusiveScan(input, output, op, aggregate);
  }
  template <typename ScanOp>
  void InclusiveScan(T input, T& output, ScanOp op, T& block_aggregate) {
    Scan(input, op, T(0), false);
    output = storage_.inclusive[tid_];
    block_aggregate = storage_.inclusive[BLOCK_THREADS - 1];
  }

  template <typename ScanOp>
  void ExclusiveScan(T input, T& output, T initial_value, ScanOp op) {
    T aggregate;
    ExclusiveScan(input, output, initial_value, op, aggregate);
  }
  template <typename ScanOp>
  void ExclusiveScan(T input, T& output, T initial_value, ScanOp op, T& block_aggregate) {
    Scan(input, op, initial_value, true);
    output = storage_.exclusive[tid_];
    block_aggregate = storage_.inclusive[BLOCK_THREADS - 1];
  }

 private:
  // inclusive[i] = x0 op ... op xi;  exclusive[i] = initial op x0 op ... op x(i-1).
  template <typename ScanOp>
  void Scan(T input, ScanOp op, T initial_value, bool exclusive) {
    storage_.inclusive[tid_] = input;
    __syncthreads();
    if (tid_ == 0) {
      T ex = initial_value;
      T in = storage_.inclusive[0];
      for (int i = 0; i < BLOCK_THREADS; ++i) {
        const T x = storage_.inclusive[i];
        if (i > 0) in = op(in, x);
        if (exclusive) {
          storage_.exclusive[i] = ex;
          ex = op(ex, x);
        }
        storage_.inclusive[i] = in;
      }
    }
    __syncthreads();
  }

  TempStorage& storage_;
  int tid_;
};

}  // namespace cub
