// tests/simt/test_simt_tensor_core.cpp — the tensor-core wrappers (core/tensor_core.h) under the
// emulator, in every order: mma (tf32 and bf16, several k-steps accumulating in place, several
// warps at once), ldmatrix (x1, x2, x4, with and without .trans) feeding an mma, and the
// conversions, each against a double computation with the same input rounding; then the misuse the
// emulator must report.
//
// Tolerance of an mma result: the emulator adds the K exact products and c in fp32, so
// |d − ref| <= (K + 1)·2⁻²⁴·(Σ|a·b| + |c|) (each of the K additions rounds once, by at most 2⁻²⁴
// of a partial sum bounded by that Σ). Leaving out the input rounding (or rounding the wrong way)
// moves products by up to 2⁻¹¹ (tf32) or 2⁻⁸ (bf16) of their size, far outside this bound.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "tests/simt/kernel_error.h"
#include "tests/support/device_buffer.h"
#include "tests/simt/simt_tensor_core_kernels.h"
#include "tests/support/every_order.h"
#include "tests/support/random.h"
#include "tests/support/rounding_reference.h"

namespace kt = kiln::simt_test;
using kiln::test::DeviceBuffer;

namespace {

using kiln::test::random_vector;

float bits_to_float(std::uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}
float tf32_value(float x) {
  return bits_to_float(kiln::test::reference_tf32_bits(x));
}
float bf16_value(float x) {
  return bits_to_float(std::uint32_t{kiln::test::reference_bf16_bits(x)} << 16);
}

// Checks d (warps × 16 × 8) against Σ_k round(a)·round(b) + c in double, within the bound above.
// a: [warps][16][K], b: [warps][K][8].
void check_mma(const std::vector<float>& d, const std::vector<float>& a,
               const std::vector<float>& b, const std::vector<float>& c, int warps, int K,
               float (*round)(float)) {
  int bad = 0;
  std::ostringstream first;
  for (int w = 0; w < warps; ++w)
    for (int m = 0; m < 16; ++m)
      for (int n = 0; n < 8; ++n) {
        double ref = c[w * 128 + m * 8 + n], mag = std::fabs(ref);
        for (int k = 0; k < K; ++k) {
          const double p = static_cast<double>(round(a[(w * 16 + m) * K + k])) *
                           static_cast<double>(round(b[(w * K + k) * 8 + n]));
          ref += p;
          mag += std::fabs(p);
        }
        const double got = d[w * 128 + m * 8 + n];
        const double tol = (K + 1) * std::ldexp(1.0, -24) * mag;
        if (!(std::fabs(got - ref) <= tol) && bad++ == 0)
          first << "warp " << w << " (" << m << "," << n << "): got " << got << ", expected " << ref
                << " ± " << tol;
      }
  INFO(bad << " of " << warps * 128 << " elements out of bounds; first: " << first.str());
  CHECK(bad == 0);
}

// Runs `mma` (mma_tf32 or mma_bf16) on random operands in every order and checks it.
void check_mma_case(void (*mma)(float*, const float*, const float*, const float*, int, int),
                    int warps, int ktiles, int k_step, float (*round)(float), unsigned seed) {
  const int K = k_step * ktiles;
  const auto a = random_vector<float>(warps * 16 * K, seed);
  const auto b = random_vector<float>(warps * K * 8, seed + 1);
  const auto c = random_vector<float>(warps * 128, seed + 2);
  DeviceBuffer<float> da(a), db(b), dc(c), dd(warps * 128);
  auto runs = kiln::test::run_in_every_order([&] {
    dd.fill_bytes(0xFF);
    mma(dd.get(), da.get(), db.get(), dc.get(), warps, ktiles);
    return dd.download();
  });
  REQUIRE(kiln::test::first_difference(runs) == "");
  check_mma(runs.results[0], a, b, c, warps, K, round);
}

}  // namespace

TEST_CASE("mma.sync m16n8k8 tf32: four k-steps in three warps against double", "[simt]") {
  check_mma_case(kt::mma_tf32, 3, 4, 8, tf32_value, 21);
}

TEST_CASE("mma.sync m16n8k16 bf16: three k-steps in two warps against double", "[simt]") {
  check_mma_case(kt::mma_bf16, 2, 3, 16, bf16_value, 31);
}

