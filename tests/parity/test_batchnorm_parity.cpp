// tests/parity/test_batchnorm_parity.cpp — kiln::cuda batchnorm (training forward with running
// stats, eval forward, backward, backward through eval) against the double oracle
// (kiln::cpu::batchnorm_*<double>). Shapes: odd channel counts (C = 1, 3, 5, 7), M = 1 and M not a
// multiple of the rows a block covers, the flagship's five batchnorm layers at batch 1-2, several
// channel tiles (C = 1024 scalar and vector), and activations with |mean| = 100·std (the shifted
// sums must not cancel). Every emulator thread order (or three runs on a GPU) must give the same
// bits; outputs pre-filled with NaN (overwritten) or known values (accumulated, and checked).
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "core/tensor.h"
#include "kernels/batchnorm.h"
#include "tests/support/compare.h"
#include "tests/support/parity.h"

namespace {

using kiln::Device;
using kiln::Tensor;

using namespace kiln::test;  // tests/support/parity.h

struct BnCase {
  int64_t m;
  int c;
  float offset;  // x = offset + U(-2, 2): offset 100 makes |mean| ≈ 100·std
  bool misalign;
};

const std::vector<BnCase> kFixedCases = {
    {35, 3, 0.f, false},     {18, 5, 0.5f, false},   {101, 7, -1.f, false},
    {2, 1, 0.f, false},      {1, 4, 0.f, false},     {300, 1, 0.f, false},
    {2304, 64, 0.3f, false},  // flagship layer 1, batch 1 (48x48)
    {1152, 128, 0.f, false},  // layer 2, batch 2 (24x24)
    {288, 256, 0.f, false},   // layer 3, batch 2 (12x12)
    {36, 512, 0.f, false},    // layer 4, batch 1 (6x6)
    {18, 512, 0.f, false},    // layer 5, batch 2 (3x3)
    {13, 1024, 0.f, false},  {13, 1023, 0.f, false}, {129, 12, 100.f, false},
    {77, 3, -100.f, false},  {65, 16, 0.f, true},  // C % 4 == 0 but misaligned: scalar path
};

// The fixed cases plus six random shapes (fixed seed): M in [1, 400], C in [1, 70].
std::vector<BnCase> all_cases() {
  std::vector<BnCase> cases = kFixedCases;
  std::mt19937 gen(80);
  std::uniform_int_distribution<int> m(1, 400), c(1, 70);
  for (int i = 0; i < 6; ++i) cases.push_back({m(gen), c(gen), 0.25f, false});
  return cases;
}
const std::vector<BnCase> kCases = all_cases();

std::string describe(const BnCase& b) {
  std::ostringstream os;
  os << "m=" << b.m << " c=" << b.c << " offset=" << b.offset << " misaligned=" << b.misalign;
  return os.str();
}

struct BnInputs {
  std::vector<float> x, gamma, beta, rmean, rvar;
};

BnInputs make_inputs(const BnCase& b, uint32_t seed) {
  BnInputs in;
  in.x = uniform_floats(b.m * b.c, seed);
  for (float& v : in.x) v += b.offset;
  in.gamma = uniform_floats(b.c, seed + 1, 0.5f, 1.5f);
  in.beta = uniform_floats(b.c, seed + 2, -1.f, 1.f);
  in.rmean = uniform_floats(b.c, seed + 3, -1.f, 1.f);
  in.rvar = uniform_floats(b.c, seed + 4, 0.5f, 1.5f);
  return in;
}

constexpr double kEps = 1e-5, kMomentum = 0.1;

}  // namespace

