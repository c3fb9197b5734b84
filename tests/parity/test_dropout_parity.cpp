// tests/parity/test_dropout_parity.cpp — kiln::cuda dropout forward/backward against the CPU
// reference: the Philox mask must be bit-identical to kiln::cpu::dropout_*<float> (same zero
// positions), the values within a few roundings of the double oracle; every emulator thread order
// (or three repeated runs on a GPU), aligned and misaligned, guard sentinels around every output.
#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "core/memory.h"
#include "core/tensor.h"
#include "kernels/dropout.h"
#include "tests/support/compare.h"
#include "tests/support/parity.h"

namespace {

using kiln::Device;
using kiln::Tensor;

using namespace kiln::test;  // tests/support/parity.h

struct DropCase {
  int64_t n;
  float p;
  uint64_t seed, offset;
};
// Odd sizes (a partial last group of four), a flagship activation (batch 2, 24x24x64), p = 0, and
// seeds/offsets whose high 32 bits matter.
const std::vector<DropCase> kCases = {
    {1, 0.25f, 1, 0},
    {7, 0.5f, 42, 3},
    {4097, 0.25f, 0x123456789abcdefULL, 0x100000007ULL},
    {2 * 24 * 24 * 64, 0.25f, 2024, 11},
    {1003, 0.f, 5, 5},
    {1003, 0.9f, 6, 1},
};

// Positions where a is zero and b is not, or the reverse.
int64_t mask_mismatches(const std::vector<float>& a, const std::vector<float>& b) {
  int64_t bad = 0;
  for (size_t i = 0; i < a.size(); ++i) bad += (a[i] == 0.f) != (b[i] == 0.f);
  return bad;
}

// Error bound: fl(1 − p), fl(1/(1 − p)) and the product each round once: |err| <= 3u·|ref|.
void check_dropout(bool backward) {
  for (const DropCase& dc : kCases)
    for (bool misalign : {false, true}) {
      INFO("n=" << dc.n << " p=" << dc.p << " seed=" << dc.seed << " offset=" << dc.offset
                << " misaligned=" << misalign << " backward=" << backward);
      // Inputs bounded away from zero, so a zero output means "dropped".
      const std::vector<float> x = uniform_floats(dc.n, 31, 0.5f, 2.f);
      auto runs = run_in_every_order([&] {
        Guarded in(x, misalign),
            out(std::vector<float>(static_cast<size_t>(dc.n), std::nanf("")), misalign);
        if (backward) {
          kiln::cuda::dropout_backward(out.data(), in.data(), dc.n, dc.p, dc.seed, dc.offset,
                                       nullptr);
        } else {
          kiln::cuda::dropout_forward(out.data(), in.data(), dc.n, dc.p, dc.seed, dc.offset,
                                      nullptr);
        }
        return out.payload();
      });
      REQUIRE(first_difference(runs) == "");
      const std::vector<float>& got = runs.results[0];
      std::vector<float> cpu_f(static_cast<size_t>(dc.n));
      const std::vector<double> xd = to_double(x);
      std::vector<double> ref(static_cast<size_t>(dc.n), std::nan(""));
      if (backward) {
        kiln::cpu::dropout_backward<float>(cpu_f.data(), x.data(), dc.n, dc.p, dc.seed, dc.offset);
        kiln::cpu::dropout_backward<double>(ref.data(), xd.data(), dc.n, dc.p, dc.seed, dc.offset);
      } else {
        kiln::cpu::dropout_forward<float>(cpu_f.data(), x.data(), dc.n, dc.p, dc.seed, dc.offset);
        kiln::cpu::dropout_forward<double>(ref.data(), xd.data(), dc.n, dc.p, dc.seed, dc.offset);
      }
      CHECK(mask_mismatches(got, cpu_f) == 0);
      kiln::test::expect_close("dropout", got.data(), ref.data(), dc.n, 0, 3 * kU);
      if (dc.n >= 4096) {
        int64_t kept = 0;
        for (float v : got) kept += v != 0.f;
        const double frac = static_cast<double>(kept) / static_cast<double>(dc.n);
        CHECK(std::fabs(frac - (1.0 - dc.p)) < 0.03);
      }
    }
}

}  // namespace

