// tests/tensor_core/layout_kernels.h — kernels that drive the tensor-core wrappers of
// core/tensor_core.h with one-hot inputs, so that the test can see where each input element lands
// (tests/tensor_core/layout_kernels.cu). Pointers are device pointers.
#pragma once

#include <cstdint>

namespace kiln::tc_test {

// The inputs of one mma run: per operand, the lane and fragment element set to 1 (all others 0),
// or kAll (every element 1) or kNone (every element 0).
struct OneHot {
  static constexpr int kAll = -1, kNone = -2;
  int a_lane, a_elem, b_lane, b_elem, c_lane, c_elem;
};

// For each run r < runs, one warp executes one mma (bf16: m16n8k16, else tf32 m16n8k8) with the
// registers specs[r] describes; d[(r·32 + lane)·4 + i] = element i of the lane's D.
void mma_one_hot(bool bf16, float* d, const OneHot* specs, int runs);
// For each element e of `matrices` stacked 8×8 matrices of 16-bit elements in shared memory
// (row-major, matrix j's row r is row 8j + r), run e sets that element to kMarker and the others to
// 0, and one warp executes ldmatrix<matrices> (trans: ldmatrix_trans), each lane naming row
// Ldmatrix::row_lane(j, r) when it is lane 8j + r < 8·matrices (null otherwise);
// out[(e·32 + lane)·4 + j] = the lane's register j (j < matrices).
inline constexpr std::uint16_t kMarker = 0xABCD;
void ldmatrix_one_hot(std::uint32_t* out, int matrices, bool trans);

}  // namespace kiln::tc_test