// Error bounds (docs/kernels-elementwise.md), with R = max|x − mean|·max invstd (the largest |x̂|)
// and S = 1 + max|mean|·max invstd (how far the data sit from 0 in units of std):
//   save_mean  |err| <= 32u·(max|x − mean| + max|mean|)
//   save_invstd, running_var  relative 64u·S²  (shifted sums; float partials)
//   y          |err| <= 64u·S·max|γ|·(R + 1) + u·max|β|
TEST_CASE("cuda::batchnorm_forward_train matches the oracle", PARITY_TAG) {
  for (const BnCase& b : kCases) {
    INFO(describe(b));
    const BnInputs in = make_inputs(b, 81);
    const std::vector<float> nan_c(static_cast<size_t>(b.c), std::nanf(""));
    auto runs = run_in_every_order([&] {
      Guarded x(in.x, b.misalign), g(in.gamma, b.misalign), be(in.beta, b.misalign),
          rm(in.rmean, b.misalign), rv(in.rvar, b.misalign), sm(nan_c, b.misalign),
          si(nan_c, b.misalign),
          y(std::vector<float>(static_cast<size_t>(b.m * b.c), std::nanf("")), b.misalign);
      kiln::cuda::batchnorm_forward_train(y.data(), sm.data(), si.data(), rm.data(), rv.data(),
                                          x.data(), g.data(), be.data(), {b.m, b.c}, kEps,
                                          kMomentum, nullptr);
      std::vector<float> out = y.payload();
      for (Guarded* t : {&sm, &si, &rm, &rv}) {
        const std::vector<float> p = t->payload();
        out.insert(out.end(), p.begin(), p.end());
      }
      return out;
    });
    REQUIRE(first_difference(runs) == "");
    const float* got = runs.results[0].data();

    std::vector<double> x = to_double(in.x), g = to_double(in.gamma), be = to_double(in.beta),
                        rm = to_double(in.rmean), rv = to_double(in.rvar);
    std::vector<double> y(static_cast<size_t>(b.m * b.c)), sm(static_cast<size_t>(b.c)),
        si(static_cast<size_t>(b.c));
    kiln::cpu::batchnorm_forward_train<double>(y.data(), sm.data(), si.data(), rm.data(), rv.data(),
                                               x.data(), g.data(), be.data(), {b.m, b.c}, kEps,
                                               kMomentum);
    double dev = 0;  // max |x − mean|
    for (int64_t i = 0; i < b.m * b.c; ++i)
      dev = std::fmax(dev, std::fabs(x[static_cast<size_t>(i)] - sm[static_cast<size_t>(i % b.c)]));
    const double max_mean = kiln::test::max_abs(sm), max_is = kiln::test::max_abs(si);
    const double r = dev * max_is, s = 1 + max_mean * max_is;
    const int64_t mc = b.m * b.c;
    kiln::test::expect_close(
        "y", got, y.data(), mc,
        64 * kU * s * kiln::test::max_abs(g) * (r + 1) + kU * kiln::test::max_abs(be), 0);
    kiln::test::expect_close("save_mean", got + mc, sm.data(), b.c, 32 * kU * (dev + max_mean), 0);
    kiln::test::expect_close("save_invstd", got + mc + b.c, si.data(), b.c, 0, 64 * kU * s * s);
    kiln::test::expect_close("running_mean", got + mc + 2 * b.c, rm.data(), b.c,
                             32 * kU * (dev + max_mean) + kU * kiln::test::max_abs(rm), 0);
    kiln::test::expect_close("running_var", got + mc + 3 * b.c, rv.data(), b.c, 0, 64 * kU * s * s);
  }
}

// Error bound: y = (x − rm)·γ/sqrt(rv + eps) + β in float: |err| <= 8u·(max|x − rm|·max|γ·invstd|
// + max|β|).
TEST_CASE("cuda::batchnorm_forward_eval matches the oracle", PARITY_TAG) {
  for (const BnCase& b : kCases) {
    INFO(describe(b));
    BnInputs in = make_inputs(b, 82);
    for (float& v : in.rmean) v += b.offset;
    auto runs = run_in_every_order([&] {
      Guarded x(in.x, b.misalign), g(in.gamma, b.misalign), be(in.beta, b.misalign),
          rm(in.rmean, b.misalign), rv(in.rvar, b.misalign),
          y(std::vector<float>(static_cast<size_t>(b.m * b.c), std::nanf("")), b.misalign);
      kiln::cuda::batchnorm_forward_eval(y.data(), x.data(), g.data(), be.data(), rm.data(),
                                         rv.data(), {b.m, b.c}, kEps, nullptr);
      return y.payload();
    });
    REQUIRE(first_difference(runs) == "");
    const std::vector<double> x = to_double(in.x), g = to_double(in.gamma), be = to_double(in.beta),
                              rm = to_double(in.rmean), rv = to_double(in.rvar);
    std::vector<double> y(static_cast<size_t>(b.m * b.c));
    kiln::cpu::batchnorm_forward_eval<double>(y.data(), x.data(), g.data(), be.data(), rm.data(),
                                              rv.data(), {b.m, b.c}, kEps);
    double dev = 0, scale = 0;
    for (int64_t i = 0; i < b.m * b.c; ++i)
      dev = std::fmax(dev, std::fabs(x[static_cast<size_t>(i)] - rm[static_cast<size_t>(i % b.c)]));
    for (int c = 0; c < b.c; ++c)
      scale = std::fmax(scale, std::fabs(g[c]) / std::sqrt(rv[c] + kEps));
    kiln::test::expect_close("y", runs.results[0].data(), y.data(), b.m * b.c,
                             8 * kU * (dev * scale + kiln::test::max_abs(be)), 0);
  }
}

