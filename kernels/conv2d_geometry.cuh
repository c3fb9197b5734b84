// kernels/conv2d_geometry.cuh — what the CUDA convolution kernels (kernels/conv2d.cu on CUDA
// cores, kernels/conv2d_tc.cu on tensor cores) share about the geometry of an NHWC convolution:
// the sizes as the kernels see them, the 3×3 / stride-1 / padding-1 constants, and the walk over
// the reduction order k = (i·KW + j)·C + c of the implicit GEMM.
#pragma once

#include "core/device_code.h"

#include <cstdint>

#include "core/error.h"
#include "kernels/conv2d.h"

namespace kiln::cuda::conv {

// The geometry the kernels see (all ints; every tensor in Kiln has fewer than 2³¹ elements per
// image, per-image offsets are int, image bases int64).
struct ConvDims {
  int n, h, w, ci;  // input
  int co, oh, ow;   // output channels and size
  int kh, kw, sh, sw, ph, pw;
};

// Kernel-size/stride/padding accessors: constants on the 3×3 / stride-1 / padding-1 fast path.
template <bool kFast>
struct Geom {
  const ConvDims& d;
  __device__ int kh() const { return kFast ? 3 : d.kh; }
  __device__ int kw() const { return kFast ? 3 : d.kw; }
  __device__ int sh() const { return kFast ? 1 : d.sh; }
  __device__ int sw() const { return kFast ? 1 : d.sw; }
  __device__ int ph() const { return kFast ? 1 : d.ph; }
  __device__ int pw() const { return kFast ? 1 : d.pw; }
};

__device__ __forceinline__ bool inside(int v, int n) {
  return static_cast<unsigned>(v) < static_cast<unsigned>(n);
}

// A position k of the reduction order (i, j, c) — k = (i·KW + j)·C + c, C channels — as its tap
// (i, j) and channel c. The vector loaders walk it one k-step at a time without divisions.
struct Tap {
  int i, j, c;
  template <bool kFast>
  __device__ static Tap of(int k, int channels, const Geom<kFast>& g) {
    const int t = k / channels;
    return {t / g.kw(), t % g.kw(), k % channels};
  }
  template <bool kFast>
  __device__ void advance(int step, int channels, const Geom<kFast>& g) {
    c += step;
    while (c >= channels) {
      c -= channels;
      if (++j == g.kw()) {
        j = 0;
        ++i;
      }
    }
  }
};

// The window of a GEMM row: the offset of its image, a row and a column, valid = false for a row
// past the end. forward_window: output pixel m of N·OH·OW, its image in x, the input row and
// column of tap (0, 0). backward_data_window: input pixel m of N·H·W, its image in dy, h + ph and
// w + pw.
struct Window {
  int64_t image;
  int row0, col0;
  bool valid;
};
template <bool kFast>
__device__ __forceinline__ Window forward_window(const ConvDims& d, const Geom<kFast>& g, int m) {
  const int pixels = d.oh * d.ow;
  if (m >= d.n * pixels) return {0, 0, 0, false};
  const int n = m / pixels, p = m - n * pixels, oh = p / d.ow, ow = p - oh * d.ow;
  return {static_cast<int64_t>(n) * d.h * d.w * d.ci, oh * g.sh() - g.ph(), ow * g.sw() - g.pw(),
          true};
}

template <bool kFast>
__device__ __forceinline__ Window backward_data_window(const ConvDims& d, const Geom<kFast>& g,
                                                       int m) {
  const int pixels = d.h * d.w;
  if (m >= d.n * pixels) return {0, 0, 0, false};
  const int n = m / pixels, p = m - n * pixels, h = p / d.w, w = p - h * d.w;
  return {static_cast<int64_t>(n) * d.oh * d.ow * d.co, h + g.ph(), w + g.pw(), true};
}

// Backward-data: the dy pixel index (oh·OW + ow) that tap (i, j) of the input pixel with
// (h + ph, w + pw) = (hp, wp) reads — oh·sh = hp − i, ow·sw = wp − j — or −1.
template <bool kFast>
__device__ __forceinline__ int backward_data_source(const ConvDims& d, const Geom<kFast>& g, int hp,
                                                    int wp, int i, int j) {
  int th = hp - i, tw = wp - j;
  if constexpr (!kFast) {
    if (th < 0 || tw < 0 || th % g.sh() != 0 || tw % g.sw() != 0) return -1;
    th /= g.sh();
    tw /= g.sw();
  }
  return inside(th, d.oh) && inside(tw, d.ow) ? th * d.ow + tw : -1;
}

// The checked geometry of shape s; `op` names the caller in the error message.
inline ConvDims dims_of(const char* op, const Conv2dShape& s) {
  KILN_CHECK(s.n > 0 && s.h > 0 && s.w > 0 && s.c_in > 0 && s.c_out > 0 && s.kh > 0 && s.kw > 0 &&
                 s.stride_h > 0 && s.stride_w > 0 && s.pad_h >= 0 && s.pad_w >= 0,
             op, ": bad shape");
  KILN_CHECK(s.out_h() > 0 && s.out_w() > 0, op, ": the kernel (", s.kh, "x", s.kw,
             ") is larger than the padded input (", s.h, "x", s.w, ")");
  const int64_t x_elems = int64_t{s.n} * s.h * s.w * s.c_in;
  const int64_t y_elems = int64_t{s.n} * s.out_h() * s.out_w() * s.c_out;
  KILN_CHECK(x_elems < (int64_t{1} << 31) && y_elems < (int64_t{1} << 31), op,
             ": tensors of 2^31 elements or more are not supported");
  return ConvDims{s.n,  s.h,  s.w,        s.c_in,     s.c_out, s.out_h(), s.out_w(),
                  s.kh, s.kw, s.stride_h, s.stride_w, s.pad_h, s.pad_w};
}

}  // namespace kiln::cuda::conv
