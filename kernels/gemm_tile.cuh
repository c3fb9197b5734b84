// kernels/gemm_tile.cuh — the register-blocked SGEMM tile engine that kernels/conv2d.cu (implicit
// GEMM) and kernels/linear.cu share, plus the two deterministic reductions both need.
//
// C[M][N] = Σ_k A[m][k]·B[k][n]. A block computes a BM×BN tile of C, walking K in steps of BK = 8:
//   - each thread owns an 8×8 register tile: rows ty·4+{0..3} and BM/2+ty·4+{0..3}, columns
//     tx·4+{0..3} and BN/2+tx·4+{0..3} (two float4 per operand per k, so every shared-memory load
//     in the inner loop is 128-bit and feeds 16 FFMA; the two halves keep a warp's float4 loads on
//     distinct banks);
//   - operand tiles live in shared memory k-major: As[BK][BM+4], Bs[BK][BN+4] (the +4 pad keeps
//     the transposing stores of K-contiguous operands free of bank conflicts and float4-aligned);
//   - double buffering through registers: while the block multiplies stage t, each thread holds
//     its share of tile t+1 (loaded from global memory before the multiply) and stores it into the
//     other stage afterwards; one __syncthreads per k-step separates every store from the reads of
//     the same stage (stage s is written in step t only after the barrier ending step t−1, the last
//     step that read it).
// Operands reach shared memory through "loaders": a loader knows where its operand lives (a plain
// matrix, or an implicit-GEMM view of an NHWC tensor), keeps its own k position, and provides
//   fetch()  — global → registers for the current k-step (zeros outside the operand), then advance;
//   stash(s) — registers → shared stage s.
// Two stage shapes cover every operand: K-contiguous (A[m][k] rows: 4 consecutive k per float4,
// transposed on the store) and MN-contiguous (A[k][m] rows: 4 consecutive m per float4).
#pragma once

#include "core/device_code.h"

#include <cstdint>

#include "core/launch.h"
#include "core/memory.h"
#include "core/stream.h"
#include "core/workspace_counters.h"
#include "kernels/last_block.cuh"

