// tests/parity/test_linear_tc_parity.cpp — the tensor-core linear kernels (kernels/linear_tc.h,
// TF32 and BF16) against the double oracle kiln::cpu::linear_*<double> run on the same rounded
// inputs, with the derived bound of tests/support/tc_parity.h.
//
// Built twice like every parity file (tests/support/parity.h): under the SIMT emulator every case
// runs in every thread order (one order in the race-detector build) and the results must be
// bitwise equal; natively on a GPU the three runs check repeated-run determinism.
// The cases reach: 16-byte cp.async copies and element copies (row lengths not a multiple of 16
// bytes, a misaligned view), edge tiles in M, N and K, more k-tiles than pipeline stages, batch 1,
// and the flagship's last layer (512 -> 7).
// Sentinels: y and dx start as NaN (overwritten); dw and db start at known values and must come
// back as value + gradient (they accumulate). Guard elements on both sides of every output must
// keep their sentinel.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/rounding.h"
#include "kernels/linear.h"
#include "kernels/linear_tc.h"
#include "tests/support/compare.h"
#include "tests/support/parity.h"
#include "tests/support/tc_parity.h"

namespace {

using kiln::LinearShape;
using namespace kiln::test;

constexpr float kDwSentinel = 0.5f, kDbSentinel = -0.25f;

// The entry points by storage type: float → TF32, std::uint16_t → BF16.
void forward(float* y, const float* x, const float* w, const float* b, const LinearShape& s) {
  kiln::cuda::linear_forward_tf32(y, x, w, b, s, nullptr);
}
void forward(std::uint16_t* y, const std::uint16_t* x, const std::uint16_t* w, const float* b,
             const LinearShape& s) {
  kiln::cuda::linear_forward_bf16(y, x, w, b, s, nullptr);
}
void backward_data(float* dx, const float* dy, const float* w, const LinearShape& s) {
  kiln::cuda::linear_backward_data_tf32(dx, dy, w, s, nullptr);
}
void backward_data(std::uint16_t* dx, const std::uint16_t* dy, const std::uint16_t* w,
                   const LinearShape& s) {
  kiln::cuda::linear_backward_data_bf16(dx, dy, w, s, nullptr);
}
void backward_weight(float* dw, float* db, const float* dy, const float* x, const LinearShape& s) {
  kiln::cuda::linear_backward_weight_tf32(dw, db, dy, x, s, nullptr);
}
void backward_weight(float* dw, float* db, const std::uint16_t* dy, const std::uint16_t* x,
                     const LinearShape& s) {
  kiln::cuda::linear_backward_weight_bf16(dw, db, dy, x, s, nullptr);
}

struct Case {
  const char* name;
  LinearShape s;
  bool misaligned = false;  // every buffer one element past a 16-byte boundary: element copies
};

std::vector<Case> cases() {
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

template <class P>
struct Data {
  LinearShape s;
  std::vector<float> b, dy;  // b as drawn; dy as drawn, for db
  TcOperand<P> x, w, g;      // g: dy
  Data(const LinearShape& s_, uint32_t seed)
      : s(s_),
        b(uniform_floats(s.out, seed + 2, -1.f, 1.f)),
        dy(uniform_floats(int64_t{s.n} * s.out, seed + 3, -1.f, 1.f)),
        x(uniform_floats(int64_t{s.n} * s.in, seed, -1.f, 1.f)),
        w(uniform_floats(int64_t{s.out} * s.in, seed + 1, -1.f, 1.f)),
        g(dy) {}
};

template <class P>
void forward_case(const Case& c, uint32_t seed) {
  using T = typename P::T;
  const Data<P> d(c.s, seed);
  for (const bool with_bias : {true, false}) {
    INFO(P::kName << " case: " << c.name << ", bias: " << with_bias);
    DeviceBuffer<T> x(d.x.stored, c.misaligned), w(d.w.stored, c.misaligned);
    DeviceBuffer<float> b(d.b, c.misaligned);
    GuardedOut<T> y(static_cast<std::size_t>(c.s.n) * c.s.out, P::nan(), c.misaligned);
    const std::vector<float> got = same_in_every_order("linear_forward", [&] {
      y.reset();
      forward(y.data(), x.get(), w.get(), with_bias ? b.get() : nullptr, c.s);
      return values<P>(y.payload());
    });
    std::vector<double> ref(got.size()), ref_abs(got.size());
    const auto bd = to_double(d.b), ba = to_double(d.b, true);
    kiln::cpu::linear_forward<double>(ref.data(), d.x.op.data(), d.w.op.data(),
                                      with_bias ? bd.data() : nullptr, c.s);
    kiln::cpu::linear_forward<double>(ref_abs.data(), d.x.op_abs.data(), d.w.op_abs.data(),
                                      with_bias ? ba.data() : nullptr, c.s);
    check_tc("y", got, ref, ref_abs, c.s.in, P::kBf16Out);
  }
}

template <class P>
void backward_data_case(const Case& c, uint32_t seed) {
  using T = typename P::T;
  INFO(P::kName << " case: " << c.name);
  const Data<P> d(c.s, seed);
  DeviceBuffer<T> dy(d.g.stored, c.misaligned), w(d.w.stored, c.misaligned);
  GuardedOut<T> dx(static_cast<std::size_t>(c.s.n) * c.s.in, P::nan(), c.misaligned);
  const std::vector<float> got = same_in_every_order("linear_backward_data", [&] {
    dx.reset();
    backward_data(dx.data(), dy.get(), w.get(), c.s);
    return values<P>(dx.payload());
  });
  std::vector<double> ref(got.size()), ref_abs(got.size());
  kiln::cpu::linear_backward_data<double>(ref.data(), d.g.op.data(), d.w.op.data(), c.s);
  kiln::cpu::linear_backward_data<double>(ref_abs.data(), d.g.op_abs.data(), d.w.op_abs.data(),
                                          c.s);
  check_tc("dx", got, ref, ref_abs, c.s.out, P::kBf16Out);
}

template <class P>
void backward_weight_case(const Case& c, uint32_t seed) {
  using T = typename P::T;
  INFO(P::kName << " case: " << c.name);
  const Data<P> d(c.s, seed);
  DeviceBuffer<T> dy(d.g.stored, c.misaligned), x(d.x.stored, c.misaligned);
  const std::size_t w_n = static_cast<std::size_t>(c.s.out) * c.s.in;
  GuardedOut<float> dw(w_n, kDwSentinel, c.misaligned), db(c.s.out, kDbSentinel, c.misaligned);
  // One run returns dw followed by db.
  const std::vector<float> got = same_in_every_order("linear_backward_weight", [&] {
    dw.reset();
    db.reset();
    backward_weight(dw.data(), db.data(), dy.get(), x.get(), c.s);
    std::vector<float> out = dw.payload();
    const std::vector<float> bias = db.payload();
    out.insert(out.end(), bias.begin(), bias.end());
    return out;
  });
  std::vector<double> ref_w(w_n, 0.0), ref_b(c.s.out, 0.0), abs_w(w_n, 0.0), abs_b(c.s.out, 0.0);
  kiln::cpu::linear_backward_weight<double>(ref_w.data(), ref_b.data(), d.g.op.data(),
                                            d.x.op.data(), c.s);
  kiln::cpu::linear_backward_weight<double>(abs_w.data(), abs_b.data(), d.g.op_abs.data(),
                                            d.x.op_abs.data(), c.s);
  check_tc("dw", std::vector<float>(got.begin(), got.begin() + static_cast<std::ptrdiff_t>(w_n)),
           ref_w, abs_w, c.s.n, false, kDwSentinel);
  // db is an fp32 column sum of dy as the GEMM reads it (TF32-rounded; bf16 as stored), the
  // rounding point of the CPU's reduced-precision db.
  const std::vector<double>& dy_stored = d.g.op;
  std::vector<double> db_ref(c.s.out, 0.0), db_abs(c.s.out, 0.0);
  for (int r = 0; r < c.s.n; ++r)
    for (int o = 0; o < c.s.out; ++o) {
      db_ref[o] += dy_stored[static_cast<std::size_t>(r) * c.s.out + o];
      db_abs[o] += std::fabs(dy_stored[static_cast<std::size_t>(r) * c.s.out + o]);
    }
  check_dot("db", std::vector<float>(got.begin() + static_cast<std::ptrdiff_t>(w_n), got.end()),
            db_ref, db_abs, c.s.n, kDbSentinel);

  // Without db: dw alone, the same values bit for bit.
  dw.reset();
  backward_weight(dw.data(), nullptr, dy.get(), x.get(), c.s);
  const std::vector<float> dw_only = dw.payload();
  CHECK(std::memcmp(dw_only.data(), got.data(), dw_only.size() * sizeof(float)) == 0);
}

}  // namespace

TEST_CASE("tensor-core linear forward matches the double oracle on rounded inputs",
          PARITY_TAG "[linear][tensor_core]") {
  uint32_t seed = 1400;
  for (const Case& c : cases()) {
    forward_case<Tf32>(c, seed += 10);
    forward_case<Bf16>(c, seed += 10);
  }
}

TEST_CASE("tensor-core linear backward-data matches the double oracle on rounded inputs",
          PARITY_TAG "[linear][tensor_core]") {
  uint32_t seed = 1500;
  for (const Case& c : cases()) {
    backward_data_case<Tf32>(c, seed += 10);
    backward_data_case<Bf16>(c, seed += 10);
  }
}

TEST_CASE("tensor-core linear backward-weight accumulates the double oracle's gradient",
          PARITY_TAG "[linear][tensor_core]") {
  uint32_t seed = 1600;
  for (const Case& c : cases()) {
    backward_weight_case<Tf32>(c, seed += 10);
    backward_weight_case<Bf16>(c, seed += 10);
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
