// tests/simt/simt_tensor_core_kernels.cu — the tensor-core wrappers of core/tensor_core.h in small
// kernels: operands placed into fragments by the layout maps (or loaded by ldmatrix), mma, results
// stored by the C map. The same file compiles with nvcc (sm_80+). Contracts:
// simt_tensor_core_kernels.h.
#include "core/device_code.h"

#include <type_traits>
#include "core/launch.h"
#include "core/tensor_core.h"
#include "tests/simt/simt_tensor_core_kernels.h"

namespace kiln::simt_test {

namespace {

using kiln::tc::MmaBf16;
using kiln::tc::MmaTf32;
using kiln::tc::RowCol;

__device__ int lane_of_thread() {
  return static_cast<int>(threadIdx.x % 32);
}

// acc = C (16×8, row-major) by the C map; store_c writes it back the same way.
__device__ void load_c(float (&acc)[4], const float* c, int lane) {
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const RowCol p = MmaTf32::c(lane, i);
    acc[i] = c[p.row * 8 + p.col];
  }
}
__device__ void store_c(float* d, const float (&acc)[4], int lane) {
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const RowCol p = MmaTf32::c(lane, i);
    d[p.row * 8 + p.col] = acc[i];
  }
}

// One warp per problem: warp w reads a + w·16·K, b + w·K·8, c and d + w·128; K = S::K · ktiles.
template <class S>
__global__ void mma_kernel(float* __restrict__ d, const float* __restrict__ a,
                           const float* __restrict__ b, const float* __restrict__ c, int ktiles) {
  const int lane = lane_of_thread(), w = static_cast<int>(threadIdx.x / 32);
  const int K = S::K * ktiles;
  a += w * 16 * K;  // (16, K)
  b += w * K * 8;   // (K, 8)
  float acc[4];
  load_c(acc, c + w * 128, lane);
  for (int t = 0; t < ktiles; ++t) {
    const int k0 = S::K * t;
    std::uint32_t ar[S::kARegs], br[S::kBRegs];
    kiln::tc::pack_fragment<S>(ar, [&](int i) {
      const RowCol p = S::a(lane, i);
      return a[p.row * K + k0 + p.col];
    });
    kiln::tc::pack_fragment<S>(br, [&](int i) {
      const RowCol p = S::b(lane, i);
      return b[(k0 + p.row) * 8 + p.col];
    });
    if constexpr (std::is_same_v<S, MmaTf32>)
      kiln::tc::mma_tf32_m16n8k8(acc, ar, br, acc);
    else
      kiln::tc::mma_bf16_m16n8k16(acc, ar, br, acc);
  }
  store_c(d + w * 128, acc, lane);
}

struct alignas(16) BfTiles {
  std::uint16_t a[16 * 16];  // A (16 m, 16 k) or Aᵀ (16 k, 16 m)
  std::uint16_t b[16 * 8];   // Bᵀ (8 n, 16 k) or B (16 k, 8 n)
};

__global__ void mma_bf16_ldmatrix_kernel(float* __restrict__ d, const std::uint16_t* __restrict__ a,
                                         const std::uint16_t* __restrict__ b,
                                         const float* __restrict__ c, bool a_trans, int b_mode) {
  KILN_SHARED(BfTiles, s, );
  const int lane = lane_of_thread();
  for (int e = lane; e < 16 * 16; e += 32) s.a[e] = a[e];
  for (int e = lane; e < 16 * 8; e += 32) s.b[e] = b[e];
  __syncthreads();
  // Register j of A is matrix j: m block j % 2, k block j / 2; lane 8j + r names its row r.
  const int j = lane / 8, r = lane % 8;
  std::uint32_t ar[4], br[2];
  if (!a_trans)
    kiln::tc::ldmatrix<4>(ar, &s.a[(8 * (j % 2) + r) * 16 + 8 * (j / 2)]);
  else
    kiln::tc::ldmatrix_trans<4>(ar, &s.a[(8 * (j / 2) + r) * 16 + 8 * (j % 2)]);
  // Register j of B is k block j.
  const std::uint16_t* no_row = nullptr;  // ignored lanes
  if (b_mode == 0) {
    kiln::tc::ldmatrix<2>(br, lane < 16 ? &s.b[r * 16 + 8 * j] : no_row);
  } else if (b_mode == 1) {
    std::uint32_t lo[1], hi[1];
    kiln::tc::ldmatrix<1>(lo, lane < 8 ? &s.b[r * 16] : no_row);
    kiln::tc::ldmatrix<1>(hi, lane < 8 ? &s.b[r * 16 + 8] : no_row);
    br[0] = lo[0];
    br[1] = hi[0];
  } else if (b_mode == 2) {
    kiln::tc::ldmatrix_trans<2>(br, lane < 16 ? &s.b[lane * 8] : no_row);
  } else {
    std::uint32_t lo[1], hi[1];
    kiln::tc::ldmatrix_trans<1>(lo, lane < 8 ? &s.b[lane * 8] : no_row);
    kiln::tc::ldmatrix_trans<1>(hi, lane < 8 ? &s.b[(8 + lane) * 8] : no_row);
    br[0] = lo[0];
    br[1] = hi[0];
  }
  float acc[4];
  load_c(acc, c, lane);
  kiln::tc::mma_bf16_m16n8k16(acc, ar, br, acc);
  store_c(d, acc, lane);
}

