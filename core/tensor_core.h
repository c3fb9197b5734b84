// core/tensor_core.h — the tensor-core instructions of Kiln kernels (sm_80+) and their fragment
// layouts, the one place either is written down (docs/tensor-cores.md).
//
//   kiln::tc::mma_tf32_m16n8k8(d, a, b, c);   // D(16×8) = A(16×8)·B(8×8) + C, fp32 accumulators
//   kiln::tc::mma_bf16_m16n8k16(d, a, b, c);  // D(16×8) = A(16×16)·B(16×8) + C, fp32 accumulators
//   kiln::tc::ldmatrix<N>(r, row);            // N = 1, 2, 4 8×8 matrices of 16-bit elements
//   kiln::tc::ldmatrix_trans<N>(r, row);      //   ... each one transposed (16-bit elements only)
//   kiln::tc::cvt_tf32(x)                     // cvt.rna.tf32.f32 → the tf32's 32 bits
//   kiln::tc::cvt_bf16x2(lo, hi)              // cvt.rn.bf16x2.f32 → two bf16, lo in bits 0..15
//   kiln::tc::cvt_bf16(x)                     // cvt.rn.bf16.f32 → the bf16's 16 bits
//   kiln::tc::pack_fragment<S>(regs, value)   // A/B registers from element values (rounded)
// mma and ldmatrix are warp-collective: all 32 lanes of the warp execute the same call (the same
// source line), converged; d may be the same array as c (accumulate in place).
//
// Fragments (PTX ISA, "Matrix fragments for mma.m16n8k8 / mma.m16n8k16" and "ldmatrix"). Lane
// l = 4·g + t (g = l/4, the group; t = l%4, the thread in the group). Element i of a lane's
// fragment is, for tf32, register i; for bf16 (two per 32-bit register), register i/2, bits
// 16·(i%2)..16·(i%2)+15. MmaTf32 / MmaBf16 below map (lane, i) to the matrix coordinate of the
// element, {row, col}: A is M×K (row m, col k), B is K×N (row k, col n), C and D are M×N.
//   tf32 m16n8k8:  A (4 elements): m = g + 8·(i%2),        k = t + 4·(i/2)
//                  B (2):          k = t + 4·i,             n = g
//   bf16 m16n8k16: A (8):          m = g + 8·((i/2)%2),    k = 2t + i%2 + 8·(i/4)
//                  B (4):          k = 2t + i%2 + 8·(i/2), n = g
//   C, D (4, both shapes):         m = g + 8·(i/2),        n = 2t + i%2
// ldmatrix<N>: lane 8·j + r gives the address of row r (8 contiguous 16-bit elements, 16-byte
// aligned, in shared memory) of matrix j < N; the other lanes' addresses are ignored. Register j of
// every lane receives elements of matrix j: element h (h = 0 in bits 0..15, 1 in 16..31) is
//   ldmatrix:        row g,          column 2t + h
//   ldmatrix_trans:  row 2t + h,     column g
// (core/tensor_core_layout.h holds these maps, for host code too). Tested against CUTLASS's cute
// layouts (MMA_Traits of mma_traits_sm80.hpp, Copy_Traits of copy_traits_sm75.hpp) in
// tests/tensor_core.
//
// nvcc: inline PTX (mma.sync and the cvts need sm_80, ldmatrix sm_75; Kiln builds sm_80 and sm_90).
// SIMT emulator: the documented semantics, lane by lane:
//   - mma: every lane posts its A and B registers in one warp rendezvous (warp_gather in
//     core/simt/simt.h); each lane then assembles A and B from all lanes' registers through the
//     maps above and computes its own four elements of D: d[i] = c[i] + Σ_k A[m][k]·B[k][n],
//     summed in fp32 in the order k = 0, 1, ..., K−1. The products are exact in fp32 (11 × 11 and
//     8 × 8 significant bits), unless they underflow. tf32 operands lose their 13 low bits
//     (truncated: PTX does not define them and CUTLASS relies on the tensor cores not reading
//     them; kernels round with cvt_tf32 first). The GPU adds the products in its own order and
//     internal precision: compare with it using tolerances (docs/tensor-cores.md).
//   - ldmatrix: every lane posts its row address in one rendezvous and reads its elements from the
//     rows the other lanes named. A row address of a lane that is used must be 16-byte aligned and
//     inside the block's shared memory, else kiln::Error. The rendezvous orders no memory: the
//     stores ldmatrix reads must be ordered before it by __syncthreads/__syncwarp, as on a GPU.
//   - cvt: the roundings of core/rounding.h (bit for bit the instructions').
#pragma once

