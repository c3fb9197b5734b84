// tests/parity/test_conv2d_parity.cpp — kiln::cuda::conv2d_{forward,backward_data,backward_filter}
// against the double oracle kiln::cpu::conv2d_*<double>.
//
// Built twice (tests/parity/CMakeLists.txt): under the SIMT emulator, where every case runs in
// every thread order and the three results must be bitwise equal; and natively on a GPU
// (KILN_TEST_GPU, tag [gpu]), where the three runs check repeated-run determinism instead.
// The cases reach every path of kernels/conv2d.cu: the 3×3/stride-1/pad-1 fast path, the general
// path with float4 loads, the scalar path (channel counts not multiples of 4), the first-layer
// direct kernel (C_in 1..3), 64×64 and 128×128 tiles, split-K with several splits, and the
// flagship's layer shapes at batch 1 (spatially reduced where the emulator would be slow).
// Sentinels: y and dx start as NaN (they are overwritten: an element left unwritten fails); dw and
// db start at known values and must come back as value + gradient (they accumulate).
// Error bound: |got − ref| <= (K + 8)·2⁻²⁴·max|ref_abs| (+ 2·2⁻²⁴·|ref| for accumulated outputs),
// where K is the length of each output's dot product and ref_abs is the oracle run on |inputs| —
// the rigorous bound for fp32 accumulation with one rounding per term, relative to the
// reference's magnitude.
#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "kernels/conv2d.h"
#include "tests/support/compare.h"
#include "tests/support/parity.h"
#include "tests/support/tensors.h"

namespace {

using kiln::Conv2dShape;
using kiln::Device;
using kiln::Tensor;
using namespace kiln::test;

constexpr float kDwSentinel = 0.5f, kDbSentinel = -0.25f;

struct Case {
  const char* name;
  Conv2dShape s;
};

Conv2dShape shape(int n, int h, int w, int ci, int co, int kh, int kw, int sh, int sw, int ph,
                  int pw) {
  Conv2dShape s;
  s.n = n, s.h = h, s.w = w, s.c_in = ci, s.c_out = co, s.kh = kh, s.kw = kw;
  s.stride_h = sh, s.stride_w = sw, s.pad_h = ph, s.pad_w = pw;
  return s;
}

// Every path of kernels/conv2d.cu, and the flagship's five conv layers (3×3, pad 1; 1→64→128→256→
// 512→512 at 48, 24, 12, 6, 3 pixels) at batch 1: conv1, conv4, conv5 full size, conv2 and conv3
// spatially reduced to keep the emulated run short.
std::vector<Case> cases() {
  return {
      {"3x3 s1 p1, 8->16, 2x7x9 (fast path)", shape(2, 7, 9, 8, 16, 3, 3, 1, 1, 1, 1)},
      {"3x3 s2 p1, 16->8, 2x8x8 (general, float4)", shape(2, 8, 8, 16, 8, 3, 3, 2, 2, 1, 1)},
      {"5x5 s2 p0, 5->7, 1x11x9 (scalar)", shape(1, 11, 9, 5, 7, 5, 5, 2, 2, 0, 0)},
      {"1x1 s1 p0, 12->20, 1x5x7", shape(1, 5, 7, 12, 20, 1, 1, 1, 1, 0, 0)},
      {"3x1 s(2,1) p(1,0), 8->12, 2x9x5 (non-square)", shape(2, 9, 5, 8, 12, 3, 1, 2, 1, 1, 0)},
      {"5x5 s1 p2, 6->10, 1x7x9 (scalar, pad 2)", shape(1, 7, 9, 6, 10, 5, 5, 1, 1, 2, 2)},
      {"3x3 s1 p1, C_in 1 -> 16, 2x7x9 (direct)", shape(2, 7, 9, 1, 16, 3, 3, 1, 1, 1, 1)},
      {"5x5 s2 p2, C_in 3 -> 6, 1x9x11 (direct)", shape(1, 9, 11, 3, 6, 5, 5, 2, 2, 2, 2)},
      {"3x3 s1 p0, C_in 2 -> 5, 1x6x19 (direct)", shape(1, 6, 19, 2, 5, 3, 3, 1, 1, 0, 0)},
      {"1x1, 8->1280, 1x32x40 (128x128 tiles)", shape(1, 32, 40, 8, 1280, 1, 1, 1, 1, 0, 0)},
      {"1x1, 1283->6, 1x32x40 (128x128 tiles, scalar)",
       shape(1, 32, 40, 1283, 6, 1, 1, 1, 1, 0, 0)},
      {"flagship conv1: 1->64, 1x48x48 (split-K)", shape(1, 48, 48, 1, 64, 3, 3, 1, 1, 1, 1)},
      {"flagship conv2: 64->128, 1x12x12", shape(1, 12, 12, 64, 128, 3, 3, 1, 1, 1, 1)},
      {"flagship conv3: 128->256, 1x6x6", shape(1, 6, 6, 128, 256, 3, 3, 1, 1, 1, 1)},
      {"flagship conv4: 256->512, 1x6x6", shape(1, 6, 6, 256, 512, 3, 3, 1, 1, 1, 1)},
      {"flagship conv5: 512->512, 1x3x3", shape(1, 3, 3, 512, 512, 3, 3, 1, 1, 1, 1)},
  };
}

struct Data {
  Conv2dShape s;
  int64_t x_n, y_n, w_n;
  std::vector<float> x, w, b, dy;
  explicit Data(const Conv2dShape& s_, uint32_t seed) : s(s_) {
    x_n = int64_t{s.n} * s.h * s.w * s.c_in;
    y_n = int64_t{s.n} * s.out_h() * s.out_w() * s.c_out;
    w_n = int64_t{s.c_out} * s.kh * s.kw * s.c_in;
    x = uniform_floats(x_n, seed, -1.f, 1.f);
    w = uniform_floats(w_n, seed + 1, -1.f, 1.f);
    b = uniform_floats(s.c_out, seed + 2, -1.f, 1.f);
    dy = uniform_floats(y_n, seed + 3, -1.f, 1.f);
  }
};

}  // namespace

