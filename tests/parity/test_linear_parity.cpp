// tests/parity/test_linear_parity.cpp — the linear kernels against the double oracle
// kiln::cpu::linear_*<double>: the SIMT fp32 kernels (kernels/linear.h,
// kiln::cuda::linear_{forward,backward_data,backward_weight}) and the tensor-core ones
// (kernels/linear_tc.h, TF32 and BF16, the oracle run on the same rounded inputs). One loop per
// pass checks every kernel, with its precision's bound (tests/support/gemm_parity.h).
//
// Built twice (tests/parity/CMakeLists.txt): under the SIMT emulator, where every case runs in
// every thread order and the three results must be bitwise equal; and natively on a GPU
// (KILN_TEST_GPU, tag [gpu]), where the three runs check repeated-run determinism instead.
// The fp32 cases reach every path of kernels/linear.cu: float4 and scalar loads (sizes not
// multiples of 4, and a misaligned view), 64×64 and 128×128 tiles, edge tiles, split-K in
// backward-weight, the multi-split column sum of db, and the flagship's three linear layers
// (512→1024→512→7) at batch 2. The tensor-core cases reach 16-byte cp.async copies and element
// copies (row lengths not a multiple of 16 bytes, a misaligned view), edge tiles in M, N and K,
// more k-tiles than pipeline stages, batch 1, and the flagship's last layer (512 -> 7).
// Sentinels: y and dx start as NaN (overwritten); dw and db start at known values and must come
// back as value + gradient (they accumulate); guard elements on both sides of every output keep
// their sentinel; dw alone equals dw with db bit for bit.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/linear.h"
#include "kernels/linear_tc.h"
#include "tests/support/compare.h"
#include "tests/support/gemm_parity.h"
#include "tests/support/parity.h"

