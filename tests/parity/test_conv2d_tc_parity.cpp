// tests/parity/test_conv2d_tc_parity.cpp — the tensor-core convolution kernels
// (kernels/conv2d_tc.h, TF32 and BF16) against the double oracle kiln::cpu::conv2d_*<double> run
// on the same rounded inputs, with the derived bound of tests/support/tc_parity.h.
//
// Built twice like every parity file (tests/support/parity.h): under the SIMT emulator every case
// runs in every thread order (one order in the race-detector build) and the results must be
// bitwise equal; natively on a GPU the three runs check repeated-run determinism.
// The cases reach: cp.async gathers (C_in a multiple of 4 for TF32, of 8 for BF16) and element
// gathers (other channel counts, a misaligned view), 3×3 and 1×1 filters, stride 2, padding,
// batch 1, C_out not a multiple of the tile, more k-tiles than pipeline stages, a 3-channel first
// layer (correct here, though conv2d_tc_suits sends it elsewhere) and a flagship layer shape.
// y and dx start as NaN (overwritten); dw and db start at known values and must come back as value +
// gradient (they accumulate); guard elements on both sides of every output keep their sentinel.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/conv2d.h"
#include "kernels/conv2d_tc.h"
#include "tests/support/compare.h"
#include "tests/support/parity.h"
#include "tests/support/tc_parity.h"

