// tests/precision/test_precision_ops.cpp — conv2d and linear in tf32 and bf16 on the CPU: the
// fast path (f32 tensors) against the double oracle given the same rounded inputs, with a bound
// derived per element; the f64 path; the gradient semantics; and controls proving that the bound
// rejects inputs left unrounded or rounded the wrong way.
//
// The bound. With a and b the rounded inputs, every product a·b is exact in fp32 (11 × 11 or 8 × 8
// significant bits), so the fast path differs from the exact sum only by its fp32 additions: at
// most T additions inside a GEMM (T = the most products summed into one element) and at most 10
// more outside it (the bias, backward-filter's 8 partial sums and the accumulated value), each
// off by at most 2⁻²⁴ of a partial sum bounded by S = Σ|a·b| (+ |bias| or |initial value|), so
//   |fast − exact| ≤ e = (T + 10)·2⁻²⁴·S,
// S being the oracle run on |a|, |b|. Where bf16 rounds the output (forward y, backward-data dx),
// the fast value is round_bf16 of an fp32 value within e of the exact one, and rounding is
// monotone, so it must lie in [round_bf16(exact − e), round_bf16(exact + e)] — usually one value.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "core/precision.h"
#include "core/rounding.h"
#include "kernels/conv2d.h"
#include "kernels/linear.h"
#include "tests/support/precision_bound.h"
#include "tests/support/random.h"
#include "tests/support/thread_counts.h"

using kiln::Conv2dParams;
using kiln::Conv2dShape;
using kiln::LinearShape;
using kiln::Precision;
using kiln::Shape;
using kiln::Tensor;

