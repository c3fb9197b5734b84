// kernels/batchnorm.cu — batch normalisation over the channels of an NHWC activation, CUDA device.
//
// x, y, dy, dx [M][C] (M = N·H·W, channels fastest); per-channel vectors [C].
//
// Every kernel over [M][C] uses the channel tiles of kernels/batchnorm_tiles.cuh: consecutive
// threads touch consecutive channels of one row (coalesced for any C), and a thread's channels
// never change, so it loads its per-channel constants once and walks the rows.
//
// Statistics are deterministic: a partial pass writes, per block row-slice, the per-channel sums
// of its rows (a fixed-order tree over ty in shared memory) to a workspace [gy][2][C]; the last
// block of each channel group to finish adds the gy partials of each channel in a fixed order, in
// double, in the same launch (finish_two_partials, kernels/batchnorm_tiles.cuh). The grid depends
// only on (M, C) and the alignment, so repeated runs give identical bits; the only atomics count
// blocks on integer counters.
//
// Numerics of the mean/variance: shifted sums. Each channel's sums are of d = x − K with the shift
// K = x[0][c] (the channel's first value), Σd and Σd², and var = Σd²/M − (Σd/M)². A shift drawn
// from the data keeps (mean − K)² of the order of the variance, so the subtraction cancels at most
// a few bits, unlike the raw Σx² − (Σx)²/M which fails when |mean| ≫ std. One read of x suffices.
//
// Training forward, 2 launches: partial sums + finalise (mean, biased var, save_mean, save_invstd,
// running stats with the unbiased variance, PyTorch's convention) → y = (x − mean)·(γ·invstd) + β.
// Backward (docs/math.md §2), 2 launches: dx = γ·invstd/M·(M·dy − Σdy − x̂·Σ(dy·x̂)),
// x̂ = (x − mean)·invstd: one reduction pass for Σdy and Σdy·(x − mean) whose finalise accumulates
// dgamma += Σdy·x̂ and dbeta += Σdy and stores Σdy/M and Σ(dy·x̂)/M, then one elementwise pass for
// dx (overwritten).
// Error bounds and resources: docs/kernels-elementwise.md.
#include "core/device_code.h"

#include <cstdint>
#include <type_traits>

#include "core/error.h"
#include "core/launch.h"
#include "core/memory.h"
#include "kernels/batchnorm.h"
#include "kernels/batchnorm_tiles.cuh"

