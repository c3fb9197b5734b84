// tests/parity/test_linear_parity.cpp — kiln::cuda::linear_{forward,backward_data,backward_weight}
// against the double oracle kiln::cpu::linear_*<double>.
//
// Built twice (tests/parity/CMakeLists.txt): under the SIMT emulator, where every case runs in
// every thread order and the three results must be bitwise equal; and natively on a GPU
// (KILN_TEST_GPU, tag [gpu]), where the three runs check repeated-run determinism instead.
// The cases reach every path of kernels/linear.cu: float4 and scalar loads (sizes not multiples of
// 4, and a misaligned view), 64×64 and 128×128 tiles, edge tiles, split-K in backward-weight, the
// multi-split column sum of db, and the flagship's three linear layers (512→1024→512→7) at batch 2.
// Sentinels: y and dx start as NaN (overwritten); dw and db start at known values and must come
// back as value + gradient (they accumulate).
// Error bound: |got − ref| <= (K + 8)·2⁻²⁴·max|ref_abs| (+ 2·2⁻²⁴·|ref| for accumulated outputs),
// K the dot-product length, ref_abs the oracle on |inputs| (rigorous for fp32 accumulation).
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
#include "kernels/linear.h"
#include "tests/support/compare.h"
#include "tests/support/parity.h"

namespace {

using kiln::Device;
using kiln::LinearShape;
using kiln::Tensor;
using namespace kiln::test;

constexpr float kDwSentinel = 0.5f, kDbSentinel = -0.25f;

struct Case {
  const char* name;
  LinearShape s;
  bool misaligned = false;  // every buffer one float past a 16-byte boundary: scalar paths
};

std::vector<Case> cases() {
  return {
      {"1x1x1", {1, 1, 1}},
      {"n 5, in 13, out 7 (scalar)", {5, 13, 7}},
      {"n 8, in 32, out 16 (float4)", {8, 32, 16}},
      {"n 3, in 20, out 12, misaligned", {3, 20, 12}, true},
      {"n 70, in 36, out 68 (edge tiles)", {70, 36, 68}},
      {"n 1280, in 8, out 1280 (128x128 tiles)", {1280, 8, 1280}},
      {"n 1280, in 1283, out 8 (128x128 tiles, scalar)", {1280, 1283, 8}},
      {"n 3000, in 4, out 40 (split-K, split column sums)", {3000, 4, 40}},
      {"flagship fc1: 512->1024, batch 2", {2, 512, 1024}},
      {"flagship fc2: 1024->512, batch 2", {2, 1024, 512}},
      {"flagship fc3: 512->7, batch 2", {2, 512, 7}},
  };
}

struct Data {
  LinearShape s;
  std::vector<float> x, w, b, dy;
  Data(const LinearShape& s_, uint32_t seed) : s(s_) {
    x = uniform_floats(int64_t{s.n} * s.in, seed, -1.f, 1.f);
    w = uniform_floats(int64_t{s.out} * s.in, seed + 1, -1.f, 1.f);
    b = uniform_floats(s.out, seed + 2, -1.f, 1.f);
    dy = uniform_floats(int64_t{s.n} * s.out, seed + 3, -1.f, 1.f);
  }
};

}  // namespace

TEST_CASE("linear forward matches the double oracle in every order", PARITY_TAG "[linear]") {
  uint32_t seed = 400;
  for (const Case& c : cases()) {
    INFO("case: " << c.name);
    const Data d(c.s, seed += 10);
    for (const bool with_bias : {true, false}) {
      INFO("bias: " << with_bias);
      DeviceBuffer<float> x(d.x, c.misaligned), w(d.w, c.misaligned), b(d.b, c.misaligned);
      DeviceBuffer<float> y(int64_t{c.s.n} * c.s.out, c.misaligned);
      const std::vector<float> got = same_in_every_order("linear_forward", [&] {
        y.fill(std::numeric_limits<float>::quiet_NaN());
        kiln::cuda::linear_forward(y.get(), x.get(), w.get(), with_bias ? b.get() : nullptr, c.s,
                                   nullptr);
        return y.download();
      });
      std::vector<double> ref(got.size()), ref_abs(got.size());
      const auto xd = to_double(d.x), wd = to_double(d.w), bd = to_double(d.b);
      const auto xa = to_double(d.x, true), wa = to_double(d.w, true), ba = to_double(d.b, true);
      kiln::cpu::linear_forward<double>(ref.data(), xd.data(), wd.data(),
                                        with_bias ? bd.data() : nullptr, c.s);
      kiln::cpu::linear_forward<double>(ref_abs.data(), xa.data(), wa.data(),
                                        with_bias ? ba.data() : nullptr, c.s);
      check_dot("y", got, ref, ref_abs, c.s.in);
    }
  }
}