namespace {

using Floats = std::vector<float>;
using Doubles = std::vector<double>;

// How the test rounds the oracle's inputs: as the hardware does, or deliberately wrong (controls).
enum class Rounding { hardware, none, truncate };

float round_input(Precision p, float x, Rounding r) {
  if (r == Rounding::none) return x;
  if (r == Rounding::hardware)
    return p == Precision::tf32 ? kiln::round_tf32(x) : kiln::round_bf16(x);
  const uint32_t keep = p == Precision::tf32 ? 0xFFFFE000u : 0xFFFF0000u;
  return kiln::bits_float(kiln::float_bits(x) & keep);
}

Doubles oracle_input(Precision p, const Floats& v, Rounding r) {
  Doubles d(v.size());
  for (size_t i = 0; i < v.size(); ++i) d[i] = round_input(p, v[i], r);
  return d;
}

Doubles absolute(Doubles v) {
  for (double& x : v) x = std::fabs(x);
  return v;
}

// One op of one shape: its two GEMM inputs, the extra fp32 operand (bias, or the initial value of
// an accumulated output), how to run it on f32 (or f64) tensors, and its double oracle.
struct Op {
  std::string name;
  Floats a, b, extra;
  int64_t products = 0;         // T: the most products summed into one output element
  bool accumulates = false;     // the output starts as `extra` (dw, db); else it is overwritten
  bool output_rounded = false;  // bf16 rounds this output (y, dx)
  // Runs the functional API on tensors of dtype `T` made from a, b, extra; returns the output.
  std::function<Doubles(Precision, const Floats&, const Floats&, const Floats&, bool f64)> run;
  // The oracle in double on the given inputs.
  std::function<Doubles(const Doubles&, const Doubles&, const Doubles&)> oracle;
};

Tensor tensor_of(const Shape& shape, const Floats& v, bool f64) {
  if (f64) return Tensor::from_vector<double>(shape, Doubles(v.begin(), v.end()));
  return Tensor::from_vector<float>(shape, v);
}
Doubles values_of(const Tensor& t) {
  if (t.dtype() == kiln::DType::f64) return t.to_vector<double>();
  const Floats f = t.to_vector<float>();
  return Doubles(f.begin(), f.end());
}
// An output buffer pre-filled with NaN (an overwritten output must not read it).
Tensor nan_tensor(const Shape& shape, bool f64) {
  return tensor_of(shape, Floats(size_t(shape.numel()), std::numeric_limits<float>::quiet_NaN()),
                   f64);
}

// Concatenates dw and db (backward-filter and backward-weight give both).
Doubles join(Doubles a, const Doubles& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

struct ConvCase {
  int n, h, w, c_in, c_out, k, stride, pad;
};

Conv2dShape conv_shape(const ConvCase& c) {
  Conv2dShape s;
  s.n = c.n, s.h = c.h, s.w = c.w, s.c_in = c.c_in, s.c_out = c.c_out, s.kh = c.k, s.kw = c.k;
  s.stride_h = s.stride_w = c.stride, s.pad_h = s.pad_w = c.pad;
  return s;
}

// The random inputs of one shape: x, w, dy, the bias, and the initial dw then db.
struct Inputs {
  Floats x, w, dy, bias, grads0;
  Inputs(const Shape& xs, const Shape& ws, const Shape& ys, const Shape& bs, uint32_t seed)
      : x(kiln::test::uniform_floats(xs.numel(), seed, -1.f, 1.f)),
        w(kiln::test::uniform_floats(ws.numel(), seed + 1, -1.f, 1.f)),
        dy(kiln::test::uniform_floats(ys.numel(), seed + 2, -1.f, 1.f)),
        bias(kiln::test::uniform_floats(bs.numel(), seed + 3, -1.f, 1.f)),
        grads0(kiln::test::uniform_floats(ws.numel() + bs.numel(), seed + 4, -1.f, 1.f)) {}
};

// The three ops of one layer shape. `forward(p, y, x, w, b)`, `data(p, dx, dy, w)` and
// `weights(p, dw, db, dy, x)` call the functional API; the oracles take raw double arrays.
using Forward =
    std::function<void(Precision, Tensor&, const Tensor&, const Tensor&, const Tensor*)>;
using Data = std::function<void(Precision, Tensor&, const Tensor&, const Tensor&)>;
using Weights = std::function<void(Precision, Tensor&, Tensor*, const Tensor&, const Tensor&)>;
using Oracle3 = std::function<void(double*, const double*, const double*, const double*)>;
using Oracle2 = std::function<void(double*, const double*, const double*)>;
using OracleW = std::function<void(double*, double*, const double*, const double*)>;

struct Layer {
  std::string tag;
  Shape xs, ws, ys, bs;
  int64_t forward_products, data_products, weight_products;
  Forward forward;
  Data data;
  Weights weights;
  Oracle3 forward_oracle;
  Oracle2 data_oracle;
  OracleW weight_oracle;
};

std::vector<Op> ops_of(const Layer& l, uint32_t seed) {
  const Inputs in(l.xs, l.ws, l.ys, l.bs, seed);
  std::vector<Op> ops(3);
  Op& fwd = ops[0];
  fwd.name = l.tag + " forward";
  fwd.a = in.x, fwd.b = in.w, fwd.extra = in.bias;
  fwd.products = l.forward_products;
  fwd.output_rounded = true;
  fwd.run = [l](Precision p, const Floats& a, const Floats& b, const Floats& e, bool f64) {
    Tensor y = nan_tensor(l.ys, f64);
    const Tensor bt = tensor_of(l.bs, e, f64);
    l.forward(p, y, tensor_of(l.xs, a, f64), tensor_of(l.ws, b, f64), &bt);
    return values_of(y);
  };
  fwd.oracle = [l](const Doubles& a, const Doubles& b, const Doubles& e) {
    Doubles y(size_t(l.ys.numel()));
    l.forward_oracle(y.data(), a.data(), b.data(), e.data());
    return y;
  };

  Op& data = ops[1];
  data.name = l.tag + " backward-data";
  data.a = in.dy, data.b = in.w;
  data.products = l.data_products;
  data.output_rounded = true;
  data.run = [l](Precision p, const Floats& a, const Floats& b, const Floats&, bool f64) {
    Tensor dx = nan_tensor(l.xs, f64);
    l.data(p, dx, tensor_of(l.ys, a, f64), tensor_of(l.ws, b, f64));
    return values_of(dx);
  };
  data.oracle = [l](const Doubles& a, const Doubles& b, const Doubles&) {
    Doubles dx(size_t(l.xs.numel()));
    l.data_oracle(dx.data(), a.data(), b.data());
    return dx;
  };

  Op& weight = ops[2];
  weight.name = l.tag + " backward-weight";
  weight.a = in.dy, weight.b = in.x, weight.extra = in.grads0;
  weight.products = l.weight_products;
  weight.accumulates = true;
  const int64_t nw = l.ws.numel();
  weight.run = [l, nw](Precision p, const Floats& a, const Floats& b, const Floats& e, bool f64) {
    Tensor dw = tensor_of(l.ws, Floats(e.begin(), e.begin() + nw), f64);
    Tensor db = tensor_of(l.bs, Floats(e.begin() + nw, e.end()), f64);
    l.weights(p, dw, &db, tensor_of(l.ys, a, f64), tensor_of(l.xs, b, f64));
    return join(values_of(dw), values_of(db));
  };
  weight.oracle = [l, nw](const Doubles& a, const Doubles& b, const Doubles& e) {
    Doubles out = e;  // dw then db, accumulated onto
    l.weight_oracle(out.data(), out.data() + nw, a.data(), b.data());
    return out;
  };
  return ops;
}

Layer conv_layer(const ConvCase& c) {
  const Conv2dShape s = conv_shape(c);
  auto params = [s](Precision p) {
    return Conv2dParams{s.stride_h, s.stride_w, s.pad_h, s.pad_w, p};
  };
  Layer l;
  l.tag = "conv " + std::to_string(c.n) + "x" + std::to_string(c.h) + "x" + std::to_string(c.w) +
          "x" + std::to_string(c.c_in) + " -> " + std::to_string(c.c_out) + " k" +
          std::to_string(c.k) + " s" + std::to_string(c.stride) + " p" + std::to_string(c.pad);
  l.xs = {s.n, s.h, s.w, s.c_in}, l.ws = {s.c_out, s.kh, s.kw, s.c_in};
  l.ys = {s.n, s.out_h(), s.out_w(), s.c_out}, l.bs = {s.c_out};
  l.forward_products = int64_t(s.kh) * s.kw * s.c_in;
  l.data_products = int64_t(s.kh) * s.kw * s.c_out;
  l.weight_products = int64_t(s.n) * s.out_h() * s.out_w();
  l.forward = [=](Precision p, Tensor& y, const Tensor& x, const Tensor& w, const Tensor* b) {
    kiln::conv2d_forward(y, x, w, b, params(p));
  };
  l.data = [=](Precision p, Tensor& dx, const Tensor& dy, const Tensor& w) {
    kiln::conv2d_backward_data(dx, dy, w, params(p));
  };
  l.weights = [=](Precision p, Tensor& dw, Tensor* db, const Tensor& dy, const Tensor& x) {
    kiln::conv2d_backward_filter(dw, db, dy, x, params(p));
  };
  l.forward_oracle = [s](double* y, const double* x, const double* w, const double* b) {
    kiln::cpu::conv2d_forward(y, x, w, b, s);
  };
  l.data_oracle = [s](double* dx, const double* dy, const double* w) {
    kiln::cpu::conv2d_backward_data(dx, dy, w, s);
  };
  l.weight_oracle = [s](double* dw, double* db, const double* dy, const double* x) {
    kiln::cpu::conv2d_backward_filter(dw, db, dy, x, s);
  };
  return l;
}

Layer linear_layer(const LinearShape& s) {
  Layer l;
  l.tag =
      "linear " + std::to_string(s.n) + "x" + std::to_string(s.in) + " -> " + std::to_string(s.out);
  l.xs = {s.n, s.in}, l.ws = {s.out, s.in}, l.ys = {s.n, s.out}, l.bs = {s.out};
  l.forward_products = s.in, l.data_products = s.out, l.weight_products = s.n;
  l.forward = [](Precision p, Tensor& y, const Tensor& x, const Tensor& w, const Tensor* b) {
    kiln::linear_forward(y, x, w, b, p);
  };
  l.data = [](Precision p, Tensor& dx, const Tensor& dy, const Tensor& w) {
    kiln::linear_backward_data(dx, dy, w, p);
  };
  l.weights = [](Precision p, Tensor& dw, Tensor* db, const Tensor& dy, const Tensor& x) {
    kiln::linear_backward_weight(dw, db, dy, x, p);
  };
  l.forward_oracle = [s](double* y, const double* x, const double* w, const double* b) {
    kiln::cpu::linear_forward(y, x, w, b, s);
  };
  l.data_oracle = [s](double* dx, const double* dy, const double* w) {
    kiln::cpu::linear_backward_data(dx, dy, w, s);
  };
  l.weight_oracle = [s](double* dw, double* db, const double* dy, const double* x) {
    kiln::cpu::linear_backward_weight(dw, db, dy, x, s);
  };
  return l;
}

// The odd shapes: batch 1, one and three input channels, channels not a multiple of 8 or 16,
// 3×3 and 1×1 (the direct path), stride 2 (backward-data through col2im), stride 1 with ≥ 8
// channels (backward-data as a flipped convolution).
const ConvCase kConvCases[] = {
    {1, 5, 7, 3, 5, 3, 1, 1},  {2, 6, 6, 1, 4, 3, 2, 1},  {3, 4, 5, 9, 10, 1, 1, 0},
    {2, 7, 6, 17, 6, 3, 1, 1}, {2, 9, 9, 12, 7, 3, 2, 1},
};
const LinearShape kLinearCases[] = {{1, 5, 3}, {7, 33, 10}, {64, 37, 17}};

std::vector<Op> all_ops() {
  std::vector<Op> ops;
  uint32_t seed = 100;
  for (const ConvCase& c : kConvCases)
    for (Op& op : ops_of(conv_layer(c), seed += 10)) ops.push_back(std::move(op));
  for (const LinearShape& s : kLinearCases)
    for (Op& op : ops_of(linear_layer(s), seed += 10)) ops.push_back(std::move(op));
  return ops;
}

// How many elements of `got` lie outside the derived bound around the oracle on `rounding`-rounded
// inputs; the first few go into `report`.
int64_t outside_bound(const Op& op, Precision p, const Doubles& got, Rounding rounding,
                      std::string* report) {
  const Doubles a = oracle_input(p, op.a, rounding), b = oracle_input(p, op.b, rounding);
  const Doubles e(op.extra.begin(), op.extra.end());
  const Doubles exact = op.oracle(a, b, e);
  const Doubles sum_abs = op.oracle(absolute(a), absolute(b), absolute(e));
  const bool rounded = op.output_rounded && kiln::rounds_output(p);
  int64_t outside = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = kiln::test::precision_error_bound(op.products, sum_abs[i]);
    const bool ok =
        kiln::test::within_precision_bound(got[i], exact[i], sum_abs[i], op.products, rounded);
    if (!ok && ++outside <= 3 && report != nullptr)
      *report += "  [" + std::to_string(i) + "] got " + std::to_string(got[i]) + ", oracle " +
                 std::to_string(exact[i]) + ", bound " + std::to_string(err) + "\n";
  }
  return outside;
}

const Precision kReduced[] = {Precision::tf32, Precision::bf16};

}  // namespace