namespace kiln::cuda::tile {

template <int kBM, int kBN>
struct Config {
  static constexpr int BM = kBM, BN = kBN, BK = 8, TM = 8, TN = 8;
  static constexpr int kThreadsN = BN / TN;
  static constexpr int kThreads = (BM / TM) * (BN / TN);
  // KILN_LAUNCH_BOUNDS minimum blocks per SM (__launch_bounds__'s second argument): 2 for
  // 256-thread blocks caps them at 128 registers (16 warps per SM); 64-thread blocks keep their
  // full register budget.
  static constexpr int kMinBlocks = kThreads >= 256 ? 2 : 1;
  static constexpr int kLdA = BM + 4, kLdB = BN + 4;  // padded shared rows (floats)
};
using Large = Config<128, 128>;  // 256 threads: the big layers
using Small = Config<64, 64>;  // 64 threads: small M·N, where 128×128 tiles would leave SMs idle

// Both operand stages, double-buffered; 16-byte aligned for the float4 accesses.
template <class Cfg>
struct alignas(16) SharedTiles {
  float a[2][Cfg::BK * Cfg::kLdA];  // (BK, BM+4) per stage
  float b[2][Cfg::BK * Cfg::kLdB];  // (BK, BN+4) per stage
};

__device__ __forceinline__ float4 zero4() {
  return make_float4(0.f, 0.f, 0.f, 0.f);
}
__device__ __forceinline__ float4 load4(const float* p) {
  return *reinterpret_cast<const float4*>(p);
}

// One thread's share of a K-contiguous operand tile (BMN rows × BK k): quad i is row
// (tid + i·kThreads)/2, k offset (tid & 1)·4 — two threads read a row's 32 contiguous bytes.
template <int BMN, int kThreads>
struct KContigStage {
  static_assert((BMN * 2) % kThreads == 0 && kThreads % 2 == 0, "tile/threads mismatch");
  static constexpr int kQuads = BMN * 2 / kThreads;
  static constexpr int kLd = BMN + 4;
  float4 v[kQuads];
  __device__ static int row(int i) { return (static_cast<int>(threadIdx.x) + i * kThreads) >> 1; }
  __device__ static int koff() { return (static_cast<int>(threadIdx.x) & 1) * 4; }
  __device__ void stash(float* s) const {
    const int k = koff();
#pragma unroll
    for (int i = 0; i < kQuads; ++i) {
      const int r = row(i);
      s[(k + 0) * kLd + r] = v[i].x;
      s[(k + 1) * kLd + r] = v[i].y;
      s[(k + 2) * kLd + r] = v[i].z;
      s[(k + 3) * kLd + r] = v[i].w;
    }
  }
};

// One thread's share of an MN-contiguous operand tile (BK k-rows × BMN columns): quad i is k-row
// (tid + i·kThreads)/(BMN/4), columns ((tid % (BMN/4))·4 .. +3) — the same columns for every i.
template <int BMN, int kThreads>
struct MNContigStage {
  static constexpr int kPerRow = BMN / 4;
  static_assert(kThreads % kPerRow == 0 && (8 * kPerRow) % kThreads == 0, "tile/threads mismatch");
  static constexpr int kQuads = 8 * kPerRow / kThreads;
  static constexpr int kLd = BMN + 4;
  float4 v[kQuads];
  __device__ static int krow(int i) {
    return static_cast<int>(threadIdx.x) / kPerRow + i * (kThreads / kPerRow);
  }
  __device__ static int col() { return (static_cast<int>(threadIdx.x) % kPerRow) * 4; }
  __device__ void stash(float* s) const {
#pragma unroll
    for (int i = 0; i < kQuads; ++i) *reinterpret_cast<float4*>(s + krow(i) * kLd + col()) = v[i];
  }
};

// Rows of a row-major matrix P[rows][ld] read along k: A of y = x·wᵀ (x), B of the same (w), A of
// dx = dy·w (dy). kVec: ld % 4 == 0, k_end % 4 == 0 and P 16-byte aligned.
template <int BMN, int kThreads, bool kVec>
struct RowsLoader : KContigStage<BMN, kThreads> {
  using Stage = KContigStage<BMN, kThreads>;
  const float* row_ptr[Stage::kQuads];  // nullptr for rows past the end
  int k, k_end;
  __device__ RowsLoader(const float* p, int64_t ld, int rows, int row0, int k_begin, int k_end_)
      : k(k_begin + Stage::koff()), k_end(k_end_) {
#pragma unroll
    for (int i = 0; i < Stage::kQuads; ++i) {
      const int r = row0 + Stage::row(i);
      row_ptr[i] = r < rows ? p + static_cast<int64_t>(r) * ld : nullptr;
    }
  }
  __device__ void fetch() {
#pragma unroll
    for (int i = 0; i < Stage::kQuads; ++i) {
      float4 v = zero4();
      if constexpr (kVec) {
        if (row_ptr[i] != nullptr && k < k_end) v = load4(row_ptr[i] + k);
      } else if (row_ptr[i] != nullptr) {
        if (k + 0 < k_end) v.x = row_ptr[i][k + 0];
        if (k + 1 < k_end) v.y = row_ptr[i][k + 1];
        if (k + 2 < k_end) v.z = row_ptr[i][k + 2];
        if (k + 3 < k_end) v.w = row_ptr[i][k + 3];
      }
      this->v[i] = v;
    }
    k += 8;
  }
};

// The extra column of ones by which a GEMM dw = Σ_k A[k]ᵀ·B[k] also gives the column sums of A
// (db = Σ_k dy[k], kernels/conv2d.cu and linear.cu): the component of the quad at columns
// [c, c + 4) that is column `ones` becomes 1 (the caller has checked that the k-row is in range).
__device__ __forceinline__ void set_ones(float4& v, int c, int ones) {
  if (ones == c) v.x = 1.f;
  if (ones == c + 1) v.y = 1.f;
  if (ones == c + 2) v.z = 1.f;
  if (ones == c + 3) v.w = 1.f;
}

// k-rows of a row-major matrix P[k][ld] read along m/n: B of dx = dy·w (w), both operands of
// dw = dyᵀ·x. kVec: ld % 4 == 0, cols % 4 == 0 and P 16-byte aligned.
template <int BMN, int kThreads, bool kVec>
struct KRowsLoader : MNContigStage<BMN, kThreads> {
  using Stage = MNContigStage<BMN, kThreads>;
  const float* p;
  int64_t ld;
  int k, k_end, c, cols;
  int ones = -1;  // a column of ones at this index (set_ones), -1 for none
  __device__ KRowsLoader(const float* p_, int64_t ld_, int cols_, int col0, int k_begin, int k_end_)
      : p(p_), ld(ld_), k(k_begin), k_end(k_end_), c(col0 + Stage::col()), cols(cols_) {}
  __device__ void fetch() {
#pragma unroll
    for (int i = 0; i < Stage::kQuads; ++i) {
      const int kr = k + Stage::krow(i);
      float4 v = zero4();
      if (kr < k_end) {
        const float* row = p + static_cast<int64_t>(kr) * ld;
        if constexpr (kVec) {
          if (c < cols) v = load4(row + c);
        } else {
          if (c + 0 < cols) v.x = row[c + 0];
          if (c + 1 < cols) v.y = row[c + 1];
          if (c + 2 < cols) v.z = row[c + 2];
          if (c + 3 < cols) v.w = row[c + 3];
        }
        set_ones(v, c, ones);
      }
      this->v[i] = v;
    }
    k += 8;
  }
};

// acc += As·Bs for one stage: BK rank-1 updates of the thread's 8×8 tile, 4 LDS.128 and 64 FFMA
// per k. Equivalent to: for k, i, j: acc[i][j] += As[k][row(i)] * Bs[k][col(j)].
template <class Cfg>
__device__ __forceinline__ void multiply_stage(float (&acc)[8][8], const float* __restrict__ as,
                                               const float* __restrict__ bs, int ty, int tx) {
#pragma unroll
  for (int k = 0; k < Cfg::BK; ++k) {
    const float4 a0 = load4(as + k * Cfg::kLdA + ty * 4);
    const float4 a1 = load4(as + k * Cfg::kLdA + Cfg::BM / 2 + ty * 4);
    const float4 b0 = load4(bs + k * Cfg::kLdB + tx * 4);
    const float4 b1 = load4(bs + k * Cfg::kLdB + Cfg::BN / 2 + tx * 4);
    const float a[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
    const float b[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
      for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
  }
}

// The main loop: k_tiles steps of BK, double-buffered (see the header comment). Every thread of
// the block must call it with the same k_tiles (the barriers are block-wide).
template <class Cfg, class LoaderA, class LoaderB>
__device__ __forceinline__ void mainloop(float (&acc)[8][8], LoaderA& la, LoaderB& lb,
                                         SharedTiles<Cfg>& sm, int k_tiles) {
  const int tx = static_cast<int>(threadIdx.x) % Cfg::kThreadsN;
  const int ty = static_cast<int>(threadIdx.x) / Cfg::kThreadsN;
#pragma unroll
  for (int i = 0; i < 8; ++i)
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[i][j] = 0.f;
  if (k_tiles <= 0) return;
  la.fetch();
  lb.fetch();
  la.stash(sm.a[0]);
  lb.stash(sm.b[0]);
  __syncthreads();
  for (int t = 0; t < k_tiles; ++t) {
    const int cur = t & 1;
    const bool more = t + 1 < k_tiles;
    if (more) {
      la.fetch();
      lb.fetch();
    }
    multiply_stage<Cfg>(acc, sm.a[cur], sm.b[cur], ty, tx);
    if (more) {
      la.stash(sm.a[cur ^ 1]);
      lb.stash(sm.b[cur ^ 1]);
    }
    __syncthreads();
  }
}

// The C coordinates of the thread's register tile: row of acc[i][*], first column of quad h.
template <class Cfg>
__device__ __forceinline__ int out_row(int i) {
  const int ty = static_cast<int>(threadIdx.x) / Cfg::kThreadsN;
  return (i < 4 ? 0 : Cfg::BM / 2) + ty * 4 + (i & 3);
}
template <class Cfg>
__device__ __forceinline__ int out_col(int h) {
  const int tx = static_cast<int>(threadIdx.x) % Cfg::kThreadsN;
  return h * (Cfg::BN / 2) + tx * 4;
}

// Stores (or, kAccumulate, adds) the register tile into C[M][N] (row stride ldc) at (m0, n0),
// adding bias[n] when bias is non-null. vec: float4 stores (N % 4 == 0, ldc % 4 == 0, C aligned).
template <class Cfg, bool kAccumulate>
__device__ __forceinline__ void store_tile(const float (&acc)[8][8], float* __restrict__ c,
                                           int64_t ldc, int M, int N, int m0, int n0,
                                           const float* __restrict__ bias, bool vec,
                                           float* __restrict__ extra = nullptr) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int n = n0 + out_col<Cfg>(h);
    // extra: column N (a column of ones in B) goes to extra[m], accumulated like C.
    const bool has_extra = extra != nullptr && n <= N && N < n + 4;
    if (has_extra) {
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        const int m = m0 + out_row<Cfg>(i);
        if (m >= M) continue;
        float e = 0.f;
#pragma unroll
        for (int j = 0; j < 4; ++j)
          if (n + j == N) e = acc[i][h * 4 + j];  // constant register indices, a select
        extra[m] = kAccumulate ? extra[m] + e : e;
      }
    }
    if (n >= N) continue;
    float4 bq = zero4();
    if (bias != nullptr) {
      bq.x = bias[n];
      if (n + 1 < N) bq.y = bias[n + 1];
      if (n + 2 < N) bq.z = bias[n + 2];
      if (n + 3 < N) bq.w = bias[n + 3];
    }
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const int m = m0 + out_row<Cfg>(i);
      if (m >= M) continue;
      float* p = c + static_cast<int64_t>(m) * ldc + n;
      float4 v = make_float4(acc[i][h * 4 + 0] + bq.x, acc[i][h * 4 + 1] + bq.y,
                             acc[i][h * 4 + 2] + bq.z, acc[i][h * 4 + 3] + bq.w);
      if (vec) {
        if constexpr (kAccumulate) {
          const float4 o = load4(p);
          v.x += o.x;
          v.y += o.y;
          v.z += o.z;
          v.w += o.w;
        }
        *reinterpret_cast<float4*>(p) = v;
      } else {
        const float e[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int j = 0; j < 4; ++j)
          if (n + j < N) p[j] = kAccumulate ? p[j] + e[j] : e[j];
      }
    }
  }
}

