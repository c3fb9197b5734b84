// kernels/batchnorm_tiles.cuh — the channel-tile machinery of kernels/batchnorm.cu, shared with
// the kernels that fuse batchnorm with its neighbours (kernels/fused_block.cu). Internal: included
// by .cu files only, never installed.
//
// Layout of every kernel over [M][C] ("channel tiles"): a block is (tx, ty) = (channel group,
// row), tx < TX = min(C/kV, 256), ty < TY = 256/TX, each thread holding kV consecutive channels
// (kV = 4 — float4 — when C % 4 == 0 and the pointers are 16-byte aligned). A block covers TY
// whole rows of its channel tile and walks rows r = blockIdx.y·TY + ty, stepping by gridDim.y·TY.
// The grid depends only on (M, C), kV and the pass kind, so two kernels launched with the same
// make_tiles() arguments visit the rows of each channel in the same order and add their partial
// sums in the same tree: a fused kernel that feeds the same values gets the same bits.
#pragma once

#include <cstdint>
#include <type_traits>

#include "core/error.h"
#include "core/launch.h"
#include "core/memory.h"
#include "kernels/batchnorm.h"

namespace kiln::cuda::bn_tiles {

constexpr int kBlock = 256;
// Partial passes: at least this many rows per thread, at most this many blocks (about one wave of
// 256-thread blocks on an H200), so the partial workspace and the finalise stay small.
constexpr int kPartialRowsPerThread = 8;
constexpr int64_t kPartialMaxBlocks = 1024;
// Elementwise passes: a few rows per thread, a few waves.
constexpr int kMapRowsPerThread = 4;
constexpr int64_t kMapMaxBlocks = 2048;
// Finalise kernels: 32 channels x 8 threads summing the partials of each channel.
constexpr int kFinX = 32, kFinY = 8;

template <int kV>
using FloatV = std::conditional_t<kV == 4, float4, float>;

// Per-thread arrays of kV channel values, loaded from and stored to FloatV.
template <int kV>
struct Lanes {
  float v[kV];
  __device__ __forceinline__ static Lanes load(const float* p) {
    Lanes l;
    if constexpr (kV == 4) {
      const float4 f = *reinterpret_cast<const float4*>(p);
      l.v[0] = f.x;
      l.v[1] = f.y;
      l.v[2] = f.z;
      l.v[3] = f.w;
    } else {
      l.v[0] = *p;
    }
    return l;
  }
  __device__ __forceinline__ void store(float* p) const {
    if constexpr (kV == 4) {
      *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
    } else {
      *p = v[0];
    }
  }
};

// This thread's first channel and first row; `active` is false for the padding threads of the
// last channel tile (they still take part in barriers).
struct TileThread {
  int channel;
  int64_t row;
  int64_t row_stride;
  bool active;
};

template <int kV>
__device__ __forceinline__ TileThread tile_thread(int c) {
  const int col = blockIdx.x * blockDim.x + threadIdx.x;
  return TileThread{col * kV, static_cast<int64_t>(blockIdx.y) * blockDim.y + threadIdx.y,
                    static_cast<int64_t>(gridDim.y) * blockDim.y, col * kV < c};
}

// Sums s[ty][tx][k] over ty into s[0][tx][k] with a fixed tree (the same order in every run and
// every thread interleaving). s holds blockDim.y·blockDim.x·kV floats; every thread must call it.
template <int kV>
__device__ __forceinline__ void column_tree_sum(float* s) {
  const int ty = threadIdx.y, tx = threadIdx.x;
  const int ny = blockDim.y, nx = blockDim.x;
  int span = 1;
  while (span < ny) span *= 2;
  for (span /= 2; span >= 1; span /= 2) {
    __syncthreads();
    if (ty < span && ty + span < ny) {
#pragma unroll
      for (int k = 0; k < kV; ++k)
        s[(ty * nx + tx) * kV + k] += s[((ty + span) * nx + tx) * kV + k];
    }
  }
  __syncthreads();
}

// The end of a stage-1 reduction: each thread's two per-channel sums (a, b) are added over the
// block's rows (threadIdx.y) in the fixed tree of column_tree_sum, and row 0 stores them to
// partial[blockIdx.y][0][c] and partial[blockIdx.y][1][c]. s_a, s_b: blockDim.y·blockDim.x·kV
// floats of shared memory each; every thread must call it.
template <int kV>
__device__ __forceinline__ void store_two_partials(const Lanes<kV>& a, const Lanes<kV>& b,
                                                   float* s_a, float* s_b, float* partial, int c,
                                                   const TileThread& t) {
  const int slot = (threadIdx.y * blockDim.x + threadIdx.x) * kV;
#pragma unroll
  for (int k = 0; k < kV; ++k) {
    s_a[slot + k] = a.v[k];
    s_b[slot + k] = b.v[k];
  }
  column_tree_sum<kV>(s_a);
  column_tree_sum<kV>(s_b);
  if (threadIdx.y == 0 && t.active) {
    float* out = partial + static_cast<int64_t>(blockIdx.y) * 2 * c + t.channel;
    Lanes<kV> ra, rb;
#pragma unroll
    for (int k = 0; k < kV; ++k) {
      ra.v[k] = s_a[threadIdx.x * kV + k];
      rb.v[k] = s_b[threadIdx.x * kV + k];
    }
    ra.store(out);
    rb.store(out + c);
  }
}

// Channel-tile geometry for [M][C] with kV channels per thread.
struct Tiles {
  int v;
  dim3 block, grid;
};

inline Tiles make_tiles(int64_t m, int c, bool vec, int rows_per_thread, int64_t max_blocks) {
  const int v = vec ? 4 : 1;
  const int cv = c / v;
  const int tx = cv < kBlock ? cv : kBlock;
  const int ty = kBlock / tx;
  const int64_t gx = (cv + tx - 1) / tx;
  int64_t gy = (m + static_cast<int64_t>(ty) * rows_per_thread - 1) /
               (static_cast<int64_t>(ty) * rows_per_thread);
  int64_t cap = max_blocks / gx;
  if (cap < 1) cap = 1;
  if (gy > cap) gy = cap;
  if (gy > 65535) gy = 65535;
  if (gy < 1) gy = 1;
  return Tiles{v, dim3(tx, ty), dim3(static_cast<unsigned>(gx), static_cast<unsigned>(gy))};
}

inline void check_shape(const char* op, const BatchNormShape& s) {
  KILN_CHECK(s.m >= 1 && s.c >= 1, op, ": bad shape m=", s.m, " c=", s.c);
  KILN_CHECK(static_cast<int64_t>(s.c) <= 65535LL * kFinX, op, ": too many channels (", s.c, ")");
}

// The op's one workspace request (core/memory.h): the partials [gy][2][C], then two per-channel
// vectors [2][C].
inline float* tiles_workspace(const Tiles& t, int c, Stream stream) {
  const size_t floats = (static_cast<size_t>(t.grid.y) * 2 + 2) * static_cast<size_t>(c);
  return static_cast<float*>(kiln::workspace(floats * sizeof(float), stream));
}

inline dim3 finalize_grid(int c) {
  return dim3(static_cast<unsigned>((c + kFinX - 1) / kFinX));
}

// The backward finalise of kernels/batchnorm.cu (one launch): from the partials [slices][2][C] of
// Σ dy and Σ dy·(x − mean), dgamma += Σ dy·x̂, dbeta += Σ dy, coef[0][c] = Σdy/M and
// coef[1][c] = Σ(dy·x̂)/M, summed in a fixed order in double.
void launch_backward_finalize(float* dgamma, float* dbeta, float* coef, const float* partial,
                              const float* save_invstd, int slices, const BatchNormShape& s,
                              Stream stream);

}  // namespace kiln::cuda::bn_tiles
