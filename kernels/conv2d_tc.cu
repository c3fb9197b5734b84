// kernels/conv2d_tc.cu — 2-D convolution on the tensor cores (kernels/conv2d_tc.h): implicit
// GEMMs on the tile engine of kernels/tc_gemm_tile.cuh, NHWC, no im2col buffer.
//   forward   M = N·OH·OW (output pixels)  N = C_out  K = KH·KW·C_in  (k = (i, j, ci))
//             A[m][k] = x[n, oh·sh−ph+i, ow·sw−pw+j, ci] (zero outside), B[co][k] = w[co][k]
//             (the filter rows are K-contiguous: kernels/tc_gemm_tile.cuh's RowsLoader),
//             bias added in the epilogue; y[m][co] is the NHWC output.
//   backward-data    M = N·H·W (input pixels)  N = C_in  K = KH·KW·C_out (k = (i, j, co))
//             A[m][k] = dy[n, oh, ow, co] where oh·sh = h+ph−i and ow·sw = w+pw−j (zero when not
//             divisible or outside), B[k][ci] = w[co][i][j][ci] (MN-major, a filter row per k);
//             dx[m][ci] overwritten (NHWC).
//   backward-filter  M = C_out  N = KH·KW·C_in  K = N·OH·OW (k = output pixel)
//             A[k][co] = dy[k][co] (MN-major: the engine's KRowsLoader), B[k][(i, j, ci)] =
//             x[n, oh·sh−ph+i, ow·sw−pw+j, ci] (MN-major, gathered); dw += in the epilogue (fp32);
//             db += column sums of dy (fp32, fixed order: kernels/linear.cu).
// A 16-byte chunk of A is kVec consecutive channels of one tap (4 fp32, 8 bf16): with
// C_in % kVec == 0 (and x aligned) it never crosses a tap and is copied by cp.async, the thread's
// tap walked a k-tile at a time without divisions; otherwise each element is gathered alone.
// Backward-filter's B chunks are kVec consecutive columns, i.e. channels of one tap when
// C_in % kVec == 0 (cp.async), else gathered element by element.
// dw and db accumulate (+=), as kernels/conv2d.cu's do. Deterministic: each output element is
// summed by one warp in a fixed k order (no split-K yet: a long K = N·OH·OW runs in one block).
// Error bound as kernels/linear_tc.cu's, K = KH·KW·C_in: |err| <= (K + 2)·2⁻²³·Σ_k|x·w| on the
// rounded inputs, plus 2⁻⁸·|y| for bf16 outputs.
#include "core/device_code.h"

#include <cstdint>

#include "core/error.h"
#include "core/launch.h"
#include "kernels/conv2d_geometry.cuh"
#include "kernels/conv2d_tc.h"
#include "kernels/conv_batch_stats.cuh"
#include "kernels/gemm_tile.cuh"
#include "kernels/tc_gemm_tile.cuh"

