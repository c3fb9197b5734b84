// core/precision.h — the arithmetic precision of a convolution or linear op, and a model's policy.
//
//   Precision::fp32   today's exact kernels: fp32 inputs, fp32 products and sums.
//   Precision::tf32   the GEMM's inputs rounded to TF32 (round_tf32: RNA to 10 mantissa bits), as
//                     the tensor cores' cvt.rna.tf32.f32 rounds them; products exact in fp32, fp32
//                     accumulation; tensors stay fp32.
//   Precision::bf16   the GEMM's inputs rounded to BF16 (round_bf16: RNE to 7 mantissa bits),
//                     products exact, fp32 accumulation; the op's activation output (y, dx) is
//                     stored in bf16 (on the CPU: bf16-rounded fp32).
//
// Where every rounding happens (which tensors, when), and why, is docs/tensor-cores.md,
// "Precision". A model takes a PrecisionPolicy (Sequential::set_precision): PyTorch's rules —
// tf32 runs the convolutions in TF32 and the linear layers in fp32 unless `tf32_linear` asks for
// TF32 there too (torch.backends.cudnn.allow_tf32 / torch.backends.cuda.matmul.allow_tf32); bf16
// runs both in BF16, with fp32 master weights, gradients, optimizer state, batchnorm statistics
// and loss (autocast's rules).
#pragma once

#include <string>
#include <string_view>

#include "core/error.h"
#include "core/host_device.h"
#include "core/rounding.h"

namespace kiln {

enum class Precision { fp32, tf32, bf16 };

inline const char* precision_name(Precision p) {
  switch (p) {
    case Precision::tf32:
      return "tf32";
    case Precision::bf16:
      return "bf16";
    case Precision::fp32:
      break;
  }
  return "fp32";
}

// "fp32", "tf32" or "bf16"; anything else is a kiln::Error naming the value and the choices.
inline Precision parse_precision(std::string_view name) {
  if (name == "fp32") return Precision::fp32;
  if (name == "tf32") return Precision::tf32;
  if (name == "bf16") return Precision::bf16;
  KILN_FAIL("unknown precision '", std::string(name), "': use fp32, tf32 or bf16");
}

// An fp32 value as the op's GEMM reads it: unchanged for fp32, else rounded as the tensor cores'
// conversion rounds it.
KILN_HD inline float round_to(Precision p, float x) {
  return p == Precision::tf32 ? round_tf32(x) : p == Precision::bf16 ? round_bf16(x) : x;
}
// A double (the oracle's): first to the nearest float, then as above; exact for the float values
// the oracle is given.
inline double round_to(Precision p, double x) {
  return p == Precision::fp32 ? x : static_cast<double>(round_to(p, static_cast<float>(x)));
}
// Whether the op's activation output (forward y, backward-data dx) is stored rounded: bf16 only.
KILN_HD inline bool rounds_output(Precision p) {
  return p == Precision::bf16;
}

// A model's policy: the precision of its convolutions and of its linear layers.
struct PrecisionPolicy {
  Precision precision = Precision::fp32;
  bool tf32_linear = false;  // with tf32: the linear layers in TF32 too (else fp32)

  Precision conv() const { return precision; }
  Precision linear() const {
    return precision == Precision::tf32 && !tf32_linear ? Precision::fp32 : precision;
  }
  // "fp32", "tf32", "tf32 (linear tf32 too)", "bf16".
  std::string describe() const {
    std::string s = precision_name(precision);
    if (precision == Precision::tf32 && tf32_linear) s += " (linear tf32 too)";
    return s;
  }
};

}  // namespace kiln