TEST_CASE("ldmatrix x1, x2, x4 and .trans feed mma bf16 the fragments it expects", "[simt]") {
  const auto a = random_vector<float>(16 * 16, 41), b = random_vector<float>(16 * 8, 42);
  const auto c = random_vector<float>(128, 43);
  // bf16 bits of A (16 m × 16 k) and Aᵀ, B (16 k × 8 n) and Bᵀ.
  std::vector<std::uint16_t> a16(256), at16(256), b16(128), bt16(128);
  for (int m = 0; m < 16; ++m)
    for (int k = 0; k < 16; ++k)
      a16[m * 16 + k] = at16[k * 16 + m] = kiln::test::reference_bf16_bits(a[m * 16 + k]);
  for (int k = 0; k < 16; ++k)
    for (int n = 0; n < 8; ++n)
      b16[k * 8 + n] = bt16[n * 16 + k] = kiln::test::reference_bf16_bits(b[k * 8 + n]);
  DeviceBuffer<std::uint16_t> da(a16), dat(at16), db(b16), dbt(bt16);
  DeviceBuffer<float> dc(c), dd(128);
  for (const bool a_trans : {false, true})
    for (int b_mode = 0; b_mode < 4; ++b_mode) {
      INFO("a_trans " << a_trans << ", b_mode " << b_mode);
      auto runs = kiln::test::run_in_every_order([&] {
        dd.fill_bytes(0xFF);
        kt::mma_bf16_ldmatrix(dd.get(), a_trans ? dat.get() : da.get(),
                              b_mode >= 2 ? db.get() : dbt.get(), dc.get(), a_trans, b_mode);
        return dd.download();
      });
      REQUIRE(kiln::test::first_difference(runs) == "");
      check_mma(runs.results[0], a, b, c, 1, 16, bf16_value);
    }
}

TEST_CASE("cvt_tf32, cvt_bf16 and cvt_bf16x2 round as cvt.rna.tf32 / cvt.rn.bf16 do", "[simt]") {
  // Values at and around the ties, specials, subnormals, and random patterns.
  std::vector<std::uint32_t> bits = {
      0x3F801000u, 0xBF801000u, 0x3F803000u, 0x3F808000u, 0x3F818000u, 0x3F808001u,
      0x7F7FFFFFu, 0xFF7FFFFFu, 0x7F800000u, 0xFF800000u, 0x7F800001u, 0xFFC00000u,
      0x00000001u, 0x00001000u, 0x00018000u, 0x007FFFFFu, 0x80000000u, 0x00000000u};
  std::mt19937 rng(51);
  while (bits.size() < 4096) bits.push_back(static_cast<std::uint32_t>(rng()));
  const int n = static_cast<int>(bits.size());
  std::vector<float> x(n), y(n);
  for (int i = 0; i < n; ++i) {
    x[i] = bits_to_float(bits[i]);
    y[i] = bits_to_float(bits[(i * 7 + 3) % n]);
  }
  DeviceBuffer<float> dx(x), dy(y);
  DeviceBuffer<std::uint32_t> out(n), out2(n);
  DeviceBuffer<std::uint16_t> out16(n);
  kt::conversions(out.get(), out16.get(), out2.get(), dx.get(), dy.get(), n);
  const auto tf = out.download(), two = out2.download();
  const auto bf = out16.download();
  int bad = 0;
  for (int i = 0; i < n; ++i) {
    const std::uint32_t want2 = std::uint32_t{kiln::test::reference_bf16_bits(x[i])} |
                                std::uint32_t{kiln::test::reference_bf16_bits(y[i])} << 16;
    const bool ok = tf[i] == kiln::test::reference_tf32_bits(x[i]) &&
                    bf[i] == kiln::test::reference_bf16_bits(x[i]) && two[i] == want2;
    if (!ok && bad++ == 0) UNSCOPED_INFO("first wrong input: 0x" << std::hex << bits[i]);
  }
  CHECK(bad == 0);
}

TEST_CASE("tensor-core misuse is reported: ldmatrix off shared memory, a partial or divergent warp",
          "[simt]") {
  DeviceBuffer<std::uint16_t> rows(64);
  DeviceBuffer<std::uint32_t> out(32);
  DeviceBuffer<float> fout(128);
  const std::string global =
      kt::kernel_error_of([&] { kt::ldmatrix_from_global(out.get(), rows.get()); });
  CHECK_THAT(global, Catch::Contains("ldmatrix") && Catch::Contains("shared memory") &&
                         Catch::Contains("simt_tensor_core_kernels.cu"));
  const std::string half = kt::kernel_error_of([&] { kt::mma_half_warp(fout.get()); });
  CHECK_THAT(half, Catch::Contains("cannot all arrive") && Catch::Contains("mma.sync / ldmatrix") &&
                       Catch::Contains("threads 0-15") &&
                       Catch::Contains("simt_tensor_core_kernels.cu"));
  const std::string divergent = kt::kernel_error_of([&] { kt::mma_divergent(fout.get()); });
  CHECK_THAT(divergent, Catch::Contains("different sites"));
}
