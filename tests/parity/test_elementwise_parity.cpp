// tests/parity/test_elementwise_parity.cpp — kiln::cuda fill, copy, scale, bias_add, l2_norm
// against the double oracle (kiln::cpu::<op><double>).
//
// Built twice (tests/parity/CMakeLists.txt): under the SIMT emulator, where every case runs in
// every thread order and the three results must be bitwise equal; and natively on a GPU
// (KILN_TEST_GPU, tag [gpu]), where the three runs check repeated-run determinism instead.
// Outputs live between guard elements pre-filled with a sentinel: a kernel writing outside its
// range, or not writing at all, fails. Misaligned views (offset by one float) take the
// scalar paths.
#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "core/tensor.h"
#include "kernels/elementwise.h"
#include "tests/support/compare.h"
#include "tests/support/parity.h"

namespace {

using kiln::Device;
using kiln::Tensor;

using namespace kiln::test;  // tests/support/parity.h

const std::vector<int64_t> kSizes = {1, 3, 4, 7, 64, 1001, 4099};

}  // namespace

// +0 takes the memset path (zero_grad), -0 and the rest the fill kernel: every value's bits.
TEST_CASE("cuda::fill writes every element and nothing else", PARITY_TAG) {
  for (float value : {3.5f, 0.f, -0.f})
    for (int64_t n : kSizes)
      for (bool misalign : {false, true}) {
        INFO("value " << value << " n=" << n << " misaligned=" << misalign);
        auto runs = run_in_every_order([&] {
          Guarded x(std::vector<float>(static_cast<size_t>(n), std::nanf("")), misalign);
          kiln::cuda::fill(x.data(), n, value, nullptr);
          return x.payload();
        });
        REQUIRE(first_difference(runs) == "");
        std::vector<double> ref(static_cast<size_t>(n));
        kiln::cpu::fill<double>(ref.data(), n, value);
        kiln::test::expect_close("fill", runs.results[0].data(), ref.data(), n, 0, 0);
        for (float v : runs.results[0]) REQUIRE(std::signbit(v) == std::signbit(value));
      }
}

TEST_CASE("cuda::copy matches the source exactly", PARITY_TAG) {
  for (int64_t n : kSizes)
    for (bool misalign : {false, true}) {
      INFO("n=" << n << " misaligned=" << misalign);
      const std::vector<float> src = uniform_floats(n, 11);
      auto runs = run_in_every_order([&] {
        Guarded s(src, misalign),
            d(std::vector<float>(static_cast<size_t>(n), std::nanf("")), misalign);
        kiln::cuda::copy(d.data(), s.data(), n, nullptr);
        return d.payload();
      });
      REQUIRE(first_difference(runs) == "");
      kiln::test::expect_close("copy", runs.results[0].data(), src.data(), n, 0, 0);
    }
}

TEST_CASE("cuda::scale matches the oracle within one rounding", PARITY_TAG) {
  for (int64_t n : kSizes)
    for (bool misalign : {false, true}) {
      INFO("n=" << n << " misaligned=" << misalign);
      const std::vector<float> x = uniform_floats(n, 12);
      auto runs = run_in_every_order([&] {
        Guarded d(x, misalign);
        kiln::cuda::scale(d.data(), n, -0.37f, nullptr);
        return d.payload();
      });
      REQUIRE(first_difference(runs) == "");
      std::vector<double> ref = to_double(x);
      kiln::cpu::scale<double>(ref.data(), n, static_cast<double>(-0.37f));
      kiln::test::expect_close("scale", runs.results[0].data(), ref.data(), n, 0, kU);
    }
}

TEST_CASE("cuda::bias_add adds the bias to every row (odd and wide channel counts)", PARITY_TAG) {
  struct Case {
    int64_t m;
    int c;
  };
  // C = 3, 5, 7 (scalar path), 64 and 1024 (float4; 1024 fills a whole block row), 513 (several
  // channel tiles); M = 1, and M not a multiple of the rows a block covers.
  const std::vector<Case> cases = {{1, 3}, {37, 5}, {19, 7}, {33, 64}, {5, 1}, {3, 513}, {9, 1024}};
  for (const Case& cs : cases)
    for (bool misalign : {false, true}) {
      INFO("m=" << cs.m << " c=" << cs.c << " misaligned=" << misalign);
      const std::vector<float> y = uniform_floats(cs.m * cs.c, 13);
      const std::vector<float> b = uniform_floats(cs.c, 14);
      auto runs = run_in_every_order([&] {
        Guarded dy(y, misalign), db(b, false);
        kiln::cuda::bias_add(dy.data(), db.data(), cs.m, cs.c, nullptr);
        return dy.payload();
      });
      REQUIRE(first_difference(runs) == "");
      std::vector<double> ref = to_double(y);
      const std::vector<double> bd = to_double(b);
      kiln::cpu::bias_add<double>(ref.data(), bd.data(), cs.m, cs.c);
      kiln::test::expect_close("bias_add", runs.results[0].data(), ref.data(), cs.m * cs.c, 0, kU);
    }
}

TEST_CASE("cuda::l2_norm is deterministic and matches the oracle", PARITY_TAG) {
  for (int64_t n : {int64_t{1}, int64_t{5}, int64_t{1000}, int64_t{70001}, int64_t{300000}})
    for (bool misalign : {false, true}) {
      INFO("n=" << n << " misaligned=" << misalign);
      const std::vector<float> x = uniform_floats(n, 15);
      auto runs = run_in_every_order([&] {
        const int64_t work = kiln::cuda::l2_norm_workspace_floats(n);
        Guarded dx(x, misalign), out({std::nanf("")}, false),
            dw(std::vector<float>(static_cast<size_t>(work), std::nanf("")), false);
        kiln::cuda::l2_norm(out.data(), dx.data(), n, dw.data(), nullptr);
        dw.payload();  // CHECKs that the kernels stayed inside their workspace
        return out.payload();
      });
      REQUIRE(first_difference(runs) == "");
      const std::vector<double> xd = to_double(x);
      double ref = 0;
      kiln::cpu::l2_norm<double>(&ref, xd.data(), n);
      // Sum of squares of non-negative terms: relative error <= (depth of the summation)·u, with a
      // depth of at most n/(4·threads) + 4 + log2(256) + log2(1024) + 2
      // (docs/kernels-elementwise.md).
      kiln::test::expect_close("l2_norm", runs.results[0].data(), &ref, 1, 0, 64 * kU);
    }
}

TEST_CASE("cuda::l2_norm of nothing is zero", PARITY_TAG) {
  Guarded out({std::nanf("")}, false), work({std::nanf("")}, false);
  REQUIRE(kiln::cuda::l2_norm_workspace_floats(0) == 1);
  kiln::cuda::l2_norm(out.data(), nullptr, 0, work.data(), nullptr);
  CHECK(out.payload()[0] == 0.f);
}