namespace kiln::cuda {
namespace {

using conv::ConvDims;
using conv::Geom;
using conv::inside;
using conv::Tap;
using tc_tile::Config;

// A of forward and backward-data: GEMM rows are pixels, k = (i, j, c) walks taps and channels.
//   forward (kBackwardData false): row m = output pixel, c = ci, A[m][k] = x[n, oh·sh−ph+i,
//     ow·sw−pw+j, ci];
//   backward-data: row m = input pixel, c = co, A[m][k] = dy[n, oh, ow, co] with oh·sh = h+ph−i,
//     ow·sw = w+pw−j (zero when not divisible or outside).
// The tensor-core loader concept of kernels/tc_gemm_tile.cuh. Each thread copies 2 chunks per
// k-tile, of two rows but at the same k offset ((tid % 4)·kVec), so one tap serves both.
template <class T, bool kBackwardData>
struct ConvRowsLoader : tc_tile::KMajorChunks<T> {
  using Base = tc_tile::KMajorChunks<T>;
  using Cfg = Config<T>;
  static_assert(Cfg::kThreads % Base::kChunksPerRow == 0, "a thread's chunks share their k offset");
  const ConvDims& d;
  const T* img[Base::kPerThread];                  // image base, nullptr for rows past M
  int r0[Base::kPerThread], c0[Base::kPerThread];  // conv::Window's row0, col0
  int channels;                                    // C_in (forward) or C_out (backward-data)
  int k, k_end;  // k of this thread's chunks in the current k-tile; K
  Tap tap;       // (i, j, c) of k (vec only)
  bool vec;      // channels % kVec == 0 and the tensor 16-byte aligned
  __device__ ConvRowsLoader(const T* src, const ConvDims& d_, int m0, int k_end_, bool vec_)
      : d(d_),
        channels(kBackwardData ? d_.co : d_.ci),
        k((static_cast<int>(threadIdx.x) % Base::kChunksPerRow) * Cfg::kVec),
        k_end(k_end_),
        vec(vec_) {
    const Geom<false> g{d};
#pragma unroll
    for (int i = 0; i < Base::kPerThread; ++i) {
      const int m = m0 + Base::chunk(i) / Base::kChunksPerRow;
      const conv::Window win =
          kBackwardData ? conv::backward_data_window(d, g, m) : conv::forward_window(d, g, m);
      img[i] = win.valid ? src + win.image : nullptr;
      r0[i] = win.row0;
      c0[i] = win.col0;
    }
    tap = Tap::of(k, channels, g);
  }
  // The pixel of row i's image that tap (ti, tj) reads (k < K checked by the caller), or −1.
  __device__ int pixel(const Geom<false>& g, int i, int ti, int tj) const {
    if (img[i] == nullptr) return -1;
    if constexpr (kBackwardData) {
      return conv::backward_data_source(d, g, r0[i], c0[i], ti, tj);
    } else {
      const int ih = r0[i] + ti, iw = c0[i] + tj;
      return inside(ih, d.h) && inside(iw, d.w) ? ih * d.w + iw : -1;
    }
  }
  __device__ void load(T* stage) {
    const Geom<false> g{d};
    const int kk = k % Cfg::BK;
#pragma unroll
    for (int i = 0; i < Base::kPerThread; ++i) {
      T* dst = stage + (Base::chunk(i) / Base::kChunksPerRow) * Cfg::kLdK + kk;
      if (vec) {
        const int p = k < k_end ? pixel(g, i, tap.i, tap.j) : -1;
        tc_tile::copy_chunk(dst,
                            p >= 0 ? img[i] + static_cast<int64_t>(p) * channels + tap.c : nullptr,
                            p >= 0 ? Cfg::kVec : 0, true);
      } else {
#pragma unroll
        for (int u = 0; u < Cfg::kVec; ++u) {
          const Tap t = Tap::of(k + u, channels, g);
          const int p = k + u < k_end ? pixel(g, i, t.i, t.j) : -1;
          dst[u] = p >= 0 ? img[i][static_cast<int64_t>(p) * channels + t.c]
                          : tc_tile::zero_element<T>();
        }
      }
    }
    k += Cfg::BK;
    if (vec) tap.advance(Cfg::BK, channels, g);
  }
};

// Backward-data B: k-rows (i, j, co) of KH·KW·C_out, columns ci: B[k][ci] = w[co][i][j][ci], a
// C_in-contiguous row of the filter per k. vec: C_in % kVec == 0 and w 16-byte aligned.
template <class T>
struct ConvBackwardDataWeightLoader : tc_tile::MNMajorChunks<T> {
  using Base = tc_tile::MNMajorChunks<T>;
  using Cfg = Config<T>;
  const T* w;
  const ConvDims& d;
  int k, k_end, col;  // first k of the current k-tile; K; the thread's first column
  bool vec;
  __device__ ConvBackwardDataWeightLoader(const T* w_, const ConvDims& d_, int n0, int k_end_,
                                          bool vec_)
      : w(w_), d(d_), k(0), k_end(k_end_), col(n0 + Base::col()), vec(vec_) {}
  __device__ void load(T* stage) {
    const Geom<false> g{d};
#pragma unroll
    for (int i = 0; i < Base::kPerThread; ++i) {
      const int kr = Base::krow(i);
      const int valid = k + kr < k_end ? d.ci - col : 0;
      const T* src = nullptr;
      if (valid > 0) {
        const Tap t = Tap::of(k + kr, d.co, g);
        src = w + ((static_cast<int64_t>(t.c) * d.kh + t.i) * d.kw + t.j) * d.ci + col;
      }
      tc_tile::copy_chunk(stage + kr * Cfg::kLdMN + Base::col(), src, valid, vec);
    }
    k += Cfg::BK;
  }
};

// Backward-filter B: k-rows are output pixels p of N·OH·OW, columns c = (i, j, ci) of
// KH·KW·C_in: B[p][c] = x[n, oh·sh−ph+i, ow·sw−pw+j, ci] (zero outside). A thread's chunks share
// their columns (kChunksPerRow divides the block's threads), so their taps are decomposed once.
template <class T>
struct ConvBackwardFilterInputLoader : tc_tile::MNMajorChunks<T> {
  using Base = tc_tile::MNMajorChunks<T>;
  using Cfg = Config<T>;
  const T* x;
  const ConvDims& d;
  int k, k_end;  // first pixel of the current k-tile; N·OH·OW
  // Column col0 + u → channel ci[u], tap offsets di[u] = i − ph, dj[u] = j − pw (di huge past
  // the last column: never inside the image).
  int ci[Cfg::kVec], di[Cfg::kVec], dj[Cfg::kVec];
  bool vec;  // C_in % kVec == 0 and x 16-byte aligned: chunk = channels of one tap
  __device__ ConvBackwardFilterInputLoader(const T* x_, const ConvDims& d_, int n0, int k_end_,
                                           bool vec_)
      : x(x_), d(d_), k(0), k_end(k_end_), vec(vec_) {
    const Geom<false> g{d};
    const int ncols = d.kh * d.kw * d.ci;
    const int col0 = n0 + Base::col();
#pragma unroll
    for (int u = 0; u < Cfg::kVec; ++u) {
      const Tap p = Tap::of(col0 + u, d.ci, g);
      ci[u] = p.c;
      dj[u] = p.j - g.pw();
      di[u] = col0 + u < ncols ? p.i - g.ph() : (1 << 29);
    }
  }
  __device__ void load(T* stage) {
    const Geom<false> g{d};
    const int pixels = d.oh * d.ow;
#pragma unroll
    for (int i = 0; i < Base::kPerThread; ++i) {
      const int kr = Base::krow(i);
      T* dst = stage + kr * Cfg::kLdMN + Base::col();
      const int pix = k + kr;
      const int n = pix / pixels, r = pix - n * pixels, oh = r / d.ow, ow = r - oh * d.ow;
      const bool row_in = pix < k_end;
      const int64_t image = static_cast<int64_t>(n) * d.h;
      if (vec) {
        const int ih = oh * g.sh() + di[0], iw = ow * g.sw() + dj[0];
        const bool in = row_in && inside(ih, d.h) && inside(iw, d.w);
        tc_tile::copy_chunk(dst, in ? x + ((image + ih) * d.w + iw) * d.ci + ci[0] : nullptr,
                            in ? Cfg::kVec : 0, true);
      } else {
#pragma unroll
        for (int u = 0; u < Cfg::kVec; ++u) {
          const int ih = oh * g.sh() + di[u], iw = ow * g.sw() + dj[u];
          dst[u] = row_in && inside(ih, d.h) && inside(iw, d.w)
                       ? x[((image + ih) * d.w + iw) * d.ci + ci[u]]
                       : tc_tile::zero_element<T>();
        }
      }
    }
    k += Cfg::BK;
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
  ConvRowsLoader<T, false> la(x, d, o.m0, K, vec_x);         // (BM, K)
  tc_tile::RowsLoader<T> lb(w, K, d.co, o.n0, 0, K, vec_w);  // (BN, K)
  tc_tile::run_block<T>(o, la, lb, K, tc_tile::StoreEpilogue<T, false>{y, d.co, M, d.co, b});
}

// The forward of a block's convolution with batchnorm's batch statistics in the epilogue
// (kernels/conv_batch_stats.cuh), fp32 storage (TF32): the block stores its tile as the plain
// forward does, then gathers the tile's per-channel (count, mean, M2) and, when it arrives last,
// merges them.
__global__ void KILN_LAUNCH_BOUNDS(Config<float>::kThreads)
    conv2d_tc_forward_batch_stats_kernel(float* __restrict__ y, const float* __restrict__ x,
                                         const float* __restrict__ w, const float* __restrict__ b,
                                         ConvDims d, bool vec_x, bool vec_w,
                                         bn_epilogue::StatsArgs stats) {
  using Cfg = Config<float>;
  const tc_tile::Origin o = tc_tile::block_origin<float>();
  const int K = d.kh * d.kw * d.ci, M = d.n * d.oh * d.ow;
  ConvRowsLoader<float, false> la(x, d, o.m0, K, vec_x);         // (BM, K)
  tc_tile::RowsLoader<float> lb(w, K, d.co, o.n0, 0, K, vec_w);  // (BN, K)
  tc_tile::run_block<float>(o, la, lb, K,
                            tc_tile::StoreEpilogue<float, false>{y, d.co, M, d.co, b});
  bn_epilogue::batch_stats_epilogue(y, bn_epilogue::GemmRows<Cfg::BM>{M},
                                    static_cast<int>(blockIdx.x), static_cast<int>(blockIdx.y),
                                    o.n0, min(o.n0 + Cfg::BN, d.co), stats);
}

// dx[m][ci] = Σ_k A[m][k]·w[co][i][j][ci] (module comment). vec_dy: C_out % kVec == 0 and dy
// aligned; vec_w: C_in % kVec == 0 and w aligned.
template <class T>
__global__ void KILN_LAUNCH_BOUNDS(Config<T>::kThreads)
    conv2d_tc_backward_data_kernel(T* __restrict__ dx, const T* __restrict__ dy,
                                   const T* __restrict__ w, ConvDims d, bool vec_dy, bool vec_w) {
  const tc_tile::Origin o = tc_tile::block_origin<T>();
  const int K = d.kh * d.kw * d.co, M = d.n * d.h * d.w;
  ConvRowsLoader<T, true> la(dy, d, o.m0, K, vec_dy);        // (BM, K)
  ConvBackwardDataWeightLoader<T> lb(w, d, o.n0, K, vec_w);  // (K, BN)
  tc_tile::run_block<T>(o, la, lb, K, tc_tile::StoreEpilogue<T, false>{dx, d.ci, M, d.ci, nullptr});
}

template <class T>
void backward_data(T* dx, const T* dy, const T* w, const Conv2dShape& s, Stream stream,
                   const char* op) {
  const ConvDims d = conv::dims_of(op, s);
  using Cfg = Config<T>;
  const bool vec_dy = d.co % Cfg::kVec == 0 && aligned16(dy);
  const bool vec_w = d.ci % Cfg::kVec == 0 && aligned16(w);
  cost::gemm(
      "conv2d_tc_backward_data", cost::Op::conv, sizeof(T) == 4 ? Precision::tf32 : Precision::bf16,
      int64_t{d.n} * d.h * d.w, d.ci, d.kh * d.kw * d.co,
      int64_t{sizeof(T)} * (int64_t{d.n} * d.oh * d.ow * d.co + int64_t{d.co} * d.kh * d.kw * d.ci +
                            int64_t{d.n} * d.h * d.w * d.ci));
  launch({dim3(ceil_div(int64_t{d.n} * d.h * d.w, Cfg::BM), ceil_div(d.ci, Cfg::BN)),
          dim3(Cfg::kThreads), 0, stream},
         conv2d_tc_backward_data_kernel<T>, dx, dy, w, d, vec_dy, vec_w);
}

// dw[co][c] += Σ_p dy[p][co]·B[p][c] (module comment). vec_dy: C_out % kVec == 0 and dy
// aligned; vec_x: C_in % kVec == 0 and x aligned.
template <class T>
__global__ void KILN_LAUNCH_BOUNDS(Config<T>::kThreads)
    conv2d_tc_backward_filter_kernel(float* __restrict__ dw, const T* __restrict__ dy,
                                     const T* __restrict__ x, ConvDims d, bool vec_dy, bool vec_x) {
  const tc_tile::Origin o = tc_tile::block_origin<T>();
  const int K = d.n * d.oh * d.ow, ncols = d.kh * d.kw * d.ci;
  tc_tile::KRowsLoader<T> la(dy, d.co, d.co, o.m0, 0, K, vec_dy);  // (K, BM)
  ConvBackwardFilterInputLoader<T> lb(x, d, o.n0, K, vec_x);       // (K, BN)
  tc_tile::run_block<T>(o, la, lb, K,
                        tc_tile::StoreEpilogue<float, true>{dw, ncols, d.co, ncols, nullptr});
}

template <class T>
void backward_filter(float* dw, float* db, const T* dy, const T* x, const Conv2dShape& s,
                     Stream stream, const char* op) {
  const ConvDims d = conv::dims_of(op, s);
  using Cfg = Config<T>;
  const int K = d.n * d.oh * d.ow, ncols = d.kh * d.kw * d.ci;
  const bool vec_dy = d.co % Cfg::kVec == 0 && aligned16(dy);
  const bool vec_x = d.ci % Cfg::kVec == 0 && aligned16(x);
  cost::gemm(
      "conv2d_tc_backward_filter", cost::Op::conv,
      sizeof(T) == 4 ? Precision::tf32 : Precision::bf16, d.co, ncols, K,
      int64_t{sizeof(T)} * (int64_t{d.n} * d.oh * d.ow * d.co + int64_t{d.n} * d.h * d.w * d.ci) +
          cost::f32(2 * int64_t{d.co} * ncols));
  launch({dim3(ceil_div(d.co, Cfg::BM), ceil_div(ncols, Cfg::BN)), dim3(Cfg::kThreads), 0, stream},
         conv2d_tc_backward_filter_kernel<T>, dw, dy, x, d, vec_dy, vec_x);
  if (db != nullptr)
    detail::tc_column_sum_accumulate(
        db, dy, K, d.co, tile::workspace(detail::column_sum_workspace_floats(K, d.co), stream),
        stream);
}

template <class T>
void forward(T* y, const T* x, const T* w, const float* b, const Conv2dShape& s, Stream stream,
             const char* op) {
  const ConvDims d = conv::dims_of(op, s);
  using Cfg = Config<T>;
  const int K = d.kh * d.kw * d.ci, M = d.n * d.oh * d.ow;
  const bool vec_x = d.ci % Cfg::kVec == 0 && aligned16(x);
  const bool vec_w = K % Cfg::kVec == 0 && aligned16(w);
  cost::gemm(
      "conv2d_tc_forward", cost::Op::conv, sizeof(T) == 4 ? Precision::tf32 : Precision::bf16, M,
      d.co, K,
      int64_t{sizeof(T)} * (int64_t{d.n} * d.h * d.w * d.ci + int64_t{d.co} * d.kh * d.kw * d.ci +
                            int64_t{d.n} * d.oh * d.ow * d.co) +
          cost::f32(d.co));
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

void conv2d_backward_data_tf32(float* dx, const float* dy, const float* w, const Conv2dShape& s,
                               Stream stream) {
  backward_data<float>(dx, dy, w, s, stream, "cuda::conv2d_backward_data_tf32");
}
void conv2d_backward_data_bf16(std::uint16_t* dx, const std::uint16_t* dy, const std::uint16_t* w,
                               const Conv2dShape& s, Stream stream) {
  backward_data<std::uint16_t>(dx, dy, w, s, stream, "cuda::conv2d_backward_data_bf16");
}

void conv2d_backward_filter_tf32(float* dw, float* db, const float* dy, const float* x,
                                 const Conv2dShape& s, Stream stream) {
  backward_filter<float>(dw, db, dy, x, s, stream, "cuda::conv2d_backward_filter_tf32");
}
void conv2d_backward_filter_bf16(float* dw, float* db, const std::uint16_t* dy,
                                 const std::uint16_t* x, const Conv2dShape& s, Stream stream) {
  backward_filter<std::uint16_t>(dw, db, dy, x, s, stream, "cuda::conv2d_backward_filter_bf16");
}

void conv2d_forward_tf32_batch_stats(float* y, float* save_mean, float* save_invstd,
                                     float* running_mean, float* running_var, const float* x,
                                     const float* w, const float* b, const Conv2dShape& s,
                                     double eps, double momentum, Stream stream) {
  const char* op = "cuda::conv2d_forward_tf32_batch_stats";
  KILN_CHECK(y && save_mean && save_invstd && running_mean && running_var && x && w, op,
             ": null pointer");
  KILN_CHECK(eps > 0.0, op, ": eps must be positive");
  const ConvDims d = conv::dims_of(op, s);
  using Cfg = Config<float>;
  const int K = d.kh * d.kw * d.ci, M = d.n * d.oh * d.ow;
  const bool vec_x = d.ci % Cfg::kVec == 0 && aligned16(x);
  const bool vec_w = K % Cfg::kVec == 0 && aligned16(w);
  const dim3 grid(ceil_div(M, Cfg::BM), ceil_div(d.co, Cfg::BN));
  const int tiles = static_cast<int>(grid.x);
  float* area = tile::workspace(bn_epilogue::workspace_floats(tiles, d.co), stream);
  int* counters = kiln::workspace_counters(
      bn_epilogue::counters_needed(tiles, static_cast<int>(grid.y)), stream);
  launch({grid, dim3(Cfg::kThreads), 0, stream}, conv2d_tc_forward_batch_stats_kernel, y, x, w, b,
         d, vec_x, vec_w,
         bn_epilogue::make_args(save_mean, save_invstd, running_mean, running_var, eps, momentum, M,
                                d.co, tiles, area, counters));
}

bool conv2d_tc_suits(const Conv2dShape& s) {
  return s.c_in > 3;
}

}  // namespace kiln::cuda
