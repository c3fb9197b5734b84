// tests/parity/test_conv2d_parity.cpp — the convolution kernels against the double oracle
// kiln::cpu::conv2d_*<double>: the SIMT fp32 kernels (kernels/conv2d.h,
// kiln::cuda::conv2d_{forward,backward_data,backward_filter}) and the tensor-core ones
// (kernels/conv2d_tc.h, TF32 and BF16, the oracle run on the same rounded inputs). One loop per
// pass checks every kernel, with its precision's bound (tests/support/gemm_parity.h).
//
// Built twice (tests/parity/CMakeLists.txt): under the SIMT emulator, where every case runs in
// every thread order and the three results must be bitwise equal; and natively on a GPU
// (KILN_TEST_GPU, tag [gpu]), where the three runs check repeated-run determinism instead.
// The fp32 cases reach every path of kernels/conv2d.cu: the 3×3/stride-1/pad-1 fast path, the
// general path with float4 loads, the scalar path (channel counts not multiples of 4), the
// first-layer direct kernel (C_in 1..3), 64×64 and 128×128 tiles, split-K with several splits, and
// the flagship's layer shapes at batch 1 (spatially reduced where the emulator would be slow).
// The tensor-core cases reach cp.async gathers (C_in a multiple of 4 for TF32, of 8 for BF16) and
// element gathers (other channel counts, a misaligned view), 3×3 and 1×1 filters, stride 2,
// padding, batch 1, C_out not a multiple of the tile, more k-tiles than pipeline stages, a
// 3-channel first layer (correct here, though conv2d_tc_suits sends it elsewhere) and a flagship
// layer shape.
// Sentinels: y and dx start as NaN (they are overwritten: an element left unwritten fails); dw and
// db start at known values and must come back as value + gradient (they accumulate); guard
// elements on both sides of every output keep their sentinel; dw alone equals dw with db bit for
// bit.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/conv2d.h"
#include "kernels/conv2d_tc.h"
#include "tests/support/compare.h"
#include "tests/support/gemm_parity.h"
#include "tests/support/parity.h"

