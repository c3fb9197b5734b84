// kernels/linear_tc.h — the fully connected layer on the tensor cores (kernels/linear_tc.cu):
// raw-level entry points beside kernels/linear.h's fp32 ones, same shapes and semantics.
// x [N][IN], w [OUT][IN], b [OUT], y [N][OUT]:  y = x · wᵀ + b.
// Backward: dx = dy · w (overwritten); dw += dyᵀ · x; db += Σ_n dy (accumulated).
//
//   *_tf32: fp32 storage everywhere; x, w, dy rounded to TF32 (cvt.rna) as they enter the tensor
//           cores, products exact, fp32 accumulation; db sums the TF32-rounded dy (the GEMM's
//           operand), in fp32.
//   *_bf16: x, w, y, dy, dx stored as bf16 (std::uint16_t holding the bf16's bits); b, dw, db in
//           fp32 (master weights and their gradients stay fp32); fp32 accumulation, y and dx
//           rounded to bf16 (nearest even) once, from the fp32 result (+ bias).
// Raw level: the caller guarantees the shape and the buffers; the launchers check the shape and
// choose 16-byte cp.async copies when a matrix's rows allow them (row length a multiple of 16
// bytes, buffer 16-byte aligned), element copies otherwise — the same results.
#pragma once

#include <cstdint>

#include "core/stream.h"
#include "kernels/linear.h"

namespace kiln::cuda {

void linear_forward_tf32(float* y, const float* x, const float* w, const float* b /* nullable */,
                         const LinearShape& s, Stream stream);
void linear_backward_data_tf32(float* dx, const float* dy, const float* w, const LinearShape& s,
                               Stream stream);
void linear_backward_weight_tf32(float* dw, float* db /* nullable */, const float* dy,
                                 const float* x, const LinearShape& s, Stream stream);

void linear_forward_bf16(std::uint16_t* y, const std::uint16_t* x, const std::uint16_t* w,
                         const float* b /* nullable */, const LinearShape& s, Stream stream);
void linear_backward_data_bf16(std::uint16_t* dx, const std::uint16_t* dy, const std::uint16_t* w,
                               const LinearShape& s, Stream stream);
void linear_backward_weight_bf16(float* dw, float* db /* nullable */, const std::uint16_t* dy,
                                 const std::uint16_t* x, const LinearShape& s, Stream stream);

}  // namespace kiln::cuda
