// kernels/elementwise.cu — fill, copy, scale, bias add and the global L2 norm on the CUDA device.
//
// All of these are memory-bound: each kernel is a grid-stride loop that moves float4 (16-byte
// loads and stores, LDG.E.128/STG.E.128) when every pointer it touches is 16-byte aligned, with a
// scalar loop for the n % 4 tail; otherwise it falls back to a scalar loop. bias_add walks the
// [M][C] array with channels fastest (coalesced) and each thread keeps one fixed channel group, so
// it loads its bias once. l2_norm is deterministic: per-block partial sums of squares (fixed grid
// for a given n, fixed per-thread order, CUB block reduction) go to a workspace, and one block
// reduces them in a fixed order — no atomics, the same bits on every run.
// Error bounds and resource usage: docs/kernels-elementwise.md.
#include "core/device_code.h"

#include <cub/block/block_reduce.cuh>

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "core/cuda_check.h"
#include "core/error.h"
#include "core/launch.h"
#include "core/memory.h"
#include "kernels/elementwise.h"

namespace kiln::cuda {
namespace {

// The L2 norm's first stage: at most this many partial sums.
constexpr int kNormMaxBlocks = 1024;

__device__ __forceinline__ int64_t global_thread() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_threads() {
  return static_cast<int64_t>(gridDim.x) * blockDim.x;
}

// ---- kernels ------------------------------------------------------------------------------------

// x[i] = value. kVec: x is 16-byte aligned.
template <bool kVec>
__global__ void KILN_LAUNCH_BOUNDS(kStreamBlock)
    fill_kernel(float* __restrict__ x, int64_t n, float value) {
  int64_t i = global_thread();
  const int64_t stride = grid_threads();
  if constexpr (kVec) {
    const float4 v = make_float4(value, value, value, value);
    float4* x4 = reinterpret_cast<float4*>(x);
    for (int64_t j = i; j < n / 4; j += stride) x4[j] = v;
    i += n / 4 * 4;
  }
  for (; i < n; i += stride) x[i] = value;
}

// dst[i] = src[i]; the ranges do not overlap. kVec: both 16-byte aligned.
template <bool kVec>
__global__ void KILN_LAUNCH_BOUNDS(kStreamBlock)
    copy_kernel(float* __restrict__ dst, const float* __restrict__ src, int64_t n) {
  int64_t i = global_thread();
  const int64_t stride = grid_threads();
  if constexpr (kVec) {
    float4* d4 = reinterpret_cast<float4*>(dst);
    const float4* s4 = reinterpret_cast<const float4*>(src);
    for (int64_t j = i; j < n / 4; j += stride) d4[j] = s4[j];
    i += n / 4 * 4;
  }
  for (; i < n; i += stride) dst[i] = src[i];
}

// x[i] *= alpha. kVec: x 16-byte aligned.
template <bool kVec>
__global__ void KILN_LAUNCH_BOUNDS(kStreamBlock)
    scale_kernel(float* __restrict__ x, int64_t n, float alpha) {
  int64_t i = global_thread();
  const int64_t stride = grid_threads();
  if constexpr (kVec) {
    float4* x4 = reinterpret_cast<float4*>(x);
    for (int64_t j = i; j < n / 4; j += stride) {
      float4 v = x4[j];
      v.x *= alpha;
      v.y *= alpha;
      v.z *= alpha;
      v.w *= alpha;
      x4[j] = v;
    }
    i += n / 4 * 4;
  }
  for (; i < n; i += stride) x[i] *= alpha;
}

// y[m][c] += b[c]. Block (tx, ty) = (channel group, row); kV channels per thread (kV = 4: y and b
// 16-byte aligned and C % 4 == 0). Consecutive threads touch consecutive addresses (the block
// covers blockDim.y whole rows of the tile), and each thread's channel group never changes, so its
// bias is loaded once.
template <int kV>
__global__ void KILN_LAUNCH_BOUNDS(kStreamBlock)
    bias_add_kernel(float* __restrict__ y, const float* __restrict__ b, int64_t m, int c) {
  using VecT = std::conditional_t<kV == 4, float4, float>;
  const int cv = c / kV;                                  // channel groups per row
  const int col = blockIdx.x * blockDim.x + threadIdx.x;  // this thread's channel group
  if (col >= cv) return;
  const VecT bias = reinterpret_cast<const VecT*>(b)[col];
  VecT* row = reinterpret_cast<VecT*>(y) + col;
  const int64_t row_stride = static_cast<int64_t>(gridDim.y) * blockDim.y;
  for (int64_t r = static_cast<int64_t>(blockIdx.y) * blockDim.y + threadIdx.y; r < m;
       r += row_stride) {
    VecT* p = row + r * cv;
    VecT v = *p;
    if constexpr (kV == 4) {
      v.x += bias.x;
      v.y += bias.y;
      v.z += bias.z;
      v.w += bias.w;
    } else {
      v += bias;
    }
    *p = v;
  }
}

// Stage 1 of the L2 norm: partials[blockIdx.x] = Σ x² over this block's grid-stride share.
template <bool kVec>
__global__ void KILN_LAUNCH_BOUNDS(kStreamBlock)
    l2_norm_partial_kernel(float* __restrict__ partials, const float* __restrict__ x, int64_t n) {
  using BlockReduce = cub::BlockReduce<float, kStreamBlock>;
  KILN_SHARED(typename BlockReduce::TempStorage, temp, [1]);
  int64_t i = global_thread();
  const int64_t stride = grid_threads();
  // Four independent accumulators: more loads in flight, and shorter addition chains.
  float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
  if constexpr (kVec) {
    const float4* x4 = reinterpret_cast<const float4*>(x);
    for (int64_t j = i; j < n / 4; j += stride) {
      const float4 v = x4[j];
      s0 += v.x * v.x;
      s1 += v.y * v.y;
      s2 += v.z * v.z;
      s3 += v.w * v.w;
    }
    i += n / 4 * 4;
  }
  for (; i < n; i += stride) s0 += x[i] * x[i];
  const float total = BlockReduce(temp[0]).Sum((s0 + s1) + (s2 + s3));
  if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

// Stage 2: out[0] = sqrt(Σ partials), summed by one block in a fixed order.
__global__ void KILN_LAUNCH_BOUNDS(kStreamBlock)
    l2_norm_finalize_kernel(float* __restrict__ out, const float* __restrict__ partials,
                            int count) {
  using BlockReduce = cub::BlockReduce<float, kStreamBlock>;
  KILN_SHARED(typename BlockReduce::TempStorage, temp, [1]);
  float s = 0.f;
  for (int i = threadIdx.x; i < count; i += kStreamBlock) s += partials[i];
  const float total = BlockReduce(temp[0]).Sum(s);
  if (threadIdx.x == 0) out[0] = sqrtf(total);
}

// Clipping by a norm already on the device (see cuda::clip_by_norm). Every thread reads the norm;
// thread 0 writes the flag.
__global__ void KILN_LAUNCH_BOUNDS(kStreamBlock)
    clip_by_norm_kernel(float* __restrict__ x, int64_t n, const float* __restrict__ norm,
                        double max_norm, int32_t* __restrict__ not_finite) {
  const double value = static_cast<double>(norm[0]);
  const bool finite = value - value == 0.0;  // false for NaN and ±Inf (no fast-math here)
  if (global_thread() == 0) not_finite[0] = finite ? 0 : 1;
  if (!finite) return;
  const double coef = max_norm / (value + 1e-6);
  if (!(coef < 1.0)) return;
  const float alpha = static_cast<float>(coef);
  const int64_t stride = grid_threads();
  for (int64_t i = global_thread(); i < n; i += stride) x[i] *= alpha;
}

}  // namespace

// ---- launchers ----------------------------------------------------------------------------------

void fill(float* x, int64_t n, float value, Stream stream) {
  KILN_CHECK(n >= 0, "cuda::fill: negative size ", n);
  if (n == 0) return;
  KILN_CHECK(x != nullptr, "cuda::fill: null pointer");
  // +0.0f is all zero bits: a memset (zero_grad every step), no kernel launch.
  if (value == 0.f && !std::signbit(value)) {
    KILN_CUDA_CHECK(cudaMemsetAsync(x, 0, static_cast<size_t>(n) * sizeof(float), stream));
    return;
  }
  cost::simt("fill", 0, cost::f32(n));
  if (aligned16(x)) {
    launch({stream_grid(n / 4 + 1), kStreamBlock, 0, stream}, fill_kernel<true>, x, n, value);
  } else {
    launch({stream_grid(n), kStreamBlock, 0, stream}, fill_kernel<false>, x, n, value);
  }
}

void copy(float* dst, const float* src, int64_t n, Stream stream) {
  KILN_CHECK(n >= 0, "cuda::copy: negative size ", n);
  if (n == 0 || dst == src) return;
  KILN_CHECK(dst != nullptr && src != nullptr, "cuda::copy: null pointer");
  KILN_CHECK(dst + n <= src || src + n <= dst, "cuda::copy: overlapping ranges");
  cost::simt("copy", 0, cost::f32(2 * n));
  if (aligned16(dst) && aligned16(src)) {
    launch({stream_grid(n / 4 + 1), kStreamBlock, 0, stream}, copy_kernel<true>, dst, src, n);
  } else {
    launch({stream_grid(n), kStreamBlock, 0, stream}, copy_kernel<false>, dst, src, n);
  }
}

void scale(float* x, int64_t n, float alpha, Stream stream) {
  KILN_CHECK(n >= 0, "cuda::scale: negative size ", n);
  if (n == 0) return;
  KILN_CHECK(x != nullptr, "cuda::scale: null pointer");
  cost::simt("scale", n, cost::f32(2 * n));
  if (aligned16(x)) {
    launch({stream_grid(n / 4 + 1), kStreamBlock, 0, stream}, scale_kernel<true>, x, n, alpha);
  } else {
    launch({stream_grid(n), kStreamBlock, 0, stream}, scale_kernel<false>, x, n, alpha);
  }
}

void bias_add(float* y, const float* b, int64_t m, int c, Stream stream) {
  KILN_CHECK(m >= 0 && c >= 1, "cuda::bias_add: bad shape m=", m, " c=", c);
  if (m == 0) return;
  KILN_CHECK(y != nullptr && b != nullptr, "cuda::bias_add: null pointer");
  const int v = (c % 4 == 0 && aligned16(y) && aligned16(b)) ? 4 : 1;
  const int cv = c / v;
  // Block: tx over channel groups, ty over rows, kStreamBlock threads in all.
  const int tx = cv < kStreamBlock ? cv : kStreamBlock;
  const int ty = kStreamBlock / tx;
  const unsigned gx = static_cast<unsigned>((cv + tx - 1) / tx);
  // About four rows per thread, capped so the grid stays a few waves.
  int64_t gy = (m + 4 * ty - 1) / (4 * ty);
  const int64_t gy_cap = (kStreamMaxBlocks + gx - 1) / gx;
  if (gy > gy_cap) gy = gy_cap;
  if (gy > 65535) gy = 65535;
  const LaunchConfig cfg{dim3(gx, static_cast<unsigned>(gy)), dim3(tx, ty), 0, stream};
  cost::simt("bias_add", m * c, cost::f32(2 * m * c + c));
  if (v == 4) {
    launch(cfg, bias_add_kernel<4>, y, b, m, c);
  } else {
    launch(cfg, bias_add_kernel<1>, y, b, m, c);
  }
}

namespace {
// The grid depends on n only, so the summation order (and the result) is the same on every run.
unsigned l2_norm_blocks(int64_t n) {
  int64_t blocks = (n + kStreamBlock * 16 - 1) / (kStreamBlock * 16);  // >= 16 elements per thread
  if (blocks < 1) blocks = 1;
  if (blocks > kNormMaxBlocks) blocks = kNormMaxBlocks;
  return static_cast<unsigned>(blocks);
}
}  // namespace

int64_t l2_norm_workspace_floats(int64_t n) {
  return l2_norm_blocks(n);
}

void l2_norm(float* out, const float* x, int64_t n, float* workspace, Stream stream) {
  KILN_CHECK(n >= 0, "cuda::l2_norm: negative size ", n);
  KILN_CHECK(out != nullptr && workspace != nullptr && (n == 0 || x != nullptr),
             "cuda::l2_norm: null pointer");
  const unsigned grid = l2_norm_blocks(n);
  float* partials = workspace;  // [grid]
  KILN_CHECK(out + 1 <= partials || partials + grid <= out,
             "cuda::l2_norm: the workspace overlaps the result");
  cost::simt("l2_norm_partial", 2 * n, cost::f32(n + grid));
  if (aligned16(x)) {
    launch({grid, kStreamBlock, 0, stream}, l2_norm_partial_kernel<true>, partials, x, n);
  } else {
    launch({grid, kStreamBlock, 0, stream}, l2_norm_partial_kernel<false>, partials, x, n);
  }
  cost::simt("l2_norm_finalize", 2 * int64_t{grid}, cost::f32(grid + 1));
  launch({1, kStreamBlock, 0, stream}, l2_norm_finalize_kernel, out,
         static_cast<const float*>(partials), static_cast<int>(grid));
}

void clip_by_norm(float* x, int64_t n, const float* norm, double max_norm, int32_t* not_finite,
                  Stream stream) {
  KILN_CHECK(n >= 0, "cuda::clip_by_norm: negative size ", n);
  KILN_CHECK(norm != nullptr && not_finite != nullptr && (n == 0 || x != nullptr),
             "cuda::clip_by_norm: null pointer");
  cost::simt("clip_by_norm", n, cost::f32(2 * n + 1) + 4);
  launch({stream_grid(n), kStreamBlock, 0, stream}, clip_by_norm_kernel, x, n, norm, max_norm,
         not_finite);
}

}  // namespace kiln::cuda