namespace kiln::cuda {
namespace {

using namespace bn_tiles;

// ---- statistics ---------------------------------------------------------------------------------

// partial[blockIdx.y][0][c] = Σ (x − K), partial[blockIdx.y][1][c] = Σ (x − K)² over this block's
// rows, K = x[0][c].
// The last block of each channel group then finalises its channels (finish_two_partials): batch
// mean and biased variance from the shifted sums, save_mean, save_invstd, running stats — or, with
// `moments` (SyncBatchNorm), moments[0][c] = mean and moments[1][c] = M2 = Σd² − (Σd)²/M in double.
template <int kV>
__global__ void KILN_LAUNCH_BOUNDS(kBlock)
    batchnorm_stats_partial_kernel(float* __restrict__ partial, int* __restrict__ counters,
                                   float* __restrict__ save_mean, float* __restrict__ save_invstd,
                                   float* __restrict__ running_mean,
                                   float* __restrict__ running_var, double* __restrict__ moments,
                                   const float* __restrict__ x, int64_t m, int c, double eps,
                                   double momentum) {
  KILN_SHARED(float, s_sum, [kBlock * 4]);
  KILN_SHARED(float, s_sq, [kBlock * 4]);
  const TileThread t = tile_thread<kV>(c);
  Lanes<kV> sum{}, sq{};
  if (t.active) {
    const Lanes<kV> shift = Lanes<kV>::load(x + t.channel);
    const float* p = x + t.row * c + t.channel;
    const int64_t step = t.row_stride * c;
#pragma unroll 4
    for (int64_t r = t.row; r < m; r += t.row_stride, p += step) {
      const Lanes<kV> v = Lanes<kV>::load(p);
#pragma unroll
      for (int k = 0; k < kV; ++k) {
        const float d = v.v[k] - shift.v[k];
        sum.v[k] += d;
        sq.v[k] = fmaf(d, d, sq.v[k]);
      }
    }
  }
  store_two_partials<kV>(sum, sq, s_sum, s_sq, partial, c, t);
  finish_two_partials<kV>(partial, counters, c, [&](int ch, double sum_d, double sum_dd) {
    const double md = static_cast<double>(m);
    const double mean_d = sum_d / md;
    if (moments != nullptr) {  // SyncBatchNorm: this rank's mean and M2, merged across ranks
      const double m2 = sum_dd - sum_d * mean_d;
      moments[ch] = static_cast<double>(x[ch]) + mean_d;
      moments[c + ch] = m2 < 0.0 ? 0.0 : m2;
      return;
    }
    stats_finalise(save_mean, save_invstd, running_mean, running_var, m, ch,
                   static_cast<double>(x[ch]) + mean_d, sum_dd / md - mean_d * mean_d, eps,
                   momentum);
  });
}

// y = (x − mean)·(γ·invstd) + β. kFromVar: `inv_or_var` holds variances (eval: invstd =
// 1/sqrt(var + eps)); otherwise it holds invstd (training, from the finalise).
template <int kV, bool kFromVar>
__global__ void KILN_LAUNCH_BOUNDS(kBlock)
    batchnorm_normalize_kernel(float* __restrict__ y, const float* __restrict__ x,
                               const float* __restrict__ gamma, const float* __restrict__ beta,
                               const float* __restrict__ mean, const float* __restrict__ inv_or_var,
                               float eps, int64_t m, int c) {
  const TileThread t = tile_thread<kV>(c);
  if (!t.active) return;
  const Lanes<kV> g = Lanes<kV>::load(gamma + t.channel);
  const Lanes<kV> b = Lanes<kV>::load(beta + t.channel);
  const Lanes<kV> mu = Lanes<kV>::load(mean + t.channel);
  Lanes<kV> scale = Lanes<kV>::load(inv_or_var + t.channel);
#pragma unroll
  for (int k = 0; k < kV; ++k) {
    const float invstd = kFromVar ? 1.f / sqrtf(scale.v[k] + eps) : scale.v[k];
    scale.v[k] = g.v[k] * invstd;
  }
  const int64_t step = t.row_stride * c;
  const float* px = x + t.row * c + t.channel;
  float* py = y + t.row * c + t.channel;
#pragma unroll 4
  for (int64_t r = t.row; r < m; r += t.row_stride, px += step, py += step) {
    Lanes<kV> v = Lanes<kV>::load(px);
#pragma unroll
    for (int k = 0; k < kV; ++k) v.v[k] = fmaf(v.v[k] - mu.v[k], scale.v[k], b.v[k]);
    v.store(py);
  }
}

// ---- backward -----------------------------------------------------------------------------------

// partial[blockIdx.y][0][c] = Σ dy, partial[blockIdx.y][1][c] = Σ dy·(x − mean) over the
// block's rows; the last block of each channel group then finalises its channels
// (backward_finalise: dgamma, dbeta and the dx pass's coefficients; with `sums`, SyncBatchNorm:
// dgamma, dbeta and sums[0][c] = Σdy, sums[1][c] = Σ(dy·x̂) in double).
template <int kV>
__global__ void KILN_LAUNCH_BOUNDS(kBlock)
    batchnorm_backward_partial_kernel(float* __restrict__ partial, int* __restrict__ counters,
                                      float* __restrict__ dgamma, float* __restrict__ dbeta,
                                      float* __restrict__ coef, double* __restrict__ sums,
                                      const float* __restrict__ dy,
                                      const float* __restrict__ x, const float* __restrict__ mean,
                                      const float* __restrict__ save_invstd, int64_t m, int c) {
  KILN_SHARED(float, s_dy, [kBlock * 4]);
  KILN_SHARED(float, s_dyx, [kBlock * 4]);
  const TileThread t = tile_thread<kV>(c);
  Lanes<kV> sum{}, sumx{};
  if (t.active) {
    const Lanes<kV> mu = Lanes<kV>::load(mean + t.channel);
    const int64_t offset = t.row * c + t.channel;
    const float* px = x + offset;
    const float* pg = dy + offset;
    const int64_t step = t.row_stride * c;
#pragma unroll 4
    for (int64_t r = t.row; r < m; r += t.row_stride, px += step, pg += step) {
      const Lanes<kV> v = Lanes<kV>::load(px);
      const Lanes<kV> g = Lanes<kV>::load(pg);
#pragma unroll
      for (int k = 0; k < kV; ++k) {
        sum.v[k] += g.v[k];
        sumx.v[k] = fmaf(g.v[k], v.v[k] - mu.v[k], sumx.v[k]);
      }
    }
  }
  store_two_partials<kV>(sum, sumx, s_dy, s_dyx, partial, c, t);
  finish_two_partials<kV>(partial, counters, c, [&](int ch, double sum_dy, double sum_dyxmu) {
    if (sums == nullptr) {
      backward_finalise(dgamma, dbeta, coef, save_invstd, m, c, ch, sum_dy, sum_dyxmu);
      return;
    }
    // SyncBatchNorm: dgamma and dbeta accumulate as above; the raw sums, in double, are merged
    // across ranks before the dx pass (whose means are the global batch's).
    const double sum_dyxhat = sum_dyxmu * static_cast<double>(save_invstd[ch]);
    dgamma[ch] = static_cast<float>(static_cast<double>(dgamma[ch]) + sum_dyxhat);
    dbeta[ch] = static_cast<float>(static_cast<double>(dbeta[ch]) + sum_dy);
    sums[ch] = sum_dy;
    sums[c + ch] = sum_dyxhat;
  });
}

// dx = γ·invstd·(dy − Σdy/M − x̂·Σ(dy·x̂)/M), x̂ = (x − mean)·invstd.
template <int kV>
__global__ void KILN_LAUNCH_BOUNDS(kBlock)
    batchnorm_backward_dx_kernel(float* __restrict__ dx, const float* __restrict__ dy,
                                 const float* __restrict__ x, const float* __restrict__ gamma,
                                 const float* __restrict__ mean, const float* __restrict__ invstd,
                                 const float* __restrict__ coef, int64_t m, int c) {
  const TileThread t = tile_thread<kV>(c);
  if (!t.active) return;
  const Lanes<kV> g = Lanes<kV>::load(gamma + t.channel);
  const Lanes<kV> mu = Lanes<kV>::load(mean + t.channel);
  const Lanes<kV> is = Lanes<kV>::load(invstd + t.channel);
  const Lanes<kV> mean_dy = Lanes<kV>::load(coef + t.channel);
  const Lanes<kV> mean_dyxhat = Lanes<kV>::load(coef + c + t.channel);
  Lanes<kV> scale;
#pragma unroll
  for (int k = 0; k < kV; ++k) scale.v[k] = g.v[k] * is.v[k];
  const int64_t offset = t.row * c + t.channel;
  const int64_t step = t.row_stride * c;
  const float* px = x + offset;
  const float* pg = dy + offset;
  float* pdx = dx + offset;
#pragma unroll 4
  for (int64_t r = t.row; r < m; r += t.row_stride, px += step, pg += step, pdx += step) {
    const Lanes<kV> v = Lanes<kV>::load(px);
    Lanes<kV> gr = Lanes<kV>::load(pg);
#pragma unroll
    for (int k = 0; k < kV; ++k) {
      const float xhat = (v.v[k] - mu.v[k]) * is.v[k];
      gr.v[k] = scale.v[k] * fmaf(-xhat, mean_dyxhat.v[k], gr.v[k] - mean_dy.v[k]);
    }
    gr.store(pdx);
  }
}

// dx = dy·γ/sqrt(running_var + eps) (eval-mode statistics are constants).
template <int kV>
__global__ void KILN_LAUNCH_BOUNDS(kBlock)
    batchnorm_backward_eval_kernel(float* __restrict__ dx, const float* __restrict__ dy,
                                   const float* __restrict__ gamma,
                                   const float* __restrict__ running_var, float eps, int64_t m,
                                   int c) {
  const TileThread t = tile_thread<kV>(c);
  if (!t.active) return;
  const Lanes<kV> g = Lanes<kV>::load(gamma + t.channel);
  Lanes<kV> scale = Lanes<kV>::load(running_var + t.channel);
#pragma unroll
  for (int k = 0; k < kV; ++k) scale.v[k] = g.v[k] * (1.f / sqrtf(scale.v[k] + eps));
  const int64_t offset = t.row * c + t.channel;
  const int64_t step = t.row_stride * c;
  const float* pg = dy + offset;
  float* pdx = dx + offset;
#pragma unroll 4
  for (int64_t r = t.row; r < m; r += t.row_stride, pg += step, pdx += step) {
    Lanes<kV> v = Lanes<kV>::load(pg);
#pragma unroll
    for (int k = 0; k < kV; ++k) v.v[k] *= scale.v[k];
    v.store(pdx);
  }
}

}  // namespace

// ---- launchers ----------------------------------------------------------------------------------

namespace {

// The statistics' one launch over x: partial sums, then (last block per channel group) either the
// statistics (save_mean, save_invstd, running stats) or, with `moments`, SyncBatchNorm's moments.
void stats_pass(float* save_mean, float* save_invstd, float* running_mean, float* running_var,
                double* moments, const float* x, const BatchNormShape& s, double eps,
                double momentum, Stream stream) {
  const bool vec_stats = s.c % 4 == 0 && aligned16(x);
  const Tiles stats = make_tiles(s.m, s.c, vec_stats, kPartialRowsPerThread, kPartialMaxBlocks);
  float* partial = tiles_workspace(stats, s.c, stream);
  int* counters = tiles_counters(stats, stream);
  const int64_t slices = stats.grid.y;
  const LaunchConfig pcfg{stats.grid, stats.block, 0, stream};
  // The partials, and (the last block of each channel group) their sums and the statistics.
  cost::simt("batchnorm_stats_partial", 3 * s.m * s.c + 4 * slices * s.c,
             cost::f32(s.m * s.c + 4 * slices * s.c + 6 * s.c));
  if (stats.v == 4) {
    launch(pcfg, batchnorm_stats_partial_kernel<4>, partial, counters, save_mean, save_invstd,
           running_mean, running_var, moments, x, s.m, s.c, eps, momentum);
  } else {
    launch(pcfg, batchnorm_stats_partial_kernel<1>, partial, counters, save_mean, save_invstd,
           running_mean, running_var, moments, x, s.m, s.c, eps, momentum);
  }
}

// The backward's one reduction launch: sums of dy and dy·(x − mean), then (last block per channel
// group) dgamma, dbeta and either the dx pass's coefficients (returned: they sit after the
// partials in the workspace, 16-byte aligned when C % 4 == 0) or, with `sums`, SyncBatchNorm's
// raw sums (returns nullptr).
const float* grad_pass(float* dgamma, float* dbeta, double* sums, const float* dy, const float* x,
                       const float* mean, const float* invstd, const BatchNormShape& s,
                       Stream stream) {
  const bool vec_red = s.c % 4 == 0 && aligned16(dy) && aligned16(x) && aligned16(mean);
  const Tiles red = make_tiles(s.m, s.c, vec_red, kPartialRowsPerThread, kPartialMaxBlocks);
  float* partial = tiles_workspace(red, s.c, stream);
  float* coef = sums == nullptr ? partial + static_cast<size_t>(red.grid.y) * 2 * s.c : nullptr;
  int* counters = tiles_counters(red, stream);
  const int64_t slices = red.grid.y;
  const LaunchConfig pcfg{red.grid, red.block, 0, stream};
  cost::simt("batchnorm_backward_partial", 4 * s.m * s.c + 4 * slices * s.c,
             cost::f32(2 * s.m * s.c + 4 * slices * s.c + 7 * s.c));
  if (red.v == 4) {
    launch(pcfg, batchnorm_backward_partial_kernel<4>, partial, counters, dgamma, dbeta, coef, sums,
           dy, x, mean, invstd, s.m, s.c);
  } else {
    launch(pcfg, batchnorm_backward_partial_kernel<1>, partial, counters, dgamma, dbeta, coef, sums,
           dy, x, mean, invstd, s.m, s.c);
  }
  return coef;
}

// y = (x − mean)·(γ·invstd) + β over [M][C].
void normalize(float* y, const float* x, const float* gamma, const float* beta, const float* mean,
               const float* invstd, const BatchNormShape& s, Stream stream) {
  const bool vec = s.c % 4 == 0 && aligned16(y) && aligned16(x) && aligned16(gamma) &&
                   aligned16(beta) && aligned16(mean) && aligned16(invstd);
  const Tiles map = make_tiles(s.m, s.c, vec, kMapRowsPerThread, kMapMaxBlocks);
  const LaunchConfig mcfg{map.grid, map.block, 0, stream};
  cost::simt("batchnorm_normalize", 2 * s.m * s.c, cost::f32(2 * s.m * s.c + 4 * s.c));
  if (map.v == 4) {
    launch(mcfg, batchnorm_normalize_kernel<4, false>, y, x, gamma, beta, mean, invstd, 0.f, s.m,
           s.c);
  } else {
    launch(mcfg, batchnorm_normalize_kernel<1, false>, y, x, gamma, beta, mean, invstd, 0.f, s.m,
           s.c);
  }
}

// dx = γ·invstd·(dy − coef[0][c] − x̂·coef[1][c]) over [M][C].
void backward_dx(float* dx, const float* dy, const float* x, const float* gamma, const float* mean,
                 const float* invstd, const float* coef, const BatchNormShape& s, Stream stream) {
  const bool vec = s.c % 4 == 0 && aligned16(dx) && aligned16(dy) && aligned16(x) &&
                   aligned16(gamma) && aligned16(mean) && aligned16(invstd) && aligned16(coef);
  const Tiles map = make_tiles(s.m, s.c, vec, kMapRowsPerThread, kMapMaxBlocks);
  const LaunchConfig mcfg{map.grid, map.block, 0, stream};
  cost::simt("batchnorm_backward_dx", 4 * s.m * s.c, cost::f32(3 * s.m * s.c + 5 * s.c));
  if (map.v == 4) {
    launch(mcfg, batchnorm_backward_dx_kernel<4>, dx, dy, x, gamma, mean, invstd, coef, s.m, s.c);
  } else {
    launch(mcfg, batchnorm_backward_dx_kernel<1>, dx, dy, x, gamma, mean, invstd, coef, s.m, s.c);
  }
}

}  // namespace

void batchnorm_batch_stats(float* save_mean, float* save_invstd, float* running_mean,
                           float* running_var, const float* x, const BatchNormShape& s, double eps,
                           double momentum, Stream stream) {
  const char* op = "cuda::batchnorm_batch_stats";
  check_shape(op, s);
  KILN_CHECK(save_mean && save_invstd && running_mean && running_var && x, op, ": null pointer");
  KILN_CHECK(eps > 0.0, op, ": eps must be positive");
  stats_pass(save_mean, save_invstd, running_mean, running_var, nullptr, x, s, eps, momentum,
             stream);
}

void batchnorm_moments(double* moments, const float* x, const BatchNormShape& s, Stream stream) {
  const char* op = "cuda::batchnorm_moments";
  check_shape(op, s);
  KILN_CHECK(moments && x, op, ": null pointer");
  stats_pass(nullptr, nullptr, nullptr, nullptr, moments, x, s, 1.0, 0.0, stream);
}

void batchnorm_normalize(float* y, const float* x, const float* gamma, const float* beta,
                         const float* mean, const float* invstd, const BatchNormShape& s,
                         Stream stream) {
  const char* op = "cuda::batchnorm_normalize";
  check_shape(op, s);
  KILN_CHECK(y && x && gamma && beta && mean && invstd, op, ": null pointer");
  normalize(y, x, gamma, beta, mean, invstd, s, stream);
}

void batchnorm_grad_sums(float* dgamma, float* dbeta, double* sums, const float* dy, const float* x,
                         const float* mean, const float* invstd, const BatchNormShape& s,
                         Stream stream) {
  const char* op = "cuda::batchnorm_grad_sums";
  check_shape(op, s);
  KILN_CHECK(dgamma && dbeta && sums && dy && x && mean && invstd, op, ": null pointer");
  grad_pass(dgamma, dbeta, sums, dy, x, mean, invstd, s, stream);
}

void batchnorm_backward_dx(float* dx, const float* dy, const float* x, const float* gamma,
                           const float* mean, const float* invstd, const float* coef,
                           const BatchNormShape& s, Stream stream) {
  const char* op = "cuda::batchnorm_backward_dx";
  check_shape(op, s);
  KILN_CHECK(dx && dy && x && gamma && mean && invstd && coef, op, ": null pointer");
  backward_dx(dx, dy, x, gamma, mean, invstd, coef, s, stream);
}

void batchnorm_forward_train(float* y, float* save_mean, float* save_invstd, float* running_mean,
                             float* running_var, const float* x, const float* gamma,
                             const float* beta, const BatchNormShape& s, double eps,
                             double momentum, Stream stream) {
  const char* op = "cuda::batchnorm_forward_train";
  check_shape(op, s);
  KILN_CHECK(y && save_mean && save_invstd && running_mean && running_var && x && gamma && beta, op,
             ": null pointer");
  KILN_CHECK(eps > 0.0, op, ": eps must be positive");
  batchnorm_batch_stats(save_mean, save_invstd, running_mean, running_var, x, s, eps, momentum,
                        stream);
  normalize(y, x, gamma, beta, save_mean, save_invstd, s, stream);
}

void batchnorm_forward_eval(float* y, const float* x, const float* gamma, const float* beta,
                            const float* running_mean, const float* running_var,
                            const BatchNormShape& s, double eps, Stream stream) {
  const char* op = "cuda::batchnorm_forward_eval";
  check_shape(op, s);
  KILN_CHECK(y && x && gamma && beta && running_mean && running_var, op, ": null pointer");
  KILN_CHECK(eps > 0.0, op, ": eps must be positive");
  const bool vec = s.c % 4 == 0 && aligned16(y) && aligned16(x) && aligned16(gamma) &&
                   aligned16(beta) && aligned16(running_mean) && aligned16(running_var);
  const Tiles map = make_tiles(s.m, s.c, vec, kMapRowsPerThread, kMapMaxBlocks);
  const LaunchConfig cfg{map.grid, map.block, 0, stream};
  const float feps = static_cast<float>(eps);
  cost::simt("batchnorm_normalize_eval", 2 * s.m * s.c, cost::f32(2 * s.m * s.c + 4 * s.c));
  if (map.v == 4) {
    launch(cfg, batchnorm_normalize_kernel<4, true>, y, x, gamma, beta, running_mean, running_var,
           feps, s.m, s.c);
  } else {
    launch(cfg, batchnorm_normalize_kernel<1, true>, y, x, gamma, beta, running_mean, running_var,
           feps, s.m, s.c);
  }
}

void batchnorm_backward(float* dx, float* dgamma, float* dbeta, const float* dy, const float* x,
                        const float* gamma, const float* save_mean, const float* save_invstd,
                        const BatchNormShape& s, Stream stream) {
  const char* op = "cuda::batchnorm_backward";
  check_shape(op, s);
  KILN_CHECK(dx && dgamma && dbeta && dy && x && gamma && save_mean && save_invstd, op,
             ": null pointer");
  const float* coef = grad_pass(dgamma, dbeta, nullptr, dy, x, save_mean, save_invstd, s, stream);
  backward_dx(dx, dy, x, gamma, save_mean, save_invstd, coef, s, stream);
}

void batchnorm_backward_eval(float* dx, const float* dy, const float* gamma,
                             const float* running_var, const BatchNormShape& s, double eps,
                             Stream stream) {
  const char* op = "cuda::batchnorm_backward_eval";
  check_shape(op, s);
  KILN_CHECK(dx && dy && gamma && running_var, op, ": null pointer");
  KILN_CHECK(eps > 0.0, op, ": eps must be positive");
  const bool vec =
      s.c % 4 == 0 && aligned16(dx) && aligned16(dy) && aligned16(gamma) && aligned16(running_var);
  const Tiles map = make_tiles(s.m, s.c, vec, kMapRowsPerThread, kMapMaxBlocks);
  const LaunchConfig cfg{map.grid, map.block, 0, stream};
  const float feps = static_cast<float>(eps);
  cost::simt("batchnorm_backward_eval", 2 * s.m * s.c, cost::f32(2 * s.m * s.c + 2 * s.c));
  if (map.v == 4) {
    launch(cfg, batchnorm_backward_eval_kernel<4>, dx, dy, gamma, running_var, feps, s.m, s.c);
  } else {
    launch(cfg, batchnorm_backward_eval_kernel<1>, dx, dy, gamma, running_var, feps, s.m, s.c);
  }
}

}  // namespace kiln::cuda
