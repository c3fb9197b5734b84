// kernels/fused_block.cu — batchnorm (training) → LeakyReLU → max pooling → dropout as one pass on
// the CUDA device, forward and backward (kernels/fused_block.h; docs/kernels.md, "Fused block").
//
// x [N][H][W][C] (the convolution's output), y, dy, argmax [N][OH][OW][C], NHWC.
//
// Forward, 2 launches (the unfused chain takes 5: batchnorm 2, LeakyReLU, pooling, dropout), or 1
// when the convolution's epilogue took the statistics (stats_ready):
//   batchnorm_batch_stats (partial sums finalised in the same launch, kernels/batchnorm.cu), then
//   fused_block_forward_kernel: one thread per output position and kV channels (kV = 4 when
//   C % 4 == 0 and the pointers allow vector access, as kernels/pooling.cu) reads its window of x
//   once, computes a = leaky(fmaf(x − mean, γ·invstd, β)) per tap, keeps the first maximum (strict
//   >), multiplies by dropout's keep/(1 − p) from Philox (seed, offset, flat index of y: with kV = 4
//   the thread's four channels are exactly one Philox block) and writes y and the argmax only.
// Backward, 2 launches (unfused: dropout, pooling, LeakyReLU, batchnorm 2):
//   fused_block_backward_partial_kernel: in batchnorm's channel tiles (kernels/batchnorm_tiles.cuh)
//   each thread owns input rows of x; for each it gathers the dy of the windows whose argmax points
//   at it (maxpool2d_backward's gather, in its order), each times dropout's factor, applies
//   LeakyReLU's slope where the recomputed bn(x) ≤ 0, and adds g and g·(x − mean) into batchnorm's
//   two partial sums, finalised by the last block of each channel group (backward_finalise); then
//   fused_block_backward_dx_kernel recomputes g the same way and writes
//   dx = γ·invstd·(g − Σg/M − x̂·Σ(g·x̂)/M) (docs/math.md §2). The full-resolution g is never stored.
//
// Bit-exactness with the unfused kernels: every value is produced by the same float operations in
// the same order (products that a separate kernel would have rounded and stored use __fmul_rn, so
// no compiler may contract them into a later add), and the reductions use the same tiles and the
// same fixed trees. Deterministic, no atomics.
//
// Precision: activations (x, y, dy, dx) are read and written through Pack<T, kV> and converted to
// float for the arithmetic, so a 16-bit activation type slots in as another T; only float is
// instantiated today. The per-channel vectors and the statistics stay float.
#include "core/device_code.h"

#include <cstdint>
#include <type_traits>

#include "core/error.h"
#include "core/launch.h"
#include "core/philox.h"
#include "kernels/batchnorm_tiles.cuh"
#include "kernels/fused_block.h"
#include "kernels/pooling_window.cuh"