namespace {

using kiln::LinearShape;
using namespace kiln::test;

// The kernels under test, each with the precision P the test sees it in.
struct Simt {
  using P = Fp32;
  static void forward(float* y, const float* x, const float* w, const float* b,
                      const LinearShape& s) {
    kiln::cuda::linear_forward(y, x, w, b, s, nullptr);
  }
  static void backward_data(float* dx, const float* dy, const float* w, const LinearShape& s) {
    kiln::cuda::linear_backward_data(dx, dy, w, s, nullptr);
  }
  static void backward_weight(float* dw, float* db, const float* dy, const float* x,
                              const LinearShape& s) {
    kiln::cuda::linear_backward_weight(dw, db, dy, x, s, nullptr);
  }
};
struct Tf32Tc {
  using P = Tf32;
  static void forward(float* y, const float* x, const float* w, const float* b,
                      const LinearShape& s) {
    kiln::cuda::linear_forward_tf32(y, x, w, b, s, nullptr);
  }
  static void backward_data(float* dx, const float* dy, const float* w, const LinearShape& s) {
    kiln::cuda::linear_backward_data_tf32(dx, dy, w, s, nullptr);
  }
  static void backward_weight(float* dw, float* db, const float* dy, const float* x,
                              const LinearShape& s) {
    kiln::cuda::linear_backward_weight_tf32(dw, db, dy, x, s, nullptr);
  }
};
struct Bf16Tc {
  using P = Bf16;
  static void forward(std::uint16_t* y, const std::uint16_t* x, const std::uint16_t* w,
                      const float* b, const LinearShape& s) {
    kiln::cuda::linear_forward_bf16(y, x, w, b, s, nullptr);
  }
  static void backward_data(std::uint16_t* dx, const std::uint16_t* dy, const std::uint16_t* w,
                            const LinearShape& s) {
    kiln::cuda::linear_backward_data_bf16(dx, dy, w, s, nullptr);
  }
  static void backward_weight(float* dw, float* db, const std::uint16_t* dy, const std::uint16_t* x,
                              const LinearShape& s) {
    kiln::cuda::linear_backward_weight_bf16(dw, db, dy, x, s, nullptr);
  }
};

struct Case {
  const char* name;
  LinearShape s;
  bool misaligned = false;  // every buffer one element past a 16-byte boundary: scalar paths
};

std::vector<Case> simt_cases() {
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

std::vector<Case> tc_cases() {
  return {
      {"1x1x1", {1, 1, 1}},
      {"n 5, in 13, out 7 (element copies)", {5, 13, 7}},
      {"n 37, in 45, out 29 (odd sizes)", {37, 45, 29}},
      {"n 70, in 48, out 72 (cp.async, edge tiles)", {70, 48, 72}},
      {"n 3, in 40, out 24, misaligned", {3, 40, 24}, true},
      {"n 130, in 100, out 20 (more k-tiles than stages)", {130, 100, 20}},
      {"flagship fc3: 512->7, batch 1", {1, 512, 7}},
  };
}

// x, w, b, dy drawn from seed, seed + 1, seed + 2, seed + 3.
template <class P>
struct Data {
  LinearShape s;
  std::vector<float> b;  // as drawn
  Operand<P> x, w, dy;
  Data(const LinearShape& s_, uint32_t seed)
      : s(s_),
        b(uniform_floats(s.out, seed + 2, -1.f, 1.f)),
        x(uniform_floats(int64_t{s.n} * s.in, seed, -1.f, 1.f)),
        w(uniform_floats(int64_t{s.out} * s.in, seed + 1, -1.f, 1.f)),
        dy(uniform_floats(int64_t{s.n} * s.out, seed + 3, -1.f, 1.f)) {}
};

template <class K>
void forward_case(const Case& c, uint32_t seed) {
  using P = typename K::P;
  using T = typename P::T;
  const Data<P> d(c.s, seed);
  for (const bool with_bias : {true, false}) {
    INFO(P::kName << " case: " << c.name << ", bias: " << with_bias);
    DeviceBuffer<T> x(d.x.stored, c.misaligned), w(d.w.stored, c.misaligned);
    DeviceBuffer<float> b(d.b, c.misaligned);
    GuardedOut<T> y(static_cast<std::size_t>(c.s.n) * c.s.out, P::nan(), c.misaligned);
    const std::vector<float> got = same_in_every_order("linear_forward", [&] {
      y.reset();
      K::forward(y.data(), x.get(), w.get(), with_bias ? b.get() : nullptr, c.s);
      return values<P>(y.payload());
    });
    std::vector<double> ref(got.size()), ref_abs(got.size());
    const auto bd = to_double(d.b), ba = to_double(d.b, true);
    kiln::cpu::linear_forward<double>(ref.data(), d.x.op.data(), d.w.op.data(),
                                      with_bias ? bd.data() : nullptr, c.s);
    kiln::cpu::linear_forward<double>(ref_abs.data(), d.x.op_abs.data(), d.w.op_abs.data(),
                                      with_bias ? ba.data() : nullptr, c.s);
    check_product<P>("y", got, ref, ref_abs, c.s.in, true);
  }
}

template <class K>
void backward_data_case(const Case& c, uint32_t seed) {
  using P = typename K::P;
  using T = typename P::T;
  INFO(P::kName << " case: " << c.name);
  const Data<P> d(c.s, seed);
  DeviceBuffer<T> dy(d.dy.stored, c.misaligned), w(d.w.stored, c.misaligned);
  GuardedOut<T> dx(static_cast<std::size_t>(c.s.n) * c.s.in, P::nan(), c.misaligned);
  const std::vector<float> got = same_in_every_order("linear_backward_data", [&] {
    dx.reset();
    K::backward_data(dx.data(), dy.get(), w.get(), c.s);
    return values<P>(dx.payload());
  });
  std::vector<double> ref(got.size()), ref_abs(got.size());
  kiln::cpu::linear_backward_data<double>(ref.data(), d.dy.op.data(), d.w.op.data(), c.s);
  kiln::cpu::linear_backward_data<double>(ref_abs.data(), d.dy.op_abs.data(), d.w.op_abs.data(),
                                          c.s);
  check_product<P>("dx", got, ref, ref_abs, c.s.out, true);
}

template <class K>
void backward_weight_case(const Case& c, uint32_t seed) {
  using P = typename K::P;
  using T = typename P::T;
  INFO(P::kName << " case: " << c.name);
  const Data<P> d(c.s, seed);
  DeviceBuffer<T> dy(d.dy.stored, c.misaligned), x(d.x.stored, c.misaligned);
  const std::size_t w_n = static_cast<std::size_t>(c.s.out) * c.s.in;
  std::vector<double> ref_w(w_n, 0.0), ref_b(c.s.out, 0.0), abs_w(w_n, 0.0), abs_b(c.s.out, 0.0);
  kiln::cpu::linear_backward_weight<double>(ref_w.data(), ref_b.data(), d.dy.op.data(),
                                            d.x.op.data(), c.s);
  kiln::cpu::linear_backward_weight<double>(abs_w.data(), abs_b.data(), d.dy.op_abs.data(),
                                            d.x.op_abs.data(), c.s);
  check_weight_gradient<P>(
      "linear_backward_weight",
      [&](float* dw, float* db) { K::backward_weight(dw, db, dy.get(), x.get(), c.s); }, ref_w,
      abs_w, d.dy.op, c.s.n, c.s.out, c.misaligned);
}

}  // namespace

TEST_CASE("linear forward matches the double oracle in every order", PARITY_TAG "[linear]") {
  uint32_t seed = 400;
  for (const Case& c : simt_cases()) forward_case<Simt>(c, seed += 10);
}

TEST_CASE("linear backward-data matches the double oracle in every order", PARITY_TAG "[linear]") {
  uint32_t seed = 500;
  for (const Case& c : simt_cases()) backward_data_case<Simt>(c, seed += 10);
}

TEST_CASE("linear backward-weight accumulates the double oracle's gradient in every order",
          PARITY_TAG "[linear]") {
  uint32_t seed = 600;
  for (const Case& c : simt_cases()) backward_weight_case<Simt>(c, seed += 10);
}

TEST_CASE("tensor-core linear forward matches the double oracle on rounded inputs",
          PARITY_TAG "[linear][tensor_core]") {
  uint32_t seed = 1400;
  for (const Case& c : tc_cases()) {
    forward_case<Tf32Tc>(c, seed += 10);
    forward_case<Bf16Tc>(c, seed += 10);
  }
}

TEST_CASE("tensor-core linear backward-data matches the double oracle on rounded inputs",
          PARITY_TAG "[linear][tensor_core]") {
  uint32_t seed = 1500;
  for (const Case& c : tc_cases()) {
    backward_data_case<Tf32Tc>(c, seed += 10);
    backward_data_case<Bf16Tc>(c, seed += 10);
  }
}

TEST_CASE("tensor-core linear backward-weight accumulates the double oracle's gradient",
          PARITY_TAG "[linear][tensor_core]") {
  uint32_t seed = 1600;
  for (const Case& c : tc_cases()) {
    backward_weight_case<Tf32Tc>(c, seed += 10);
    backward_weight_case<Bf16Tc>(c, seed += 10);
  }
}

TEST_CASE("tensor-core linear entry points reject an empty shape with a message",
          PARITY_TAG "[linear][tensor_core]") {
  DeviceBuffer<float> buf(16);
  const LinearShape bad{0, 4, 4};
  CHECK_THROWS_WITH(
      kiln::cuda::linear_forward_tf32(buf.get(), buf.get(), buf.get(), nullptr, bad, nullptr),
      Catch::Contains("linear_forward_tf32") && Catch::Contains("n=0"));
}