// Error bounds, with T = Σ_m |dy|·(1 + |x̂|) per channel (the magnitude of the sums) and
// K = max|γ·invstd|:
//   dgamma, dbeta  |err| <= 32u·max T + u·|ref|   (float partials over <= 8 rows per thread here,
//                  a fixed tree, double finalise)
//   dx             |err| <= 16u·K·max|dy|·(1 + max|x̂|)²
TEST_CASE("cuda::batchnorm_backward matches the oracle (dx overwritten, dgamma/dbeta accumulate)",
          PARITY_TAG) {
  for (const BnCase& b : kCases) {
    INFO(describe(b));
    const BnInputs in = make_inputs(b, 83);
    const std::vector<float> dy = uniform_floats(b.m * b.c, 84);
    // save_mean / save_invstd from the oracle's forward, rounded to float as the layer stores them.
    std::vector<float> sm(static_cast<size_t>(b.c)), si(static_cast<size_t>(b.c));
    {
      std::vector<double> x = to_double(in.x), g = to_double(in.gamma), be = to_double(in.beta),
                          rm = to_double(in.rmean), rv = to_double(in.rvar),
                          y(static_cast<size_t>(b.m * b.c)), m(static_cast<size_t>(b.c)),
                          s(static_cast<size_t>(b.c));
      kiln::cpu::batchnorm_forward_train<double>(y.data(), m.data(), s.data(), rm.data(), rv.data(),
                                                 x.data(), g.data(), be.data(), {b.m, b.c}, kEps,
                                                 kMomentum);
      for (int c = 0; c < b.c; ++c) {
        sm[static_cast<size_t>(c)] = static_cast<float>(m[static_cast<size_t>(c)]);
        si[static_cast<size_t>(c)] = static_cast<float>(s[static_cast<size_t>(c)]);
      }
    }
    const std::vector<float> dgamma0 = uniform_floats(b.c, 85), dbeta0 = uniform_floats(b.c, 86);
    auto runs = run_in_every_order([&] {
      Guarded x(in.x, b.misalign), g(in.gamma, b.misalign), gdy(dy, b.misalign),
          gsm(sm, b.misalign), gsi(si, b.misalign), dg(dgamma0, b.misalign), db(dbeta0, b.misalign),
          dx(std::vector<float>(static_cast<size_t>(b.m * b.c), std::nanf("")), b.misalign);
      kiln::cuda::batchnorm_backward(dx.data(), dg.data(), db.data(), gdy.data(), x.data(),
                                     g.data(), gsm.data(), gsi.data(), {b.m, b.c}, nullptr);
      std::vector<float> out = dx.payload();
      for (Guarded* t : {&dg, &db}) {
        const std::vector<float> p = t->payload();
        out.insert(out.end(), p.begin(), p.end());
      }
      return out;
    });
    REQUIRE(first_difference(runs) == "");
    const float* got = runs.results[0].data();

    const std::vector<double> x = to_double(in.x), g = to_double(in.gamma), dyd = to_double(dy),
                              smd = to_double(sm), sid = to_double(si);
    std::vector<double> dx(static_cast<size_t>(b.m * b.c), std::nan("")), dg = to_double(dgamma0),
                                                                          db = to_double(dbeta0);
    kiln::cpu::batchnorm_backward<double>(dx.data(), dg.data(), db.data(), dyd.data(), x.data(),
                                          g.data(), smd.data(), sid.data(), {b.m, b.c});
    std::vector<double> t(static_cast<size_t>(b.c), 0.0);
    double max_xhat = 0, k = 0;
    for (int64_t i = 0; i < b.m * b.c; ++i) {
      const size_t c = static_cast<size_t>(i % b.c);
      const double xhat = (x[static_cast<size_t>(i)] - smd[c]) * sid[c];
      max_xhat = std::fmax(max_xhat, std::fabs(xhat));
      t[c] += std::fabs(dyd[static_cast<size_t>(i)]) * (1 + std::fabs(xhat));
    }
    for (int c = 0; c < b.c; ++c) k = std::fmax(k, std::fabs(g[c] * sid[c]));
    const double max_t = kiln::test::max_abs(t);
    const int64_t mc = b.m * b.c;
    kiln::test::expect_close(
        "dx", got, dx.data(), mc,
        16 * kU * k * kiln::test::max_abs(dy) * (1 + max_xhat) * (1 + max_xhat), 0);
    kiln::test::expect_close("dgamma", got + mc, dg.data(), b.c, 32 * kU * max_t, kU);
    kiln::test::expect_close("dbeta", got + mc + b.c, db.data(), b.c, 32 * kU * max_t, kU);
  }
}

// Error bound: dx = dy·γ/sqrt(rv + eps): |err| <= 4u·|ref|.
TEST_CASE("cuda::batchnorm_backward_eval matches the oracle", PARITY_TAG) {
  for (const BnCase& b : kCases) {
    INFO(describe(b));
    const BnInputs in = make_inputs(b, 87);
    const std::vector<float> dy = uniform_floats(b.m * b.c, 88);
    auto runs = run_in_every_order([&] {
      Guarded gdy(dy, b.misalign), g(in.gamma, b.misalign), rv(in.rvar, b.misalign),
          dx(std::vector<float>(static_cast<size_t>(b.m * b.c), std::nanf("")), b.misalign);
      kiln::cuda::batchnorm_backward_eval(dx.data(), gdy.data(), g.data(), rv.data(), {b.m, b.c},
                                          kEps, nullptr);
      return dx.payload();
    });
    REQUIRE(first_difference(runs) == "");
    const std::vector<double> dyd = to_double(dy), g = to_double(in.gamma), rv = to_double(in.rvar);
    std::vector<double> dx(static_cast<size_t>(b.m * b.c));
    kiln::cpu::batchnorm_backward_eval<double>(dx.data(), dyd.data(), g.data(), rv.data(),
                                               {b.m, b.c}, kEps);
    kiln::test::expect_close("dx", runs.results[0].data(), dx.data(), b.m * b.c, 0, 4 * kU);
  }
}