namespace {

using kiln::Conv2dShape;
using namespace kiln::test;

// The entry points by storage type: float → TF32, std::uint16_t → BF16.
void forward(float* y, const float* x, const float* w, const float* b, const Conv2dShape& s) {
  kiln::cuda::conv2d_forward_tf32(y, x, w, b, s, nullptr);
}
void forward(std::uint16_t* y, const std::uint16_t* x, const std::uint16_t* w, const float* b,
             const Conv2dShape& s) {
  kiln::cuda::conv2d_forward_bf16(y, x, w, b, s, nullptr);
}
void backward_data(float* dx, const float* dy, const float* w, const Conv2dShape& s) {
  kiln::cuda::conv2d_backward_data_tf32(dx, dy, w, s, nullptr);
}
void backward_data(std::uint16_t* dx, const std::uint16_t* dy, const std::uint16_t* w,
                   const Conv2dShape& s) {
  kiln::cuda::conv2d_backward_data_bf16(dx, dy, w, s, nullptr);
}
void backward_filter(float* dw, float* db, const float* dy, const float* x, const Conv2dShape& s) {
  kiln::cuda::conv2d_backward_filter_tf32(dw, db, dy, x, s, nullptr);
}
void backward_filter(float* dw, float* db, const std::uint16_t* dy, const std::uint16_t* x,
                     const Conv2dShape& s) {
  kiln::cuda::conv2d_backward_filter_bf16(dw, db, dy, x, s, nullptr);
}

constexpr float kDwSentinel = 0.5f, kDbSentinel = -0.25f;

struct Case {
  const char* name;
  Conv2dShape s;
  bool misaligned = false;  // every buffer one element past a 16-byte boundary: element gathers
};

Conv2dShape shape(int n, int h, int w, int ci, int co, int k, int stride, int pad) {
  Conv2dShape s;
  s.n = n, s.h = h, s.w = w, s.c_in = ci, s.c_out = co, s.kh = k, s.kw = k;
  s.stride_h = s.stride_w = stride, s.pad_h = s.pad_w = pad;
  return s;
}

std::vector<Case> cases() {
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

template <class P>
void forward_case(const Case& c, uint32_t seed) {
  using T = typename P::T;
  const Conv2dShape& s = c.s;
  const int64_t x_n = int64_t{s.n} * s.h * s.w * s.c_in;
  const int64_t y_n = int64_t{s.n} * s.out_h() * s.out_w() * s.c_out;
  const int64_t w_n = int64_t{s.c_out} * s.kh * s.kw * s.c_in;
  const TcOperand<P> x(uniform_floats(x_n, seed, -1.f, 1.f));
  const TcOperand<P> w(uniform_floats(w_n, seed + 1, -1.f, 1.f));
  const std::vector<float> b = uniform_floats(s.c_out, seed + 2, -1.f, 1.f);
  for (const bool with_bias : {true, false}) {
    INFO(P::kName << " case: " << c.name << ", bias: " << with_bias);
    DeviceBuffer<T> xd(x.stored, c.misaligned), wd(w.stored, c.misaligned);
    DeviceBuffer<float> bd(b, c.misaligned);
    GuardedOut<T> y(static_cast<std::size_t>(y_n), P::nan(), c.misaligned);
    const std::vector<float> got = same_in_every_order("conv2d_forward", [&] {
      y.reset();
      forward(y.data(), xd.get(), wd.get(), with_bias ? bd.get() : nullptr, s);
      return values<P>(y.payload());
    });
    std::vector<double> ref(got.size()), ref_abs(got.size());
    const auto b_ref = to_double(b), b_abs = to_double(b, true);
    kiln::cpu::conv2d_forward<double>(ref.data(), x.op.data(), w.op.data(),
                                      with_bias ? b_ref.data() : nullptr, s);
    kiln::cpu::conv2d_forward<double>(ref_abs.data(), x.op_abs.data(), w.op_abs.data(),
                                      with_bias ? b_abs.data() : nullptr, s);
    check_tc("y", got, ref, ref_abs, int64_t{s.kh} * s.kw * s.c_in, P::kBf16Out);
  }
}

template <class P>
void backward_data_case(const Case& c, uint32_t seed) {
  using T = typename P::T;
  INFO(P::kName << " case: " << c.name);
  const Conv2dShape& s = c.s;
  const int64_t x_n = int64_t{s.n} * s.h * s.w * s.c_in;
  const int64_t y_n = int64_t{s.n} * s.out_h() * s.out_w() * s.c_out;
  const int64_t w_n = int64_t{s.c_out} * s.kh * s.kw * s.c_in;
  const TcOperand<P> dy(uniform_floats(y_n, seed + 3, -1.f, 1.f));
  const TcOperand<P> w(uniform_floats(w_n, seed + 1, -1.f, 1.f));
  DeviceBuffer<T> dyd(dy.stored, c.misaligned), wd(w.stored, c.misaligned);
  GuardedOut<T> dx(static_cast<std::size_t>(x_n), P::nan(), c.misaligned);
  const std::vector<float> got = same_in_every_order("conv2d_backward_data", [&] {
    dx.reset();
    backward_data(dx.data(), dyd.get(), wd.get(), s);
    return values<P>(dx.payload());
  });
  std::vector<double> ref(got.size()), ref_abs(got.size());
  kiln::cpu::conv2d_backward_data<double>(ref.data(), dy.op.data(), w.op.data(), s);
  kiln::cpu::conv2d_backward_data<double>(ref_abs.data(), dy.op_abs.data(), w.op_abs.data(), s);
  check_tc("dx", got, ref, ref_abs, int64_t{s.kh} * s.kw * s.c_out, P::kBf16Out);
}

template <class P>
void backward_filter_case(const Case& c, uint32_t seed) {
  using T = typename P::T;
  INFO(P::kName << " case: " << c.name);
  const Conv2dShape& s = c.s;
  const int64_t pixels = int64_t{s.n} * s.out_h() * s.out_w();
  const int64_t x_n = int64_t{s.n} * s.h * s.w * s.c_in, y_n = pixels * s.c_out;
  const std::size_t w_n = static_cast<std::size_t>(s.c_out) * s.kh * s.kw * s.c_in;
  const TcOperand<P> x(uniform_floats(x_n, seed, -1.f, 1.f));
  const TcOperand<P> dy(uniform_floats(y_n, seed + 3, -1.f, 1.f));
  DeviceBuffer<T> xd(x.stored, c.misaligned), dyd(dy.stored, c.misaligned);
  GuardedOut<float> dw(w_n, kDwSentinel, c.misaligned), db(s.c_out, kDbSentinel, c.misaligned);
  // One run returns dw followed by db.
  const std::vector<float> got = same_in_every_order("conv2d_backward_filter", [&] {
    dw.reset();
    db.reset();
    backward_filter(dw.data(), db.data(), dyd.get(), xd.get(), s);
    std::vector<float> out = dw.payload();
    const std::vector<float> bias = db.payload();
    out.insert(out.end(), bias.begin(), bias.end());
    return out;
  });
  std::vector<double> ref_w(w_n, 0.0), ref_b(s.c_out, 0.0), abs_w(w_n, 0.0), abs_b(s.c_out, 0.0);
  kiln::cpu::conv2d_backward_filter<double>(ref_w.data(), ref_b.data(), dy.op.data(), x.op.data(),
                                            s);
  kiln::cpu::conv2d_backward_filter<double>(abs_w.data(), abs_b.data(), dy.op_abs.data(),
                                            x.op_abs.data(), s);
  check_tc("dw", std::vector<float>(got.begin(), got.begin() + static_cast<std::ptrdiff_t>(w_n)),
           ref_w, abs_w, pixels, false, kDwSentinel);
  // db is an fp32 column sum of dy as the GEMM reads it (TF32-rounded; bf16 as stored), the
  // rounding point of the CPU's reduced-precision db.
  std::vector<double> db_ref(s.c_out, 0.0), db_abs(s.c_out, 0.0);
  for (int64_t p = 0; p < pixels; ++p)
    for (int o = 0; o < s.c_out; ++o) {
      const double v = dy.op[static_cast<std::size_t>(p * s.c_out + o)];
      db_ref[o] += v;
      db_abs[o] += std::fabs(v);
    }
  check_dot("db", std::vector<float>(got.begin() + static_cast<std::ptrdiff_t>(w_n), got.end()),
            db_ref, db_abs, pixels, kDbSentinel);
}

}  // namespace

TEST_CASE("tensor-core conv2d forward matches the double oracle on rounded inputs",
          PARITY_TAG "[conv2d][tensor_core]") {
  uint32_t seed = 2400;
  for (const Case& c : cases()) {
    forward_case<Tf32>(c, seed += 10);
    forward_case<Bf16>(c, seed += 10);
  }
}

TEST_CASE("tensor-core conv2d backward-data matches the double oracle on rounded inputs",
          PARITY_TAG "[conv2d][tensor_core]") {
  uint32_t seed = 2700;
  for (const Case& c : cases()) {
    backward_data_case<Tf32>(c, seed += 10);
    backward_data_case<Bf16>(c, seed += 10);
  }
}

TEST_CASE("tensor-core conv2d backward-filter accumulates the double oracle's gradient",
          PARITY_TAG "[conv2d][tensor_core]") {
  uint32_t seed = 2500;
  for (const Case& c : cases()) {
    backward_filter_case<Tf32>(c, seed += 10);
    backward_filter_case<Bf16>(c, seed += 10);
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
