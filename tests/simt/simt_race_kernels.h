// tests/simt/simt_race_kernels.h — host entry points of the planted races (simt_race_kernels.cu).
#pragma once

#include <cstdint>
#include <vector>

namespace kiln::simt_test::race {

// Per-block sums of a shared-memory tree reduction, with or without its barriers between levels.
std::vector<float> block_sums(bool with_barriers, int blocks);
std::vector<float> block_sums_reference(int blocks);

// y = 2x over n elements: overlap 0 correct; 1 neighbouring blocks overlap by one element; 2 four
// blocks all write elements [0, 64) (the reference is then zero beyond them).
std::vector<float> doubled(int overlap, int n);
std::vector<float> doubled_reference(int overlap, int n);

// out[lane] = x[lane - 1] passed through shared memory within groups of `group` lanes (32 or 16),
// with or without the __syncwarp (full mask, or each half's mask) between writing and reading.
std::vector<float> neighbours(bool with_syncwarp, int group);
std::vector<float> neighbours_reference(int group);

// A last-block-done sum over blocks * 64 inputs, with or without the writer's __threadfence.
float last_block_sum(bool with_fence, int blocks);
float last_block_sum_reference(int blocks);

// An ldmatrix_trans of the shared-memory rows a warp's lanes have just stored, with or without the
// __syncwarp between the stores and the load.
std::vector<std::uint32_t> ldmatrix_unsynced(bool with_syncwarp);
std::vector<std::uint32_t> ldmatrix_unsynced_reference();

}  // namespace kiln::simt_test::race
