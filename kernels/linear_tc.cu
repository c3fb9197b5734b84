// kernels/linear_tc.cu — the fully connected layer on the tensor cores (kernels/linear_tc.h), on
// the tile engine of kernels/tc_gemm_tile.cuh (TF32 on fp32 storage, BF16 on bf16 storage).
//   forward          y  = x·wᵀ + b    M=N,   N=OUT, K=IN   A rows along k (x), B rows along k (w)
//   backward-data    dx = dy·w        M=N,   N=IN,  K=OUT  A rows along k (dy), B k-rows (w)
//   backward-weight  dw += dyᵀ·x      M=OUT, N=IN,  K=N    A k-rows (dy), B k-rows (x)
//                    db += Σ_n dy     column sums in fp32, fixed order (kernels/linear.cu)
// dx is overwritten; dw and db accumulate, as in kernels/linear.cu. Deterministic: each output
// element is summed by one warp in a fixed k order; no split-K yet (the fp32 kernels' split-K
// reduction is the next step for the GEMMs with few output tiles and a long K).
// Error bound (docs/kernels.md "Tensor-core GEMM tile"): on inputs rounded as the tensor cores
// round them, products are exact and each of the K additions (+ the bias or the accumulation)
// costs at most one fp32 ulp: |err| <= (K + 2)·2⁻²³·Σ_k|a_k·b_k|, plus for bf16 outputs their
// final rounding, 2⁻⁸·|y|.
#include "core/device_code.h"

#include <cstdint>

#include "core/error.h"
#include "core/launch.h"
#include "kernels/gemm_tile.cuh"
#include "kernels/linear_tc.h"
#include "kernels/tc_gemm_tile.cuh"