TEST_CASE("conv2d forward matches the double oracle in every order", PARITY_TAG "[conv2d]") {
  uint32_t seed = 100;
  for (const Case& c : cases()) {
    INFO("case: " << c.name);
    const Data d(c.s, seed += 10);
    for (const bool with_bias : {true, false}) {
      INFO("bias: " << with_bias);
      Tensor x = device_tensor(d.x), w = device_tensor(d.w), b = device_tensor(d.b);
      Tensor y({d.y_n}, kiln::DType::f32, Device::cuda);
      const std::vector<float> got = same_in_every_order("conv2d_forward", [&] {
        y.fill(std::numeric_limits<double>::quiet_NaN());
        kiln::cuda::conv2d_forward(y.data<float>(), x.data<float>(), w.data<float>(),
                                   with_bias ? b.data<float>() : nullptr, c.s, nullptr);
        return y.to_vector<float>();
      });
      std::vector<double> ref(d.y_n), ref_abs(d.y_n);
      const auto xd = to_double(d.x), wd = to_double(d.w), bd = to_double(d.b);
      const auto xa = to_double(d.x, true), wa = to_double(d.w, true), ba = to_double(d.b, true);
      kiln::cpu::conv2d_forward<double>(ref.data(), xd.data(), wd.data(),
                                        with_bias ? bd.data() : nullptr, c.s);
      kiln::cpu::conv2d_forward<double>(ref_abs.data(), xa.data(), wa.data(),
                                        with_bias ? ba.data() : nullptr, c.s);
      check_dot("y", got, ref, ref_abs, int64_t{c.s.kh} * c.s.kw * c.s.c_in);
    }
  }
}