#include "core/device_code.h"

#include <cstdint>
#include <type_traits>

#include "core/rounding.h"
#include "core/tensor_core_layout.h"

#if defined(KILN_SIMT)
#include <cstring>
#include <source_location>

#include "core/error.h"
#endif

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#error \
    "core/tensor_core.h: mma.sync with tf32/bf16 operands needs sm_80 or newer (Kiln builds sm_80, sm_90)"
#endif

namespace kiln::tc {

#if defined(__CUDACC__)

__device__ __forceinline__ void mma_tf32_m16n8k8(float (&d)[4], const std::uint32_t (&a)[4],
                                                 const std::uint32_t (&b)[2], const float (&c)[4]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]),
        "f"(c[2]), "f"(c[3]));
#endif
}

__device__ __forceinline__ void mma_bf16_m16n8k16(float (&d)[4], const std::uint32_t (&a)[4],
                                                  const std::uint32_t (&b)[2],
                                                  const float (&c)[4]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]),
        "f"(c[2]), "f"(c[3]));
#endif
}

namespace detail {
template <int N, bool kTrans>
__device__ __forceinline__ void ldmatrix_ptx(std::uint32_t (&r)[N], const void* row) {
  static_assert(N == 1 || N == 2 || N == 4, "ldmatrix loads 1, 2 or 4 matrices");
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 750
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(row));
  if constexpr (N == 1 && !kTrans)
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n"
                 : "=r"(r[0])
                 : "r"(s)
                 : "memory");
  else if constexpr (N == 1)
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n"
                 : "=r"(r[0])
                 : "r"(s)
                 : "memory");
  else if constexpr (N == 2 && !kTrans)
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(s)
                 : "memory");
  else if constexpr (N == 2)
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(s)
                 : "memory");
  else if constexpr (!kTrans)
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s)
                 : "memory");
  else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s)
                 : "memory");
#endif
}
}  // namespace detail

template <int N>
__device__ __forceinline__ void ldmatrix(std::uint32_t (&r)[N], const void* row) {
  detail::ldmatrix_ptx<N, false>(r, row);
}
template <int N>
__device__ __forceinline__ void ldmatrix_trans(std::uint32_t (&r)[N], const void* row) {
  detail::ldmatrix_ptx<N, true>(r, row);
}

__device__ __forceinline__ std::uint32_t cvt_tf32(float x) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  std::uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
  return r;
#else
  return tf32_bits(x);
#endif
}

__device__ __forceinline__ std::uint32_t cvt_bf16x2(float lo, float hi) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  std::uint32_t r;
  // cvt.rn.bf16x2.f32 d, a, b puts a in the upper half, b in the lower.
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
#else
  return bf16x2_bits(lo, hi);
#endif
}

__device__ __forceinline__ std::uint16_t cvt_bf16(float x) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  unsigned short r;
  asm("cvt.rn.bf16.f32 %0, %1;\n" : "=h"(r) : "f"(x));
  return r;
#else
  return bf16_bits(x);
#endif
}

#elif defined(KILN_SIMT)

namespace detail {

inline int lane_id() {
  return static_cast<int>((threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)) %
                          32u);
}

// The value of element i of a lane's A or B registers.
inline float tf32_element(const std::uint32_t* regs, int i) {
  return bits_float(regs[i] & 0xFFFFE000u);  // the 13 low bits are not part of a tf32
}
inline float bf16_element(const std::uint32_t* regs, int i) {
  return bf16_to_float(static_cast<std::uint16_t>(regs[i / 2] >> (16 * (i % 2))));
}

struct MmaOperands {
  std::uint32_t a[4];
  std::uint32_t b[2];
};

// D = A·B + C for shape S, lane by lane (the semantics in the header comment).
template <class S, float (*kElement)(const std::uint32_t*, int)>
inline void mma_emulated(float (&d)[4], const std::uint32_t (&a)[4], const std::uint32_t (&b)[2],
                         const float (&c)[4], const std::source_location& at) {
  MmaOperands mine;
  std::memcpy(mine.a, a, sizeof mine.a);
  std::memcpy(mine.b, b, sizeof mine.b);
  const unsigned char* table = ::kiln::simt::detail::warp_gather(
      &mine, static_cast<int>(sizeof mine), at.file_name(), static_cast<int>(at.line()));
  float am[S::M][S::K], bm[S::K][S::N];  // A (M, K), B (K, N)
  for (int l = 0; l < 32; ++l) {
    MmaOperands o;
    std::memcpy(&o, table + l * ::kiln::simt::detail::kGatherBytes, sizeof o);
    for (int i = 0; i < S::kAElems; ++i) {
      const RowCol p = S::a(l, i);
      am[p.row][p.col] = kElement(o.a, i);
    }
    for (int i = 0; i < S::kBElems; ++i) {
      const RowCol p = S::b(l, i);
      bm[p.row][p.col] = kElement(o.b, i);
    }
  }
  const int lane = lane_id();
  float out[4];
  for (int i = 0; i < 4; ++i) {
    const RowCol p = S::c(lane, i);
    float s = c[i];
    for (int k = 0; k < S::K; ++k) s += am[p.row][k] * bm[k][p.col];
    out[i] = s;
  }
  std::memcpy(d, out, sizeof out);
}

