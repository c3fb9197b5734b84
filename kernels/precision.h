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
// CUDA: until the tensor-core kernels are wired in, fp32 only; tf32 or bf16 on a CUDA tensor is an
// error naming the missing kernels (check_cuda_precision), never a silent fp32.
#pragma once

#include <cstdint>

#include "core/precision.h"
#include "core/tensor.h"

namespace kiln {

// Whether CUDA tensors compute ops of precision `p` (fp32 always; tf32 and bf16 when the
// tensor-core kernels are built).
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
// Throws, naming `op`, unless cuda_supports_precision(p).
void check_cuda_precision(const char* op, Precision p);

}  // namespace detail
}  // namespace kiln
