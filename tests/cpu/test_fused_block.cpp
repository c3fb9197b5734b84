// tests/cpu/test_fused_block.cpp — the fused CPU block (kernels/cpu/fused_block.cpp) against the
// four unfused CPU ops, in double (the oracle) and float (the CPU training path): equal bit for bit
// (the fused reference applies the same roundings in the same order); and its argument checks.
#include <catch2/catch.hpp>

#include <string>

#include "core/error.h"
#include "tests/support/fused_block.h"

namespace {

using kiln::Device;
using namespace kiln::test;

template <typename T>
void check_equal_to_unfused() {
  for (const FusedCase& k : fused_cases()) {
    INFO("x [" << k.n << "," << k.h << "," << k.w << "," << k.c << "] window " << k.pool.kh << "x"
               << k.pool.kw << " p " << k.p);
    const FusedResults unfused = run_fused_case<T>(k, Device::cpu, false);
    const FusedResults fused = run_fused_case<T>(k, Device::cpu, true);
    check_bitwise(fused, unfused);
    // A kernel that wrote nothing cannot pass: dx and y carry real values.
    CHECK(fused.dx[0] != -7.25);
  }
}

TEST_CASE("fused block: the CPU reference equals the unfused ops bit for bit", "[cpu]") {
  check_equal_to_unfused<double>();
  check_equal_to_unfused<float>();
}

TEST_CASE("fused block: bad arguments name the op and the fix", "[cpu]") {
  kiln::Tensor x({2, 4, 4, 3}), y({2, 2, 2, 3}), argmax({2, 2, 2, 3}, kiln::DType::u8);
  kiln::Tensor c3({3}), c3b({3}), c3c({3}), c3d({3}), g({3}), b({3});
  kiln::FusedBlockParams p;
  p.p = 0.5f;
  kiln::Tensor wrong({2, 3, 3, 3});
  CHECK_THROWS_WITH(
      kiln::fused_block_forward(wrong, argmax, c3, c3b, c3c, c3d, x, g, b, p),
      Catch::Contains("fused_block_forward") && Catch::Contains("must have shape [2, 2, 2, 3]"));
  p.p = 1.f;
  CHECK_THROWS_WITH(kiln::fused_block_forward(y, argmax, c3, c3b, c3c, c3d, x, g, b, p),
                    Catch::Contains("p must be in [0, 1)"));
  p.p = 0.5f;
  kiln::Tensor c4({4});
  CHECK_THROWS_WITH(kiln::fused_block_forward(y, argmax, c4, c3b, c3c, c3d, x, g, b, p),
                    Catch::Contains("save_mean must have 3 elements"));
}

}  // namespace