// ---- one block of a split-K GEMM kernel -------------------------------------------------------
// The block's output tile (m0, n0) = (blockIdx.x·BM, blockIdx.y·BN) and its split blockIdx.z's
// k range [k_begin, k_end) of K (tiles_per_split steps of BK per split).
struct BlockTile {
  int m0, n0, k_begin, k_end;
};
template <class Cfg>
__device__ __forceinline__ BlockTile block_tile(int K, int tiles_per_split) {
  BlockTile t;
  t.m0 = static_cast<int>(blockIdx.x) * Cfg::BM;
  t.n0 = static_cast<int>(blockIdx.y) * Cfg::BN;
  t.k_begin = static_cast<int>(blockIdx.z) * tiles_per_split * Cfg::BK;
  t.k_end = min(K, t.k_begin + tiles_per_split * Cfg::BK);
  return t;
}

// The split-K reduction finished inside the GEMM's own launch (no separate split-sum kernel):
// each block stores its partial tile and arrives at counters[tile] (one per output tile,
// kernels/last_block.cuh); the block that arrives last sums the tile's splits in order z = 0, 1, ... — the same float additions, in the same order, as
// a separate split-sum pass over the partials would, so the result does not depend on which block
// arrives last. Deterministic; the only atomics are integer.
// Stores C = Σ_z partials[z] (+ bias) or, kAccumulate, C += Σ_z partials[z].
template <class Cfg, bool kAccumulate>
__device__ __forceinline__ bool finish_splits(float* __restrict__ c,
                                              const float* __restrict__ partials,
                                              int* __restrict__ counters, int M, int N,
                                              const BlockTile& t, const float* __restrict__ bias,
                                              float* __restrict__ extra) {
  if (!arrive_last(counters + blockIdx.y * gridDim.x + blockIdx.x, static_cast<int>(gridDim.z)))
    return false;
  const int splits = static_cast<int>(gridDim.z);
  const int np = extra != nullptr ? N + 1 : N;  // the partials' columns
  const int64_t count = static_cast<int64_t>(M) * np;
  for (int e = threadIdx.x; e < Cfg::BM * Cfg::BN; e += Cfg::kThreads) {
    const int m = t.m0 + e / Cfg::BN, n = t.n0 + e % Cfg::BN;
    if (m >= M || n >= np) continue;
    const int64_t i = static_cast<int64_t>(m) * np + n;
    float sum = __ldcg(partials + i);  // other blocks' stores: read past the (incoherent) L1
    for (int z = 1; z < splits; ++z) sum += __ldcg(partials + z * count + i);
    float* out = n < N ? c + static_cast<int64_t>(m) * N + n : extra + m;
    if constexpr (kAccumulate)
      *out += sum;
    else
      *out = bias != nullptr ? sum + bias[n] : sum;
  }
  return true;
}

