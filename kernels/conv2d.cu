// kernels/conv2d.cu — 2-D convolution on the CUDA device: forward, backward-data, backward-filter.
//
// Layouts (kernels/conv2d.h): x [N][H][W][C_in], y [N][OH][OW][C_out] (NHWC),
// w [C_out][KH][KW][C_in], b [C_out]. dx is overwritten; dw and db accumulate (+=).
//
// All three are implicit GEMMs on the tile engine of kernels/gemm_tile.cuh (128×128 or 64×64 block
// tiles, 8×8 register tiles, float4 shared loads, register-staged double buffering); only the
// loaders that gather the operands from the NHWC tensors are convolution-specific:
//   forward          M = N·OH·OW (output pixels)  N = C_out  K = KH·KW·C_in  (k = (i, j, ci))
//                    A[m][k] = x[n, oh·sh−ph+i, ow·sw−pw+j, ci] (zero outside), B[k][co] = w[co][k]
//                    bias added in the epilogue.
//   backward-data    M = N·H·W (input pixels)     N = C_in   K = KH·KW·C_out (k = (i, j, co))
//                    A[m][k] = dy[n, oh, ow, co] where oh·sh = h+ph−i and ow·sw = w+pw−j (zero when
//                    not divisible or outside), B[k][ci] = w[co][i][j][ci].
//   backward-filter  M = C_out  N = KH·KW·C_in  K = N·OH·OW (k = output pixel)
//                    A[k][co] = dy[k][co], B[k][(i, j, ci)] = x[n, oh·sh−ph+i, ow·sw−pw+j, ci];
//                    deterministic split-K: each split of the pixel range writes its partial
//                    tile to a workspace, the last split of the tile to finish sums the splits
//                    in order and adds to dw (tile::finish_splits, the same launch);
//                    db = Σ_pixels dy as one more column of the same product (B gets a column
//                    of ones), so no separate column-sum launch.
// Forward and backward-data split along K the same way when the output has too few tiles to fill
// the GPU and K is long (the deep layers at small batch): partials, summed (+ bias) by the last
// block of each tile to finish, in the same launch (tile::finish_splits).
// Paths, chosen by the launchers: float4 global loads when the channel counts are multiples of 4
// (scalar loads otherwise, any shape); a compile-time 3×3 / stride 1 / padding 1 variant of each
// (constant geometry, no divisions in the gathers); and, for the first layer (C_in = 1..3, where
// the GEMM's K = 9·C_in is too short to tile), a direct forward convolution with the transposed
// filter and the input patch in shared memory — memory-bound, writing y in coalesced float4.
// Error bound (fp32, one FMA rounding per tap, plus split-K and bias additions): per element
// |err| <= (K + splits + 2)·2⁻²⁴·Σ_k|a_k·b_k|; the tests check (K + 8)·2⁻²⁴·max|ref of |x|,|w||.
#include "core/device_code.h"

#include <cstdint>

#include "core/error.h"
#include "core/launch.h"
#include "core/memory.h"
#include "kernels/conv2d.h"
#include "kernels/conv2d_geometry.cuh"
#include "kernels/conv_batch_stats.cuh"
#include "kernels/fused_block.h"
#include "kernels/gemm_tile.cuh"

