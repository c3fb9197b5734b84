// kernels/pooling.cu — max pooling forward and backward on the CUDA device, NHWC.
//
// x [N][H][W][C]; y, argmax [N][OH][OW][C]; argmax is the row-major position inside the window
// (kh_i·KW + kw_i, docs/design.md §3). Each thread owns one output position and kV consecutive
// channels (kV = 4 when C % 4 == 0 and the pointers allow 16-byte float4 / 4-byte uchar4 access),
// so a warp reads contiguous channels of one pixel: coalesced in NHWC.
//
// Forward: padded positions never win; among the rest the first maximum in row-major order wins
// (strict >), exactly as kernels/cpu/pooling.cpp (so a NaN wins only in the first position; PyTorch
// would propagate it).
// Backward is a gather, not a scatter: each thread owns kV channels of one INPUT pixel, walks the
// (at most ceil(KH/SH)·ceil(KW/SW)) windows that contain it in row-major output order and sums the
// dy whose argmax points at it. Every dx is written exactly once (dx overwritten, no zero pass), no
// atomics are needed for overlapping windows, and the summation order is fixed: deterministic, and
// equal to the CPU reference's scatter order.
// Error bound: forward exact; backward exact for non-overlapping windows, otherwise one rounding
// per contribution (docs/kernels-elementwise.md).
#include "core/device_code.h"

#include <cstdint>
#include <type_traits>

#include "core/error.h"
#include "core/launch.h"
#include "kernels/pooling.h"
#include "kernels/pooling_window.cuh"

namespace kiln::cuda {
namespace {

constexpr int kBlock = 256;
constexpr int64_t kMaxBlocks = 4096;

unsigned grid_for(int64_t work) {
  return grid_stride_blocks(work, kBlock, kMaxBlocks);
}

// The shape in 32-bit integers (the launcher checks every index fits), so the index arithmetic in
// the kernels is 32-bit.
struct PoolDims {
  int n, h, w, cv;  // cv: channel groups of kV channels
  int oh, ow;
  int kh, kw, sh, sw, ph, pw;
};

template <int kV>
using FloatV = std::conditional_t<kV == 4, float4, float>;
template <int kV>
using ByteV = std::conditional_t<kV == 4, uchar4, unsigned char>;

template <int kV>
__device__ __forceinline__ float lane(const FloatV<kV>& v, int k) {
  if constexpr (kV == 4) {
    return k == 0 ? v.x : k == 1 ? v.y : k == 2 ? v.z : v.w;
  } else {
    return v;
  }
}

__device__ __forceinline__ int clamp_low(int v) {
  return v > 0 ? v : 0;
}

// One output element (kV channels) per grid-stride step.
template <int kV>
__global__ void KILN_LAUNCH_BOUNDS(kBlock)
    maxpool2d_forward_kernel(float* __restrict__ y, uint8_t* __restrict__ argmax,
                             const float* __restrict__ x, PoolDims d) {
  const int total = d.n * d.oh * d.ow * d.cv;
  const FloatV<kV>* xv = reinterpret_cast<const FloatV<kV>*>(x);
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
    const int cg = i % d.cv;
    int rest = i / d.cv;
    const int ow = rest % d.ow;
    rest /= d.ow;
    const int oh = rest % d.oh;
    const int n = rest / d.oh;
    const int h0 = oh * d.sh - d.ph, w0 = ow * d.sw - d.pw;
    float best[kV];
    int pos[kV];
    window_max<kV>(best, pos, h0, w0, d.kh, d.kw, d.h, d.w, [&](int ih, int iw, float(&v)[kV]) {
      const FloatV<kV> f = xv[((n * d.h + ih) * d.w + iw) * d.cv + cg];
#pragma unroll
      for (int k = 0; k < kV; ++k) v[k] = lane<kV>(f, k);
    });
    if constexpr (kV == 4) {
      reinterpret_cast<float4*>(y)[i] = make_float4(best[0], best[1], best[2], best[3]);
      reinterpret_cast<uchar4*>(argmax)[i] =
          make_uchar4(static_cast<unsigned char>(pos[0]), static_cast<unsigned char>(pos[1]),
                      static_cast<unsigned char>(pos[2]), static_cast<unsigned char>(pos[3]));
    } else {
      y[i] = best[0];
      argmax[i] = static_cast<uint8_t>(pos[0]);
    }
  }
}

// One input element (kV channels) per grid-stride step; see the file comment.
template <int kV>
__global__ void KILN_LAUNCH_BOUNDS(kBlock)
    maxpool2d_backward_kernel(float* __restrict__ dx, const float* __restrict__ dy,
                              const uint8_t* __restrict__ argmax, PoolDims d) {
  const int total = d.n * d.h * d.w * d.cv;
  const FloatV<kV>* dyv = reinterpret_cast<const FloatV<kV>*>(dy);
  const ByteV<kV>* av = reinterpret_cast<const ByteV<kV>*>(argmax);
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
    const int cg = i % d.cv;
    int rest = i / d.cv;
    const int iw = rest % d.w;
    rest /= d.w;
    const int ih = rest % d.h;
    const int n = rest / d.h;
    // Windows oh with oh·sh − ph <= ih < oh·sh − ph + kh, i.e. ceil((hp − kh + 1)/sh) <= oh <=
    // hp/sh (likewise for ow). A negative dividend truncates towards zero instead of flooring, but
    // then the bound is clamped to 0 either way.
    const int hp = ih + d.ph, wp = iw + d.pw;
    const int oh_lo = clamp_low((hp - d.kh + d.sh) / d.sh);
    const int oh_hi = hp / d.sh < d.oh ? hp / d.sh : d.oh - 1;
    const int ow_lo = clamp_low((wp - d.kw + d.sw) / d.sw);
    const int ow_hi = wp / d.sw < d.ow ? wp / d.sw : d.ow - 1;
    float sum[kV];
#pragma unroll
    for (int k = 0; k < kV; ++k) sum[k] = 0.f;
    for (int oh = oh_lo; oh <= oh_hi; ++oh) {
      for (int ow = ow_lo; ow <= ow_hi; ++ow) {
        const int o = ((n * d.oh + oh) * d.ow + ow) * d.cv + cg;
        const int p = (hp - oh * d.sh) * d.kw + (wp - ow * d.sw);
        const FloatV<kV> g = dyv[o];
        const ByteV<kV> a = av[o];
        if constexpr (kV == 4) {
          if (a.x == p) sum[0] += g.x;
          if (a.y == p) sum[1] += g.y;
          if (a.z == p) sum[2] += g.z;
          if (a.w == p) sum[3] += g.w;
        } else {
          if (a == p) sum[0] += g;
        }
      }
    }
    if constexpr (kV == 4) {
      reinterpret_cast<float4*>(dx)[i] = make_float4(sum[0], sum[1], sum[2], sum[3]);
    } else {
      dx[i] = sum[0];
    }
  }
}

