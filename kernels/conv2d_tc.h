// kernels/conv2d_tc.h — 2-D convolution on the tensor cores (kernels/conv2d_tc.cu): raw-level
// entry points beside kernels/conv2d.h's fp32 ones, same layouts (x NHWC, w [C_out][KH][KW][C_in],
// y NHWC) and shape struct.
//
//   *_tf32: fp32 storage; x, w, dy rounded to TF32 (cvt.rna) as they enter the tensor cores,
//           products exact, fp32 accumulation, + bias in fp32; db sums the TF32-rounded dy.
//   *_bf16: x, w, y, dy, dx stored as bf16 (std::uint16_t holding the bf16's bits), b, dw, db in
//           fp32; fp32 accumulation, y and dx rounded to bf16 (nearest even) once, from the fp32
//           result (+ bias).
// y and dx are overwritten; dw and db accumulate (+=). Every shape is computed correctly;
// conv2d_tc_suits says where the forward kernel is the right choice. The first layer (C_in <= 3)
// is not: its reduction K = KH·KW·C_in (9 or 27 for 3×3) fills a fraction of one 16- or 32-deep
// k-tile and every element is gathered singly, while the fp32 direct kernel of kernels/conv2d.cu
// (memory-bound, coalesced) suits it — a dispatcher keeps that kernel there (TF32 on fp32
// storage) or widens a bf16 input first. (Backward-filter has the long K = N·OH·OW there, and
// suits every layer.)
#pragma once

#include <cstdint>

#include "core/stream.h"
#include "kernels/conv2d.h"

namespace kiln::cuda {

void conv2d_forward_tf32(float* y, const float* x, const float* w, const float* b /* nullable */,
                         const Conv2dShape& s, Stream stream);
void conv2d_forward_bf16(std::uint16_t* y, const std::uint16_t* x, const std::uint16_t* w,
                         const float* b /* nullable */, const Conv2dShape& s, Stream stream);

// dx (NHWC, overwritten) = the transposed convolution of dy with w.
void conv2d_backward_data_tf32(float* dx, const float* dy, const float* w, const Conv2dShape& s,
                               Stream stream);
void conv2d_backward_data_bf16(std::uint16_t* dx, const std::uint16_t* dy, const std::uint16_t* w,
                               const Conv2dShape& s, Stream stream);

// dw [C_out][KH][KW][C_in] += dyᵀ·im2col(x), db [C_out] += Σ dy (nullable); both fp32.
void conv2d_backward_filter_tf32(float* dw, float* db, const float* dy, const float* x,
                                 const Conv2dShape& s, Stream stream);
void conv2d_backward_filter_bf16(float* dw, float* db, const std::uint16_t* dy,
                                 const std::uint16_t* x, const Conv2dShape& s, Stream stream);

// conv2d_forward_tf32 with the batch statistics of the batchnorm that follows in the same launch
// (the epilogue of kernels/conv_batch_stats.cuh, as cuda::conv2d_forward_batch_stats does for the
// fp32 kernels): save_mean, save_invstd, running_mean and running_var [C_out] as
// batchnorm_batch_stats would compute them from y, within the tolerance docs/kernels.md derives.
void conv2d_forward_tf32_batch_stats(float* y, float* save_mean, float* save_invstd,
                                     float* running_mean, float* running_var, const float* x,
                                     const float* w, const float* b, const Conv2dShape& s,
                                     double eps, double momentum, Stream stream);
// Forward: false for the first layer (C_in <= 3), where the fp32 direct kernel suits (above).
bool conv2d_tc_suits(const Conv2dShape& s);

}  // namespace kiln::cuda
