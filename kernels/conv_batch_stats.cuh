// kernels/conv_batch_stats.cuh — batchnorm's batch statistics gathered in a convolution's
// epilogue (kernels/conv2d.cu, conv2d_forward_batch_stats; docs/kernels.md, "Batch statistics in
// the convolution's epilogue"). Internal: included by .cu files only.
//
// The block that holds the final values of an output tile (rows × channels of y [M][C]) reads the
// tile back (its own stores, visible to the block after a barrier) and reduces each channel's
// column with Welford's update in float: a (count, mean, M2) triple per tile and channel — not raw
// Σx and Σx², which lose the precision of the shifted sums batchnorm.cu takes, since a tile cannot
// know a good shift. The triples are merged with Chan's formula, in double, in a fixed order, in
// two levels so that no block merges more than a few dozen:
//   tiles → groups of kGroupTiles consecutive tiles, merged by the last tile of the group to arrive;
//   groups → the batch, merged by the last group to arrive, which writes save_mean, save_invstd
//            and the running statistics as batchnorm_batch_stats does (bn_tiles::stats_finalise).
// "Last to arrive" (kernels/last_block.cuh) is counted on a counter per (channel tile, group) and
// per channel tile; the merge order is the tile (group) index, never the arrival order, so the
// result is deterministic. No float atomics.
//
// Error (derivation in docs/kernels.md): a tile's float Welford pass over n_t values gives mean and
// M2 within about n_t·2⁻²⁴ relative to max|x − mean_t| and M2_t; Chan's merge in double adds
// (kGroupTiles + groups)·2⁻⁵³ relative — nothing at float precision.
#pragma once

#include "core/device_code.h"
#include "kernels/batchnorm_tiles.cuh"
#include "kernels/last_block.cuh"

#include <cstdint>

namespace kiln::cuda::bn_epilogue {

constexpr int kGroupTiles = 32;

// Where the epilogue reads and writes. tiles = tiles along M; groups = ceil(tiles / kGroupTiles).
struct StatsArgs {
  float* save_mean;
  float* save_invstd;
  float* running_mean;
  float* running_var;
  float* tile_stats;    // [tiles][2][C]: mean, M2 of each channel over the tile's rows
  double* group_stats;  // [groups][3][C]: mean, M2, count
  int* counters;        // [channel tiles][groups + 1], zero
  int tiles, groups;
  int64_t m;  // rows in all (N·OH·OW)
  int c;
  double eps, momentum;
};

inline int groups_of(int tiles) {
  return (tiles + kGroupTiles - 1) / kGroupTiles;
}

// Counters one launch needs: per channel tile, one per group and one for the groups.
inline int64_t counters_needed(int tiles, int ctiles) {
  return int64_t{ctiles} * (groups_of(tiles) + 1);
}

// Floats of workspace for the tile pairs and the group triples (doubles: make_args aligns them).
inline int64_t workspace_floats(int tiles, int c) {
  return int64_t{tiles} * 2 * c + int64_t{groups_of(tiles)} * 3 * c * 2 + 2;
}
// The arguments of one launch: `tiles` tiles along M of y [m][c], the tile and group triples carved
// from `area` (workspace_floats(tiles, c) floats), the counters (counters_needed) from `counters`.
inline StatsArgs make_args(float* save_mean, float* save_invstd, float* running_mean,
                           float* running_var, double eps, double momentum, int64_t m, int c,
                           int tiles, float* area, int* counters) {
  StatsArgs a{};
  a.save_mean = save_mean;
  a.save_invstd = save_invstd;
  a.running_mean = running_mean;
  a.running_var = running_var;
  a.tiles = tiles;
  a.groups = groups_of(tiles);
  a.m = m;
  a.c = c;
  a.eps = eps;
  a.momentum = momentum;
  a.counters = counters;
  a.tile_stats = area;
  const uintptr_t p = reinterpret_cast<uintptr_t>(area + int64_t{tiles} * 2 * c);
  a.group_stats = reinterpret_cast<double*>((p + 7) / 8 * 8);
  return a;
}

// Chan's parallel merge of (nb, mb, m2b) into (n, mean, m2).
__device__ __forceinline__ void chan_merge(double& n, double& mean, double& m2, double nb,
                                           double mb, double m2b) {
  const double nn = n + nb;
  const double d = mb - mean;
  mean += d * (nb / nn);
  m2 += m2b + d * d * (n * nb / nn);
  n = nn;
}

// Run by every thread of the block holding the final values of tile `tile` (channels [c0, c1) of
// channel tile `ctile`). Rows: count(tile) rows, row(tile, i) their indices in y [M][C].
template <class Rows>
__device__ void batch_stats_epilogue(const float* y, const Rows& rows, int tile, int ctile, int c0,
                                     int c1, const StatsArgs& a) {
  __syncthreads();  // the tile's stores, by every thread of the block, are visible to the block
  const int tid = flat_thread(), nthreads = block_threads();
  const int count = rows.count(tile);
  for (int ch = c0 + tid; ch < c1; ch += nthreads) {
    float mean = 0.f, m2 = 0.f;
    for (int i = 0; i < count; ++i) {
      const float v = y[rows.row(tile, i) * a.c + ch];
      const float d = v - mean;
      mean += d / static_cast<float>(i + 1);
      m2 = fmaf(d, v - mean, m2);
    }
    a.tile_stats[int64_t{tile} * 2 * a.c + ch] = mean;
    a.tile_stats[(int64_t{tile} * 2 + 1) * a.c + ch] = m2;
  }
  int* counters = a.counters + int64_t{ctile} * (a.groups + 1);
  const int group = tile / kGroupTiles;
  const int t0 = group * kGroupTiles;
  const int t1 = t0 + kGroupTiles < a.tiles ? t0 + kGroupTiles : a.tiles;
  if (!arrive_last(counters + group, t1 - t0)) return;
  for (int ch = c0 + tid; ch < c1; ch += nthreads) {
    double n = 0.0, mean = 0.0, m2 = 0.0;
    for (int t = t0; t < t1; ++t)
      chan_merge(n, mean, m2, rows.count(t), __ldcg(a.tile_stats + int64_t{t} * 2 * a.c + ch),
                 __ldcg(a.tile_stats + (int64_t{t} * 2 + 1) * a.c + ch));
    double* g = a.group_stats + int64_t{group} * 3 * a.c + ch;
    g[0] = mean;
    g[a.c] = m2;
    g[2 * a.c] = n;
  }
  if (!arrive_last(counters + a.groups, a.groups)) return;
  for (int ch = c0 + tid; ch < c1; ch += nthreads) {
    double n = 0.0, mean = 0.0, m2 = 0.0;
    for (int gi = 0; gi < a.groups; ++gi) {
      const double* g = a.group_stats + int64_t{gi} * 3 * a.c + ch;
      chan_merge(n, mean, m2, __ldcg(g + 2 * a.c), __ldcg(g), __ldcg(g + a.c));
    }
    bn_tiles::stats_finalise(a.save_mean, a.save_invstd, a.running_mean, a.running_var, a.m, ch,
                             mean, m2 / static_cast<double>(a.m), a.eps, a.momentum);
  }
}

// The rows of an implicit-GEMM tile: BM consecutive rows of M.
template <int BM>
struct GemmRows {
  int m;
  __device__ int count(int tile) const { return m - tile * BM < BM ? m - tile * BM : BM; }
  __device__ int64_t row(int tile, int i) const { return int64_t{tile} * BM + i; }
};

}  // namespace kiln::cuda::bn_epilogue
