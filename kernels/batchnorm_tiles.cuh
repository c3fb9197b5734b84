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
#include "core/workspace_counters.h"
#include "kernels/batchnorm.h"
#include "kernels/last_block.cuh"

namespace kiln::cuda::bn_tiles {

constexpr int kBlock = 256;
// Partial passes: at least this many rows per thread, at most this many blocks (about one wave of
// 256-thread blocks on an H200), so the partial workspace and the finalise stay small.
constexpr int kPartialRowsPerThread = 8;
constexpr int64_t kPartialMaxBlocks = 1024;
// Elementwise passes: a few rows per thread, a few waves.
constexpr int kMapRowsPerThread = 4;
constexpr int64_t kMapMaxBlocks = 2048;
// Finalising: per chunk of 32 channels, 8 lanes summing the partials of each channel.
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

// The end of a two-sum reduction, in the partial kernel's own launch: after store_two_partials,
// the last block of channel group blockIdx.x to arrive (kernels/last_block.cuh; counters one per
// channel group) adds, for each channel of the group, the gridDim.y partials [slices][2][C] in a
// fixed order in double — lane j = 0..7 sums the slices s ≡ j (mod 8) in order, then a tree over
// the lanes (span 4, 2, 1) — and calls f(ch, Σ0, Σ1) once per channel. Every thread must call it.
template <int kV, class F>
__device__ __forceinline__ void finish_two_partials(const float* partial, int* counters, int c,
                                                    F&& f) {
  if (!arrive_last(counters + blockIdx.x, static_cast<int>(gridDim.y))) return;
  KILN_SHARED(double, s0, [kFinY][kFinX]);
  KILN_SHARED(double, s1, [kFinY][kFinX]);
  const int slices = static_cast<int>(gridDim.y);
  const int tid = flat_thread(), nt = block_threads();
  const int c_begin = static_cast<int>(blockIdx.x * blockDim.x) * kV;
  const int c_end = c_begin + static_cast<int>(blockDim.x) * kV < c
                        ? c_begin + static_cast<int>(blockDim.x) * kV
                        : c;
  for (int ch0 = c_begin; ch0 < c_end; ch0 += kFinX) {
    for (int v = tid; v < kFinX * kFinY; v += nt) {
      const int fx = v % kFinX, fy = v / kFinX, ch = ch0 + fx;
      double a = 0.0, b = 0.0;
      if (ch < c_end) {
        for (int sl = fy; sl < slices; sl += kFinY) {
          a += __ldcg(partial + static_cast<int64_t>(sl) * 2 * c + ch);
          b += __ldcg(partial + static_cast<int64_t>(sl) * 2 * c + c + ch);
        }
      }
      s0[fy][fx] = a;
      s1[fy][fx] = b;
    }
    for (int span = kFinY / 2; span >= 1; span /= 2) {
      __syncthreads();
      for (int v = tid; v < span * kFinX; v += nt) {
        const int fx = v % kFinX, fy = v / kFinX;
        s0[fy][fx] += s0[fy + span][fx];
        s1[fy][fx] += s1[fy + span][fx];
      }
    }
    __syncthreads();
    for (int v = tid; v < kFinX && ch0 + v < c_end; v += nt) f(ch0 + v, s0[0][v], s1[0][v]);
    __syncthreads();  // the next chunk overwrites s0 and s1
  }
}

// The counters finish_two_partials needs for a grid of channel tiles: one per channel group.
inline int* tiles_counters(const Tiles& t, Stream stream) {
  return kiln::workspace_counters(t.grid.x, stream);
}

// The statistics finalise of one channel from its batch mean and biased variance (PyTorch's
// convention): save_mean, save_invstd = 1/√(var + eps), and the running statistics with the
// unbiased variance. Shared by batchnorm_batch_stats and the convolution epilogue's statistics
// (kernels/conv_batch_stats.cuh).
__device__ __forceinline__ void stats_finalise(float* save_mean, float* save_invstd,
                                               float* running_mean, float* running_var, int64_t m,
                                               int ch, double mean, double var, double eps,
                                               double momentum) {
  if (var < 0.0) var = 0.0;
  const double md = static_cast<double>(m);
  save_mean[ch] = static_cast<float>(mean);
  save_invstd[ch] = static_cast<float>(1.0 / sqrt(var + eps));
  const double unbiased = m > 1 ? var * md / (md - 1.0) : var;
  running_mean[ch] = static_cast<float>((1.0 - momentum) * running_mean[ch] + momentum * mean);
  running_var[ch] = static_cast<float>((1.0 - momentum) * running_var[ch] + momentum * unbiased);
}

// The backward finalise of one channel, from Σ dy and Σ dy·(x − mean): dgamma += Σ dy·x̂,
// dbeta += Σ dy, coef[0][c] = Σdy/M and coef[1][c] = Σ(dy·x̂)/M for the dx pass (kernels/batchnorm.cu
// and the fused block's backward share it).
__device__ __forceinline__ void backward_finalise(float* dgamma, float* dbeta, float* coef,
                                                  const float* save_invstd, int64_t m, int c,
                                                  int ch, double sum_dy, double sum_dyxmu) {
  const double sum_dyxhat = sum_dyxmu * static_cast<double>(save_invstd[ch]);
  dgamma[ch] = static_cast<float>(static_cast<double>(dgamma[ch]) + sum_dyxhat);
  dbeta[ch] = static_cast<float>(static_cast<double>(dbeta[ch]) + sum_dy);
  const double md = static_cast<double>(m);
  coef[ch] = static_cast<float>(sum_dy / md);
  coef[c + ch] = static_cast<float>(sum_dyxhat / md);
}

}  // namespace kiln::cuda::bn_tiles