namespace {

using kiln::Conv2dShape;
using namespace kiln::test;

// The kernels under test, each with the precision P the test sees it in.
struct Simt {
  using P = Fp32;
  static void forward(float* y, const float* x, const float* w, const float* b,
                      const Conv2dShape& s) {
    kiln::cuda::conv2d_forward(y, x, w, b, s, nullptr);
  }
  static void backward_data(float* dx, const float* dy, const float* w, const Conv2dShape& s) {
    kiln::cuda::conv2d_backward_data(dx, dy, w, s, nullptr);
  }
  static void backward_filter(float* dw, float* db, const float* dy, const float* x,
                              const Conv2dShape& s) {
    kiln::cuda::conv2d_backward_filter(dw, db, dy, x, s, nullptr);
  }
};
struct Tf32Tc {
  using P = Tf32;
  static void forward(float* y, const float* x, const float* w, const float* b,
                      const Conv2dShape& s) {
    kiln::cuda::conv2d_forward_tf32(y, x, w, b, s, nullptr);
  }
  static void backward_data(float* dx, const float* dy, const float* w, const Conv2dShape& s) {
    kiln::cuda::conv2d_backward_data_tf32(dx, dy, w, s, nullptr);
  }
  static void backward_filter(float* dw, float* db, const float* dy, const float* x,
                              const Conv2dShape& s) {
    kiln::cuda::conv2d_backward_filter_tf32(dw, db, dy, x, s, nullptr);
  }
};
struct Bf16Tc {
  using P = Bf16;
  static void forward(std::uint16_t* y, const std::uint16_t* x, const std::uint16_t* w,
                      const float* b, const Conv2dShape& s) {
    kiln::cuda::conv2d_forward_bf16(y, x, w, b, s, nullptr);
  }
  static void backward_data(std::uint16_t* dx, const std::uint16_t* dy, const std::uint16_t* w,
                            const Conv2dShape& s) {
    kiln::cuda::conv2d_backward_data_bf16(dx, dy, w, s, nullptr);
  }
  static void backward_filter(float* dw, float* db, const std::uint16_t* dy, const std::uint16_t* x,
                              const Conv2dShape& s) {
    kiln::cuda::conv2d_backward_filter_bf16(dw, db, dy, x, s, nullptr);
  }
};

struct Case {
  const char* name;
  Conv2dShape s;
  bool misaligned = false;  // every buffer one element past a 16-byte boundary: element gathers
};

Conv2dShape shape(int n, int h, int w, int ci, int co, int kh, int kw, int sh, int sw, int ph,
                  int pw) {
  Conv2dShape s;
  s.n = n, s.h = h, s.w = w, s.c_in = ci, s.c_out = co, s.kh = kh, s.kw = kw;
  s.stride_h = sh, s.stride_w = sw, s.pad_h = ph, s.pad_w = pw;
  return s;
}
// A square filter, stride and padding.
Conv2dShape shape(int n, int h, int w, int ci, int co, int k, int stride, int pad) {
  return shape(n, h, w, ci, co, k, k, stride, stride, pad, pad);
}

// Every path of kernels/conv2d.cu, and the flagship's five conv layers (3×3, pad 1; 1→64→128→256→
// 512→512 at 48, 24, 12, 6, 3 pixels) at batch 1: conv1, conv4, conv5 full size, conv2 and conv3
// spatially reduced to keep the emulated run short.
std::vector<Case> simt_cases() {
  return {
      {"3x3 s1 p1, 8->16, 2x7x9 (fast path)", shape(2, 7, 9, 8, 16, 3, 1, 1)},
      {"3x3 s2 p1, 16->8, 2x8x8 (general, float4)", shape(2, 8, 8, 16, 8, 3, 2, 1)},
      {"5x5 s2 p0, 5->7, 1x11x9 (scalar)", shape(1, 11, 9, 5, 7, 5, 2, 0)},
      {"1x1 s1 p0, 12->20, 1x5x7", shape(1, 5, 7, 12, 20, 1, 1, 0)},
      {"3x1 s(2,1) p(1,0), 8->12, 2x9x5 (non-square)", shape(2, 9, 5, 8, 12, 3, 1, 2, 1, 1, 0)},
      {"5x5 s1 p2, 6->10, 1x7x9 (scalar, pad 2)", shape(1, 7, 9, 6, 10, 5, 1, 2)},
      {"3x3 s1 p1, C_in 1 -> 16, 2x7x9 (direct)", shape(2, 7, 9, 1, 16, 3, 1, 1)},
      {"5x5 s2 p2, C_in 3 -> 6, 1x9x11 (direct)", shape(1, 9, 11, 3, 6, 5, 2, 2)},
      {"3x3 s1 p0, C_in 2 -> 5, 1x6x19 (direct)", shape(1, 6, 19, 2, 5, 3, 1, 0)},
      {"1x1, 8->1280, 1x32x40 (128x128 tiles)", shape(1, 32, 40, 8, 1280, 1, 1, 0)},
      {"1x1, 1283->6, 1x32x40 (128x128 tiles, scalar)", shape(1, 32, 40, 1283, 6, 1, 1, 0)},
      {"flagship conv1: 1->64, 1x48x48 (split-K)", shape(1, 48, 48, 1, 64, 3, 1, 1)},
      {"flagship conv2: 64->128, 1x12x12", shape(1, 12, 12, 64, 128, 3, 1, 1)},
      {"flagship conv3: 128->256, 1x6x6", shape(1, 6, 6, 128, 256, 3, 1, 1)},
      {"flagship conv4: 256->512, 1x6x6", shape(1, 6, 6, 256, 512, 3, 1, 1)},
      {"flagship conv5: 512->512, 1x3x3", shape(1, 3, 3, 512, 512, 3, 1, 1)},
  };
}

std::vector<Case> tc_cases() {
  return {
      {"3x3 s1 p1, 8->16, 2x5x6", shape(2, 5, 6, 8, 16, 3, 1, 1)},
      {"3x3 s2 p1, 12->20, 1x7x8 (BF16 element gathers)", shape(1, 7, 8, 12, 20, 3, 2, 1)},
      {"3x3 s1 p1, 5->7, 1x6x5 (element gathers)", shape(1, 6, 5, 5, 7, 3, 1, 1)},
      {"1x1 s1 p0, 16->70, 2x6x7 (edge tiles)", shape(2, 6, 7, 16, 70, 1, 1, 0)},
      {"1x1 s2 p0, 24->8, 1x9x9", shape(1, 9, 9, 24, 8, 1, 2, 0)},
      {"3x3 s1 p1, 16->8, 1x4x4, misaligned", shape(1, 4, 4, 16, 8, 3, 1, 1), true},
      {"3x3 s1 p1, 3->16, 1x8x8 (first-layer channels)", shape(1, 8, 8, 3, 16, 3, 1, 1)},
      {"3x3 s1 p1, 8->8, 1x12x12 (many pixel k-tiles)", shape(1, 12, 12, 8, 8, 3, 1, 1)},
      {"flagship conv3 channels: 128->24, 1x3x3 (many k-tiles)", shape(1, 3, 3, 128, 24, 3, 1, 1)},
  };
}

// The element counts of a shape's tensors.
struct Sizes {
  int64_t x_n, y_n, w_n, pixels;  // pixels: output pixels, the rows of dy
  explicit Sizes(const Conv2dShape& s)
      : x_n(int64_t{s.n} * s.h * s.w * s.c_in),
        y_n(int64_t{s.n} * s.out_h() * s.out_w() * s.c_out),
        w_n(int64_t{s.c_out} * s.kh * s.kw * s.c_in),
        pixels(int64_t{s.n} * s.out_h() * s.out_w()) {}
};

// x, w, b, dy are drawn from seed, seed + 1, seed + 2, seed + 3.
template <class K>
void forward_case(const Case& c, uint32_t seed) {
  using P = typename K::P;
  using T = typename P::T;
  const Conv2dShape& s = c.s;
  const Sizes n(s);
  const Operand<P> x(uniform_floats(n.x_n, seed, -1.f, 1.f));
  const Operand<P> w(uniform_floats(n.w_n, seed + 1, -1.f, 1.f));
  const std::vector<float> b = uniform_floats(s.c_out, seed + 2, -1.f, 1.f);
  for (const bool with_bias : {true, false}) {
    INFO(P::kName << " case: " << c.name << ", bias: " << with_bias);
    DeviceBuffer<T> xd(x.stored, c.misaligned), wd(w.stored, c.misaligned);
    DeviceBuffer<float> bd(b, c.misaligned);
    GuardedOut<T> y(static_cast<std::size_t>(n.y_n), P::nan(), c.misaligned);
    const std::vector<float> got = same_in_every_order("conv2d_forward", [&] {
      y.reset();
      K::forward(y.data(), xd.get(), wd.get(), with_bias ? bd.get() : nullptr, s);
      return values<P>(y.payload());
    });
    std::vector<double> ref(got.size()), ref_abs(got.size());
    const auto b_ref = to_double(b), b_abs = to_double(b, true);
    kiln::cpu::conv2d_forward<double>(ref.data(), x.op.data(), w.op.data(),
                                      with_bias ? b_ref.data() : nullptr, s);
    kiln::cpu::conv2d_forward<double>(ref_abs.data(), x.op_abs.data(), w.op_abs.data(),
                                      with_bias ? b_abs.data() : nullptr, s);
    check_product<P>("y", got, ref, ref_abs, int64_t{s.kh} * s.kw * s.c_in, true);
  }
}

template <class K>
void backward_data_case(const Case& c, uint32_t seed) {
  using P = typename K::P;
  using T = typename P::T;
  INFO(P::kName << " case: " << c.name);
  const Conv2dShape& s = c.s;
  const Sizes n(s);
  const Operand<P> dy(uniform_floats(n.y_n, seed + 3, -1.f, 1.f));
  const Operand<P> w(uniform_floats(n.w_n, seed + 1, -1.f, 1.f));
  DeviceBuffer<T> dyd(dy.stored, c.misaligned), wd(w.stored, c.misaligned);
  GuardedOut<T> dx(static_cast<std::size_t>(n.x_n), P::nan(), c.misaligned);
  const std::vector<float> got = same_in_every_order("conv2d_backward_data", [&] {
    dx.reset();
    K::backward_data(dx.data(), dyd.get(), wd.get(), s);
    return values<P>(dx.payload());
  });
  std::vector<double> ref(got.size()), ref_abs(got.size());
  kiln::cpu::conv2d_backward_data<double>(ref.data(), dy.op.data(), w.op.data(), s);
  kiln::cpu::conv2d_backward_data<double>(ref_abs.data(), dy.op_abs.data(), w.op_abs.data(), s);
  check_product<P>("dx", got, ref, ref_abs, int64_t{s.kh} * s.kw * s.c_out, true);
}

template <class K>
void backward_filter_case(const Case& c, uint32_t seed) {
  using P = typename K::P;
  using T = typename P::T;
  INFO(P::kName << " case: " << c.name);
  const Conv2dShape& s = c.s;
  const Sizes n(s);
  const Operand<P> x(uniform_floats(n.x_n, seed, -1.f, 1.f));
  const Operand<P> dy(uniform_floats(n.y_n, seed + 3, -1.f, 1.f));
  DeviceBuffer<T> xd(x.stored, c.misaligned), dyd(dy.stored, c.misaligned);
  const std::size_t w_n = static_cast<std::size_t>(n.w_n);
  std::vector<double> ref_w(w_n, 0.0), ref_b(s.c_out, 0.0), abs_w(w_n, 0.0), abs_b(s.c_out, 0.0);
  kiln::cpu::conv2d_backward_filter<double>(ref_w.data(), ref_b.data(), dy.op.data(), x.op.data(),
                                            s);
  kiln::cpu::conv2d_backward_filter<double>(abs_w.data(), abs_b.data(), dy.op_abs.data(),
                                            x.op_abs.data(), s);
  check_weight_gradient<P>(
      "conv2d_backward_filter",
      [&](float* dw, float* db) { K::backward_filter(dw, db, dyd.get(), xd.get(), s); }, ref_w,
      abs_w, dy.op, n.pixels, s.c_out, c.misaligned);
}

}  // namespace

