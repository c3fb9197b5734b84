// tests/parity/test_linear_tc_parity.cpp — the tensor-core linear kernels (kernels/linear_tc.h,
// TF32 and BF16) against the double oracle kiln::cpu::linear_*<double> run on the SAME rounded
// inputs: TF32 inputs rounded by round_tf32 (cvt.rna), BF16 inputs stored as bf16 (round_bf16).
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
// Error bound (kernels/linear_tc.cu, docs/kernels.md): products of rounded inputs are exact, each
// of the K fp32 additions costs at most one ulp (a GPU's tensor cores may truncate):
//   |got − ref| <= (K + 2)·2⁻²³·max|ref_abs|  (+ 2⁻²³·|ref| for accumulated outputs,
//                                               + 2⁻⁸·|ref| for the bf16 rounding of y and dx).
// The bound is tight enough to fail when an input is not rounded, or rounded another way (TF32
// truncation instead of RNA moves a product by up to 2⁻¹¹ of itself).
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

namespace {

using kiln::LinearShape;
using namespace kiln::test;

constexpr float kDwSentinel = 0.5f, kDbSentinel = -0.25f;
constexpr int kGuardElems = 8;

// fp32 storage, TF32 math: inputs uploaded as drawn; the kernel rounds them (cvt.rna).
struct Tf32 {
  using T = float;
  static constexpr const char* kName = "tf32";
  static constexpr bool kBf16Out = false;
  static T store(float x) { return x; }
  static float operand(float x) { return kiln::round_tf32(x); }  // what the tensor cores take
  static float value(T v) { return v; }
  static T nan() { return std::numeric_limits<float>::quiet_NaN(); }
  static void forward(T* y, const T* x, const T* w, const float* b, const LinearShape& s) {
    kiln::cuda::linear_forward_tf32(y, x, w, b, s, nullptr);
  }
  static void backward_data(T* dx, const T* dy, const T* w, const LinearShape& s) {
    kiln::cuda::linear_backward_data_tf32(dx, dy, w, s, nullptr);
  }
  static void backward_weight(float* dw, float* db, const T* dy, const T* x, const LinearShape& s) {
    kiln::cuda::linear_backward_weight_tf32(dw, db, dy, x, s, nullptr);
  }
};

// bf16 storage (bits in std::uint16_t), BF16 math; y and dx come back as bf16.
struct Bf16 {
  using T = std::uint16_t;
  static constexpr const char* kName = "bf16";
  static constexpr bool kBf16Out = true;
  static T store(float x) { return kiln::bf16_bits(x); }
  static float operand(float x) { return kiln::round_bf16(x); }
  static float value(T v) { return kiln::bf16_to_float(v); }
  static T nan() { return 0x7FC0u; }
  static void forward(T* y, const T* x, const T* w, const float* b, const LinearShape& s) {
    kiln::cuda::linear_forward_bf16(y, x, w, b, s, nullptr);
  }
  static void backward_data(T* dx, const T* dy, const T* w, const LinearShape& s) {
    kiln::cuda::linear_backward_data_bf16(dx, dy, w, s, nullptr);
  }
  static void backward_weight(float* dw, float* db, const T* dy, const T* x, const LinearShape& s) {
    kiln::cuda::linear_backward_weight_bf16(dw, db, dy, x, s, nullptr);
  }
};

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

// An output of n elements with kGuardElems guards on each side, all starting at `fill`.
template <typename T>
struct GuardedOut {
  std::size_t n;
  T fill;
  DeviceBuffer<T> buf;
  GuardedOut(std::size_t n_, T fill_, bool misaligned)
      : n(n_), fill(fill_), buf(n_ + 2 * kGuardElems, misaligned) {}
  T* data() { return buf.get() + kGuardElems; }
  void reset() { buf.fill(fill); }
  // The payload; CHECKs that the guards still hold `fill`.
  std::vector<T> payload() const {
    const std::vector<T> all = buf.download();
    int bad = 0;
    for (std::size_t i = 0; i < all.size(); ++i)
      if ((i < kGuardElems || i >= kGuardElems + n) && std::memcmp(&all[i], &fill, sizeof(T)) != 0)
        ++bad;
    CHECK(bad == 0);
    return {all.begin() + kGuardElems, all.begin() + kGuardElems + static_cast<std::ptrdiff_t>(n)};
  }
};

template <class P>
struct Data {
  LinearShape s;
  std::vector<float> x, w, b, dy;                // as drawn
  std::vector<typename P::T> xs, ws, dys;        // as stored on the device
  std::vector<double> xo, wo, dyo, xa, wa, dya;  // the oracle's operands (rounded) and |·|
  Data(const LinearShape& s_, uint32_t seed) : s(s_) {
    x = uniform_floats(int64_t{s.n} * s.in, seed, -1.f, 1.f);
    w = uniform_floats(int64_t{s.out} * s.in, seed + 1, -1.f, 1.f);
    b = uniform_floats(s.out, seed + 2, -1.f, 1.f);
    dy = uniform_floats(int64_t{s.n} * s.out, seed + 3, -1.f, 1.f);
    prepare(x, xs, xo, xa);
    prepare(w, ws, wo, wa);
    prepare(dy, dys, dyo, dya);
  }
  static void prepare(const std::vector<float>& v, std::vector<typename P::T>& stored,
                      std::vector<double>& op, std::vector<double>& op_abs) {
    for (float e : v) {
      stored.push_back(P::store(e));
      op.push_back(P::operand(e));
      op_abs.push_back(std::fabs(P::operand(e)));
    }
  }
};

// |got − (sentinel + ref)| <= atol + rtol·|sentinel + ref| element by element, with the bound of
// the header comment for a dot product of length k.
void check_tc(const std::string& what, const std::vector<float>& got,
              const std::vector<double>& ref, const std::vector<double>& ref_abs, int64_t k,
              bool bf16_out, double sentinel = 0.0) {
  const double atol = (static_cast<double>(k) + 2.0) * std::ldexp(1.0, -23) * max_abs(ref_abs);
  double rtol = sentinel != 0.0 ? std::ldexp(1.0, -23) : 0.0;
  if (bf16_out) rtol += std::ldexp(1.0, -8);
  std::vector<double> expected(ref.size());
  for (std::size_t i = 0; i < ref.size(); ++i) expected[i] = sentinel + ref[i];
  // The bf16 rounding is relative to the rounded value, within atol of the reference.
  expect_close(what, got, expected, atol * (1.0 + rtol), rtol);
}

template <class P>
std::vector<float> values(const std::vector<typename P::T>& v) {
  std::vector<float> out;
  for (const auto& e : v) out.push_back(P::value(e));
  return out;
}

template <class P>
void forward_case(const Case& c, uint32_t seed) {
  using T = typename P::T;
  const Data<P> d(c.s, seed);
  for (const bool with_bias : {true, false}) {
    INFO(P::kName << " case: " << c.name << ", bias: " << with_bias);
    DeviceBuffer<T> x(d.xs, c.misaligned), w(d.ws, c.misaligned);
    DeviceBuffer<float> b(d.b, c.misaligned);
    GuardedOut<T> y(static_cast<std::size_t>(c.s.n) * c.s.out, P::nan(), c.misaligned);
    const std::vector<float> got = same_in_every_order("linear_forward", [&] {
      y.reset();
      P::forward(y.data(), x.get(), w.get(), with_bias ? b.get() : nullptr, c.s);
      return values<P>(y.payload());
    });
    std::vector<double> ref(got.size()), ref_abs(got.size());
    const auto bd = to_double(d.b), ba = to_double(d.b, true);
    kiln::cpu::linear_forward<double>(ref.data(), d.xo.data(), d.wo.data(),
                                      with_bias ? bd.data() : nullptr, c.s);
    kiln::cpu::linear_forward<double>(ref_abs.data(), d.xa.data(), d.wa.data(),
                                      with_bias ? ba.data() : nullptr, c.s);
    check_tc("y", got, ref, ref_abs, c.s.in, P::kBf16Out);
  }
}

template <class P>
void backward_data_case(const Case& c, uint32_t seed) {
  using T = typename P::T;
  INFO(P::kName << " case: " << c.name);
  const Data<P> d(c.s, seed);
  DeviceBuffer<T> dy(d.dys, c.misaligned), w(d.ws, c.misaligned);
  GuardedOut<T> dx(static_cast<std::size_t>(c.s.n) * c.s.in, P::nan(), c.misaligned);
  const std::vector<float> got = same_in_every_order("linear_backward_data", [&] {
    dx.reset();
    P::backward_data(dx.data(), dy.get(), w.get(), c.s);
    return values<P>(dx.payload());
  });
  std::vector<double> ref(got.size()), ref_abs(got.size());
  kiln::cpu::linear_backward_data<double>(ref.data(), d.dyo.data(), d.wo.data(), c.s);
  kiln::cpu::linear_backward_data<double>(ref_abs.data(), d.dya.data(), d.wa.data(), c.s);
  check_tc("dx", got, ref, ref_abs, c.s.out, P::kBf16Out);
}

template <class P>
void backward_weight_case(const Case& c, uint32_t seed) {
  using T = typename P::T;
  INFO(P::kName << " case: " << c.name);
  const Data<P> d(c.s, seed);
  DeviceBuffer<T> dy(d.dys, c.misaligned), x(d.xs, c.misaligned);
  const std::size_t w_n = static_cast<std::size_t>(c.s.out) * c.s.in;
  GuardedOut<float> dw(w_n, kDwSentinel, c.misaligned), db(c.s.out, kDbSentinel, c.misaligned);
  // One run returns dw followed by db.
  const std::vector<float> got = same_in_every_order("linear_backward_weight", [&] {
    dw.reset();
    db.reset();
    P::backward_weight(dw.data(), db.data(), dy.get(), x.get(), c.s);
    std::vector<float> out = dw.payload();
    const std::vector<float> bias = db.payload();
    out.insert(out.end(), bias.begin(), bias.end());
    return out;
  });
  std::vector<double> ref_w(w_n, 0.0), ref_b(c.s.out, 0.0), abs_w(w_n, 0.0), abs_b(c.s.out, 0.0);
  kiln::cpu::linear_backward_weight<double>(ref_w.data(), ref_b.data(), d.dyo.data(), d.xo.data(),
                                            c.s);
  kiln::cpu::linear_backward_weight<double>(abs_w.data(), abs_b.data(), d.dya.data(), d.xa.data(),
                                            c.s);
  check_tc("dw", std::vector<float>(got.begin(), got.begin() + static_cast<std::ptrdiff_t>(w_n)),
           ref_w, abs_w, c.s.n, false, kDwSentinel);
  // db is an fp32 column sum of dy as stored (no tensor-core rounding: unrounded for TF32).
  std::vector<double> dy_stored(d.dy.size()), db_ref(c.s.out, 0.0), db_abs(c.s.out, 0.0);
  for (std::size_t i = 0; i < d.dy.size(); ++i) dy_stored[i] = P::value(d.dys[i]);
  for (int r = 0; r < c.s.n; ++r)
    for (int o = 0; o < c.s.out; ++o) {
      db_ref[o] += dy_stored[static_cast<std::size_t>(r) * c.s.out + o];
      db_abs[o] += std::fabs(dy_stored[static_cast<std::size_t>(r) * c.s.out + o]);
    }
  check_dot("db", std::vector<float>(got.begin() + static_cast<std::ptrdiff_t>(w_n), got.end()),
            db_ref, db_abs, c.s.n, kDbSentinel);

  // Without db: dw alone, the same values bit for bit.
  dw.reset();
  P::backward_weight(dw.data(), nullptr, dy.get(), x.get(), c.s);
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
