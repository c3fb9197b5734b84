// kernels/batchnorm.cu — batch normalisation over the channels of an NHWC activation, CUDA device.
//
// x, y, dy, dx [M][C] (M = N·H·W, channels fastest); per-channel vectors [C].
//
// Every kernel over [M][C] uses the channel tiles of kernels/batchnorm_tiles.cuh: consecutive
// threads touch consecutive channels of one row (coalesced for any C), and a thread's channels
// never change, so it loads its per-channel constants once and walks the rows.
//
// Statistics are deterministic: a partial pass writes, per block row-slice, the per-channel sums
// of its rows (a fixed-order tree over ty in shared memory) to a workspace [gy][2][C]; a finalise
// kernel adds the gy partials of each channel in a fixed order, in double. The grid depends only
// on (M, C) and the alignment, so repeated runs give identical bits; there are no atomics.
//
// Numerics of the mean/variance: shifted sums. Each channel's sums are of d = x − K with the shift
// K = x[0][c] (the channel's first value), Σd and Σd², and var = Σd²/M − (Σd/M)². A shift drawn
// from the data keeps (mean − K)² of the order of the variance, so the subtraction cancels at most
// a few bits, unlike the raw Σx² − (Σx)²/M which fails when |mean| ≫ std. One read of x suffices.
//
// Training forward: partial sums → finalise (mean, biased var, save_mean, save_invstd, running
// stats with the unbiased variance, PyTorch's convention) → y = (x − mean)·(γ·invstd) + β.
// Backward (docs/math.md §2): dx = γ·invstd/M·(M·dy − Σdy − x̂·Σ(dy·x̂)), x̂ = (x − mean)·invstd:
// one reduction pass for Σdy and Σdy·(x − mean), a finalise that accumulates dgamma += Σdy·x̂ and
// dbeta += Σdy and stores Σdy/M and Σ(dy·x̂)/M, then one elementwise pass for dx (overwritten).
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
template <int kV>
__global__ void KILN_LAUNCH_BOUNDS(kBlock)
    batchnorm_stats_partial_kernel(float* __restrict__ partial, const float* __restrict__ x,
                                   int64_t m, int c) {
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
}

// Adds the `slices` partials [slices][2][C] of each channel in a fixed order, in double; thread
// (tx, 0) of the block gets channel blockIdx.x·kFinX + tx's two sums. Every thread must call it.
__device__ __forceinline__ bool finalise_sums(const float* __restrict__ partial, int slices, int c,
                                              double& sum0, double& sum1) {
  KILN_SHARED(double, s0, [kFinY][kFinX]);
  KILN_SHARED(double, s1, [kFinY][kFinX]);
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int ch = blockIdx.x * kFinX + tx;
  double a = 0.0, b = 0.0;
  if (ch < c) {
    for (int s = ty; s < slices; s += kFinY) {
      a += partial[static_cast<int64_t>(s) * 2 * c + ch];
      b += partial[static_cast<int64_t>(s) * 2 * c + c + ch];
    }
  }
  s0[ty][tx] = a;
  s1[ty][tx] = b;
  for (int span = kFinY / 2; span >= 1; span /= 2) {
    __syncthreads();
    if (ty < span) {
      s0[ty][tx] += s0[ty + span][tx];
      s1[ty][tx] += s1[ty + span][tx];
    }
  }
  __syncthreads();
  sum0 = s0[0][tx];
  sum1 = s1[0][tx];
  return ty == 0 && ch < c;
}

// Batch mean and biased variance from the shifted sums; save_mean, save_invstd; running stats.
__global__ void KILN_LAUNCH_BOUNDS(kFinX* kFinY)
    batchnorm_stats_finalize_kernel(float* __restrict__ save_mean, float* __restrict__ save_invstd,
                                    float* __restrict__ running_mean,
                                    float* __restrict__ running_var,
                                    const float* __restrict__ partial, const float* __restrict__ x,
                                    int slices, int64_t m, int c, double eps, double momentum) {
  double sum_d, sum_dd;
  if (!finalise_sums(partial, slices, c, sum_d, sum_dd)) return;
  const int ch = blockIdx.x * kFinX + threadIdx.x;
  const double md = static_cast<double>(m);
  const double mean_d = sum_d / md;
  double var = sum_dd / md - mean_d * mean_d;
  if (var < 0.0) var = 0.0;
  const double mean = static_cast<double>(x[ch]) + mean_d;
  save_mean[ch] = static_cast<float>(mean);
  save_invstd[ch] = static_cast<float>(1.0 / sqrt(var + eps));
  const double unbiased = m > 1 ? var * md / (md - 1.0) : var;
  running_mean[ch] = static_cast<float>((1.0 - momentum) * running_mean[ch] + momentum * mean);
  running_var[ch] = static_cast<float>((1.0 - momentum) * running_var[ch] + momentum * unbiased);
}

