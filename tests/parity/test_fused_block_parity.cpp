// tests/parity/test_fused_block_parity.cpp — the fused CUDA block (kernels/fused_block.cu:
// batchnorm → LeakyReLU → max pooling → dropout, forward and backward) against the four unfused
// CUDA ops it replaces. Tolerance: none. Every value of the fused kernels is produced by the same
// float operations in the same order as the unfused kernels, and the reductions use the same tiles
// and trees, so y, the argmax, the statistics, the running stats, dx, dgamma and dbeta must be equal
// bit for bit; the unfused ops are themselves held to the double oracle by their own parity tests.
// Every emulator thread order (or three runs on a GPU); the fused results must not depend on it.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>

#include "tests/support/fused_block.h"
#include "tests/support/parity.h"

namespace {

using kiln::Device;
using namespace kiln::test;

std::string describe(const FusedCase& k) {
  std::ostringstream os;
  os << "x [" << k.n << "," << k.h << "," << k.w << "," << k.c << "] window " << k.pool.kh << "x"
     << k.pool.kw << " stride " << k.pool.stride_h << "," << k.pool.stride_w << " pad "
     << k.pool.pad_h << "," << k.pool.pad_w << " p " << k.p;
  return os.str();
}

TEST_CASE("fused block: CUDA equals the unfused CUDA ops bit for bit, in every order", PARITY_TAG) {
  for (const FusedCase& k : fused_cases()) {
    INFO(describe(k));
    const FusedResults unfused = run_fused_case<float>(k, Device::cuda, false);
    auto runs = run_in_every_order([&] { return run_fused_case<float>(k, Device::cuda, true); });
    for (int o = 0; o < 3; ++o) {
      INFO("order " << runs.names[o]);
      const FusedResults& f = runs.results[o];
      check_bitwise(f, unfused);
    }
  }
}

TEST_CASE("fused block: the CUDA forward is the double oracle's within a few roundings",
          PARITY_TAG) {
  // A sanity check beside the bitwise one above (the derived bounds of each unfused op are in its
  // own parity test): the GPU applies batchnorm's map in float from the rounded statistics, the
  // oracle in double, so y differs by a few roundings of |y| (allowed: 8u·max|y|, inputs with
  // |mean| ≈ 3·std); the argmax may differ at near-ties only, at most 1% of it.
  const FusedCase k = fused_cases()[0];
  const FusedResults gpu = run_fused_case<float>(k, Device::cuda, true);
  const FusedResults cpu = run_fused_case<double>(k, Device::cpu, true);
  double ymax = 0;
  for (double v : cpu.y) ymax = std::max(ymax, std::fabs(v));
  expect_close("y", gpu.y, cpu.y, 8 * kU * ymax, 0.0);
  int differ = 0;
  for (size_t i = 0; i < gpu.argmax.size(); ++i) differ += gpu.argmax[i] != cpu.argmax[i];
  CHECK(differ * 100 <= static_cast<int>(gpu.argmax.size()));
}

}  // namespace