namespace kiln::cuda {
namespace {

using namespace bn_tiles;

constexpr int kPoolBlock = 256;
constexpr int64_t kPoolMaxBlocks = 4096;

// kV consecutive activations of type T, loaded and stored in one access.
template <typename T, int kV>
struct alignas(sizeof(T) * kV) Pack {
  T v[kV];
};

template <typename T, int kV>
__device__ __forceinline__ void load_act(float (&out)[kV], const T* p) {
  const Pack<T, kV> q = *reinterpret_cast<const Pack<T, kV>*>(p);
#pragma unroll
  for (int k = 0; k < kV; ++k) out[k] = static_cast<float>(q.v[k]);
}

template <typename T, int kV>
__device__ __forceinline__ void store_act(T* p, const float (&in)[kV]) {
  Pack<T, kV> q;
#pragma unroll
  for (int k = 0; k < kV; ++k) q.v[k] = static_cast<T>(in[k]);
  *reinterpret_cast<Pack<T, kV>*>(p) = q;
}

// The shape in 32-bit integers for the pooled index arithmetic (the launcher checks the sizes).
struct FusedDims {
  int n, h, w, c;
  int oh, ow;
  int kh, kw, sh, sw, ph, pw;
  float slope, p, keep_scale;  // dropout: 1/(1 − p)
  uint64_t seed;
  PhiloxOffset offset;  // read from device memory when it lives there (core/philox.h)
};

// Dropout's factors for the kV elements of y starting at flat index e (e % 4 == 0 when kV == 4).
template <int kV>
__device__ __forceinline__ void dropout_factors(float (&f)[kV], const FusedDims& d, int64_t e) {
  const Philox4 r = philox_block(d.seed, d.offset.get(), static_cast<uint64_t>(e / 4));
#pragma unroll
  for (int k = 0; k < kV; ++k) {
    const uint32_t word = kV == 4 ? r.v[k] : r.v[e % 4];
    f[k] = philox_word_to_uniform(word) >= d.p ? d.keep_scale : 0.f;
  }
}

// The per-channel affine map of the training forward, bn(x) = fmaf(x − mean, γ·invstd, β), exactly
// as batchnorm_normalize_kernel computes it.
template <int kV>
struct BnMap {
  float mean[kV], scale[kV], beta[kV];
  __device__ __forceinline__ void load(const float* save_mean, const float* save_invstd,
                                       const float* gamma, const float* b, int channel) {
    const Lanes<kV> mu = Lanes<kV>::load(save_mean + channel);
    const Lanes<kV> is = Lanes<kV>::load(save_invstd + channel);
    const Lanes<kV> g = Lanes<kV>::load(gamma + channel);
    const Lanes<kV> be = Lanes<kV>::load(b + channel);
#pragma unroll
    for (int k = 0; k < kV; ++k) {
      mean[k] = mu.v[k];
      scale[k] = g.v[k] * is.v[k];
      beta[k] = be.v[k];
    }
  }
  __device__ __forceinline__ float operator()(float x, int k) const {
    return fmaf(x - mean[k], scale[k], beta[k]);
  }
};

// ---- forward ------------------------------------------------------------------------------------

template <typename T, int kV>
__global__ void KILN_LAUNCH_BOUNDS(kPoolBlock)
    fused_block_forward_kernel(T* __restrict__ y, uint8_t* __restrict__ argmax,
                               const T* __restrict__ x, const float* __restrict__ save_mean,
                               const float* __restrict__ save_invstd,
                               const float* __restrict__ gamma, const float* __restrict__ beta,
                               FusedDims d) {
  const int cv = d.c / kV;
  const int total = d.n * d.oh * d.ow * cv;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
    const int cg = i % cv;
    int rest = i / cv;
    const int ow = rest % d.ow;
    rest /= d.ow;
    const int oh = rest % d.oh;
    const int n = rest / d.oh;
    const int channel = cg * kV;
    BnMap<kV> bn;
    bn.load(save_mean, save_invstd, gamma, beta, channel);
    const int h0 = oh * d.sh - d.ph, w0 = ow * d.sw - d.pw;
    float best[kV];
    int pos[kV];
    window_max<kV>(best, pos, h0, w0, d.kh, d.kw, d.h, d.w, [&](int ih, int iw, float(&a)[kV]) {
      load_act<T, kV>(a, x + static_cast<int64_t>((n * d.h + ih) * d.w + iw) * d.c + channel);
#pragma unroll
      for (int k = 0; k < kV; ++k) {
        const float t = bn(a[k], k);
        a[k] = t > 0.f ? t : __fmul_rn(d.slope, t);
      }
    });
    const int64_t e0 = static_cast<int64_t>(i) * kV;  // flat index of this thread's first y
    float keep[kV], out[kV];
    dropout_factors<kV>(keep, d, e0);
#pragma unroll
    for (int k = 0; k < kV; ++k) out[k] = __fmul_rn(best[k], keep[k]);
    store_act<T, kV>(y + e0, out);
    if constexpr (kV == 4) {
      reinterpret_cast<uchar4*>(argmax)[i] =
          make_uchar4(static_cast<unsigned char>(pos[0]), static_cast<unsigned char>(pos[1]),
                      static_cast<unsigned char>(pos[2]), static_cast<unsigned char>(pos[3]));
    } else {
      argmax[i] = static_cast<uint8_t>(pos[0]);
    }
  }
}

// ---- backward -----------------------------------------------------------------------------------

// g at input row r (= (n·H + ih)·W + iw) for the thread's kV channels: the routed, dropped-out dy
// (maxpool2d_backward's gather, in its order) times LeakyReLU's derivative at bn(x); v receives x.
template <typename T, int kV>
__device__ __forceinline__ void routed_gradient(float (&g)[kV], float (&v)[kV], const T* dy,
                                                const uint8_t* argmax, const T* x,
                                                const BnMap<kV>& bn, const FusedDims& d, int64_t r,
                                                int channel) {
  const int iw = static_cast<int>(r % d.w);
  const int64_t nh = r / d.w;
  const int ih = static_cast<int>(nh % d.h);
  const int n = static_cast<int>(nh / d.h);
  const int hp = ih + d.ph, wp = iw + d.pw;
  // Windows oh with oh·sh − ph <= ih < oh·sh − ph + kh (as maxpool2d_backward_kernel); a negative
  // dividend truncates towards zero instead of flooring, but the bound is clamped to 0 either way.
  const int oh_first = (hp - d.kh + d.sh) / d.sh, ow_first = (wp - d.kw + d.sw) / d.sw;
  const int oh_lo = oh_first > 0 ? oh_first : 0;
  const int oh_hi = hp / d.sh < d.oh ? hp / d.sh : d.oh - 1;
  const int ow_lo = ow_first > 0 ? ow_first : 0;
  const int ow_hi = wp / d.sw < d.ow ? wp / d.sw : d.ow - 1;
#pragma unroll
  for (int k = 0; k < kV; ++k) g[k] = 0.f;
  for (int oh = oh_lo; oh <= oh_hi; ++oh) {
    for (int ow = ow_lo; ow <= ow_hi; ++ow) {
      const int64_t e = static_cast<int64_t>((n * d.oh + oh) * d.ow + ow) * d.c + channel;
      const int p = (hp - oh * d.sh) * d.kw + (wp - ow * d.sw);
      float gy[kV], keep[kV];
      load_act<T, kV>(gy, dy + e);
      dropout_factors<kV>(keep, d, e);
#pragma unroll
      for (int k = 0; k < kV; ++k)
        if (argmax[e + k] == p) g[k] += __fmul_rn(gy[k], keep[k]);
    }
  }
  load_act<T, kV>(v, x + r * d.c + channel);
#pragma unroll
  for (int k = 0; k < kV; ++k) g[k] = bn(v[k], k) > 0.f ? g[k] : __fmul_rn(d.slope, g[k]);
}

// partial[blockIdx.y][0][c] = Σ g, partial[blockIdx.y][1][c] = Σ g·(x − mean) over the block's
// rows, in the tiles and tree of batchnorm_backward_partial_kernel, finalised as it is by the last
// block of each channel group.
template <typename T, int kV>
__global__ void KILN_LAUNCH_BOUNDS(kBlock)
    fused_block_backward_partial_kernel(float* __restrict__ partial, int* __restrict__ counters,
                                        float* __restrict__ dgamma, float* __restrict__ dbeta,
                                        float* __restrict__ coef, const T* __restrict__ dy,
                                        const uint8_t* __restrict__ argmax, const T* __restrict__ x,
                                        const float* __restrict__ save_mean,
                                        const float* __restrict__ save_invstd,
                                        const float* __restrict__ gamma,
                                        const float* __restrict__ beta, int64_t m, FusedDims d) {
  KILN_SHARED(float, s_dy, [kBlock * 4]);
  KILN_SHARED(float, s_dyx, [kBlock * 4]);
  const TileThread t = tile_thread<kV>(d.c);
  Lanes<kV> sum{}, sumx{};
  if (t.active) {
    BnMap<kV> bn;
    bn.load(save_mean, save_invstd, gamma, beta, t.channel);
#pragma unroll 4
    for (int64_t r = t.row; r < m; r += t.row_stride) {
      float g[kV], v[kV];
      routed_gradient<T, kV>(g, v, dy, argmax, x, bn, d, r, t.channel);
#pragma unroll
      for (int k = 0; k < kV; ++k) {
        sum.v[k] += g[k];
        sumx.v[k] = fmaf(g[k], v[k] - bn.mean[k], sumx.v[k]);
      }
    }
  }
  store_two_partials<kV>(sum, sumx, s_dy, s_dyx, partial, d.c, t);
  finish_two_partials<kV>(partial, counters, d.c, [&](int ch, double sum_g, double sum_gxmu) {
    backward_finalise(dgamma, dbeta, coef, save_invstd, m, d.c, ch, sum_g, sum_gxmu);
  });
}

// dx = γ·invstd·(g − Σg/M − x̂·Σ(g·x̂)/M), x̂ = (x − mean)·invstd, as batchnorm_backward_dx_kernel.
template <typename T, int kV>
__global__ void KILN_LAUNCH_BOUNDS(kBlock)
    fused_block_backward_dx_kernel(T* __restrict__ dx, const T* __restrict__ dy,
                                   const uint8_t* __restrict__ argmax, const T* __restrict__ x,
                                   const float* __restrict__ save_mean,
                                   const float* __restrict__ save_invstd,
                                   const float* __restrict__ gamma, const float* __restrict__ beta,
                                   const float* __restrict__ coef, int64_t m, FusedDims d) {
  const TileThread t = tile_thread<kV>(d.c);
  if (!t.active) return;
  BnMap<kV> bn;
  bn.load(save_mean, save_invstd, gamma, beta, t.channel);
  const Lanes<kV> is = Lanes<kV>::load(save_invstd + t.channel);
  const Lanes<kV> mean_dy = Lanes<kV>::load(coef + t.channel);
  const Lanes<kV> mean_dyxhat = Lanes<kV>::load(coef + d.c + t.channel);
#pragma unroll 4
  for (int64_t r = t.row; r < m; r += t.row_stride) {
    float g[kV], v[kV], out[kV];
    routed_gradient<T, kV>(g, v, dy, argmax, x, bn, d, r, t.channel);
#pragma unroll
    for (int k = 0; k < kV; ++k) {
      const float xhat = (v[k] - bn.mean[k]) * is.v[k];
      out[k] = bn.scale[k] * fmaf(-xhat, mean_dyxhat.v[k], g[k] - mean_dy.v[k]);
    }
    store_act<T, kV>(dx + r * d.c + t.channel, out);
  }
}

// ---- launch geometry ----------------------------------------------------------------------------

FusedDims check_dims(const char* op, const FusedBlockShape& s) {
  const Pool2dShape& q = s.pool;
  check_pool_window(op, q);
  KILN_CHECK(s.p >= 0.f && s.p < 1.f, op, ": p must be in [0, 1), got ", s.p);
  KILN_CHECK(s.eps > 0.0, op, ": eps must be positive");
  const int64_t in = static_cast<int64_t>(q.n) * q.h * q.w * q.c;
  // 32-bit pooled indices, including the grid-stride index one stride past the end.
  const int64_t limit = (int64_t{1} << 31) - kPoolMaxBlocks * kPoolBlock;
  KILN_CHECK(in < limit, op, ": tensors of ", limit, " elements or more are not supported");
  return FusedDims{q.n,
                   q.h,
                   q.w,
                   q.c,
                   q.out_h(),
                   q.out_w(),
                   q.kh,
                   q.kw,
                   q.stride_h,
                   q.stride_w,
                   q.pad_h,
                   q.pad_w,
                   static_cast<float>(s.slope),
                   s.p,
                   1.f / (1.f - s.p),
                   s.seed,
                   s.offset};
}

BatchNormShape bn_shape(const Pool2dShape& q) {
  return {static_cast<int64_t>(q.n) * q.h * q.w, q.c};
}

bool aligned4(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 4 == 0;
}

}  // namespace

