// tests/simt/simt_tensor_core_kernels.h — launchers of the kernels that test the tensor-core
// wrappers of core/tensor_core.h (tests/simt/simt_tensor_core_kernels.cu). All pointers are device
// pointers; matrices are row-major; each warp of a launch computes its own problem.
#pragma once

#include <cstdint>

namespace kiln::simt_test {

// d[w] (16×8) = Σ_t A[w]_t·B[w]_t + c[w] for `warps` warps of one block, t < ktiles:
// a [warps][16][8·ktiles] and b [warps][8·ktiles][8] fp32, rounded in the kernel by cvt_tf32.
void mma_tf32(float* d, const float* a, const float* b, const float* c, int warps, int ktiles);
// The same with mma_bf16_m16n8k16: a [warps][16][16·ktiles], b [warps][16·ktiles][8] fp32,
// rounded in the kernel by cvt_bf16x2.
void mma_bf16(float* d, const float* a, const float* b, const float* c, int warps, int ktiles);
// One warp: d (16×8) = A·B + c with A (16×16) and B (16×8) bf16 (bits) staged in shared memory and
// loaded by ldmatrix. a_trans: `a` holds Aᵀ [16 k][16 m], loaded by ldmatrix_trans<4>; else A
// [16 m][16 k] by ldmatrix<4>. b_mode: 0 Bᵀ [8 n][16 k] by ldmatrix<2>; 1 the same by two
// ldmatrix<1>; 2 B [16 k][8 n] by ldmatrix_trans<2>; 3 the same by two ldmatrix_trans<1>.
// Lanes whose addresses ldmatrix ignores pass a null pointer.
void mma_bf16_ldmatrix(float* d, const std::uint16_t* a, const std::uint16_t* b, const float* c,
                       bool a_trans, int b_mode);
// out[i] = cvt_tf32(x[i]); out16[i] = cvt_bf16(x[i]); out2[i] = cvt_bf16x2(x[i], y[i]).
void conversions(std::uint32_t* out, std::uint16_t* out16, std::uint32_t* out2, const float* x,
                 const float* y, int n);

// ---- misuse the emulator must report ----
// ldmatrix<1> whose row addresses point into global memory.
void ldmatrix_from_global(std::uint32_t* out, const std::uint16_t* rows);
// Only lanes 0..15 of the warp execute the mma.
void mma_half_warp(float* out);
// Even lanes execute one mma call, odd lanes another (a different source line).
void mma_divergent(float* out);

}  // namespace kiln::simt_test