TEST_CASE("conv2d forward matches the double oracle in every order", PARITY_TAG "[conv2d]") {
  uint32_t seed = 100;
  for (const Case& c : simt_cases()) forward_case<Simt>(c, seed += 10);
}

TEST_CASE("conv2d backward-data matches the double oracle in every order", PARITY_TAG "[conv2d]") {
  uint32_t seed = 200;
  for (const Case& c : simt_cases()) backward_data_case<Simt>(c, seed += 10);
}

TEST_CASE("conv2d backward-filter accumulates the double oracle's gradient in every order",
          PARITY_TAG "[conv2d]") {
  uint32_t seed = 300;
  for (const Case& c : simt_cases()) backward_filter_case<Simt>(c, seed += 10);
}

TEST_CASE("tensor-core conv2d forward matches the double oracle on rounded inputs",
          PARITY_TAG "[conv2d][tensor_core]") {
  uint32_t seed = 2400;
  for (const Case& c : tc_cases()) {
    forward_case<Tf32Tc>(c, seed += 10);
    forward_case<Bf16Tc>(c, seed += 10);
  }
}

TEST_CASE("tensor-core conv2d backward-data matches the double oracle on rounded inputs",
          PARITY_TAG "[conv2d][tensor_core]") {
  uint32_t seed = 2700;
  for (const Case& c : tc_cases()) {
    backward_data_case<Tf32Tc>(c, seed += 10);
    backward_data_case<Bf16Tc>(c, seed += 10);
  }
}

