// tests/parity/test_activation_parity.cpp — kiln::cuda LeakyReLU forward/backward against the
// double oracle (kiln::cpu::leaky_relu_*<double>), in every emulator thread order (or, on a GPU,
// three repeated runs), aligned and misaligned, with guard sentinels around every output, and in
// place.
#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "core/tensor.h"
#include "kernels/activation.h"
#include "tests/support/compare.h"
#include "tests/support/parity.h"

namespace {

using kiln::Device;
using kiln::Tensor;

using namespace kiln::test;  // tests/support/parity.h

// Sizes: tiny, odd (scalar tail), and a flagship activation (batch 2, 24x24x64).
const std::vector<int64_t> kSizes = {1, 3, 4, 7, 1001, 2 * 24 * 24 * 64};
constexpr double kSlope = 0.01;

// x with exact zeros and both signs.
std::vector<float> activation_input(int64_t n, uint32_t seed) {
  std::vector<float> x = uniform_floats(n, seed);
  for (int64_t i = 0; i < n; i += 7) x[static_cast<size_t>(i)] = 0.f;
  return x;
}

}  // namespace

// Error bound: x > 0 is exact; otherwise float(slope)·x rounded once, |err| <= 2u·|ref|.
TEST_CASE("cuda::leaky_relu_forward matches the oracle", PARITY_TAG) {
  for (int64_t n : kSizes)
    for (bool misalign : {false, true}) {
      INFO("n=" << n << " misaligned=" << misalign);
      const std::vector<float> x = activation_input(n, 21);
      auto runs = run_in_every_order([&] {
        Guarded dx(x, misalign),
            y(std::vector<float>(static_cast<size_t>(n), std::nanf("")), misalign);
        kiln::cuda::leaky_relu_forward(y.data(), dx.data(), n, kSlope, nullptr);
        return y.payload();
      });
      REQUIRE(first_difference(runs) == "");
      const std::vector<double> xd = to_double(x);
      std::vector<double> ref(static_cast<size_t>(n), std::nan(""));
      kiln::cpu::leaky_relu_forward<double>(ref.data(), xd.data(), n, kSlope);
      kiln::test::expect_close("leaky_relu_forward", runs.results[0].data(), ref.data(), n, 0,
                               2 * kU);
    }
}

TEST_CASE("cuda::leaky_relu_backward matches the oracle", PARITY_TAG) {
  for (int64_t n : kSizes)
    for (bool misalign : {false, true}) {
      INFO("n=" << n << " misaligned=" << misalign);
      const std::vector<float> x = activation_input(n, 22);
      const std::vector<float> dy = uniform_floats(n, 23);
      auto runs = run_in_every_order([&] {
        Guarded gx(x, misalign), gdy(dy, misalign),
            dx(std::vector<float>(static_cast<size_t>(n), std::nanf("")), misalign);
        kiln::cuda::leaky_relu_backward(dx.data(), gdy.data(), gx.data(), n, kSlope, nullptr);
        return dx.payload();
      });
      REQUIRE(first_difference(runs) == "");
      const std::vector<double> xd = to_double(x), dyd = to_double(dy);
      std::vector<double> ref(static_cast<size_t>(n), std::nan(""));
      kiln::cpu::leaky_relu_backward<double>(ref.data(), dyd.data(), xd.data(), n, kSlope);
      kiln::test::expect_close("leaky_relu_backward", runs.results[0].data(), ref.data(), n, 0,
                               2 * kU);
    }
}

TEST_CASE("cuda::leaky_relu in place (y == x, dx == dy)", PARITY_TAG) {
  const int64_t n = 1001;
  const std::vector<float> x = activation_input(n, 24);
  const std::vector<float> dy = uniform_floats(n, 25);
  const std::vector<double> xd = to_double(x), dyd = to_double(dy);
  auto runs = run_in_every_order([&] {
    Guarded a(x, false), g(dy, false);
    kiln::cuda::leaky_relu_backward(g.data(), g.data(), a.data(), n, kSlope, nullptr);
    kiln::cuda::leaky_relu_forward(a.data(), a.data(), n, kSlope, nullptr);
    std::vector<float> out = a.payload(), d = g.payload();
    out.insert(out.end(), d.begin(), d.end());
    return out;
  });
  REQUIRE(first_difference(runs) == "");
  std::vector<double> y(static_cast<size_t>(n)), dx(static_cast<size_t>(n));
  kiln::cpu::leaky_relu_forward<double>(y.data(), xd.data(), n, kSlope);
  kiln::cpu::leaky_relu_backward<double>(dx.data(), dyd.data(), xd.data(), n, kSlope);
  kiln::test::expect_close("in-place forward", runs.results[0].data(), y.data(), n, 0, 2 * kU);
  kiln::test::expect_close("in-place backward", runs.results[0].data() + n, dx.data(), n, 0,
                           2 * kU);
}