TEST_CASE("precision: the fast path's tf32 and bf16 ops match the oracle on rounded inputs",
          "[cpu][precision]") {
  for (const Op& op : all_ops())
    for (Precision p : kReduced) {
      const Doubles got = op.run(p, op.a, op.b, op.extra, /*f64=*/false);
      std::string report;
      const int64_t outside = outside_bound(op, p, got, Rounding::hardware, &report);
      INFO(op.name << ", " << kiln::precision_name(p) << ": " << outside << " of " << got.size()
                   << " outside the bound\n"
                   << report);
      CHECK(outside == 0);
    }
}

TEST_CASE("precision: the bound rejects inputs left unrounded or rounded the wrong way",
          "[cpu][precision]") {
  // The controls: the same fast-path results against an oracle given unrounded inputs, or inputs
  // truncated instead of rounded to nearest, must fall outside the bound somewhere for every op
  // (else the parity test above could not tell a path that forgets to round).
  for (const Op& op : all_ops())
    for (Precision p : kReduced) {
      const Doubles got = op.run(p, op.a, op.b, op.extra, false);
      INFO(op.name << ", " << kiln::precision_name(p));
      CHECK(outside_bound(op, p, got, Rounding::none, nullptr) > 0);
      CHECK(outside_bound(op, p, got, Rounding::truncate, nullptr) > 0);
    }
}

