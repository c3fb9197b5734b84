// kernels/linear.cu — the fully connected layer on our own SGEMM (kernels/gemm_tile.cuh), plus the
// deterministic column-sum and split-sum reductions shared with kernels/conv2d.cu.
//
// x [N][IN], w [OUT][IN], b [OUT], y [N][OUT] (row-major). The three products, in GEMM terms:
//   forward          y  = x·wᵀ + b    M=N,   N=OUT, K=IN   A rows along k (x), B rows along k (w)
//   backward-data    dx = dy·w        M=N,   N=IN,  K=OUT  A rows along k (dy), B k-rows (w)
//   backward-weight  dw += dyᵀ·x      M=OUT, N=IN,  K=N    A k-rows (dy), B k-rows (x)
//                    db += Σ_n dy     column sums, fixed order
// dx is overwritten; dw and db accumulate. Deterministic: every output element is summed by one
// thread in a fixed k order. When the output has too few tiles to fill the GPU and K is long, the
// product is split along K (tile::plan_split_k, a function of the shape only): each split stores
// its partial tile to a workspace and a second kernel adds the splits in order (then the bias, or
// into dw); column sums likewise — no float atomics.
// Error bound (fp32, one FMA rounding per k, plus the split and bias additions): per element
// |err| <= (K + splits + 2)·2⁻²⁴·Σ_k|a_k·b_k|; the tests check (K + 8)·2⁻²⁴·max|ref of |a|,|b||.
#include "core/device_code.h"

#include <cstdint>

#include "core/error.h"
#include "core/launch.h"
#include "core/memory.h"
#include "core/rounding.h"
#include "kernels/gemm_tile.cuh"
#include "kernels/linear.h"