template <int N, bool kTrans>
inline void ldmatrix_emulated(std::uint32_t (&r)[N], const void* row,
                              const std::source_location& at) {
  static_assert(N == 1 || N == 2 || N == 4, "ldmatrix loads 1, 2 or 4 matrices");
  const int lane = lane_id();
  if (lane < 8 * N)
    KILN_CHECK(reinterpret_cast<std::uintptr_t>(row) % 16 == 0 &&
                   ::kiln::simt::detail::is_shared_address(row, 16),
               "ldmatrix at ", at.file_name(), ":", at.line(), ": lane ", lane, "'s row address ",
               row,
               " is not a 16-byte aligned row of the block's shared memory (lane 8*j + r names row "
               "r of matrix j: pass the address of that row in a KILN_SHARED or "
               "KILN_DYNAMIC_SHARED array)");
  const unsigned char* table = ::kiln::simt::detail::warp_gather(
      &row, static_cast<int>(sizeof row), at.file_name(), static_cast<int>(at.line()));
  for (int j = 0; j < N; ++j) {
    std::uint32_t v = 0;
    for (int h = 0; h < 2; ++h) {
      const RowCol p = Ldmatrix::element(lane, h, kTrans);
      const void* src;
      std::memcpy(&src, table + Ldmatrix::row_lane(j, p.row) * ::kiln::simt::detail::kGatherBytes,
                  sizeof src);
      std::uint16_t e;
      std::memcpy(&e, static_cast<const unsigned char*>(src) + 2 * p.col, sizeof e);
      v |= static_cast<std::uint32_t>(e) << (16 * h);
    }
    r[j] = v;
  }
}

}  // namespace detail

inline void mma_tf32_m16n8k8(float (&d)[4], const std::uint32_t (&a)[4],
                             const std::uint32_t (&b)[2], const float (&c)[4],
                             const std::source_location at = std::source_location::current()) {
  detail::mma_emulated<MmaTf32, detail::tf32_element>(d, a, b, c, at);
}
inline void mma_bf16_m16n8k16(float (&d)[4], const std::uint32_t (&a)[4],
                              const std::uint32_t (&b)[2], const float (&c)[4],
                              const std::source_location at = std::source_location::current()) {
  detail::mma_emulated<MmaBf16, detail::bf16_element>(d, a, b, c, at);
}
template <int N>
inline void ldmatrix(std::uint32_t (&r)[N], const void* row,
                     const std::source_location at = std::source_location::current()) {
  detail::ldmatrix_emulated<N, false>(r, row, at);
}
template <int N>
inline void ldmatrix_trans(std::uint32_t (&r)[N], const void* row,
                           const std::source_location at = std::source_location::current()) {
  detail::ldmatrix_emulated<N, true>(r, row, at);
}
inline std::uint32_t cvt_tf32(float x) {
  return tf32_bits(x);
}
inline std::uint32_t cvt_bf16x2(float lo, float hi) {
  return bf16x2_bits(lo, hi);
}
inline std::uint16_t cvt_bf16(float x) {
  return bf16_bits(x);
}

#endif

// The registers of an A or B fragment of shape S (MmaTf32 or MmaBf16) from its element values,
// value(i) for element i, rounded as the tensor cores take them: tf32, register i =
// cvt_tf32(value(i)); bf16, register r = cvt_bf16x2(value(2r), value(2r + 1)).
template <class S, int kRegs, class Value>
__device__ __forceinline__ void pack_fragment(std::uint32_t (&regs)[kRegs], Value&& value) {
  static_assert(std::is_same_v<S, MmaTf32> || std::is_same_v<S, MmaBf16>, "an mma shape");
#pragma unroll
  for (int r = 0; r < kRegs; ++r) {
    if constexpr (std::is_same_v<S, MmaTf32>)
      regs[r] = cvt_tf32(value(r));
    else
      regs[r] = cvt_bf16x2(value(2 * r), value(2 * r + 1));
  }
}

}  // namespace kiln::tc