TEST_CASE("cuda::dropout_forward: mask bit-identical to the CPU, values to the oracle",
          PARITY_TAG) {
  check_dropout(false);
}

TEST_CASE("cuda::dropout_backward: mask bit-identical to the CPU, values to the oracle",
          PARITY_TAG) {
  check_dropout(true);
}

TEST_CASE("cuda::dropout forward and backward drop the same elements", PARITY_TAG) {
  const int64_t n = 999;
  const std::vector<float> ones(static_cast<size_t>(n), 1.f);
  Guarded x(ones, false), y(ones, false), g(ones, false), dx(ones, false);
  kiln::cuda::dropout_forward(y.data(), x.data(), n, 0.3f, 77, 9, nullptr);
  kiln::cuda::dropout_backward(dx.data(), g.data(), n, 0.3f, 77, 9, nullptr);
  const std::vector<float> a = y.payload(), b = dx.payload();
  CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
  // A different offset (the next step) gives a different mask.
  kiln::cuda::dropout_forward(y.data(), x.data(), n, 0.3f, 77, 10, nullptr);
  CHECK(mask_mismatches(a, y.payload()) > 0);
}

TEST_CASE("cuda::dropout in place (y == x)", PARITY_TAG) {
  const int64_t n = 1001;
  const std::vector<float> x = uniform_floats(n, 32, 0.5f, 2.f);
  Guarded a(x, false);
  kiln::cuda::dropout_forward(a.data(), a.data(), n, 0.4f, 3, 4, nullptr);
  std::vector<float> ref(static_cast<size_t>(n));
  kiln::cpu::dropout_forward<float>(ref.data(), x.data(), n, 0.4f, 3, 4);
  CHECK(mask_mismatches(a.payload(), ref) == 0);
}

TEST_CASE("dropout: an offset read from device memory draws as the same offset passed as a number",
          PARITY_TAG) {
  // What a replayed CUDA graph relies on (train/graph_step.h): the kernels read the offset when
  // they run, so rewriting the device word changes the mask without a new launch argument.
  const int64_t n = 2 * 3 * 5 * 4;
  const std::vector<float> xv = uniform_floats(n, 33, 0.5f, 2.f);
  const Tensor x = Tensor::from_vector({2, 3, 5, 4}, xv, Device::cuda);
  Tensor word({8}, kiln::DType::u8, Device::cuda);
  const auto* at = static_cast<const uint64_t*>(word.raw());
  for (const uint64_t offset : {uint64_t{7}, uint64_t{0x100000003ULL}}) {
    kiln::copy_bytes(word.raw(), Device::cuda, &offset, Device::cpu, sizeof offset);
    // The identity placement and a batch placed in a larger one (data parallelism).
    for (const kiln::DropoutSamples samples :
         {kiln::DropoutSamples{}, kiln::DropoutSamples{n / 2, 3, 1}}) {
      INFO("offset " << offset << ", stride " << samples.stride);
      for (const bool backward : {false, true}) {
        Tensor by_value = Tensor::full(x.shape(), 1.0, kiln::DType::f32, Device::cuda);
        Tensor by_address = Tensor::full(x.shape(), 2.0, kiln::DType::f32, Device::cuda);
        if (backward) {
          kiln::dropout_backward(by_value, x, 0.4f, 5, offset, samples);
          kiln::dropout_backward(by_address, x, 0.4f, 5, kiln::PhiloxOffset::device(at), samples);
        } else {
          kiln::dropout_forward(by_value, x, 0.4f, 5, offset, samples);
          kiln::dropout_forward(by_address, x, 0.4f, 5, kiln::PhiloxOffset::device(at), samples);
        }
        const std::vector<float> a = by_value.to_vector<float>(), b = by_address.to_vector<float>();
        CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
        CHECK(mask_mismatches(a, xv) > 0);  // something was dropped
      }
    }
  }
  // The CPU path cannot read a device address: a clear error, not a crash.
  const Tensor xc = Tensor::from_vector({2, 3, 5, 4}, xv);
  Tensor yc(xc.shape());
  CHECK_THROWS_WITH(kiln::dropout_forward(yc, xc, 0.4f, 5, kiln::PhiloxOffset::device(at)),
                    Catch::Contains("dropout_forward") && Catch::Contains("device memory") &&
                        Catch::Contains("PhiloxOffset(value)"));
}
