// kernels/precision.cu — the conversions around the tensor-core kernels on the CUDA device
// (kernels/precision.h): fp32 → bf16 operand copies, bf16 → fp32 outputs, and fp32 values rounded
// to tf32 or bf16 in fp32 storage (the first convolution's operands, which the fp32 direct kernel
// reads).
//
// Each is one memory-bound grid-stride kernel over up to two arrays (an op's two operands in one
// launch), one element per thread and step: 4 bytes read and 2 written per element to bf16, 2 read
// and 4 written back, 4 and 4 when rounding in fp32. The rounding is the instructions' own
// (cvt.rn.bf16.f32, cvt.rna.tf32.f32; core/tensor_core.h), bit for bit the CPU's round_to.
#include "core/device_code.h"

#include <cstdint>

#include "core/error.h"
#include "core/launch.h"
#include "core/memory.h"
#include "core/tensor_core.h"
#include "kernels/precision.h"

namespace kiln::cuda {
namespace {

__device__ __forceinline__ float rounded(Precision p, float x) {
  if (p == Precision::tf32) return bits_float(tc::cvt_tf32(x) & 0xffffe000u);
  if (p == Precision::bf16) return bf16_to_float(tc::cvt_bf16(x));
  return x;
}

// Element i of the two arrays [0, n0) ++ [0, n1): dst0[i] = op(src0[i]), then dst1 likewise.
// Not __restrict__: a rounding may run in place (dst the same array as src).
template <typename D, typename S, typename Op>
__device__ __forceinline__ void convert_two(D* dst0, const S* src0, int64_t n0, D* dst1,
                                            const S* src1, int64_t n1, Op op) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n0 + n1;
       i += stride) {
    if (i < n0)
      dst0[i] = op(src0[i]);
    else
      dst1[i - n0] = op(src1[i - n0]);
  }
}

__global__ void KILN_LAUNCH_BOUNDS(kStreamBlock)
    to_bf16_kernel(std::uint16_t* dst0, const float* src0, int64_t n0, std::uint16_t* dst1,
                   const float* src1, int64_t n1) {
  convert_two(dst0, src0, n0, dst1, src1, n1, [](float x) { return tc::cvt_bf16(x); });
}

__global__ void KILN_LAUNCH_BOUNDS(kStreamBlock)
    from_bf16_kernel(float* dst, const std::uint16_t* src, int64_t n) {
  convert_two(dst, src, n, dst, src, int64_t{0}, [](std::uint16_t b) { return bf16_to_float(b); });
}

__global__ void KILN_LAUNCH_BOUNDS(kStreamBlock)
    round_kernel(Precision p, float* dst0, const float* src0, int64_t n0, float* dst1,
                 const float* src1, int64_t n1) {
  convert_two(dst0, src0, n0, dst1, src1, n1, [p](float x) { return rounded(p, x); });
}

// Elements of `bytes_per` bytes rounded up to whole 256-byte granules (each piece of the area
// keeps the area's alignment, so the kernels' 16-byte copies stay available).
int64_t granule_bytes(int64_t n, int64_t bytes_per) {
  constexpr int64_t kGranule = 256;
  return (n * bytes_per + kGranule - 1) / kGranule * kGranule;
}

}  // namespace

void to_bf16(std::uint16_t* dst0, const float* src0, int64_t n0, std::uint16_t* dst1,
             const float* src1, int64_t n1, Stream stream) {
  if (n0 + n1 == 0) return;
  launch({stream_grid(n0 + n1), kStreamBlock, 0, stream}, to_bf16_kernel, dst0, src0, n0, dst1,
         src1, n1);
}

void from_bf16(float* dst, const std::uint16_t* src, int64_t n, Stream stream) {
  if (n == 0) return;
  launch({stream_grid(n), kStreamBlock, 0, stream}, from_bf16_kernel, dst, src, n);
}

void round_values(Precision p, float* dst0, const float* src0, int64_t n0, float* dst1,
                  const float* src1, int64_t n1, Stream stream) {
  KILN_CHECK(p != Precision::fp32, "cuda::round_values: fp32 rounds nothing (caller's mistake)");
  if (n0 + n1 == 0) return;
  launch({stream_grid(n0 + n1), kStreamBlock, 0, stream}, round_kernel, p, dst0, src0, n0, dst1,
         src1, n1);
}

Bf16Operands bf16_operands(const float* a, int64_t na, const float* b, int64_t nb, int64_t n_out,
                           Stream stream) {
  const int64_t bytes_a = granule_bytes(na, 2), bytes_b = granule_bytes(nb, 2);
  char* area = static_cast<char*>(workspace(static_cast<size_t>(bytes_a + bytes_b + 2 * n_out),
                                            stream, WorkspaceArea::operands));
  Bf16Operands ops;
  ops.a = reinterpret_cast<std::uint16_t*>(area);
  ops.b = reinterpret_cast<std::uint16_t*>(area + bytes_a);
  ops.out = n_out > 0 ? reinterpret_cast<std::uint16_t*>(area + bytes_a + bytes_b) : nullptr;
  to_bf16(ops.a, a, na, ops.b, b, nb, stream);
  return ops;
}

RoundedOperands rounded_operands(Precision p, const float* a, int64_t na, const float* b,
                                 int64_t nb, Stream stream) {
  const int64_t bytes_a = granule_bytes(na, 4);
  char* area = static_cast<char*>(
      workspace(static_cast<size_t>(bytes_a + 4 * nb), stream, WorkspaceArea::operands));
  RoundedOperands ops;
  ops.a = reinterpret_cast<float*>(area);
  ops.b = reinterpret_cast<float*>(area + bytes_a);
  round_values(p, ops.a, a, na, ops.b, b, nb, stream);
  return ops;
}

}  // namespace kiln::cuda