TEST_CASE("linear backward-data matches the double oracle in every order", PARITY_TAG "[linear]") {
  uint32_t seed = 500;
  for (const Case& c : cases()) {
    INFO("case: " << c.name);
    const Data d(c.s, seed += 10);
    DeviceBuffer<float> dy(d.dy, c.misaligned), w(d.w, c.misaligned);
    DeviceBuffer<float> dx(int64_t{c.s.n} * c.s.in, c.misaligned);
    const std::vector<float> got = same_in_every_order("linear_backward_data", [&] {
      dx.fill(std::numeric_limits<float>::quiet_NaN());
      kiln::cuda::linear_backward_data(dx.get(), dy.get(), w.get(), c.s, nullptr);
      return dx.download();
    });
    std::vector<double> ref(got.size()), ref_abs(got.size());
    const auto dyd = to_double(d.dy), wd = to_double(d.w);
    const auto dya = to_double(d.dy, true), wa = to_double(d.w, true);
    kiln::cpu::linear_backward_data<double>(ref.data(), dyd.data(), wd.data(), c.s);
    kiln::cpu::linear_backward_data<double>(ref_abs.data(), dya.data(), wa.data(), c.s);
    check_dot("dx", got, ref, ref_abs, c.s.out);
  }
}

TEST_CASE("linear backward-weight accumulates the double oracle's gradient in every order",
          PARITY_TAG "[linear]") {
  uint32_t seed = 600;
  for (const Case& c : cases()) {
    INFO("case: " << c.name);
    const Data d(c.s, seed += 10);
    DeviceBuffer<float> dy(d.dy, c.misaligned), x(d.x, c.misaligned);
    DeviceBuffer<float> dw(int64_t{c.s.out} * c.s.in, c.misaligned), db(c.s.out, c.misaligned);
    // One run returns dw followed by db.
    const std::vector<float> got = same_in_every_order("linear_backward_weight", [&] {
      dw.fill(kDwSentinel);
      db.fill(kDbSentinel);
      kiln::cuda::linear_backward_weight(dw.get(), db.get(), dy.get(), x.get(), c.s, nullptr);
      std::vector<float> out = dw.download();
      const std::vector<float> b = db.download();
      out.insert(out.end(), b.begin(), b.end());
      return out;
    });
    const int64_t w_n = int64_t{c.s.out} * c.s.in;
    std::vector<double> ref_w(w_n, 0.0), ref_b(c.s.out, 0.0), abs_w(w_n, 0.0), abs_b(c.s.out, 0.0);
    const auto dyd = to_double(d.dy), xd = to_double(d.x);
    const auto dya = to_double(d.dy, true), xa = to_double(d.x, true);
    kiln::cpu::linear_backward_weight<double>(ref_w.data(), ref_b.data(), dyd.data(), xd.data(),
                                              c.s);
    kiln::cpu::linear_backward_weight<double>(abs_w.data(), abs_b.data(), dya.data(), xa.data(),
                                              c.s);
    check_dot("dw", std::vector<float>(got.begin(), got.begin() + w_n), ref_w, abs_w, c.s.n,
              kDwSentinel);
    check_dot("db", std::vector<float>(got.begin() + w_n, got.end()), ref_b, abs_b, c.s.n,
              kDbSentinel);

    // Without db: dw alone, the same values bit for bit.
    dw.fill(kDwSentinel);
    kiln::cuda::linear_backward_weight(dw.get(), nullptr, dy.get(), x.get(), c.s, nullptr);
    const std::vector<float> dw_only = dw.download();
    CHECK(std::memcmp(dw_only.data(), got.data(), dw_only.size() * sizeof(float)) == 0);
  }
}