// What follows the loaders in every GEMM kernel: the main loop over the block's k range, then the
// tile stored to C[M][N] (+ bias; kAccumulate: added to C) when the GEMM has one split
// (partials == nullptr), else stored to partials[blockIdx.z][M][N] and the splits summed by the
// last block of the tile to finish (finish_splits; counters: gridDim.x·gridDim.y, zero).
// Returns true (for the whole block) when this block wrote the tile's final values to C.
// extra (kAccumulate GEMMs only): B has a column of ones at column N, and that column of the product
// (the column sums of A) is added to extra[M] instead of C.
template <class Cfg, bool kAccumulate, class LoaderA, class LoaderB>
__device__ __forceinline__ bool run_block(LoaderA& la, LoaderB& lb, const BlockTile& t,
                                          float* __restrict__ c, float* __restrict__ partials,
                                          int* __restrict__ counters, int M, int N,
                                          const float* __restrict__ bias, bool vec_store,
                                          float* __restrict__ extra = nullptr) {
  KILN_SHARED(SharedTiles<Cfg>, tiles, [1]);  // one struct: [1] keeps the macro's dims non-empty
  float acc[8][8];
  mainloop<Cfg>(acc, la, lb, tiles[0], (t.k_end - t.k_begin + Cfg::BK - 1) / Cfg::BK);
  if (partials == nullptr) {
    store_tile<Cfg, kAccumulate>(acc, c, N, M, N, t.m0, t.n0, bias, vec_store, extra);
    return true;
  }
  const int np = extra != nullptr ? N + 1 : N;  // partials [z][M][N (+1)]
  float* part = partials + static_cast<int64_t>(blockIdx.z) * M * np;
  store_tile<Cfg, false>(acc, part, np, M, np, t.m0, t.n0, nullptr, vec_store && extra == nullptr);
  return finish_splits<Cfg, kAccumulate>(c, partials, counters, M, N, t, bias, extra);
}