TEST_CASE("precision: fp32 leaves the fast path's results as they were", "[cpu][precision]") {
  // Precision::fp32 is today's exact path: the same bits as the call without a precision.
  const ConvCase c{2, 7, 6, 17, 6, 3, 1, 1};
  const Conv2dShape s = conv_shape(c);
  const Tensor x = kiln::test::uniform_tensor({s.n, s.h, s.w, s.c_in}, 1, kiln::Device::cpu);
  const Tensor w = kiln::test::uniform_tensor({s.c_out, s.kh, s.kw, s.c_in}, 2, kiln::Device::cpu);
  Tensor y1({s.n, s.out_h(), s.out_w(), s.c_out}), y2({s.n, s.out_h(), s.out_w(), s.c_out});
  kiln::conv2d_forward(y1, x, w, nullptr, {1, 1, 1, 1});
  kiln::conv2d_forward(y2, x, w, nullptr, {1, 1, 1, 1, Precision::fp32});
  CHECK(y1.to_vector<float>() == y2.to_vector<float>());
  Tensor y3({s.n, s.out_h(), s.out_w(), s.c_out});
  kiln::conv2d_forward(y3, x, w, nullptr, {1, 1, 1, 1, Precision::tf32});
  CHECK(y1.to_vector<float>() != y3.to_vector<float>());
}