TEST_CASE("conv2d backward-data matches the double oracle in every order", PARITY_TAG "[conv2d]") {
  uint32_t seed = 200;
  for (const Case& c : cases()) {
    INFO("case: " << c.name);
    const Data d(c.s, seed += 10);
    Tensor dy = device_tensor(d.dy), w = device_tensor(d.w);
    Tensor dx({d.x_n}, kiln::DType::f32, Device::cuda);
    const std::vector<float> got = same_in_every_order("conv2d_backward_data", [&] {
      dx.fill(std::numeric_limits<double>::quiet_NaN());
      kiln::cuda::conv2d_backward_data(dx.data<float>(), dy.data<float>(), w.data<float>(), c.s,
                                       nullptr);
      return dx.to_vector<float>();
    });
    std::vector<double> ref(d.x_n), ref_abs(d.x_n);
    const auto dyd = to_double(d.dy), wd = to_double(d.w);
    const auto dya = to_double(d.dy, true), wa = to_double(d.w, true);
    kiln::cpu::conv2d_backward_data<double>(ref.data(), dyd.data(), wd.data(), c.s);
    kiln::cpu::conv2d_backward_data<double>(ref_abs.data(), dya.data(), wa.data(), c.s);
    check_dot("dx", got, ref, ref_abs, int64_t{c.s.kh} * c.s.kw * c.s.c_out);
  }
}

TEST_CASE("conv2d backward-filter accumulates the double oracle's gradient in every order",
          PARITY_TAG "[conv2d]") {
  uint32_t seed = 300;
  for (const Case& c : cases()) {
    INFO("case: " << c.name);
    const Data d(c.s, seed += 10);
    Tensor dy = device_tensor(d.dy), x = device_tensor(d.x);
    Tensor dw({d.w_n}, kiln::DType::f32, Device::cuda),
        db({c.s.c_out}, kiln::DType::f32, Device::cuda);
    // One run returns dw followed by db.
    const std::vector<float> got = same_in_every_order("conv2d_backward_filter", [&] {
      dw.fill(kDwSentinel);
      db.fill(kDbSentinel);
      kiln::cuda::conv2d_backward_filter(dw.data<float>(), db.data<float>(), dy.data<float>(),
                                         x.data<float>(), c.s, nullptr);
      std::vector<float> out = dw.to_vector<float>();
      const std::vector<float> b = db.to_vector<float>();
      out.insert(out.end(), b.begin(), b.end());
      return out;
    });
    std::vector<double> ref_w(d.w_n, 0.0), ref_b(c.s.c_out, 0.0);
    std::vector<double> abs_w(d.w_n, 0.0), abs_b(c.s.c_out, 0.0);
    const auto dyd = to_double(d.dy), xd = to_double(d.x);
    const auto dya = to_double(d.dy, true), xa = to_double(d.x, true);
    kiln::cpu::conv2d_backward_filter<double>(ref_w.data(), ref_b.data(), dyd.data(), xd.data(),
                                              c.s);
    kiln::cpu::conv2d_backward_filter<double>(abs_w.data(), abs_b.data(), dya.data(), xa.data(),
                                              c.s);
    const int64_t k = int64_t{c.s.n} * c.s.out_h() * c.s.out_w();
    check_dot("dw", std::vector<float>(got.begin(), got.begin() + d.w_n), ref_w, abs_w, k,
              kDwSentinel);
    check_dot("db", std::vector<float>(got.begin() + d.w_n, got.end()), ref_b, abs_b, k,
              kDbSentinel);

    // Without db: dw alone, same values bit for bit (db's reduction is independent).
    dw.fill(kDwSentinel);
    kiln::cuda::conv2d_backward_filter(dw.data<float>(), nullptr, dy.data<float>(), x.data<float>(),
                                       c.s, nullptr);
    const std::vector<float> dw_only = dw.to_vector<float>();
    CHECK(std::memcmp(dw_only.data(), got.data(), dw_only.size() * sizeof(float)) == 0);
  }
}
