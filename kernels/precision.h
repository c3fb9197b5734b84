// kernels/precision.h — how the convolution and linear ops carry out a Precision (core/precision.h)
// on each device, and the one place that says what the CUDA device supports.
//
// CPU (reference and fast path, f32 and f64 tensors): the op reads rounded copies of its GEMM's
// inputs — round_to(p, ·) of each element, into a grow-only buffer per thread and operand — and
// runs the same sgemm (or, in double, the same reference loops) on them; products of rounded
// operands are exact in fp32, so that is the tensor cores' arithmetic at fp32 speed. For bf16 the
// activation output (forward y, backward-data dx) is then rounded in place. Nothing else changes:
// bias, dw and db stay fp32 (dw and db accumulate in fp32).
//
// CUDA (fp32 tensors; kernels/precision.cu converts): the same rounding points exactly.
//   tf32: the *_tf32 tensor-core kernels (kernels/conv2d_tc.h, linear_tc.h) read the fp32 tensors
//         and round each operand element with cvt.rna.tf32.f32 as it enters the tensor cores.
//   bf16: the op converts its two GEMM operands to bf16 copies (cvt.rn.bf16.f32: round to
//         nearest even, exact for values that are bf16 already), runs the *_bf16 kernel, which
//         rounds its fp32 result (+ bias) to bf16 once, and widens that output into the fp32
//         tensor (exact), so a bf16 activation is stored as bf16-rounded fp32 as on the CPU.
//         dw and db stay fp32 (the kernel accumulates into them).
//   The first convolution (C_in <= 3, cuda::conv2d_tc_suits false) runs its forward on the fp32
//   direct kernel instead, on copies of x and w rounded as the CPU rounds them, then rounds y in
//   place for bf16.
// The copies live in the stream's operand workspace (core/memory.h, WorkspaceArea::operands):
// grow-only, fixed addresses once sized, so a steady-state step allocates nothing and can be
// captured into a CUDA graph.
#pragma once

#include <cstdint>

#include "core/precision.h"
#include "core/stream.h"
#include "core/tensor.h"

namespace kiln {

// Whether CUDA tensors compute ops of precision `p`: the one place that says so (every precision,
// on the kernels above).
bool cuda_supports_precision(Precision p);

namespace detail {

// `src` itself for fp32; else a copy of its n values rounded by round_to(p, ·), in this thread's
// grow-only buffer number `slot` (0, 1 or 2: an op's operands take different slots). The copy
// stays valid until the next call with the same slot on this thread. The buffers only grow and are
// kept for the thread's life (as the fast path's im2col buffers), so a steady-state training step
// allocates nothing; they cost up to the largest activation and weight seen, per slot.
template <typename T>
const T* rounded_operand(Precision p, const T* src, int64_t n, int slot);
// The same for a whole CPU tensor of element type T.
template <typename T>
const T* rounded_operand(Precision p, const Tensor& t, int slot) {
  return rounded_operand(p, t.data<T>(), t.numel(), slot);
}
// Rounds an op's activation output in place when the precision stores it rounded (bf16).
template <typename T>
void round_output(Precision p, T* data, int64_t n);
template <typename T>
void round_output(Precision p, Tensor& t) {
  round_output(p, t.data<T>(), t.numel());
}
}  // namespace detail

// The raw level of the CUDA conversions (kernels/precision.cu), on device pointers, queued on
// `stream`. Two arrays per call are converted by one launch (n1 = 0: one array).
namespace cuda {

// dst[i] = the bf16 bits of src[i] (round to nearest even).
void to_bf16(std::uint16_t* dst0, const float* src0, int64_t n0, std::uint16_t* dst1,
             const float* src1, int64_t n1, Stream stream);
// dst[i] = the fp32 value of the bf16 src[i] (exact).
void from_bf16(float* dst, const std::uint16_t* src, int64_t n, Stream stream);
// dst[i] = round_to(p, src[i]) for p tf32 or bf16; dst may be src.
void round_values(Precision p, float* dst0, const float* src0, int64_t n0, float* dst1,
                  const float* src1, int64_t n1, Stream stream);

// An op's bf16 operand copies in `stream`'s operand workspace (one request): a and b converted
// (one launch), out room for n_out bf16 outputs (nullptr when 0). Valid until the next request
// for that area on the stream; every piece 256-byte aligned.
struct Bf16Operands {
  std::uint16_t *a, *b, *out;
};
Bf16Operands bf16_operands(const float* a, int64_t na, const float* b, int64_t nb, int64_t n_out,
                           Stream stream);
// The same in fp32 storage: a and b rounded by round_to(p, ·) (p tf32 or bf16).
struct RoundedOperands {
  float *a, *b;
};
RoundedOperands rounded_operands(Precision p, const float* a, int64_t na, const float* b,
                                 int64_t nb, Stream stream);

}  // namespace cuda

namespace detail {

// A bf16 GEMM op on fp32 CUDA tensors: converts its operands a and b, runs
// kernel(out16, a16, b16) and widens out16 into out (n_out values; out nullptr: the kernel writes
// fp32 results itself, as backward-weight's dw and db).
template <typename Kernel>
void run_bf16_on_fp32(float* out, int64_t n_out, const float* a, int64_t na, const float* b,
                      int64_t nb, Stream stream, Kernel&& kernel) {
  const cuda::Bf16Operands ops =
      cuda::bf16_operands(a, na, b, nb, out != nullptr ? n_out : 0, stream);
  kernel(ops.out, ops.a, ops.b);
  if (out != nullptr) cuda::from_bf16(out, ops.out, n_out, stream);
}

// The CUDA side of an op whose output is an activation (forward y, backward-data dx: n_out
// values, overwritten) from the GEMM operands a and b, at precision p: fp32() and tf32() run
// their kernel on the fp32 tensors; bf16(out16, a16, b16) runs on converted copies and its
// output is widened into out.
template <typename Fp32, typename Tf32, typename Bf16>
void cuda_activation_op(Precision p, float* out, int64_t n_out, const float* a, int64_t na,
                        const float* b, int64_t nb, Stream stream, Fp32&& fp32, Tf32&& tf32,
                        Bf16&& bf16) {
  if (p == Precision::fp32) return fp32();
  if (p == Precision::tf32) return tf32();
  run_bf16_on_fp32(out, n_out, a, na, b, nb, stream, bf16);
}

// The CUDA side of a parameter-gradient op (conv backward-filter, linear backward-weight: dw and
// db accumulated in fp32) from dy (n_dy values) and x (n_x), at precision p: fp32() and tf32() on
// the tensors (the tf32 kernels' db sums round_tf32(dy), as the CPU's does); bf16(dy16, x16) on
// converted copies.
template <typename Fp32, typename Tf32, typename Bf16>
void cuda_parameter_grad_op(Precision p, const float* dy, int64_t n_dy, const float* x, int64_t n_x,
                            Stream stream, Fp32&& fp32, Tf32&& tf32, Bf16&& bf16) {
  if (p == Precision::fp32) return fp32();
  if (p == Precision::tf32) return tf32();
  run_bf16_on_fp32(nullptr, 0, dy, n_dy, x, n_x, stream,
                   [&](std::uint16_t*, const std::uint16_t* dy16, const std::uint16_t* x16) {
                     bf16(dy16, x16);
                   });
}

}  // namespace detail
}  // namespace kiln