// Split-K plan: how many contiguous k ranges (of whole BK steps) a GEMM with `blocks_mn` output
// tiles of `warps_per_block` warps and `k_tiles` k-steps is cut into, so that the grid holds about
// two waves of 8-warp blocks on an H200 (132 SMs × 2 × 8 warps), each split keeping at least
// `min_tiles` k-steps. It depends on the shape only — never on the device — so a shape always sums
// in the same order.
struct SplitK {
  int splits = 1, tiles_per_split = 0;
};
inline SplitK plan_split_k(int64_t blocks_mn, int warps_per_block, int k_tiles, int min_tiles) {
  constexpr int64_t kTargetWarps = 132 * 2 * 8;
  const int64_t warps = blocks_mn * warps_per_block;
  int64_t s = (kTargetWarps + warps - 1) / warps;
  const int64_t max_s = k_tiles / min_tiles > 1 ? k_tiles / min_tiles : 1;
  if (s > max_s) s = max_s;
  if (s < 1) s = 1;
  SplitK p;
  p.tiles_per_split = static_cast<int>((k_tiles + s - 1) / s);
  if (p.tiles_per_split < 1) p.tiles_per_split = 1;
  p.splits = (k_tiles + p.tiles_per_split - 1) / p.tiles_per_split;
  if (p.splits < 1) p.splits = 1;
  return p;
}
// Minimum k-steps per split: outputs that accumulate (dw) split from 16 steps; overwritten outputs
// (y, dx), whose reduction pass is pure overhead when K is short, from 32.
constexpr int kMinTilesAccumulate = 16, kMinTilesOverwrite = 32;