TEST_CASE("tensor-core conv2d backward-filter accumulates the double oracle's gradient",
          PARITY_TAG "[conv2d][tensor_core]") {
  uint32_t seed = 2500;
  for (const Case& c : tc_cases()) {
    backward_filter_case<Tf32Tc>(c, seed += 10);
    backward_filter_case<Bf16Tc>(c, seed += 10);
  }
}

TEST_CASE("tensor-core conv2d keeps the first layer off the tensor cores, and checks shapes",
          PARITY_TAG "[conv2d][tensor_core]") {
  CHECK_FALSE(kiln::cuda::conv2d_tc_suits(shape(1, 8, 8, 1, 64, 3, 1, 1)));
  CHECK_FALSE(kiln::cuda::conv2d_tc_suits(shape(1, 8, 8, 3, 64, 3, 1, 1)));
  CHECK(kiln::cuda::conv2d_tc_suits(shape(1, 8, 8, 64, 128, 3, 1, 1)));
  DeviceBuffer<float> buf(64);
  CHECK_THROWS_WITH(kiln::cuda::conv2d_forward_tf32(buf.get(), buf.get(), buf.get(), nullptr,
                                                    shape(1, 2, 2, 4, 4, 5, 1, 0), nullptr),
                    Catch::Contains("conv2d_forward_tf32") && Catch::Contains("larger than"));
}