void fused_block_forward(float* y, uint8_t* argmax, float* save_mean, float* save_invstd,
                         float* running_mean, float* running_var, const float* x,
                         const float* gamma, const float* beta, const FusedBlockShape& s,
                         Stream stream) {
  const char* op = "cuda::fused_block_forward";
  KILN_CHECK(
      y && argmax && save_mean && save_invstd && running_mean && running_var && x && gamma && beta,
      op, ": null pointer");
  const FusedDims d = check_dims(op, s);
  if (!s.stats_ready)  // else the convolution's epilogue has written them
    batchnorm_batch_stats(save_mean, save_invstd, running_mean, running_var, x, bn_shape(s.pool),
                          s.eps, s.momentum, stream);
  const bool vec = s.pool.c % 4 == 0 && aligned16(x) && aligned16(y) && aligned4(argmax) &&
                   aligned16(save_mean) && aligned16(save_invstd) && aligned16(gamma) &&
                   aligned16(beta);
  const int64_t work = static_cast<int64_t>(d.n) * d.oh * d.ow * (d.c / (vec ? 4 : 1));
  const LaunchConfig cfg{grid_stride_blocks(work, kPoolBlock, kPoolMaxBlocks), kPoolBlock, 0,
                         stream};
  cost::simt("fused_block_forward", 5 * bn_shape(s.pool).m * d.c,
             cost::f32(bn_shape(s.pool).m * d.c + 4 * d.c) + 5 * int64_t{d.n} * d.oh * d.ow * d.c);
  if (vec) {
    launch(cfg, fused_block_forward_kernel<float, 4>, y, argmax, x, save_mean, save_invstd, gamma,
           beta, d);
  } else {
    launch(cfg, fused_block_forward_kernel<float, 1>, y, argmax, x, save_mean, save_invstd, gamma,
           beta, d);
  }
}

