// tests/parity/test_precision_dispatch_parity.cpp — conv2d and linear in tf32 and bf16 through the
// functional API (kernels/conv2d.h, kernels/linear.h) on CUDA tensors, against the CPU path of the
// same precision and the double oracle on the same rounded inputs: the dispatch of
// kernels/precision.h (the tensor-core kernels, bf16 operand copies and widened outputs, the first
// layer's fp32 direct kernel on rounded operands) must round exactly where the CPU rounds.
//
// The bound (tests/support/precision_bound.h). Both paths read the same rounded operands, whose
// products are exact in fp32, so each differs from the exact sum E (the double oracle on the
// rounded inputs) only by its fp32 additions, in its own order: |got − E| ≤ e = (T + 10)·u·S with
// u = 2⁻²⁴, T the reduction length, S = Σ|a·b| (+ |bias| or |initial value|), for CUDA and for the
// CPU, so |CUDA − CPU| ≤ 2e. Where bf16 rounds the output (forward y, backward-data dx) both must
// lie in [round_bf16(E − e), round_bf16(E + e)], almost always one value. The control: the same
// CUDA results against the oracle on unrounded inputs must leave that bound (an input left
// unrounded moves a product by up to 2⁻¹¹ or 2⁻⁸ of its size).
// Overwritten outputs start as NaN on both paths; dw and db start at random values (they
// accumulate). The kernels themselves are checked in every thread order by
// test_{conv2d,linear}_tc_parity.cpp; this file runs each case once (CI budget).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "core/memory.h"
#include "core/precision.h"
#include "core/rounding.h"
#include "kernels/conv2d.h"
#include "kernels/linear.h"
#include "kernels/precision.h"
#include "tests/support/device_buffer.h"
#include "tests/support/parity.h"
#include "tests/support/precision_bound.h"
#include "tests/support/tensors.h"

namespace {

using kiln::Device;
using kiln::DType;
using kiln::Precision;
using kiln::Shape;
using kiln::Tensor;
using Doubles = std::vector<double>;
using kiln::test::DeviceBuffer;

// One op: two operands a, b, an optional bias input (forward), one or two outputs.
struct Op {
  std::string name;
  Shape a_shape, b_shape, out_shape;
  int64_t bias_n = 0;  // forward: the bias input's length (0: none)
  int64_t out2_n = 0;  // backward-filter/weight: db's length (0: none)
  bool accumulates;    // outputs += (dw, db) rather than overwritten (y, dx)
  bool activation;     // output is an activation (y, dx): rounded to bf16 in bf16
  int64_t reduction;   // T: the most products summed into one output element
  // out (and out2) from a, b (and bias) at precision p; tensors of one device and dtype.
  std::function<void(Tensor& out, Tensor* out2, const Tensor& a, const Tensor& b,
                     const Tensor* bias, Precision p)>
      call;
};

struct Values {
  Doubles a, b, bias, init, init2;
};

struct Result {
  Doubles out, out2;
};

Result run(const Op& op, const Values& v, Device device, DType dtype, Precision p) {
  auto on = [&](const Shape& s, const Doubles& d) {
    return kiln::test::make_tensor(s, d, dtype).to(device);
  };
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Tensor a = on(op.a_shape, v.a), b = on(op.b_shape, v.b);
  Tensor bias = op.bias_n > 0 ? on({op.bias_n}, v.bias) : Tensor();
  Tensor out = on(op.out_shape, op.accumulates ? v.init : Doubles(op.out_shape.numel(), nan));
  Tensor out2 = op.out2_n > 0 ? on({op.out2_n}, v.init2) : Tensor();
  op.call(out, op.out2_n > 0 ? &out2 : nullptr, a, b, op.bias_n > 0 ? &bias : nullptr, p);
  Result r{kiln::test::values(out), {}};
  if (op.out2_n > 0) r.out2 = kiln::test::values(out2);
  return r;
}

Doubles uniform(int64_t n, uint32_t seed) {
  const std::vector<float> f = kiln::test::uniform_floats(n, seed, -1.f, 1.f);
  return Doubles(f.begin(), f.end());
}
Doubles rounded(Precision p, const Doubles& v) {
  Doubles r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = kiln::round_to(p, v[i]);
  return r;
}
Doubles absolute(Doubles v) {
  for (double& x : v) x = std::fabs(x);
  return v;
}

// Elements of `got` outside the bound around `exact` (bound sizes from `abs_sum`).
int64_t outside(const Doubles& got, const Doubles& exact, const Doubles& abs_sum, int64_t t,
                bool rounds_bf16) {
  int64_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i)
    bad += !kiln::test::within_precision_bound(got[i], exact[i], abs_sum[i], t, rounds_bf16);
  return bad;
}