TEST_CASE("precision: the f64 path is the oracle on rounded inputs", "[cpu][precision]") {
  // f64 tensors with a reduced precision run the reference loops on rounded copies of the inputs
  // (exactly the oracle on the test's rounded inputs) and, for bf16, round y and dx through float.
  for (const Op& op : all_ops())
    for (Precision p : kReduced) {
      const Doubles got = op.run(p, op.a, op.b, op.extra, /*f64=*/true);
      Doubles want = op.oracle(oracle_input(p, op.a, Rounding::hardware),
                               oracle_input(p, op.b, Rounding::hardware),
                               Doubles(op.extra.begin(), op.extra.end()));
      if (op.output_rounded && kiln::rounds_output(p))
        for (double& v : want) v = kiln::round_bf16(static_cast<float>(v));
      INFO(op.name << ", " << kiln::precision_name(p));
      CHECK(got == want);
    }
}

TEST_CASE("precision: names parse both ways, an unknown name is refused with the choices",
          "[cpu][precision]") {
  for (Precision p : {Precision::fp32, Precision::tf32, Precision::bf16})
    CHECK(kiln::parse_precision(kiln::precision_name(p)) == p);
  CHECK_THROWS_WITH(kiln::parse_precision("fp16"), Catch::Contains("unknown precision 'fp16'") &&
                                                       Catch::Contains("fp32, tf32 or bf16"));
  const kiln::PrecisionPolicy tf32{Precision::tf32}, tf32_all{Precision::tf32, true},
      bf16{Precision::bf16};
  CHECK((tf32.conv() == Precision::tf32 && tf32.linear() == Precision::fp32));
  CHECK((tf32_all.conv() == Precision::tf32 && tf32_all.linear() == Precision::tf32));
  CHECK((bf16.conv() == Precision::bf16 && bf16.linear() == Precision::bf16));
}

TEST_CASE("precision: tf32 and bf16 give the same bits for any number of threads",
          "[cpu][precision]") {
  // The rounded copies are made in parallel above 2^16 elements: a shape well above that, and the
  // whole op (rounding, sgemm, output rounding) compared bit for bit at 1, 2, 3 and 16 threads.
  const Layer conv = conv_layer({8, 24, 24, 16, 32, 3, 1, 1});
  const Layer lin = linear_layer({256, 300, 64});
  auto run_all = [&] {
    Doubles all;
    uint32_t seed = 900;
    for (const Layer* l : {&conv, &lin})
      for (const Op& op : ops_of(*l, seed += 10))
        for (Precision p : kReduced) {
          const Doubles v = op.run(p, op.a, op.b, op.extra, false);
          all.insert(all.end(), v.begin(), v.end());
        }
    return all;
  };
  Doubles first;
  kiln::test::at_thread_counts({1, 2, 3, 16}, [&](int threads) {
    const Doubles got = run_all();
    if (first.empty()) first = got;
    INFO(threads << " threads");
    CHECK(got == first);
  });
}