// SyncBatchNorm's per-rank moments, from the same shifted sums: moments[0][c] = mean,
// moments[1][c] = M2 = Σ (x − mean)² = Σd² − (Σd)²/M (d = x − K), in double.
__global__ void KILN_LAUNCH_BOUNDS(kFinX* kFinY)
    batchnorm_moments_finalize_kernel(double* __restrict__ moments,
                                      const float* __restrict__ partial,
                                      const float* __restrict__ x, int slices, int64_t m, int c) {
  double sum_d, sum_dd;
  if (!finalise_sums(partial, slices, c, sum_d, sum_dd)) return;
  const int ch = blockIdx.x * kFinX + threadIdx.x;
  const double md = static_cast<double>(m);
  const double m2 = sum_dd - sum_d * sum_d / md;
  moments[ch] = static_cast<double>(x[ch]) + sum_d / md;
  moments[c + ch] = m2 < 0.0 ? 0.0 : m2;
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
// block's rows.
template <int kV>
__global__ void KILN_LAUNCH_BOUNDS(kBlock)
    batchnorm_backward_partial_kernel(float* __restrict__ partial, const float* __restrict__ dy,
                                      const float* __restrict__ x, const float* __restrict__ mean,
                                      int64_t m, int c) {
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
}

// dgamma += Σ dy·x̂, dbeta += Σ dy; coef[0][c] = Σdy/M, coef[1][c] = Σ(dy·x̂)/M for the dx pass,
// or (coef null: SyncBatchNorm, whose means are the global batch's) sums[0][c] = Σdy,
// sums[1][c] = Σ(dy·x̂) in double, for the merge across ranks.
__global__ void KILN_LAUNCH_BOUNDS(kFinX* kFinY)
    batchnorm_backward_finalize_kernel(float* __restrict__ dgamma, float* __restrict__ dbeta,
                                       float* __restrict__ coef, double* __restrict__ sums,
                                       const float* __restrict__ partial,
                                       const float* __restrict__ save_invstd, int slices, int64_t m,
                                       int c) {
  double sum_dy, sum_dyxmu;
  if (!finalise_sums(partial, slices, c, sum_dy, sum_dyxmu)) return;
  const int ch = blockIdx.x * kFinX + threadIdx.x;
  const double sum_dyxhat = sum_dyxmu * static_cast<double>(save_invstd[ch]);
  dgamma[ch] = static_cast<float>(static_cast<double>(dgamma[ch]) + sum_dyxhat);
  dbeta[ch] = static_cast<float>(static_cast<double>(dbeta[ch]) + sum_dy);
  if (coef == nullptr) {
    sums[ch] = sum_dy;
    sums[c + ch] = sum_dyxhat;
    return;
  }
  const double md = static_cast<double>(m);
  coef[ch] = static_cast<float>(sum_dy / md);
  coef[c + ch] = static_cast<float>(sum_dyxhat / md);
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

// The statistics' partial pass over x: the workspace of [slices][2][C] shifted sums.
float* stats_partials(const float* x, const BatchNormShape& s, Stream stream, int* slices) {
  const bool vec_stats = s.c % 4 == 0 && aligned16(x);
  const Tiles stats = make_tiles(s.m, s.c, vec_stats, kPartialRowsPerThread, kPartialMaxBlocks);
  float* partial = tiles_workspace(stats, s.c, stream);
  *slices = static_cast<int>(stats.grid.y);
  const LaunchConfig pcfg{stats.grid, stats.block, 0, stream};
  if (stats.v == 4) {
    launch(pcfg, batchnorm_stats_partial_kernel<4>, partial, x, s.m, s.c);
  } else {
    launch(pcfg, batchnorm_stats_partial_kernel<1>, partial, x, s.m, s.c);
  }
  return partial;
}

// The backward's partial pass: [slices][2][C] sums of dy and dy·(x − mean), then `extra` floats
// of the same workspace (16-byte aligned when C % 4 == 0) at *after.
float* grad_partials(const float* dy, const float* x, const float* mean, const BatchNormShape& s,
                     Stream stream, int* slices, float** after) {
  const bool vec_red = s.c % 4 == 0 && aligned16(dy) && aligned16(x) && aligned16(mean);
  const Tiles red = make_tiles(s.m, s.c, vec_red, kPartialRowsPerThread, kPartialMaxBlocks);
  float* partial = tiles_workspace(red, s.c, stream);
  *after = partial + static_cast<size_t>(red.grid.y) * 2 * s.c;
  *slices = static_cast<int>(red.grid.y);
  const LaunchConfig pcfg{red.grid, red.block, 0, stream};
  if (red.v == 4) {
    launch(pcfg, batchnorm_backward_partial_kernel<4>, partial, dy, x, mean, s.m, s.c);
  } else {
    launch(pcfg, batchnorm_backward_partial_kernel<1>, partial, dy, x, mean, s.m, s.c);
  }
  return partial;
}

// y = (x − mean)·(γ·invstd) + β over [M][C].
void normalize(float* y, const float* x, const float* gamma, const float* beta, const float* mean,
               const float* invstd, const BatchNormShape& s, Stream stream) {
  const bool vec = s.c % 4 == 0 && aligned16(y) && aligned16(x) && aligned16(gamma) &&
                   aligned16(beta) && aligned16(mean) && aligned16(invstd);
  const Tiles map = make_tiles(s.m, s.c, vec, kMapRowsPerThread, kMapMaxBlocks);
  const LaunchConfig mcfg{map.grid, map.block, 0, stream};
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
  int slices = 0;
  const float* partial = stats_partials(x, s, stream, &slices);
  launch({finalize_grid(s.c), dim3(kFinX, kFinY), 0, stream}, batchnorm_stats_finalize_kernel,
         save_mean, save_invstd, running_mean, running_var, partial, x, slices, s.m, s.c, eps,
         momentum);
}

void batchnorm_moments(double* moments, const float* x, const BatchNormShape& s, Stream stream) {
  const char* op = "cuda::batchnorm_moments";
  check_shape(op, s);
  KILN_CHECK(moments && x, op, ": null pointer");
  int slices = 0;
  const float* partial = stats_partials(x, s, stream, &slices);
  launch({finalize_grid(s.c), dim3(kFinX, kFinY), 0, stream}, batchnorm_moments_finalize_kernel,
         moments, partial, x, slices, s.m, s.c);
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
  int slices = 0;
  float* unused = nullptr;
  const float* partial = grad_partials(dy, x, mean, s, stream, &slices, &unused);
  launch({finalize_grid(s.c), dim3(kFinX, kFinY), 0, stream}, batchnorm_backward_finalize_kernel,
         dgamma, dbeta, static_cast<float*>(nullptr), sums, partial, invstd, slices, s.m, s.c);
}

void batchnorm_backward_dx(float* dx, const float* dy, const float* x, const float* gamma,
                           const float* mean, const float* invstd, const float* coef,
                           const BatchNormShape& s, Stream stream) {
  const char* op = "cuda::batchnorm_backward_dx";
  check_shape(op, s);
  KILN_CHECK(dx && dy && x && gamma && mean && invstd && coef, op, ": null pointer");
  backward_dx(dx, dy, x, gamma, mean, invstd, coef, s, stream);
}

namespace bn_tiles {

void launch_backward_finalize(float* dgamma, float* dbeta, float* coef, const float* partial,
                              const float* save_invstd, int slices, const BatchNormShape& s,
                              Stream stream) {
  launch({finalize_grid(s.c), dim3(kFinX, kFinY), 0, stream}, batchnorm_backward_finalize_kernel,
         dgamma, dbeta, coef, static_cast<double*>(nullptr), partial, save_invstd, slices, s.m,
         s.c);
}

}  // namespace bn_tiles

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
  int slices = 0;
  float* coef = nullptr;
  const float* partial = grad_partials(dy, x, save_mean, s, stream, &slices, &coef);
  launch_backward_finalize(dgamma, dbeta, coef, partial, save_invstd, slices, s, stream);
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
  if (map.v == 4) {
    launch(cfg, batchnorm_backward_eval_kernel<4>, dx, dy, gamma, running_var, feps, s.m, s.c);
  } else {
    launch(cfg, batchnorm_backward_eval_kernel<1>, dx, dy, gamma, running_var, feps, s.m, s.c);
  }
}

}  // namespace kiln::cuda