void check_op(const Op& op, Precision p, uint32_t seed) {
  INFO(op.name << ", " << kiln::precision_name(p));
  Values v{uniform(op.a_shape.numel(), seed), uniform(op.b_shape.numel(), seed + 1),
           uniform(op.bias_n, seed + 2), uniform(op.out_shape.numel(), seed + 3),
           uniform(op.out2_n, seed + 4)};
  const Result gpu = run(op, v, Device::cuda, DType::f32, p);
  const Result cpu = run(op, v, Device::cpu, DType::f32, p);
  // The oracle: exact (double) on the inputs rounded as the hardware rounds them; S on |·|.
  const Values rv{rounded(p, v.a), rounded(p, v.b), v.bias, v.init, v.init2};
  const Values av{absolute(rv.a), absolute(rv.b), absolute(v.bias), absolute(v.init),
                  absolute(v.init2)};
  const Result exact = run(op, rv, Device::cpu, DType::f64, Precision::fp32);
  const Result abs_sum = run(op, av, Device::cpu, DType::f64, Precision::fp32);
  const bool rounds = p == Precision::bf16 && op.activation;
  CHECK(outside(gpu.out, exact.out, abs_sum.out, op.reduction, rounds) == 0);
  CHECK(outside(cpu.out, exact.out, abs_sum.out, op.reduction, rounds) == 0);
  if (op.out2_n > 0) {  // db: a column sum of the rounded dy over the reduction
    CHECK(outside(gpu.out2, exact.out2, abs_sum.out2, op.reduction, false) == 0);
    CHECK(outside(cpu.out2, exact.out2, abs_sum.out2, op.reduction, false) == 0);
  }
  // CUDA against the CPU directly: within 2e (fp32 outputs); bf16 outputs share one interval.
  if (!rounds) {
    int64_t far = 0;
    for (size_t i = 0; i < gpu.out.size(); ++i)
      far += !(std::fabs(gpu.out[i] - cpu.out[i]) <=
               2.0 * kiln::test::precision_error_bound(op.reduction, abs_sum.out[i]));
    CHECK(far == 0);
  }
  // Control: against the unrounded inputs' oracle the CUDA results leave the bound.
  const Result unrounded = run(op, v, Device::cpu, DType::f64, Precision::fp32);
  CHECK(outside(gpu.out, unrounded.out, abs_sum.out, op.reduction, rounds) > 0);
}

struct ConvCase {
  const char* name;
  kiln::Conv2dShape s;
  bool bias;
};

std::vector<Op> conv_ops(const ConvCase& c) {
  const kiln::Conv2dShape& s = c.s;
  const Shape x{s.n, s.h, s.w, s.c_in}, w{s.c_out, s.kh, s.kw, s.c_in},
      y{s.n, s.out_h(), s.out_w(), s.c_out};
  auto params = [s](Precision p) {
    return kiln::Conv2dParams{s.stride_h, s.stride_w, s.pad_h, s.pad_w, p};
  };
  const std::string name = c.name;
  std::vector<Op> ops;
  ops.push_back(
      {name + ": forward", x, w, y, c.bias ? s.c_out : 0, 0, false, true,
       int64_t{s.kh} * s.kw * s.c_in,
       [params](Tensor& out, Tensor*, const Tensor& a, const Tensor& b, const Tensor* bias,
                Precision p) { kiln::conv2d_forward(out, a, b, bias, params(p)); }});
  ops.push_back({name + ": backward-data", y, w, x, 0, 0, false, true,
                 int64_t{s.kh} * s.kw * s.c_out,
                 [params](Tensor& out, Tensor*, const Tensor& a, const Tensor& b, const Tensor*,
                          Precision p) { kiln::conv2d_backward_data(out, a, b, params(p)); }});
  ops.push_back(
      {name + ": backward-filter", y, x, w, 0, c.bias ? s.c_out : 0, true, false,
       int64_t{s.n} * s.out_h() * s.out_w(),
       [params](Tensor& out, Tensor* out2, const Tensor& a, const Tensor& b, const Tensor*,
                Precision p) { kiln::conv2d_backward_filter(out, out2, a, b, params(p)); }});
  return ops;
}