__global__ void conversions_kernel(std::uint32_t* __restrict__ out,
                                   std::uint16_t* __restrict__ out16,
                                   std::uint32_t* __restrict__ out2, const float* __restrict__ x,
                                   const float* __restrict__ y, int n) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i >= n) return;
  out[i] = kiln::tc::cvt_tf32(x[i]);
  out16[i] = kiln::tc::cvt_bf16(x[i]);
  out2[i] = kiln::tc::cvt_bf16x2(x[i], y[i]);
}

__global__ void ldmatrix_from_global_kernel(std::uint32_t* __restrict__ out,
                                            const std::uint16_t* __restrict__ rows) {
  const int lane = lane_of_thread();
  std::uint32_t v[1];
  kiln::tc::ldmatrix<1>(v, rows + 8 * (lane % 8));
  out[lane] = v[0];
}

__global__ void mma_half_warp_kernel(float* __restrict__ out) {
  const int lane = lane_of_thread();
  float acc[4] = {0.f, 0.f, 0.f, 0.f};
  const std::uint32_t ar[4] = {0, 0, 0, 0}, br[2] = {0, 0};
  if (lane < 16) kiln::tc::mma_tf32_m16n8k8(acc, ar, br, acc);
  store_c(out, acc, lane);
}

__global__ void mma_divergent_kernel(float* __restrict__ out) {
  const int lane = lane_of_thread();
  float acc[4] = {0.f, 0.f, 0.f, 0.f};
  const std::uint32_t ar[4] = {0, 0, 0, 0}, br[2] = {0, 0};
  if (lane % 2 == 0)
    kiln::tc::mma_tf32_m16n8k8(acc, ar, br, acc);
  else
    kiln::tc::mma_tf32_m16n8k8(acc, ar, br, acc);
  store_c(out, acc, lane);
}

}  // namespace

void mma_tf32(float* d, const float* a, const float* b, const float* c, int warps, int ktiles) {
  kiln::launch({dim3(1), dim3(32 * warps), 0, nullptr}, mma_kernel<MmaTf32>, d, a, b, c, ktiles);
}

void mma_bf16(float* d, const float* a, const float* b, const float* c, int warps, int ktiles) {
  kiln::launch({dim3(1), dim3(32 * warps), 0, nullptr}, mma_kernel<MmaBf16>, d, a, b, c, ktiles);
}

void mma_bf16_ldmatrix(float* d, const std::uint16_t* a, const std::uint16_t* b, const float* c,
                       bool a_trans, int b_mode) {
  kiln::launch({dim3(1), dim3(32), 0, nullptr}, mma_bf16_ldmatrix_kernel, d, a, b, c, a_trans,
               b_mode);
}

void conversions(std::uint32_t* out, std::uint16_t* out16, std::uint32_t* out2, const float* x,
                 const float* y, int n) {
  kiln::launch({dim3((n + 255) / 256), dim3(256), 0, nullptr}, conversions_kernel, out, out16, out2,
               x, y, n);
}

void ldmatrix_from_global(std::uint32_t* out, const std::uint16_t* rows) {
  kiln::launch({dim3(1), dim3(32), 0, nullptr}, ldmatrix_from_global_kernel, out, rows);
}

void mma_half_warp(float* out) {
  kiln::launch({dim3(1), dim3(32), 0, nullptr}, mma_half_warp_kernel, out);
}

void mma_divergent(float* out) {
  kiln::launch({dim3(1), dim3(32), 0, nullptr}, mma_divergent_kernel, out);
}

}  // namespace kiln::simt_test
