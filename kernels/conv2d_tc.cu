// kernels/conv2d_tc.cu — 2-D convolution on the tensor cores (kernels/conv2d_tc.h): implicit
// GEMMs on the tile engine of kernels/tc_gemm_tile.cuh, NHWC, no im2col buffer.
//   forward   M = N·OH·OW (output pixels)  N = C_out  K = KH·KW·C_in  (k = (i, j, ci))
//             A[m][k] = x[n, oh·sh−ph+i, ow·sw−pw+j, ci] (zero outside), B[co][k] = w[co][k]
//             (the filter rows are K-contiguous: kernels/tc_gemm_tile.cuh's RowsLoader),
//             bias added in the epilogue; y[m][co] is the NHWC output.
// A 16-byte chunk of A is kVec consecutive channels of one tap (4 fp32, 8 bf16): with
// C_in % kVec == 0 (and x aligned) it never crosses a tap and is copied by cp.async, the thread's
// tap walked a k-tile at a time without divisions; otherwise each element is gathered alone.
// Deterministic: each output element is summed by one warp in a fixed k order.
// Error bound as kernels/linear_tc.cu's, K = KH·KW·C_in: |err| <= (K + 2)·2⁻²³·Σ_k|x·w| on the
// rounded inputs, plus 2⁻⁸·|y| for bf16 outputs.
#include "core/device_code.h"

#include <cstdint>

#include "core/error.h"
#include "core/launch.h"
#include "kernels/conv2d_geometry.cuh"
#include "kernels/conv2d_tc.h"
#include "kernels/tc_gemm_tile.cuh"

namespace kiln::cuda {
namespace {

using conv::ConvDims;
using conv::Geom;
using conv::inside;
using conv::Tap;
using tc_tile::Config;

// Forward A: im2col rows of x, read along k = (i, j, ci); the tensor-core loader concept of
// kernels/tc_gemm_tile.cuh. Each thread copies 2 chunks per k-tile, of two rows but at the same
// k offset ((tid % 4)·kVec), so one tap serves both.
template <class T>
struct ConvForwardInputLoader : tc_tile::KMajorChunks<T> {
  using Base = tc_tile::KMajorChunks<T>;
  using Cfg = Config<T>;
  static_assert(Cfg::kThreads % Base::kChunksPerRow == 0, "a thread's chunks share their k offset");
  const ConvDims& d;
  const T* img[Base::kPerThread];  // image base, nullptr for rows past M
  int ih0[Base::kPerThread], iw0[Base::kPerThread];
  int k, k_end;  // k of this thread's chunks in the current k-tile; K
  Tap tap;       // (i, j, ci) of k (vec only)
  bool vec;      // C_in % kVec == 0 and x 16-byte aligned
  __device__ ConvForwardInputLoader(const T* x, const ConvDims& d_, int m0, int k_end_, bool vec_)
      : d(d_),
        k((static_cast<int>(threadIdx.x) % Base::kChunksPerRow) * Cfg::kVec),
        k_end(k_end_),
        vec(vec_) {
    const Geom<false> g{d};
#pragma unroll
    for (int i = 0; i < Base::kPerThread; ++i) {
      const conv::Window win =
          conv::forward_window(d, g, m0 + Base::chunk(i) / Base::kChunksPerRow);
      img[i] = win.valid ? x + win.image : nullptr;
      ih0[i] = win.ih0;
      iw0[i] = win.iw0;
    }
    tap = Tap::of(k, d.ci, g);
  }
  __device__ void load(T* stage) {
    const Geom<false> g{d};
    const int kk = k % Cfg::BK;
#pragma unroll
    for (int i = 0; i < Base::kPerThread; ++i) {
      T* dst = stage + (Base::chunk(i) / Base::kChunksPerRow) * Cfg::kLdK + kk;
      if (vec) {
        const int ih = ih0[i] + tap.i, iw = iw0[i] + tap.j;
        const bool in = img[i] != nullptr && k < k_end && inside(ih, d.h) && inside(iw, d.w);
        tc_tile::copy_chunk(
            dst, in ? img[i] + (ih * d.w + iw) * d.ci + tap.c : static_cast<const T*>(nullptr),
            in ? Cfg::kVec : 0, true);
      } else {
#pragma unroll
        for (int u = 0; u < Cfg::kVec; ++u) {
          const Tap p = Tap::of(k + u, d.ci, g);
          const int ih = ih0[i] + p.i, iw = iw0[i] + p.j;
          dst[u] = img[i] != nullptr && k + u < k_end && inside(ih, d.h) && inside(iw, d.w)
                       ? img[i][(ih * d.w + iw) * d.ci + p.c]
                       : tc_tile::zero_element<T>();
        }
      }
    }
    k += Cfg::BK;
    if (vec) tap.advance(Cfg::BK, d.ci, g);
  }
};

// y[m][co] = Σ_k A[m][k]·w[co][k] + b[co] (module comment). vec_x: C_in % kVec == 0 and x
// aligned; vec_w: K % kVec == 0 and w aligned.
template <class T>
__global__ void KILN_LAUNCH_BOUNDS(Config<T>::kThreads)
    conv2d_tc_forward_kernel(T* __restrict__ y, const T* __restrict__ x, const T* __restrict__ w,
                             const float* __restrict__ b, ConvDims d, bool vec_x, bool vec_w) {
  const tc_tile::Origin o = tc_tile::block_origin<T>();
  const int K = d.kh * d.kw * d.ci, M = d.n * d.oh * d.ow;
  ConvForwardInputLoader<T> la(x, d, o.m0, K, vec_x);        // (BM, K)
  tc_tile::RowsLoader<T> lb(w, K, d.co, o.n0, 0, K, vec_w);  // (BN, K)
  tc_tile::run_block<T>(o, la, lb, K, tc_tile::StoreEpilogue<T, false>{y, d.co, M, d.co, b});
}

template <class T>
void forward(T* y, const T* x, const T* w, const float* b, const Conv2dShape& s, Stream stream,
             const char* op) {
  const ConvDims d = conv::dims_of(op, s);
  using Cfg = Config<T>;
  const int K = d.kh * d.kw * d.ci, M = d.n * d.oh * d.ow;
  const bool vec_x = d.ci % Cfg::kVec == 0 && aligned16(x);
  const bool vec_w = K % Cfg::kVec == 0 && aligned16(w);
  launch({dim3(ceil_div(M, Cfg::BM), ceil_div(d.co, Cfg::BN)), dim3(Cfg::kThreads), 0, stream},
         conv2d_tc_forward_kernel<T>, y, x, w, b, d, vec_x, vec_w);
}

}  // namespace

void conv2d_forward_tf32(float* y, const float* x, const float* w, const float* b,
                         const Conv2dShape& s, Stream stream) {
  forward<float>(y, x, w, b, s, stream, "cuda::conv2d_forward_tf32");
}
void conv2d_forward_bf16(std::uint16_t* y, const std::uint16_t* x, const std::uint16_t* w,
                         const float* b, const Conv2dShape& s, Stream stream) {
  forward<std::uint16_t>(y, x, w, b, s, stream, "cuda::conv2d_forward_bf16");
}

bool conv2d_tc_suits(const Conv2dShape& s) {
  return s.c_in > 3;
}

}  // namespace kiln::cuda