std::vector<Op> linear_ops(const char* name_c, int n, int in, int out, bool bias) {
  const std::string name = name_c;
  const Shape x{n, in}, w{out, in}, y{n, out};
  std::vector<Op> ops;
  ops.push_back({name + ": forward", x, w, y, bias ? out : 0, 0, false, true, in,
                 [](Tensor& o, Tensor*, const Tensor& a, const Tensor& b, const Tensor* bi,
                    Precision p) { kiln::linear_forward(o, a, b, bi, p); }});
  ops.push_back({name + ": backward-data", y, w, x, 0, 0, false, true, out,
                 [](Tensor& o, Tensor*, const Tensor& a, const Tensor& b, const Tensor*,
                    Precision p) { kiln::linear_backward_data(o, a, b, p); }});
  ops.push_back({name + ": backward-weight", y, x, w, 0, bias ? out : 0, true, false, n,
                 [](Tensor& o, Tensor* o2, const Tensor& a, const Tensor& b, const Tensor*,
                    Precision p) { kiln::linear_backward_weight(o, o2, a, b, p); }});
  return ops;
}

// Conv2dShape{n, h, w, c_in, c_out, kh, kw, stride_h, stride_w, pad_h, pad_w}.
kiln::Conv2dShape conv(int n, int hw, int ci, int co, int k, int stride, int pad) {
  kiln::Conv2dShape s;
  s.n = n;
  s.h = s.w = hw;
  s.c_in = ci;
  s.c_out = co;
  s.kh = s.kw = k;
  s.stride_h = s.stride_w = stride;
  s.pad_h = s.pad_w = pad;
  return s;
}

}  // namespace

TEST_CASE("precision dispatch: conv2d tf32 and bf16 on CUDA tensors round where the CPU rounds",
          "[precision]" PARITY_TAG) {
  const ConvCase cases[] = {
      // channels not a multiple of 8 or 16, 3×3, padding, bias: the tensor-core kernels
      {"3x3 12->10 pad 1 bias", conv(2, 6, 12, 10, 3, 1, 1), true},
      // batch 1, 1×1, stride 2, no bias
      {"1x1 9->20 stride 2 batch 1", conv(1, 7, 9, 20, 1, 2, 0), false},
      // the first layer (C_in <= 3): forward on the fp32 direct kernel with rounded operands
      {"first layer 3x3 3->8 stride 2 bias", conv(2, 9, 3, 8, 3, 2, 1), true},
  };
  uint32_t seed = 100;
  for (const ConvCase& c : cases)
    for (const Op& op : conv_ops(c))
      for (Precision p : {Precision::tf32, Precision::bf16}) check_op(op, p, seed += 10);
}

TEST_CASE("precision dispatch: linear tf32 and bf16 on CUDA tensors round where the CPU rounds",
          "[precision]" PARITY_TAG) {
  uint32_t seed = 500;
  for (const auto& ops :
       {linear_ops("3x20->9 bias", 3, 20, 9, true), linear_ops("batch 1 37->16", 1, 37, 16, false)})
    for (const Op& op : ops)
      for (Precision p : {Precision::tf32, Precision::bf16}) check_op(op, p, seed += 10);
}

TEST_CASE("precision dispatch: a bf16 op's steady state allocates no device memory",
          "[precision]" PARITY_TAG) {
  // The operand copies live in the stream's operand workspace: sized by the first call, reused
  // at fixed addresses after it (what a captured CUDA graph needs).
  const Tensor x = kiln::test::uniform_tensor({2, 6, 6, 12}, 1, Device::cuda);
  const Tensor w = kiln::test::uniform_tensor({10, 3, 3, 12}, 2, Device::cuda);
  Tensor y({2, 6, 6, 10}, DType::f32, Device::cuda), dx({2, 6, 6, 12}, DType::f32, Device::cuda);
  Tensor dw = Tensor::zeros({10, 3, 3, 12}, DType::f32, Device::cuda);
  Tensor db = Tensor::zeros({10}, DType::f32, Device::cuda);
  const kiln::Conv2dParams p{1, 1, 1, 1, Precision::bf16};
  auto step = [&] {
    kiln::conv2d_forward(y, x, w, nullptr, p);
    kiln::conv2d_backward_data(dx, y, w, p);
    kiln::conv2d_backward_filter(dw, &db, y, x, p);
    kiln::device_synchronize();
  };
  step();
  const void* area = kiln::workspace(1, nullptr, kiln::WorkspaceArea::operands);
  const uint64_t before = kiln::allocation_stats().device_allocations;
  step();
  CHECK(kiln::allocation_stats().device_allocations == before);
  CHECK(kiln::workspace(1, nullptr, kiln::WorkspaceArea::operands) == area);
}