void fused_block_backward(float* dx, float* dgamma, float* dbeta, const float* dy,
                          const uint8_t* argmax, const float* x, const float* gamma,
                          const float* beta, const float* save_mean, const float* save_invstd,
                          const FusedBlockShape& s, Stream stream) {
  const char* op = "cuda::fused_block_backward";
  KILN_CHECK(
      dx && dgamma && dbeta && dy && argmax && x && gamma && beta && save_mean && save_invstd, op,
      ": null pointer");
  const FusedDims d = check_dims(op, s);
  const BatchNormShape bs = bn_shape(s.pool);
  check_shape(op, bs);
  // One vector decision for both passes: the tiles of the partial and the dx pass then match
  // those batchnorm_backward picks for the same aligned buffers.
  const bool vec = s.pool.c % 4 == 0 && aligned16(dx) && aligned16(dy) && aligned16(x) &&
                   aligned4(argmax) && aligned16(gamma) && aligned16(beta) &&
                   aligned16(save_mean) && aligned16(save_invstd);
  const Tiles red = make_tiles(bs.m, bs.c, vec, kPartialRowsPerThread, kPartialMaxBlocks);
  float* partial = tiles_workspace(red, bs.c, stream);
  float* coef = partial + static_cast<size_t>(red.grid.y) * 2 * bs.c;
  int* counters = tiles_counters(red, stream);
  const int64_t slices = red.grid.y;
  const LaunchConfig pcfg{red.grid, red.block, 0, stream};
  // The partials, and (the last block of each channel group) their sums and the coefficients.
  cost::simt("fused_block_backward_partial", 6 * bs.m * bs.c + 4 * slices * bs.c,
             cost::f32(bs.m * bs.c + 4 * slices * bs.c + 7 * bs.c) +
                 5 * int64_t{d.n} * d.oh * d.ow * bs.c);
  if (vec) {
    launch(pcfg, fused_block_backward_partial_kernel<float, 4>, partial, counters, dgamma, dbeta,
           coef, dy, argmax, x, save_mean, save_invstd, gamma, beta, bs.m, d);
  } else {
    launch(pcfg, fused_block_backward_partial_kernel<float, 1>, partial, counters, dgamma, dbeta,
           coef, dy, argmax, x, save_mean, save_invstd, gamma, beta, bs.m, d);
  }
  // coef sits after the partials: 16-byte aligned when C % 4 == 0 (the workspace is).
  const Tiles map = make_tiles(bs.m, bs.c, vec, kMapRowsPerThread, kMapMaxBlocks);
  const LaunchConfig mcfg{map.grid, map.block, 0, stream};
  const float* cf = coef;
  cost::simt("fused_block_backward_dx", 6 * bs.m * bs.c,
             cost::f32(2 * bs.m * bs.c + 7 * bs.c) + 5 * int64_t{d.n} * d.oh * d.ow * bs.c);
  if (vec) {
    launch(mcfg, fused_block_backward_dx_kernel<float, 4>, dx, dy, argmax, x, save_mean,
           save_invstd, gamma, beta, cf, bs.m, d);
  } else {
    launch(mcfg, fused_block_backward_dx_kernel<float, 1>, dx, dy, argmax, x, save_mean,
           save_invstd, gamma, beta, cf, bs.m, d);
  }
}

}  // namespace kiln::cuda