// Checks the shape and returns it in 32-bit form with channels grouped by v.
PoolDims check_dims(const char* op, const Pool2dShape& s, int v) {
  check_pool_window(op, s);
  const int64_t in = static_cast<int64_t>(s.n) * s.h * s.w * s.c;
  const int64_t out = static_cast<int64_t>(s.n) * s.out_h() * s.out_w() * s.c;
  // 32-bit indices, including the grid-stride index one stride past the end.
  const int64_t limit = (int64_t{1} << 31) - kMaxBlocks * kBlock;
  KILN_CHECK(in < limit && out < limit, op, ": tensors of ", limit,
             " elements or more are not supported");
  return PoolDims{s.n,  s.h,  s.w,        s.c / v,    s.out_h(), s.out_w(),
                  s.kh, s.kw, s.stride_h, s.stride_w, s.pad_h,   s.pad_w};
}

// The cost model's traffic of either pass: the input-sized and the output-sized tensor, once each,
// and the one-byte argmax per output element.
int64_t pool_bytes(const Pool2dShape& s) {
  const int64_t in = int64_t{s.n} * s.h * s.w * s.c,
                out = int64_t{s.n} * s.out_h() * s.out_w() * s.c;
  return cost::f32(in + out) + out;
}

}  // namespace

void maxpool2d_forward(float* y, uint8_t* argmax, const float* x, const Pool2dShape& s,
                       Stream stream) {
  KILN_CHECK(y != nullptr && argmax != nullptr && x != nullptr,
             "cuda::maxpool2d_forward: null pointer");
  // float4 needs 16-byte aligned x and y; uchar4 needs 4-byte aligned argmax.
  const bool vec =
      s.c % 4 == 0 && aligned16(x) && aligned16(y) && reinterpret_cast<uintptr_t>(argmax) % 4 == 0;
  const PoolDims d = check_dims("cuda::maxpool2d_forward", s, vec ? 4 : 1);
  const int64_t work = static_cast<int64_t>(d.n) * d.oh * d.ow * d.cv;
  const LaunchConfig cfg{grid_for(work), kBlock, 0, stream};
  cost::simt("maxpool2d_forward", int64_t{s.n} * s.out_h() * s.out_w() * s.c * s.kh * s.kw,
             pool_bytes(s));
  if (vec) {
    launch(cfg, maxpool2d_forward_kernel<4>, y, argmax, x, d);
  } else {
    launch(cfg, maxpool2d_forward_kernel<1>, y, argmax, x, d);
  }
}

void maxpool2d_backward(float* dx, const float* dy, const uint8_t* argmax, const Pool2dShape& s,
                        Stream stream) {
  KILN_CHECK(dx != nullptr && dy != nullptr && argmax != nullptr,
             "cuda::maxpool2d_backward: null pointer");
  const bool vec = s.c % 4 == 0 && aligned16(dx) && aligned16(dy) &&
                   reinterpret_cast<uintptr_t>(argmax) % 4 == 0;
  const PoolDims d = check_dims("cuda::maxpool2d_backward", s, vec ? 4 : 1);
  const int64_t work = static_cast<int64_t>(d.n) * d.h * d.w * d.cv;
  const LaunchConfig cfg{grid_for(work), kBlock, 0, stream};
  cost::simt("maxpool2d_backward", 0, pool_bytes(s));
  if (vec) {
    launch(cfg, maxpool2d_backward_kernel<4>, dx, dy, argmax, d);
  } else {
    launch(cfg, maxpool2d_backward_kernel<1>, dx, dy, argmax, d);
  }
}

}  // namespace kiln::cuda