TEST_CASE("precision dispatch: the CUDA conversions equal core/rounding bit for bit",
          "[precision]" PARITY_TAG) {
  // Lengths around the four-at-a-time path (0 to 9, and 1027: a tail of 3), aligned pointers (the
  // vector path) and misaligned ones (one element at a time), two arrays of different lengths per
  // launch; values: random, ±0, subnormals, ties of both roundings, the largest finite, ±Inf, NaN.
  std::vector<float> special = {0.f,
                                -0.f,
                                1e-40f,
                                -3e-39f,
                                kiln::bits_float(0x3f801000u),  // a tf32 tie
                                kiln::bits_float(0x3f808000u),  // a bf16 tie (to even: down)
                                kiln::bits_float(0x3f818000u),  // a bf16 tie (to even: up)
                                3.4028235e38f,
                                std::numeric_limits<float>::infinity(),
                                -std::numeric_limits<float>::infinity(),
                                std::numeric_limits<float>::quiet_NaN()};
  // Bit for bit, except that any NaN matches any NaN (which NaN the GPU's conversions return is
  // not documented; the emulator's are core/rounding's).
  auto same = [](float got, float want) {
    return (std::isnan(got) && std::isnan(want)) || kiln::float_bits(got) == kiln::float_bits(want);
  };
  auto same16 = [&](std::uint16_t got, std::uint16_t want) {
    return same(kiln::bf16_to_float(got), kiln::bf16_to_float(want));
  };
  for (const int64_t n :
       {int64_t{0}, int64_t{1}, int64_t{3}, int64_t{4}, int64_t{5}, int64_t{9}, int64_t{1027}}) {
    for (const bool misaligned : {false, true}) {
      INFO("n " << n << (misaligned ? ", misaligned" : ""));
      std::vector<float> a = kiln::test::uniform_floats(n, 7 + uint32_t(n), -3.f, 3.f);
      std::vector<float> b = kiln::test::uniform_floats(n + 2, 9 + uint32_t(n), -1e-3f, 1e-3f);
      for (size_t i = 0; i < special.size() && i < a.size(); ++i) a[i] = special[i];
      const size_t nb = b.size();
      DeviceBuffer<float> da(a, misaligned), db(b, misaligned);
      DeviceBuffer<std::uint16_t> ha(std::max<size_t>(a.size(), 1), misaligned), hb(nb, misaligned);
      kiln::cuda::to_bf16(ha.get(), da.get(), n, hb.get(), db.get(), int64_t(nb), nullptr);
      DeviceBuffer<float> wa(std::max<size_t>(a.size(), 1), misaligned);
      kiln::cuda::from_bf16(wa.get(), ha.get(), n, nullptr);
      const std::vector<std::uint16_t> got_a = ha.download(), got_b = hb.download();
      const std::vector<float> widened = wa.download();
      int64_t bad = 0;
      for (int64_t i = 0; i < n; ++i) {
        bad += !same16(got_a[size_t(i)], kiln::bf16_bits(a[size_t(i)]));
        bad += !same(widened[size_t(i)], kiln::bf16_to_float(got_a[size_t(i)]));
      }
      for (size_t i = 0; i < nb; ++i) bad += !same16(got_b[i], kiln::bf16_bits(b[i]));
      for (const Precision p : {Precision::tf32, Precision::bf16}) {
        DeviceBuffer<float> ra(std::max<size_t>(a.size(), 1), misaligned);
        kiln::cuda::round_values(p, ra.get(), da.get(), n, db.get(), db.get(), int64_t(nb),
                                 nullptr);  // b in place
        const std::vector<float> got_r = ra.download(), got_rb = db.download();
        for (int64_t i = 0; i < n; ++i)
          bad += !same(got_r[size_t(i)], kiln::round_to(p, a[size_t(i)]));
        for (size_t i = 0; i < nb; ++i) bad += !same(got_rb[i], kiln::round_to(p, b[i]));
        for (size_t i = 0; i < nb; ++i) b[i] = kiln::round_to(p, b[i]);  // rounded in place
      }
      CHECK(bad == 0);
    }
  }
}
