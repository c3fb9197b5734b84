// kernels/precision.cu — the conversions around the tensor-core kernels on the CUDA device
// (kernels/precision.h): fp32 → bf16 operand copies, bf16 → fp32 outputs, and fp32 values rounded
// to tf32 or bf16 in fp32 storage (the first convolution's operands, which the fp32 direct kernel
// reads).
//
// Each is one memory-bound grid-stride kernel over up to two arrays (an op's two operands in one
// launch): 4 bytes read and 2 written per element to bf16, 2 read and 4 written back, 4 and 4
// when rounding in fp32. When every pointer of the launch is 16-byte aligned (fp32) and 8-byte
// aligned (bf16) each thread moves four elements per step (float4 / uint2: LDG.E.128 and
// STG.E.64 or .128), the n % 4 tail singly; otherwise one element per step — the same values.
// The rounding is the instructions' own (cvt.rn.bf16.f32, cvt.rna.tf32.f32; core/tensor_core.h),
// bit for bit the CPU's round_to.
#include "core/device_code.h"

#include <algorithm>
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

// Four elements at a time (kVec) or one: fp32 → bf16.
struct ToBf16 {
  using Src = float;
  using Dst = std::uint16_t;
  using Src4 = float4;
  using Dst4 = uint2;
  __device__ __forceinline__ Dst operator()(float x) const { return tc::cvt_bf16(x); }
  __device__ __forceinline__ Dst4 operator()(float4 v) const {
    return make_uint2(tc::cvt_bf16x2(v.x, v.y), tc::cvt_bf16x2(v.z, v.w));
  }
};
// bf16 → fp32 (exact).
struct FromBf16 {
  using Src = std::uint16_t;
  using Dst = float;
  using Src4 = uint2;
  using Dst4 = float4;
  __device__ __forceinline__ Dst operator()(std::uint16_t b) const { return bf16_to_float(b); }
  __device__ __forceinline__ Dst4 operator()(uint2 v) const {
    return make_float4(bits_float(v.x << 16), bits_float(v.x & 0xffff0000u), bits_float(v.y << 16),
                       bits_float(v.y & 0xffff0000u));
  }
};
// fp32 → fp32 rounded to tf32 or bf16.
struct Round {
  using Src = float;
  using Dst = float;
  using Src4 = float4;
  using Dst4 = float4;
  Precision p;
  __device__ __forceinline__ Dst operator()(float x) const { return rounded(p, x); }
  __device__ __forceinline__ Dst4 operator()(float4 v) const {
    return make_float4(rounded(p, v.x), rounded(p, v.y), rounded(p, v.z), rounded(p, v.w));
  }
};

// dst[i] = op(src[i]) for i < n, this thread's grid-stride share; kVec: four at a time, then the
// tail. Not __restrict__: a rounding may run in place (dst the same array as src).
template <bool kVec, class Op>
__device__ __forceinline__ void convert(typename Op::Dst* dst, const typename Op::Src* src,
                                        int64_t n, Op op) {
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  if constexpr (kVec) {
    auto* d4 = reinterpret_cast<typename Op::Dst4*>(dst);
    const auto* s4 = reinterpret_cast<const typename Op::Src4*>(src);
    for (int64_t j = i; j < n / 4; j += stride) d4[j] = op(s4[j]);
    i += n / 4 * 4;
  }
  for (; i < n; i += stride) dst[i] = op(src[i]);
}

// The two arrays of one launch, one after the other (n1 = 0: one array).
template <bool kVec, class Op>
__global__ void KILN_LAUNCH_BOUNDS(kStreamBlock)
    convert_kernel(typename Op::Dst* dst0, const typename Op::Src* src0, int64_t n0,
                   typename Op::Dst* dst1, const typename Op::Src* src1, int64_t n1, Op op) {
  convert<kVec>(dst0, src0, n0, op);
  if (n1 > 0) convert<kVec>(dst1, src1, n1, op);
}

bool aligned(const void* p, std::uintptr_t bytes) {
  return reinterpret_cast<std::uintptr_t>(p) % bytes == 0;
}

// One launch converting both arrays; vectorised when every pointer allows it.
template <class Op>
void launch_convert(typename Op::Dst* dst0, const typename Op::Src* src0, int64_t n0,
                    typename Op::Dst* dst1, const typename Op::Src* src1, int64_t n1, Op op,
                    Stream stream) {
  if (n0 + n1 == 0) return;
  const std::uintptr_t src4 = sizeof(typename Op::Src4), dst4 = sizeof(typename Op::Dst4);
  const bool vec = aligned(src0, src4) && aligned(dst0, dst4) &&
                   (n1 == 0 || (aligned(src1, src4) && aligned(dst1, dst4)));
  const int64_t work = vec ? std::max(n0, n1) / 4 + 1 : std::max(n0, n1);
  if (vec)
    launch({stream_grid(work), kStreamBlock, 0, stream}, convert_kernel<true, Op>, dst0, src0, n0,
           dst1, src1, n1, op);
  else
    launch({stream_grid(work), kStreamBlock, 0, stream}, convert_kernel<false, Op>, dst0, src0, n0,
           dst1, src1, n1, op);
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
  launch_convert(dst0, src0, n0, dst1, src1, n1, ToBf16{}, stream);
}

void from_bf16(float* dst, const std::uint16_t* src, int64_t n, Stream stream) {
  launch_convert(dst, src, n, static_cast<float*>(nullptr),
                 static_cast<const std::uint16_t*>(nullptr), int64_t{0}, FromBf16{}, stream);
}

void round_values(Precision p, float* dst0, const float* src0, int64_t n0, float* dst1,
                  const float* src1, int64_t n1, Stream stream) {
  KILN_CHECK(p != Precision::fp32, "cuda::round_values: fp32 rounds nothing (caller's mistake)");
  launch_convert(dst0, src0, n0, dst1, src1, n1, Round{p}, stream);
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