namespace kiln::cuda {
namespace {

using tile::KContigStage;
using tile::KRowsLoader;
using tile::load4;
using tile::MNContigStage;
using tile::RowsLoader;
using tile::zero4;

using conv::ConvDims;
using conv::dims_of;
using conv::Geom;
using conv::inside;
using conv::Tap;

// Forward A: im2col rows of x, read along k = (i, j, ci). kVec: C_in % 4 == 0 and x aligned, so a
// quad of k is 4 consecutive channels of one pixel; the (i, j, ci) of the thread's k is walked
// incrementally (no divisions in the loop).
template <int BM, int kThreads, bool kVec, bool kFast>
struct ConvForwardInputLoader : KContigStage<BM, kThreads> {
  using Stage = KContigStage<BM, kThreads>;
  const float* img[Stage::kQuads];  // image base, nullptr for rows past M
  int ih0[Stage::kQuads], iw0[Stage::kQuads];
  int k, k_end;  // next k of this thread's quads; end of the split
  Tap tap;       // (i, j, ci) of k
  __device__ ConvForwardInputLoader(const float* x, const ConvDims& d, int m0, int k_begin,
                                    int k_end_)
      : k_end(k_end_) {
    const Geom<kFast> g{d};
#pragma unroll
    for (int q = 0; q < Stage::kQuads; ++q) {
      const conv::Window win = conv::forward_window(d, g, m0 + Stage::row(q));
      img[q] = win.valid ? x + win.image : nullptr;
      ih0[q] = win.row0;
      iw0[q] = win.col0;
    }
    k = k_begin + Stage::koff();
    tap = Tap::of(k, d.ci, g);
  }
  __device__ void fetch(const ConvDims& d) {
    const Geom<kFast> g{d};
#pragma unroll
    for (int q = 0; q < Stage::kQuads; ++q) {
      float4 v = zero4();
      if constexpr (kVec) {
        const int ih = ih0[q] + tap.i, iw = iw0[q] + tap.j;
        if (img[q] != nullptr && k < k_end && inside(ih, d.h) && inside(iw, d.w))
          v = load4(img[q] + (ih * d.w + iw) * d.ci + tap.c);
      } else if (img[q] != nullptr) {
        float e[4];
#pragma unroll
        for (int u = 0; u < 4; ++u) {
          const int kk = k + u;
          const Tap p = Tap::of(kk, d.ci, g);
          const int ih = ih0[q] + p.i, iw = iw0[q] + p.j;
          e[u] = (kk < k_end && inside(ih, d.h) && inside(iw, d.w))
                     ? img[q][(ih * d.w + iw) * d.ci + p.c]
                     : 0.f;
        }
        v = make_float4(e[0], e[1], e[2], e[3]);
      }
      this->v[q] = v;
    }
    k += 8;
    if constexpr (kVec) tap.advance(8, d.ci, g);
  }
};

// Backward-data A: rows are input pixels (n, h, w); k = (i, j, co) reads dy[n, oh, ow, co] with
// oh·sh = h + ph − i, ow·sw = w + pw − j. kVec: C_out % 4 == 0 and dy aligned.
template <int BM, int kThreads, bool kVec, bool kFast>
struct ConvBackwardDataGradLoader : KContigStage<BM, kThreads> {
  using Stage = KContigStage<BM, kThreads>;
  const float* img[Stage::kQuads];           // dy image base, nullptr for rows past M
  int hp[Stage::kQuads], wp[Stage::kQuads];  // h + ph, w + pw
  int k, k_end;                              // as in ConvForwardInputLoader
  Tap tap;                                   // (i, j, co) of k
  __device__ ConvBackwardDataGradLoader(const float* dy, const ConvDims& d, int m0, int k_begin,
                                        int k_end_)
      : k_end(k_end_) {
    const Geom<kFast> g{d};
#pragma unroll
    for (int q = 0; q < Stage::kQuads; ++q) {
      const conv::Window win = conv::backward_data_window(d, g, m0 + Stage::row(q));
      img[q] = win.valid ? dy + win.image : nullptr;
      hp[q] = win.row0;
      wp[q] = win.col0;
    }
    k = k_begin + Stage::koff();
    tap = Tap::of(k, d.co, g);
  }
  // The dy pixel index (oh·OW + ow) that tap (i, j) of row q reads, or −1.
  __device__ int source(const ConvDims& d, const Geom<kFast>& g, int q, int i, int j) const {
    return conv::backward_data_source(d, g, hp[q], wp[q], i, j);
  }
  __device__ void fetch(const ConvDims& d) {
    const Geom<kFast> g{d};
#pragma unroll
    for (int q = 0; q < Stage::kQuads; ++q) {
      float4 v = zero4();
      if constexpr (kVec) {
        if (img[q] != nullptr && k < k_end) {
          const int p = source(d, g, q, tap.i, tap.j);
          if (p >= 0) v = load4(img[q] + p * d.co + tap.c);
        }
      } else if (img[q] != nullptr) {
        float e[4];
#pragma unroll
        for (int u = 0; u < 4; ++u) {
          const int kk = k + u;
          const Tap t = Tap::of(kk, d.co, g);
          const int p = kk < k_end ? source(d, g, q, t.i, t.j) : -1;
          e[u] = p >= 0 ? img[q][p * d.co + t.c] : 0.f;
        }
        v = make_float4(e[0], e[1], e[2], e[3]);
      }
      this->v[q] = v;
    }
    k += 8;
    if constexpr (kVec) tap.advance(8, d.co, g);
  }
};

// Backward-data B: k-rows (i, j, co) of w, columns ci: B[k][ci] = w[co][i][j][ci].
// kVec: C_in % 4 == 0 and w aligned.
template <int BN, int kThreads, bool kVec, bool kFast>
struct ConvBackwardDataWeightLoader : MNContigStage<BN, kThreads> {
  using Stage = MNContigStage<BN, kThreads>;
  const float* w;
  int k, k_end;            // k of the stage's first k-row; end of the split
  int c;                   // first column of the thread's quad
  Tap tap[Stage::kQuads];  // (i, j, co) of each k-row
  __device__ ConvBackwardDataWeightLoader(const float* w_, const ConvDims& d, int n0, int k_begin,
                                          int k_end_)
      : w(w_), k(k_begin), k_end(k_end_), c(n0 + Stage::col()) {
    const Geom<kFast> g{d};
#pragma unroll
    for (int q = 0; q < Stage::kQuads; ++q) {
      const int kr = k_begin + Stage::krow(q);
      tap[q] = Tap::of(kr, d.co, g);
    }
  }
  __device__ void fetch(const ConvDims& d) {
    const Geom<kFast> g{d};
#pragma unroll
    for (int q = 0; q < Stage::kQuads; ++q) {
      float4 v = zero4();
      if (k + Stage::krow(q) < k_end) {
        const float* row =
            w + ((static_cast<int64_t>(tap[q].c) * g.kh() + tap[q].i) * g.kw() + tap[q].j) * d.ci;
        if constexpr (kVec) {
          if (c < d.ci) v = load4(row + c);
        } else {
          if (c + 0 < d.ci) v.x = row[c + 0];
          if (c + 1 < d.ci) v.y = row[c + 1];
          if (c + 2 < d.ci) v.z = row[c + 2];
          if (c + 3 < d.ci) v.w = row[c + 3];
        }
      }
      this->v[q] = v;
      tap[q].advance(8, d.co, g);
    }
    k += 8;
  }
};

// Backward-filter B: k-rows are output pixels (n, oh, ow) of the split's range, columns are
// (i, j, ci): B[k][(i, j, ci)] = x[n, oh·sh−ph+i, ow·sw−pw+j, ci]. The thread's columns are fixed;
// its pixels are walked incrementally. kVec: C_in % 4 == 0 and x aligned.
template <int BN, int kThreads, bool kVec, bool kFast>
struct ConvBackwardFilterInputLoader : MNContigStage<BN, kThreads> {
  using Stage = MNContigStage<BN, kThreads>;
  static constexpr int kCols = kVec ? 1 : 4;  // column decompositions kept (vec: one quad)
  const float* x;
  int k, k_end;
  int c0, ones;                         // the thread's first column; a column of ones, or −1
  int ci[kCols], di[kCols], dj[kCols];  // column -> (ci, i − ph, j − pw); di = large when invalid
  int pn[Stage::kQuads], poh[Stage::kQuads], pow_[Stage::kQuads];  // pixel of each k-row
  __device__ ConvBackwardFilterInputLoader(const float* x_, const ConvDims& d, int n0, int k_begin,
                                           int k_end_, int ones_)
      : x(x_), k(k_begin), k_end(k_end_), c0(n0 + Stage::col()), ones(ones_) {
    const Geom<kFast> g{d};
    const int ncols = g.kh() * g.kw() * d.ci;
#pragma unroll
    for (int u = 0; u < kCols; ++u) {
      const int c = n0 + Stage::col() + u;
      const Tap p = Tap::of(c, d.ci, g);
      ci[u] = p.c;
      dj[u] = p.j - g.pw();
      di[u] = c < ncols ? p.i - g.ph() : (1 << 29);  // never inside the image
    }
    const int pixels = d.oh * d.ow;
#pragma unroll
    for (int q = 0; q < Stage::kQuads; ++q) {
      const int kr = k_begin + Stage::krow(q);
      pn[q] = kr / pixels;
      const int p = kr - pn[q] * pixels;
      poh[q] = p / d.ow;
      pow_[q] = p - poh[q] * d.ow;
    }
  }
  __device__ float at(const ConvDims& d, const Geom<kFast>& g, int q, int u) const {
    const int ih = poh[q] * g.sh() + di[u], iw = pow_[q] * g.sw() + dj[u];
    if (!inside(ih, d.h) || !inside(iw, d.w)) return 0.f;
    return x[((static_cast<int64_t>(pn[q]) * d.h + ih) * d.w + iw) * d.ci + ci[u]];
  }
  __device__ void fetch(const ConvDims& d) {
    const Geom<kFast> g{d};
#pragma unroll
    for (int q = 0; q < Stage::kQuads; ++q) {
      float4 v = zero4();
      if (k + Stage::krow(q) < k_end) {
        if constexpr (kVec) {
          const int ih = poh[q] * g.sh() + di[0], iw = pow_[q] * g.sw() + dj[0];
          if (inside(ih, d.h) && inside(iw, d.w))
            v = load4(x + ((static_cast<int64_t>(pn[q]) * d.h + ih) * d.w + iw) * d.ci + ci[0]);
        } else {
          v = make_float4(at(d, g, q, 0), at(d, g, q, 1), at(d, g, q, 2), at(d, g, q, 3));
        }
        tile::set_ones(v, c0, ones);
      }
      this->v[q] = v;
      pow_[q] += 8;
      while (pow_[q] >= d.ow) {
        pow_[q] -= d.ow;
        if (++poh[q] == d.oh) {
          poh[q] = 0;
          ++pn[q];
        }
      }
    }
    k += 8;
  }
};

// Adapts a loader whose fetch needs the geometry to the engine's fetch().
template <class L>
struct WithDims : L {
  const ConvDims& d;
  template <class... Args>
  __device__ WithDims(const ConvDims& d_, Args... args) : L(args...), d(d_) {}
  __device__ void fetch() { L::fetch(d); }
};

// Split z covers k in [z·tiles_per_split·BK, ...). partials == nullptr: one split, the block stores
// y (+ bias); else it stores its partial tile to partials[z][M][C_out] and the tile's last block
// sums them (tile::finish_splits; counters one per output tile). kStats: the block holding the
// tile's final y then gathers batchnorm's batch statistics (kernels/conv_batch_stats.cuh).
template <class Cfg, bool kVec, bool kFast, bool kStats>
__global__ void KILN_LAUNCH_BOUNDS(Cfg::kThreads, Cfg::kMinBlocks)
    conv2d_forward_implicit_gemm_kernel(float* __restrict__ y, float* __restrict__ partials,
                                        int* __restrict__ counters, const float* __restrict__ x,
                                        const float* __restrict__ w, const float* __restrict__ b,
                                        ConvDims d, int tiles_per_split, bool vec_store,
                                        bn_epilogue::StatsArgs stats) {
  const int M = d.n * d.oh * d.ow, K = d.kh * d.kw * d.ci;
  const tile::BlockTile t = tile::block_tile<Cfg>(K, tiles_per_split);
  WithDims<ConvForwardInputLoader<Cfg::BM, Cfg::kThreads, kVec, kFast>> la(d, x, d, t.m0, t.k_begin,
                                                                           t.k_end);  // (BM, K)
  RowsLoader<Cfg::BN, Cfg::kThreads, kVec> lb(w, K, d.co, t.n0, t.k_begin, t.k_end);  // (BN, K)
  const bool final_tile =
      tile::run_block<Cfg, false>(la, lb, t, y, partials, counters, M, d.co, b, vec_store);
  if constexpr (kStats) {
    if (final_tile)
      bn_epilogue::batch_stats_epilogue(y, bn_epilogue::GemmRows<Cfg::BM>{M},
                                        static_cast<int>(blockIdx.x), static_cast<int>(blockIdx.y),
                                        t.n0, min(t.n0 + Cfg::BN, d.co), stats);
  }
}

// Splits as in the forward kernel (partials [z][N·H·W][C_in]).
template <class Cfg, bool kVec, bool kFast>
__global__ void KILN_LAUNCH_BOUNDS(Cfg::kThreads, Cfg::kMinBlocks)
    conv2d_backward_data_implicit_gemm_kernel(float* __restrict__ dx, float* __restrict__ partials,
                                              int* __restrict__ counters,
                                              const float* __restrict__ dy,
                                              const float* __restrict__ w, ConvDims d,
                                              int tiles_per_split, bool vec_store) {
  const int M = d.n * d.h * d.w, K = d.kh * d.kw * d.co;
  const tile::BlockTile t = tile::block_tile<Cfg>(K, tiles_per_split);
  WithDims<ConvBackwardDataGradLoader<Cfg::BM, Cfg::kThreads, kVec, kFast>> la(d, dy, d, t.m0,
                                                                               t.k_begin, t.k_end);
  WithDims<ConvBackwardDataWeightLoader<Cfg::BN, Cfg::kThreads, kVec, kFast>> lb(
      d, w, d, t.n0, t.k_begin, t.k_end);
  tile::run_block<Cfg, false>(la, lb, t, dx, partials, counters, M, d.ci, nullptr, vec_store);
}

// Split z covers output pixels [z·tiles_per_split·BK, ...). partials == nullptr: one split, add
// into dw; else store the partial tile to partials[z][C_out][KH·KW·C_in (+1)], summed into dw by
// the tile's last block. db (nullable): B gets a column of ones after its KH·KW·C_in columns, so
// that column of the product, Σ_pixels dy, is added to db in the same GEMM.
template <class Cfg, bool kVec, bool kFast>
__global__ void KILN_LAUNCH_BOUNDS(Cfg::kThreads, Cfg::kMinBlocks)
    conv2d_backward_filter_implicit_gemm_kernel(float* __restrict__ dw, float* __restrict__ db,
                                                float* __restrict__ partials,
                                                int* __restrict__ counters,
                                                const float* __restrict__ dy,
                                                const float* __restrict__ x, ConvDims d,
                                                int tiles_per_split, bool vec_store) {
  const int N = d.kh * d.kw * d.ci, K = d.n * d.oh * d.ow;
  const tile::BlockTile t = tile::block_tile<Cfg>(K, tiles_per_split);
  KRowsLoader<Cfg::BM, Cfg::kThreads, kVec> la(dy, d.co, d.co, t.m0, t.k_begin,
                                               t.k_end);  // (K, BM)
  WithDims<ConvBackwardFilterInputLoader<Cfg::BN, Cfg::kThreads, kVec, kFast>> lb(
      d, x, d, t.n0, t.k_begin, t.k_end, db != nullptr ? N : -1);  // (K, BN)
  tile::run_block<Cfg, true>(la, lb, t, dw, partials, counters, d.co, N, nullptr, vec_store, db);
}

// First-layer forward (C_in = kCin in 1..3): direct convolution of an 8×16 output tile. Shared:
// the filter transposed to [KH·KW·kCin][C_out rounded up to 4] (zero-padded) and the input patch
// [patch_h][patch_w][kCin] (zeros outside the image). Thread item = (pixel, 4 output channels):
// consecutive threads take consecutive channel quads, so a warp writes contiguous y.
constexpr int kDirectTileH = 8, kDirectTileW = 16, kDirectThreads = 256;
// The output pixels of a direct-kernel tile (blockIdx.x, blockIdx.y, image blockIdx.z), tile index
// (z·gy + y)·gx + x, as rows of y [N·OH·OW][C_out] for the statistics epilogue.
struct DirectRows {
  int oh, ow, gx, gy;
  __device__ int count(int tile) const {
    const int r = tile % (gx * gy), by = r / gx, bx = r % gx;
    return min(kDirectTileH, oh - by * kDirectTileH) * min(kDirectTileW, ow - bx * kDirectTileW);
  }
  __device__ int64_t row(int tile, int i) const {
    const int n = tile / (gx * gy), r = tile % (gx * gy), by = r / gx, bx = r % gx;
    const int vw = min(kDirectTileW, ow - bx * kDirectTileW);
    return (static_cast<int64_t>(n) * oh + by * kDirectTileH + i / vw) * ow + bx * kDirectTileW +
           i % vw;
  }
};

template <int kCin, bool kStats>
__global__ void KILN_LAUNCH_BOUNDS(kDirectThreads)
    conv2d_forward_small_cin_kernel(float* __restrict__ y, const float* __restrict__ x,
                                    const float* __restrict__ w, const float* __restrict__ b,
                                    ConvDims d, int patch_h, int patch_w, bool vec_store,
                                    bn_epilogue::StatsArgs stats) {
  KILN_DYNAMIC_SHARED(float, smem);
  const int quads = (d.co + 3) / 4, cop = quads * 4, taps = d.kh * d.kw * kCin;
  float* w_s = smem;               // (taps, cop)
  float* x_s = smem + taps * cop;  // (patch_h, patch_w, kCin)
  const int ow0 = static_cast<int>(blockIdx.x) * kDirectTileW;
  const int oh0 = static_cast<int>(blockIdx.y) * kDirectTileH;
  const int n = static_cast<int>(blockIdx.z);
  const int tid = static_cast<int>(threadIdx.x);
  for (int i = tid; i < taps * cop; i += kDirectThreads) {
    const int c = i % cop, t = i / cop;
    w_s[i] = c < d.co ? w[c * taps + t] : 0.f;
  }
  const int ih0 = oh0 * d.sh - d.ph, iw0 = ow0 * d.sw - d.pw;
  const float* img = x + static_cast<int64_t>(n) * d.h * d.w * kCin;
  for (int i = tid; i < patch_h * patch_w * kCin; i += kDirectThreads) {
    const int c = i % kCin, t = i / kCin, px = t % patch_w, py = t / patch_w;
    const int ih = ih0 + py, iw = iw0 + px;
    x_s[i] = inside(ih, d.h) && inside(iw, d.w) ? img[(ih * d.w + iw) * kCin + c] : 0.f;
  }
  __syncthreads();
  for (int item = tid; item < kDirectTileH * kDirectTileW * quads; item += kDirectThreads) {
    const int q = item % quads, p = item / quads;
    const int px = p % kDirectTileW, py = p / kDirectTileW;
    const int oh = oh0 + py, ow = ow0 + px;
    if (oh >= d.oh || ow >= d.ow) continue;
    float4 acc = zero4();
    if (b != nullptr) {
      const int c = q * 4;
      acc.x = b[c];
      if (c + 1 < d.co) acc.y = b[c + 1];
      if (c + 2 < d.co) acc.z = b[c + 2];
      if (c + 3 < d.co) acc.w = b[c + 3];
    }
    for (int i = 0; i < d.kh; ++i)
      for (int j = 0; j < d.kw; ++j) {
        const float* xp = x_s + ((py * d.sh + i) * patch_w + px * d.sw + j) * kCin;
        const float* wp = w_s + (i * d.kw + j) * kCin * cop + q * 4;
#pragma unroll
        for (int c = 0; c < kCin; ++c) {
          const float xv = xp[c];
          const float4 wv = load4(wp + c * cop);
          acc.x = fmaf(xv, wv.x, acc.x);
          acc.y = fmaf(xv, wv.y, acc.y);
          acc.z = fmaf(xv, wv.z, acc.z);
          acc.w = fmaf(xv, wv.w, acc.w);
        }
      }
    float* out = y + ((static_cast<int64_t>(n) * d.oh + oh) * d.ow + ow) * d.co + q * 4;
    if (vec_store) {
      *reinterpret_cast<float4*>(out) = acc;
    } else {
      const float e[4] = {acc.x, acc.y, acc.z, acc.w};
      for (int u = 0; u < 4 && q * 4 + u < d.co; ++u) out[u] = e[u];
    }
  }
  if constexpr (kStats) {
    const DirectRows rows{d.oh, d.ow, static_cast<int>(gridDim.x), static_cast<int>(gridDim.y)};
    const int tile = (n * static_cast<int>(gridDim.y) + static_cast<int>(blockIdx.y)) *
                         static_cast<int>(gridDim.x) +
                     static_cast<int>(blockIdx.x);
    bn_epilogue::batch_stats_epilogue(y, rows, tile, 0, 0, d.co, stats);
  }
}

// ---- launchers ---------------------------------------------------------------------------------

bool is_3x3_s1_p1(const Conv2dShape& s) {
  return s.kh == 3 && s.kw == 3 && s.stride_h == 1 && s.stride_w == 1 && s.pad_h == 1 &&
         s.pad_w == 1;
}

// The tile size and the split-K plan of an M×N×K product.
// Calls f.template operator()<Cfg, kVec, kFast>() for the run-time choice (the fast path only
// exists with vector loads).
template <class F>
void dispatch(bool large, bool vec, bool fast, F&& f) {
  if (large) {
    if (vec && fast) return f.template operator()<tile::Large, true, true>();
    if (vec) return f.template operator()<tile::Large, true, false>();
    return f.template operator()<tile::Large, false, false>();
  }
  if (vec && fast) return f.template operator()<tile::Small, true, true>();
  if (vec) return f.template operator()<tile::Small, true, false>();
  f.template operator()<tile::Small, false, false>();
}

// Shared bytes of the first-layer direct kernel, or 0 when the path does not apply.
size_t small_cin_shared_bytes(const Conv2dShape& s, int* patch_h, int* patch_w) {
  if (s.c_in > 3) return 0;
  *patch_h = (kDirectTileH - 1) * s.stride_h + s.kh;
  *patch_w = (kDirectTileW - 1) * s.stride_w + s.kw;
  const int64_t floats = int64_t{s.kh} * s.kw * s.c_in * ((s.c_out + 3) / 4 * 4) +
                         int64_t{*patch_h} * *patch_w * s.c_in;
  const int64_t bytes = floats * int64_t{sizeof(float)};
  return bytes <= 48 * 1024 ? static_cast<size_t>(bytes) : 0;
}

}  // namespace

namespace {

// The batchnorm outputs of conv2d_forward_batch_stats (nullptr: a plain forward).
struct BatchStatsTarget {
  float *save_mean, *save_invstd, *running_mean, *running_var;
  double eps, momentum;
};

// The statistics arguments for `tiles` tiles along M (the op's one workspace request holds
// [split partials | tile pairs | group triples], its one counter request [split counters |
// statistics counters]).
bn_epilogue::StatsArgs stats_args(const BatchStatsTarget& t, const ConvDims& d, int tiles,
                                  float* area, int* counters) {
  return bn_epilogue::make_args(t.save_mean, t.save_invstd, t.running_mean, t.running_var, t.eps,
                                t.momentum, int64_t{d.n} * d.oh * d.ow, d.co, tiles, area,
                                counters);
}

template <int kCin>
void launch_small_cin(const LaunchConfig& cfg, float* y, const float* x, const float* w,
                      const float* b, const ConvDims& d, int patch_h, int patch_w, bool vec_store,
                      const BatchStatsTarget* stats, Stream stream) {
  if (stats == nullptr) {
    launch(cfg, conv2d_forward_small_cin_kernel<kCin, false>, y, x, w, b, d, patch_h, patch_w,
           vec_store, bn_epilogue::StatsArgs{});
    return;
  }
  const int tiles = static_cast<int>(cfg.grid.x * cfg.grid.y * cfg.grid.z);
  float* area = tile::workspace(bn_epilogue::workspace_floats(tiles, d.co), stream);
  int* counters = kiln::workspace_counters(bn_epilogue::counters_needed(tiles, 1), stream);
  launch(cfg, conv2d_forward_small_cin_kernel<kCin, true>, y, x, w, b, d, patch_h, patch_w,
         vec_store, stats_args(*stats, d, tiles, area, counters));
}

void conv2d_forward_impl(float* y, const float* x, const float* w, const float* b,
                         const Conv2dShape& s, const BatchStatsTarget* stats, Stream stream) {
  const ConvDims d = dims_of("cuda::conv2d_forward", s);
  int patch_h = 0, patch_w = 0;
  if (const size_t smem = small_cin_shared_bytes(s, &patch_h, &patch_w); smem > 0) {
    cost::gemm("conv2d_forward_small_cin", cost::Op::conv, Precision::fp32,
               int64_t{d.n} * d.oh * d.ow, d.co, d.kh * d.kw * d.ci,
               cost::f32(int64_t{d.n} * d.h * d.w * d.ci + int64_t{d.co} * d.kh * d.kw * d.ci +
                         d.co + int64_t{d.n} * d.oh * d.ow * d.co));
    const dim3 grid(ceil_div(d.ow, kDirectTileW), ceil_div(d.oh, kDirectTileH), d.n);
    const bool vec_store = d.co % 4 == 0 && aligned16(y);
    const LaunchConfig cfg{grid, dim3(kDirectThreads), smem, stream};
    if (d.ci == 1)
      launch_small_cin<1>(cfg, y, x, w, b, d, patch_h, patch_w, vec_store, stats, stream);
    else if (d.ci == 2)
      launch_small_cin<2>(cfg, y, x, w, b, d, patch_h, patch_w, vec_store, stats, stream);
    else
      launch_small_cin<3>(cfg, y, x, w, b, d, patch_h, patch_w, vec_store, stats, stream);
    return;
  }
  const int64_t M = int64_t{d.n} * d.oh * d.ow;
  const bool vec = d.ci % 4 == 0 && aligned16(x) && aligned16(w);
  const bool vec_store = d.co % 4 == 0 && aligned16(y);
  const tile::Plan plan = tile::plan_gemm(M, d.co, int64_t{d.kh} * d.kw * d.ci,
                                          tile::kMinTilesOverwrite, tile::use_large_tiles(M, d.co));
  const int splits = plan.split.splits;
  cost::gemm("conv2d_forward", cost::Op::conv, Precision::fp32, M, d.co, d.kh * d.kw * d.ci,
             cost::f32(int64_t{d.n} * d.h * d.w * d.ci + int64_t{d.co} * d.kh * d.kw * d.ci + d.co +
                       splits * M * d.co));
  dispatch(plan.large, vec, is_3x3_s1_p1(s), [&]<class Cfg, bool kVec, bool kFast>() {
    const dim3 grid(ceil_div(M, Cfg::BM), ceil_div(d.co, Cfg::BN), splits);
    const LaunchConfig cfg{grid, dim3(Cfg::kThreads), 0, stream};
    const int64_t split_floats = splits > 1 ? int64_t{splits} * M * d.co : 0;
    const int64_t split_counters = splits > 1 ? int64_t{grid.x} * grid.y : 0;
    if (stats == nullptr) {
      float* partials = tile::workspace(split_floats, stream);
      launch(cfg, conv2d_forward_implicit_gemm_kernel<Cfg, kVec, kFast, false>, y, partials,
             tile::split_counters(partials, grid, stream), x, w, b, d, plan.split.tiles_per_split,
             vec_store, bn_epilogue::StatsArgs{});
      return;
    }
    const int tiles = static_cast<int>(grid.x);
    float* area =
        tile::workspace(split_floats + bn_epilogue::workspace_floats(tiles, d.co), stream);
    int* counters = kiln::workspace_counters(
        split_counters + bn_epilogue::counters_needed(tiles, static_cast<int>(grid.y)), stream);
    float* partials = splits > 1 ? area : nullptr;
    launch(cfg, conv2d_forward_implicit_gemm_kernel<Cfg, kVec, kFast, true>, y, partials,
           splits > 1 ? counters : nullptr, x, w, b, d, plan.split.tiles_per_split, vec_store,
           stats_args(*stats, d, tiles, area + split_floats, counters + split_counters));
  });
}

}  // namespace

void conv2d_forward(float* y, const float* x, const float* w, const float* b, const Conv2dShape& s,
                    Stream stream) {
  conv2d_forward_impl(y, x, w, b, s, nullptr, stream);
}

void conv2d_forward_batch_stats(float* y, float* save_mean, float* save_invstd, float* running_mean,
                                float* running_var, const float* x, const float* w, const float* b,
                                const Conv2dShape& s, double eps, double momentum, Stream stream) {
  const char* op = "cuda::conv2d_forward_batch_stats";
  KILN_CHECK(y && save_mean && save_invstd && running_mean && running_var && x && w, op,
             ": null pointer");
  KILN_CHECK(eps > 0.0, op, ": eps must be positive");
  const BatchStatsTarget t{save_mean, save_invstd, running_mean, running_var, eps, momentum};
  conv2d_forward_impl(y, x, w, b, s, &t, stream);
}

void conv2d_backward_data(float* dx, const float* dy, const float* w, const Conv2dShape& s,
                          Stream stream) {
  const ConvDims d = dims_of("cuda::conv2d_backward_data", s);
  const int64_t M = int64_t{d.n} * d.h * d.w;
  const bool vec = d.ci % 4 == 0 && d.co % 4 == 0 && aligned16(dy) && aligned16(w);
  const bool vec_store = d.ci % 4 == 0 && aligned16(dx);
  const tile::Plan plan = tile::plan_gemm(M, d.ci, int64_t{d.kh} * d.kw * d.co,
                                          tile::kMinTilesOverwrite, tile::use_large_tiles(M, d.ci));
  const int splits = plan.split.splits;
  float* partials = splits > 1 ? tile::workspace(int64_t{splits} * M * d.ci, stream) : nullptr;
  cost::gemm("conv2d_backward_data", cost::Op::conv, Precision::fp32, M, d.ci, d.kh * d.kw * d.co,
             cost::f32(int64_t{d.n} * d.oh * d.ow * d.co + int64_t{d.co} * d.kh * d.kw * d.ci +
                       splits * M * d.ci));
  dispatch(plan.large, vec, is_3x3_s1_p1(s), [&]<class Cfg, bool kVec, bool kFast>() {
    const dim3 grid(ceil_div(M, Cfg::BM), ceil_div(d.ci, Cfg::BN), splits);
    launch({grid, dim3(Cfg::kThreads), 0, stream},
           conv2d_backward_data_implicit_gemm_kernel<Cfg, kVec, kFast>, dx, partials,
           tile::split_counters(partials, grid, stream), dy, w, d, plan.split.tiles_per_split,
           vec_store);
  });
}

void conv2d_backward_filter(float* dw, float* db, const float* dy, const float* x,
                            const Conv2dShape& s, Stream stream) {
  const ConvDims d = dims_of("cuda::conv2d_backward_filter", s);
  const int M = d.co, N = d.kh * d.kw * d.ci, K = d.n * d.oh * d.ow;
  const bool vec = d.ci % 4 == 0 && d.co % 4 == 0 && aligned16(dy) && aligned16(x);
  const bool vec_store = N % 4 == 0 && aligned16(dw);
  // Split-K supplies the parallelism, so 128×128 tiles whenever both extents fill them. The plan
  // is that of dw alone, so dw's sums are the same with or without db.
  const tile::Plan plan = tile::plan_gemm(M, N, K, tile::kMinTilesAccumulate, M >= 128 && N >= 128);
  const int splits = plan.split.splits;
  const int nt = db != nullptr ? N + 1 : N;  // db: the column of ones
  float* partials = splits > 1 ? tile::workspace(int64_t{splits} * M * nt, stream) : nullptr;
  cost::gemm("conv2d_backward_filter", cost::Op::conv, Precision::fp32, M, N, K,
             cost::f32(int64_t{d.n} * d.oh * d.ow * d.co + int64_t{d.n} * d.h * d.w * d.ci +
                       int64_t{splits > 1 ? 2 * splits + 1 : 2} * M * nt));
  dispatch(plan.large, vec, is_3x3_s1_p1(s), [&]<class Cfg, bool kVec, bool kFast>() {
    const dim3 grid(ceil_div(M, Cfg::BM), ceil_div(nt, Cfg::BN), splits);
    launch({grid, dim3(Cfg::kThreads), 0, stream},
           conv2d_backward_filter_implicit_gemm_kernel<Cfg, kVec, kFast>, dw, db, partials,
           tile::split_counters(partials, grid, stream), dy, x, d, plan.split.tiles_per_split,
           vec_store);
  });
}

}  // namespace kiln::cuda
