// tests/simt/simt_test_kernels.h — launchers of the kernels written to test the SIMT emulator.
//
// The kernels (tests/simt/*.cu) are ordinary CUDA C++: the same files compile with nvcc
// (-arch=sm_90, zero warnings) and, in the tests, with g++ under the emulator. All pointers are
// device pointers (cudaMalloc); every launcher is synchronous under the emulator.
#pragma once

#include <cstdint>

namespace kiln::simt_test {

// ---- correct kernels ----
// out[b] = sum of x[i] over the i that block b's grid-stride loop visits; shared-memory tree down to
// one warp, then a __shfl_down_sync tail. block = 256 threads.
void block_sum(float* out, const float* x, int n, int blocks);
// out = in^T for a rows x cols matrix (row-major), 32x33 padded tile, block 32x8.
void transpose(float* out, const float* in, int rows, int cols);
// Each block reverses its `block`-element chunk of x through dynamic shared memory.
void reverse_chunks(float* out, const float* x, int n, int block);
// Atomics: see the kernel for the per-slot operations; `counters` has 16 slots, `hist` 8 bins.
void atomics(int* counters, unsigned* ucounters, unsigned long long* ullcounters, float* fsum,
             int* hist, const int* values, int n);
// Every shuffle variant: out[(variant * 6 + width_index) * 32 + lane] for widths 32,16,8,4,2,1;
// variants: 0 idx(src = args[lane]), 1 up(delta), 2 down(delta), 3 xor(lane mask); value = 100+lane.
void shuffles(int* out, const int* args, int delta, int xor_mask);
// 64-bit shuffle of doubles: out[lane] = __shfl_sync(full, 0.5 + lane, 31 - lane).
void shuffle_double(double* out);
// Votes: per warp w, out[w*8 + ...] = ballot, any, all of (lane % k == 0), and
// __syncthreads_count/_and/_or of (tid < threshold) in out[nwarps*8 + 0..2].
void votes(unsigned* out, int threads, int k, int threshold);
// __reduce_*_sync: out[lane*4 + 0..3] = add, min, max (signed), xor over a full warp of values[lane].
void warp_reduce_intrinsics(int* out, const int* values);
// out[linear global thread id] = packed (blockIdx, threadIdx) for a 3-D grid of 3-D blocks.
void indexing(std::uint32_t* out, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
              unsigned bz);
// A 1024-thread block with many barriers: out[t] = sum over rounds of neighbour values.
void barrier_rounds(float* out, int rounds);
// Reads KILN_SHARED memory nothing wrote: out[t] = tile[t] (expected NaN under the emulator).
void read_unwritten_shared(float* out);

// ---- planted bugs ----
// The tree reduction of block_sum with the __syncthreads inside the loop left out.
void racy_block_sum(float* out, const float* x, int n, int blocks);
// Threads with threadIdx.x >= active return before a __syncthreads.
void early_return(float* out, int active);
// Even and odd warps wait at different __syncthreads lines.
void divergent_barriers(float* out);
// Lanes 0-15 call __shfl_sync with the full mask; lanes 16-31 never do.
void partial_warp_shuffle(float* out);

// ---- CUB (real CUB under nvcc, Kiln's shims under the emulator) ----
// block 256: sum[b] = BlockReduce::Sum of x over block b; incl/excl = BlockScan sums of x;
// warp_sums[b*8 + w] = WarpReduce::Sum of warp w.
void cub_block_ops(float* sum, float* incl, float* excl, float* warp_sums, const float* x,
                   int blocks);

// ---- cp.async (core/async_copy.h) ----
// out = x, staged through shared memory in tiles of 256 floats with cp_async_16, double-buffered
// (wait<1>); `skip_wait` leaves out the final cp_async_wait<0>() (a planted bug).
void async_copy_tiles(float* out, const float* x, int tiles, bool skip_wait);
// Same with 4-byte copies, one tile, no pipelining.
void async_copy4(float* out, const float* x, int n);

}  // namespace kiln::simt_test