namespace kiln::cuda {
namespace {

using tile::KRowsLoader;
using tile::RowsLoader;

// y[m][n] = Σ_k x[m][k]·w[n][k] + b[n]. kVec: IN % 4 == 0 and x, w 16-byte aligned.
// Split z covers k in [z·tiles_per_split·BK, ...): with one split (partials == nullptr) the block
// stores y; with several it stores its partial to partials[z][N][OUT], which the tile's last
// block sums (+ bias) in the same launch (tile::finish_splits).
template <class Cfg, bool kVec>
__global__ void KILN_LAUNCH_BOUNDS(Cfg::kThreads, Cfg::kMinBlocks)
    linear_forward_kernel(float* __restrict__ y, float* __restrict__ partials,
                          int* __restrict__ counters, const float* __restrict__ x,
                          const float* __restrict__ w, const float* __restrict__ b, LinearShape s,
                          int tiles_per_split, bool vec_store) {
  const tile::BlockTile t = tile::block_tile<Cfg>(s.in, tiles_per_split);
  RowsLoader<Cfg::BM, Cfg::kThreads, kVec> la(x, s.in, s.n, t.m0, t.k_begin, t.k_end);    // (BM, K)
  RowsLoader<Cfg::BN, Cfg::kThreads, kVec> lb(w, s.in, s.out, t.n0, t.k_begin, t.k_end);  // (BN, K)
  tile::run_block<Cfg, false>(la, lb, t, y, partials, counters, s.n, s.out, b, vec_store);
}

// dx[m][n] = Σ_k dy[m][k]·w[k][n]. kVec: OUT % 4 == 0, IN % 4 == 0, dy and w 16-byte aligned.
// Splits as in linear_forward_kernel (partials [z][N][IN]).
template <class Cfg, bool kVec>
__global__ void KILN_LAUNCH_BOUNDS(Cfg::kThreads, Cfg::kMinBlocks)
    linear_backward_data_kernel(float* __restrict__ dx, float* __restrict__ partials,
                                int* __restrict__ counters, const float* __restrict__ dy,
                                const float* __restrict__ w, LinearShape s, int tiles_per_split,
                                bool vec_store) {
  const tile::BlockTile t = tile::block_tile<Cfg>(s.out, tiles_per_split);
  RowsLoader<Cfg::BM, Cfg::kThreads, kVec> la(dy, s.out, s.n, t.m0, t.k_begin, t.k_end);  // (BM, K)
  KRowsLoader<Cfg::BN, Cfg::kThreads, kVec> lb(w, s.in, s.in, t.n0, t.k_begin, t.k_end);  // (K, BN)
  tile::run_block<Cfg, false>(la, lb, t, dx, partials, counters, s.n, s.in, nullptr, vec_store);
}

// dw[m][n] (+)= Σ_{k in split z} dy[k][m]·x[k][n]. With one split the block adds into dw; with
// several it writes its partial to partials[z][OUT][IN (+1)], which the tile's last block adds to
// dw. db (nullable): x gets a column of ones after its IN columns, so that column of the product,
// Σ_n dy, is added to db in the same GEMM. kVec: OUT % 4 == 0, IN % 4 == 0, dy and x aligned.
template <class Cfg, bool kVec>
__global__ void KILN_LAUNCH_BOUNDS(Cfg::kThreads, Cfg::kMinBlocks)
    linear_backward_weight_kernel(float* __restrict__ dw, float* __restrict__ db,
                                  float* __restrict__ partials, int* __restrict__ counters,
                                  const float* __restrict__ dy, const float* __restrict__ x,
                                  LinearShape s, int tiles_per_split, bool vec_store) {
  const tile::BlockTile t = tile::block_tile<Cfg>(s.n, tiles_per_split);
  KRowsLoader<Cfg::BM, Cfg::kThreads, kVec> la(dy, s.out, s.out, t.m0, t.k_begin,
                                               t.k_end);                                  // (K, BM)
  KRowsLoader<Cfg::BN, Cfg::kThreads, kVec> lb(x, s.in, s.in, t.n0, t.k_begin, t.k_end);  // (K, BN)
  if (db != nullptr) lb.ones = s.in;  // db = Σ_n dy, the product's column of ones
  tile::run_block<Cfg, true>(la, lb, t, dw, partials, counters, s.out, s.in, nullptr, vec_store,
                             db);
}

// Column sums. Block (32, 8): column c = blockIdx.x·32 + threadIdx.x, rows of split blockIdx.y,
// thread row lane threadIdx.y takes every 8th row; the 8 lanes are then added in lane order. With
// one split (partials == nullptr) the result is added to dst[c]. With several, each block stores
// its sums to partials[split][cols] and the last block of its column group to finish (counted in
// counters[blockIdx.x], left zero again) adds the splits in order s = 0, 1, ... into dst[c]
// (tile::finish_splits' pattern, kernels/gemm_tile.cuh): one launch, deterministic.
// src is fp32, or bf16 bits (std::uint16_t: the tensor-core bf16 path's dy), summed in fp32;
// kTf32: each fp32 value rounded to TF32 first (round_tf32, the tensor-core tf32 path's dy as its
// GEMM reads it).
constexpr int kColSumCols = 32, kColSumLanes = 8;
__device__ __forceinline__ float column_value(float v) {
  return v;
}
__device__ __forceinline__ float column_value(std::uint16_t v) {
  return bf16_to_float(v);
}
template <class Src, bool kTf32 = false>
__global__ void KILN_LAUNCH_BOUNDS(kColSumCols* kColSumLanes)
    column_sum_kernel(float* __restrict__ dst, float* __restrict__ partials,
                      int* __restrict__ counters, const Src* __restrict__ src, int rows, int cols,
                      int rows_per_split) {
  KILN_SHARED(float, lanes, [kColSumLanes][kColSumCols + 1]);
  const int c = static_cast<int>(blockIdx.x) * kColSumCols + static_cast<int>(threadIdx.x);
  const int r_begin = static_cast<int>(blockIdx.y) * rows_per_split;
  const int r_end = min(rows, r_begin + rows_per_split);
  float sum = 0.f;
  if (c < cols) {
    for (int r = r_begin + static_cast<int>(threadIdx.y); r < r_end; r += kColSumLanes) {
      if constexpr (kTf32)
        sum += round_tf32(src[static_cast<int64_t>(r) * cols + c]);
      else
        sum += column_value(src[static_cast<int64_t>(r) * cols + c]);
    }
  }
  lanes[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  const bool first = threadIdx.y == 0;
  if (first && c < cols) {
    float total = lanes[0][threadIdx.x];
#pragma unroll
    for (int l = 1; l < kColSumLanes; ++l) total += lanes[l][threadIdx.x];
    if (partials == nullptr)
      dst[c] += total;
    else
      partials[static_cast<int64_t>(blockIdx.y) * cols + c] = total;
  }
  if (partials == nullptr) return;
  if (!arrive_last(counters + blockIdx.x, static_cast<int>(gridDim.y)) || !first || c >= cols)
    return;
  float total = __ldcg(partials + c);
  for (int z = 1; z < static_cast<int>(gridDim.y); ++z)
    total += __ldcg(partials + static_cast<int64_t>(z) * cols + c);
  dst[c] += total;
}

struct ColumnSumPlan {
  int splits = 1, rows_per_split = 1;
};
ColumnSumPlan plan_column_sum(int rows, int cols) {
  const int64_t col_blocks = ceil_div(cols, kColSumCols);
  int64_t s = (264 + col_blocks - 1) / col_blocks;
  const int64_t max_s = (rows + 255) / 256;  // at least 256 rows (32 per lane) per split
  if (s > max_s) s = max_s;
  if (s < 1) s = 1;
  ColumnSumPlan p;
  p.rows_per_split = static_cast<int>((rows + s - 1) / s);
  if (p.rows_per_split < 1) p.rows_per_split = 1;
  p.splits = static_cast<int>((rows + p.rows_per_split - 1) / p.rows_per_split);
  if (p.splits < 1) p.splits = 1;
  return p;
}

void check_shape(const char* op, const LinearShape& s) {
  KILN_CHECK(s.n > 0 && s.in > 0 && s.out > 0, op, ": bad shape n=", s.n, " in=", s.in,
             " out=", s.out);
}

// The tiles and the split-K plan of an M×N×K product.
// Calls f.template operator()<Cfg, kVec>() for the run-time choice.
template <class F>
void dispatch(bool large, bool vec, F&& f) {
  if (large) {
    if (vec) return f.template operator()<tile::Large, true>();
    return f.template operator()<tile::Large, false>();
  }
  if (vec) return f.template operator()<tile::Small, true>();
  f.template operator()<tile::Small, false>();
}

}  // namespace

namespace detail {

int64_t column_sum_workspace_floats(int rows, int cols) {
  const ColumnSumPlan p = plan_column_sum(rows, cols);
  return p.splits > 1 ? int64_t{p.splits} * cols : 0;
}

namespace {
template <class Src, bool kTf32 = false>
void column_sum_accumulate_impl(float* dst, const Src* src, int rows, int cols, float* workspace,
                                Stream stream) {
  KILN_CHECK(rows > 0 && cols > 0, "column_sum_accumulate: bad shape ", rows, "x", cols);
  const ColumnSumPlan p = plan_column_sum(rows, cols);
  cost::simt("column_sum", int64_t{rows} * cols,
             int64_t{rows} * cols * int64_t{sizeof(Src)} +
                 cost::f32(int64_t{p.splits == 1 ? 2 : p.splits} * cols));
  const dim3 block(kColSumCols, kColSumLanes);
  const dim3 grid(ceil_div(cols, kColSumCols), p.splits);
  if (p.splits == 1) {
    launch({grid, block, 0, stream}, column_sum_kernel<Src, kTf32>, dst, nullptr, nullptr, src, rows, cols,
           p.rows_per_split);
    return;
  }
  KILN_CHECK(workspace != nullptr, "column_sum_accumulate: workspace needed");
  launch({grid, block, 0, stream}, column_sum_kernel<Src, kTf32>, dst, workspace,
         kiln::workspace_counters(grid.x, stream), src, rows, cols, p.rows_per_split);
}
}  // namespace

void column_sum_accumulate(float* dst, const float* src, int rows, int cols, float* workspace,
                           Stream stream) {
  column_sum_accumulate_impl(dst, src, rows, cols, workspace, stream);
}
void column_sum_accumulate(float* dst, const std::uint16_t* src, int rows, int cols,
                           float* workspace, Stream stream) {
  column_sum_accumulate_impl(dst, src, rows, cols, workspace, stream);
}
void column_sum_accumulate_tf32(float* dst, const float* src, int rows, int cols, float* workspace,
                                Stream stream) {
  column_sum_accumulate_impl<float, true>(dst, src, rows, cols, workspace, stream);
}

}  // namespace detail

void linear_forward(float* y, const float* x, const float* w, const float* b, const LinearShape& s,
                    Stream stream) {
  check_shape("cuda::linear_forward", s);
  const bool vec = s.in % 4 == 0 && aligned16(x) && aligned16(w);
  const bool vec_store = s.out % 4 == 0 && aligned16(y);
  const tile::Plan plan = tile::plan_gemm(s.n, s.out, s.in, tile::kMinTilesOverwrite,
                                          tile::use_large_tiles(s.n, s.out));
  const int splits = plan.split.splits;
  float* partials = splits > 1 ? tile::workspace(int64_t{splits} * s.n * s.out, stream) : nullptr;
  cost::gemm("linear_forward", cost::Op::linear, Precision::fp32, s.n, s.out, s.in,
             cost::f32(int64_t{s.n} * s.in + int64_t{s.out} * s.in + s.out +
                       int64_t{splits} * s.n * s.out));
  dispatch(plan.large, vec, [&]<class Cfg, bool kVec>() {
    const dim3 grid(ceil_div(s.n, Cfg::BM), ceil_div(s.out, Cfg::BN), splits);
    launch({grid, dim3(Cfg::kThreads), 0, stream}, linear_forward_kernel<Cfg, kVec>, y, partials,
           tile::split_counters(partials, grid, stream), x, w, b, s, plan.split.tiles_per_split,
           vec_store);
  });
}

void linear_backward_data(float* dx, const float* dy, const float* w, const LinearShape& s,
                          Stream stream) {
  check_shape("cuda::linear_backward_data", s);
  const bool vec = s.in % 4 == 0 && s.out % 4 == 0 && aligned16(dy) && aligned16(w);
  const bool vec_store = s.in % 4 == 0 && aligned16(dx);
  const tile::Plan plan =
      tile::plan_gemm(s.n, s.in, s.out, tile::kMinTilesOverwrite, tile::use_large_tiles(s.n, s.in));
  const int splits = plan.split.splits;
  float* partials = splits > 1 ? tile::workspace(int64_t{splits} * s.n * s.in, stream) : nullptr;
  cost::gemm(
      "linear_backward_data", cost::Op::linear, Precision::fp32, s.n, s.in, s.out,
      cost::f32(int64_t{s.n} * s.out + int64_t{s.out} * s.in + int64_t{splits} * s.n * s.in));
  dispatch(plan.large, vec, [&]<class Cfg, bool kVec>() {
    const dim3 grid(ceil_div(s.n, Cfg::BM), ceil_div(s.in, Cfg::BN), splits);
    launch({grid, dim3(Cfg::kThreads), 0, stream}, linear_backward_data_kernel<Cfg, kVec>, dx,
           partials, tile::split_counters(partials, grid, stream), dy, w, s,
           plan.split.tiles_per_split, vec_store);
  });
}

void linear_backward_weight(float* dw, float* db, const float* dy, const float* x,
                            const LinearShape& s, Stream stream) {
  check_shape("cuda::linear_backward_weight", s);
  const bool vec = s.in % 4 == 0 && s.out % 4 == 0 && aligned16(dy) && aligned16(x);
  const bool vec_store = s.in % 4 == 0 && aligned16(dw);
  const tile::Plan plan = tile::plan_gemm(s.out, s.in, s.n, tile::kMinTilesAccumulate,
                                          tile::use_large_tiles(s.out, s.in));
  const int splits = plan.split.splits;
  const int nt = db != nullptr ? s.in + 1 : s.in;  // db: the column of ones (the plan is dw's)
  float* partials = splits > 1 ? tile::workspace(int64_t{splits} * s.out * nt, stream) : nullptr;
  cost::gemm("linear_backward_weight", cost::Op::linear, Precision::fp32, s.out, s.in, s.n,
             cost::f32(int64_t{s.n} * (s.out + s.in) +
                       int64_t{splits > 1 ? 2 * splits + 1 : 2} * s.out * nt));
  dispatch(plan.large, vec, [&]<class Cfg, bool kVec>() {
    const dim3 grid(ceil_div(s.out, Cfg::BM), ceil_div(nt, Cfg::BN), splits);
    launch({grid, dim3(Cfg::kThreads), 0, stream}, linear_backward_weight_kernel<Cfg, kVec>, dw, db,
           partials, tile::split_counters(partials, grid, stream), dy, x, s,
           plan.split.tiles_per_split, vec_store);
  });
}

}  // namespace kiln::cuda