namespace kiln::cuda {
namespace {

using tc_tile::Config;
using tc_tile::KRowsLoader;
using tc_tile::RowsLoader;
using tc_tile::StoreEpilogue;

// y[m][n] = Σ_k x[m][k]·w[n][k] + b[n]. vec: IN % kVec == 0 and x, w 16-byte aligned.
template <class T>
__global__ void KILN_LAUNCH_BOUNDS(Config<T>::kThreads)
    linear_tc_forward_kernel(T* __restrict__ y, const T* __restrict__ x, const T* __restrict__ w,
                             const float* __restrict__ b, LinearShape s, bool vec) {
  const tc_tile::Origin o = tc_tile::block_origin<T>();
  RowsLoader<T> la(x, s.in, s.n, o.m0, 0, s.in, vec);    // (BM, K)
  RowsLoader<T> lb(w, s.in, s.out, o.n0, 0, s.in, vec);  // (BN, K)
  tc_tile::run_block<T>(o, la, lb, s.in, StoreEpilogue<T, false>{y, s.out, s.n, s.out, b});
}

// dx[m][n] = Σ_k dy[m][k]·w[k][n]. vec: OUT % kVec == 0, IN % kVec == 0, dy and w aligned.
template <class T>
__global__ void KILN_LAUNCH_BOUNDS(Config<T>::kThreads)
    linear_tc_backward_data_kernel(T* __restrict__ dx, const T* __restrict__ dy,
                                   const T* __restrict__ w, LinearShape s, bool vec) {
  const tc_tile::Origin o = tc_tile::block_origin<T>();
  RowsLoader<T> la(dy, s.out, s.n, o.m0, 0, s.out, vec);  // (BM, K)
  KRowsLoader<T> lb(w, s.in, s.in, o.n0, 0, s.out, vec);  // (K, BN)
  tc_tile::run_block<T>(o, la, lb, s.out, StoreEpilogue<T, false>{dx, s.in, s.n, s.in, nullptr});
}

// dw[m][n] += Σ_k dy[k][m]·x[k][n] (dw fp32). vec: OUT % kVec == 0, IN % kVec == 0, dy and x
// aligned.
template <class T>
__global__ void KILN_LAUNCH_BOUNDS(Config<T>::kThreads)
    linear_tc_backward_weight_kernel(float* __restrict__ dw, const T* __restrict__ dy,
                                     const T* __restrict__ x, LinearShape s, bool vec) {
  const tc_tile::Origin o = tc_tile::block_origin<T>();
  KRowsLoader<T> la(dy, s.out, s.out, o.m0, 0, s.n, vec);  // (K, BM)
  KRowsLoader<T> lb(x, s.in, s.in, o.n0, 0, s.n, vec);     // (K, BN)
  tc_tile::run_block<T>(o, la, lb, s.n, StoreEpilogue<float, true>{dw, s.in, s.out, s.in, nullptr});
}

void check_shape(const char* op, const LinearShape& s) {
  KILN_CHECK(s.n > 0 && s.in > 0 && s.out > 0, op, ": bad shape n=", s.n, " in=", s.in,
             " out=", s.out, " (every size must be at least 1)");
}

template <class T>
dim3 grid_of(int m, int n) {
  return dim3(ceil_div(m, Config<T>::BM), ceil_div(n, Config<T>::BN));
}

template <class T>
bool rows_vec(int row_len, const void* p) {
  return row_len % Config<T>::kVec == 0 && aligned16(p);
}

template <class T>
void forward(T* y, const T* x, const T* w, const float* b, const LinearShape& s, Stream stream,
             const char* op) {
  check_shape(op, s);
  const bool vec = rows_vec<T>(s.in, x) && rows_vec<T>(s.in, w);
  cost::gemm("linear_tc_forward", cost::Op::linear,
             sizeof(T) == 4 ? Precision::tf32 : Precision::bf16, s.n, s.out, s.in,
             int64_t{sizeof(T)} * (int64_t{s.n} * (s.in + s.out) + int64_t{s.out} * s.in) +
                 cost::f32(s.out));
  launch({grid_of<T>(s.n, s.out), dim3(Config<T>::kThreads), 0, stream},
         linear_tc_forward_kernel<T>, y, x, w, b, s, vec);
}

template <class T>
void backward_data(T* dx, const T* dy, const T* w, const LinearShape& s, Stream stream,
                   const char* op) {
  check_shape(op, s);
  const bool vec = rows_vec<T>(s.out, dy) && rows_vec<T>(s.in, w);
  cost::gemm("linear_tc_backward_data", cost::Op::linear,
             sizeof(T) == 4 ? Precision::tf32 : Precision::bf16, s.n, s.in, s.out,
             int64_t{sizeof(T)} * (int64_t{s.n} * (s.in + s.out) + int64_t{s.out} * s.in));
  launch({grid_of<T>(s.n, s.in), dim3(Config<T>::kThreads), 0, stream},
         linear_tc_backward_data_kernel<T>, dx, dy, w, s, vec);
}

template <class T>
void backward_weight(float* dw, float* db, const T* dy, const T* x, const LinearShape& s,
                     Stream stream, const char* op) {
  check_shape(op, s);
  const bool vec = rows_vec<T>(s.out, dy) && rows_vec<T>(s.in, x);
  cost::gemm(
      "linear_tc_backward_weight", cost::Op::linear,
      sizeof(T) == 4 ? Precision::tf32 : Precision::bf16, s.out, s.in, s.n,
      int64_t{sizeof(T)} * int64_t{s.n} * (s.in + s.out) + cost::f32(2 * int64_t{s.out} * s.in));
  launch({grid_of<T>(s.out, s.in), dim3(Config<T>::kThreads), 0, stream},
         linear_tc_backward_weight_kernel<T>, dw, dy, x, s, vec);
  if (db != nullptr)
    detail::tc_column_sum_accumulate(
        db, dy, s.n, s.out,
        tile::workspace(detail::column_sum_workspace_floats(s.n, s.out), stream), stream);
}

}  // namespace

void linear_forward_tf32(float* y, const float* x, const float* w, const float* b,
                         const LinearShape& s, Stream stream) {
  forward<float>(y, x, w, b, s, stream, "cuda::linear_forward_tf32");
}
void linear_backward_data_tf32(float* dx, const float* dy, const float* w, const LinearShape& s,
                               Stream stream) {
  backward_data<float>(dx, dy, w, s, stream, "cuda::linear_backward_data_tf32");
}
void linear_backward_weight_tf32(float* dw, float* db, const float* dy, const float* x,
                                 const LinearShape& s, Stream stream) {
  backward_weight<float>(dw, db, dy, x, s, stream, "cuda::linear_backward_weight_tf32");
}

void linear_forward_bf16(std::uint16_t* y, const std::uint16_t* x, const std::uint16_t* w,
                         const float* b, const LinearShape& s, Stream stream) {
  forward<std::uint16_t>(y, x, w, b, s, stream, "cuda::linear_forward_bf16");
}
void linear_backward_data_bf16(std::uint16_t* dx, const std::uint16_t* dy, const std::uint16_t* w,
                               const LinearShape& s, Stream stream) {
  backward_data<std::uint16_t>(dx, dy, w, s, stream, "cuda::linear_backward_data_bf16");
}
void linear_backward_weight_bf16(float* dw, float* db, const std::uint16_t* dy,
                                 const std::uint16_t* x, const LinearShape& s, Stream stream) {
  backward_weight<std::uint16_t>(dw, db, dy, x, s, stream, "cuda::linear_backward_weight_bf16");
}

}  // namespace kiln::cuda