// ---- host side: choosing the tiles and the split -----------------------------------------------
// 128×128 tiles when they still give about a wave of blocks, else 64×64.
inline bool use_large_tiles(int64_t m, int64_t n) {
  return m >= 128 && n >= 128 && int64_t{ceil_div(m, 128)} * ceil_div(n, 128) >= 100;
}

// The tile size and the split-K plan of an M×N×K product.
struct Plan {
  bool large;
  SplitK split;
};
inline Plan plan_gemm(int64_t m, int64_t n, int64_t k, int min_tiles, bool large) {
  Plan p;
  p.large = large;
  const int bm = large ? Large::BM : Small::BM;
  const int bn = large ? Large::BN : Small::BN;
  const int warps = (large ? Large::kThreads : Small::kThreads) / 32;
  p.split = plan_split_k(int64_t{ceil_div(m, bm)} * ceil_div(n, bn), warps,
                         static_cast<int>(ceil_div(k, Large::BK)), min_tiles);
  return p;
}

// `floats` floats of `stream`'s workspace, for split-K partial sums (nullptr for none): the op's one
// workspace request (core/memory.h).
inline float* workspace(int64_t floats, Stream stream) {
  return floats > 0 ? static_cast<float*>(
                          kiln::workspace(static_cast<size_t>(floats) * sizeof(float), stream))
                    : nullptr;
}

// The zeroed counters finish_splits needs for a split grid (one per output tile), or nullptr when
// the GEMM has one split (partials == nullptr).
inline int* split_counters(const float* partials, dim3 grid, Stream stream) {
  return partials != nullptr ? kiln::workspace_counters(int64_t{grid.x} * grid.y, stream) : nullptr;
}

}  // namespace kiln::cuda::tile

// Host launchers of the deterministic reductions (defined in kernels/linear.cu, used by both
// families; raw level: trusting their caller, stream-ordered).
namespace kiln::cuda::detail {

// Floats of workspace column_sum_accumulate needs for a rows×cols matrix.
int64_t column_sum_workspace_floats(int rows, int cols);
// dst[c] += Σ_r src[r][c] (src [rows][cols]) in a fixed order: per-split partial sums of
// contiguous row ranges (into `workspace`), then the splits summed in order by the last block of
// each column group, in the same launch. Bit-reproducible.
void column_sum_accumulate(float* dst, const float* src, int rows, int cols, float* workspace,
                           Stream stream);
// The same for bf16 bits (the tensor-core bf16 path's dy), each widened exactly, summed in fp32.
void column_sum_accumulate(float* dst, const std::uint16_t* src, int rows, int cols,
                           float* workspace, Stream stream);
// The same of round_tf32(src[r][c]): the tensor-core tf32 path's db, the sum of dy as its GEMM
// reads it (the rounding point of the CPU's tf32 db, kernels/precision.h).
void column_sum_accumulate_tf32(float* dst, const float* src, int rows, int cols, float* workspace,
                                Stream stream);
// A tensor-core operand's column sums: TF32 for fp32 storage, as stored for bf16.
inline void tc_column_sum_accumulate(float* dst, const float* src, int rows, int cols,
                                     float* workspace, Stream stream) {
  column_sum_accumulate_tf32(dst, src, rows, cols, workspace, stream);
}
inline void tc_column_sum_accumulate(float* dst, const std::uint16_t* src, int rows, int cols,
                                     float* workspace, Stream stream) {
  column_sum_accumulate(dst, src, rows, cols, workspace, stream);
}
}  // namespace kiln::cuda::detail
