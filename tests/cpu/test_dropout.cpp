// tests/cpu/test_dropout.cpp — inverted dropout with a Philox mask (docs/math.md §6, docs/design.md
// §4): the mask equals philox_uniform(seed, offset, i) ≥ p computed directly, the kept fraction and
// the scale, backward regenerates the same mask, p = 0 is the identity, the double reference
// against central differences (the same seed and offset on every evaluation: "dropout reseeded"),
// the float path against the double oracle, and argument checks of the functional API.
//
// Float-path error bound against the double oracle: the same elements are dropped (exactly 0), the
// kept ones differ by the rounding of 1/(1 − p) and of the product: |Δ| ≤ 4·2⁻²⁴·|ref|.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/memory.h"
#include "core/philox.h"
#include "kernels/dropout.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"
#include "tests/support/random.h"
#include "tests/support/tensors.h"

using kiln::DType;
using kiln::Tensor;
using namespace kiln::test;

namespace {

// Both halves of the seed and of the offset are non-zero, so all four words of the mapping matter.
constexpr uint64_t kSeed = 0x0123456789abcdefULL;
constexpr uint64_t kOffset = (uint64_t{5} << 32) | 7;

}  // namespace

TEST_CASE("dropout: the mask is philox_uniform(seed, offset, i) >= p", "[cpu]") {
  const int64_t n = 1003;  // not a multiple of 4: the last Philox block is partly used
  const float p = 0.3f;
  const std::vector<double> x = random_vector<double>(n, 41, 0.5, 1.5);
  for (DType dtype : {DType::f64, DType::f32}) {
    INFO("dtype " << kiln::dtype_name(dtype));
    Tensor y = Tensor::full({n}, NAN, dtype), dx = Tensor::full({n}, NAN, dtype);
    const Tensor xt = make_tensor({n}, x, dtype);
    kiln::dropout_forward(y, xt, p, kSeed, kOffset);
    kiln::dropout_backward(dx, xt, p, kSeed, kOffset);
    const std::vector<double> xs = values(xt), got = values(y), got_back = values(dx);
    std::vector<double> want(n);
    int64_t kept = 0;
    for (int64_t i = 0; i < n; ++i) {
      const bool keep = kiln::philox_uniform(kSeed, kOffset, static_cast<uint64_t>(i)) >= p;
      kept += keep;
      if (dtype == DType::f64)
        want[i] = keep ? xs[i] * (1.0 / (1.0 - double(p))) : 0.0;
      else
        want[i] = keep ? double(float(xs[i]) * (1.f / (1.f - p))) : 0.0;
    }
    kiln::test::expect_close("y", got, want, 0, 0);
    kiln::test::expect_close("dx", got_back, want, 0, 0);
    CHECK(kept > 0);
    CHECK(kept < n);
  }
}

TEST_CASE("dropout: kept fraction, scale, and a new mask per seed and offset", "[cpu]") {
  const int64_t n = 1000000;
  const Tensor ones = Tensor::full({n}, 1.0);
  Tensor y = Tensor::full({n}, NAN);
  for (float p : {0.1f, 0.5f, 0.9f}) {
    INFO("p " << p);
    kiln::dropout_forward(y, ones, p, kSeed, kOffset);
    const std::vector<float> v = y.to_vector<float>();
    const float scale = 1.f / (1.f - p);
    int64_t kept = 0, other = 0;
    for (float e : v) {
      if (e == scale)
        ++kept;
      else if (e != 0.f)
        ++other;
    }
    CHECK(other == 0);  // every element is either dropped (0) or kept and scaled by 1/(1 − p)
    const double fraction = double(kept) / n, sigma = std::sqrt(double(p) * (1 - p) / n);
    INFO("kept fraction " << fraction << ", expected " << 1 - p << " ± 5·" << sigma);
    CHECK(std::fabs(fraction - (1 - double(p))) < 5 * sigma);
  }
  // Another offset or another seed gives another mask.
  const int64_t m = 4096;
  const Tensor x = Tensor::full({m}, 1.0);
  Tensor a = Tensor::zeros({m}), b = Tensor::zeros({m}), c = Tensor::zeros({m});
  kiln::dropout_forward(a, x, 0.5f, kSeed, kOffset);
  kiln::dropout_forward(b, x, 0.5f, kSeed, kOffset + 1);
  kiln::dropout_forward(c, x, 0.5f, kSeed + 1, kOffset);
  CHECK(a.to_vector<float>() != b.to_vector<float>());
  CHECK(a.to_vector<float>() != c.to_vector<float>());
}

TEST_CASE("dropout: backward regenerates the forward's mask", "[cpu]") {
  const int64_t n = 777;
  const float p = 0.4f;
  for (DType dtype : {DType::f64, DType::f32}) {
    INFO("dtype " << kiln::dtype_name(dtype));
    const Tensor x = make_tensor({n}, random_vector<double>(n, 51, 0.5, 1.5), dtype);
    const Tensor dy = make_tensor({n}, random_vector<double>(n, 52, 0.5, 1.5), dtype);
    Tensor y = Tensor::full({n}, NAN, dtype), dx = Tensor::full({n}, NAN, dtype);
    kiln::dropout_forward(y, x, p, kSeed, kOffset);
    kiln::dropout_backward(dx, dy, p, kSeed, kOffset);
    const std::vector<double> xs = values(x), ys = values(y), dys = values(dy), dxs = values(dx);
    int64_t mismatches = 0;
    for (int64_t i = 0; i < n; ++i) {
      const bool kept_forward = ys[i] != 0, kept_backward = dxs[i] != 0;
      if (kept_forward != kept_backward) ++mismatches;
      // The same scale on both sides: dx/dy == y/x wherever kept.
      if (kept_forward) CHECK(dxs[i] / dys[i] == Approx(ys[i] / xs[i]).epsilon(1e-6));
    }
    CHECK(mismatches == 0);
  }
}

TEST_CASE("dropout: p = 0 is the identity", "[cpu]") {
  const int64_t n = 1001;
  for (DType dtype : {DType::f64, DType::f32}) {
    INFO("dtype " << kiln::dtype_name(dtype));
    const Tensor x = make_tensor({n}, random_vector<double>(n, 61), dtype);
    Tensor y = Tensor::full({n}, NAN, dtype), dx = Tensor::full({n}, NAN, dtype);
    kiln::dropout_forward(y, x, 0.f, kSeed, kOffset);
    kiln::dropout_backward(dx, x, 0.f, kSeed, kOffset);
    kiln::test::expect_close("y", values(y), values(x), 0, 0);
    kiln::test::expect_close("dx", values(dx), values(x), 0, 0);
  }
}

TEST_CASE("dropout: gradient of the double reference matches central differences (reseeded)",
          "[cpu][gradcheck]") {
  const int64_t n = 37;
  const float p = 0.4f;
  std::vector<double> x = random_vector<double>(n, 71);
  const std::vector<double> projection = random_vector<double>(n, 72);
  std::vector<double> y(n);
  // Every evaluation draws the mask from the same (seed, offset): the loss is one fixed function.
  auto forward = [&] { kiln::cpu::dropout_forward(y.data(), x.data(), n, p, kSeed, kOffset); };
  for (bool use_projection : {false, true}) {
    INFO((use_projection ? "loss = Σ r·y" : "loss = ½Σy²"));
    auto loss = [&] {
      forward();
      double l = 0;
      for (int64_t i = 0; i < n; ++i)
        l += use_projection ? projection[i] * y[i] : 0.5 * y[i] * y[i];
      return l;
    };
    forward();
    const std::vector<double> dy = use_projection ? projection : y;
    std::vector<double> dx(n);
    kiln::cpu::dropout_backward(dx.data(), dy.data(), n, p, kSeed, kOffset);
    kiln::test::expect_gradient_close("x", x.data(), n, dx.data(), loss);
  }
}

TEST_CASE("dropout: the float path matches the double oracle", "[cpu]") {
  // 70001 elements cross the OpenMP threshold of the CPU loop.
  for (int64_t n : {int64_t{1}, int64_t{4}, int64_t{1001}, int64_t{70001}}) {
    for (float p : {0.f, 0.3f, 0.75f}) {
      INFO("n " << n << " p " << p);
      const std::vector<float> xf = random_vector<float>(n, 80 + n);
      const std::vector<double> x(xf.begin(), xf.end());
      std::vector<double> y(n), dx(n);
      kiln::cpu::dropout_forward(y.data(), x.data(), n, p, kSeed, kOffset);
      kiln::cpu::dropout_backward(dx.data(), x.data(), n, p, kSeed, kOffset);
      const Tensor xt = Tensor::from_vector<float>({n}, xf);
      Tensor yt = Tensor::full({n}, NAN), dxt = Tensor::full({n}, NAN);
      kiln::dropout_forward(yt, xt, p, kSeed, kOffset);
      kiln::dropout_backward(dxt, xt, p, kSeed, kOffset);
      const double rtol = 4 * std::ldexp(1.0, -24);
      kiln::test::expect_close("y", values(yt), y, 0, rtol);
      kiln::test::expect_close("dx", values(dxt), dx, 0, rtol);
    }
  }
}

TEST_CASE("dropout: the functional API rejects bad arguments", "[cpu]") {
  using Catch::Contains;
  const Tensor x = Tensor::zeros({4, 5});
  Tensor y = Tensor::zeros({4, 5});
  CHECK_THROWS_WITH(kiln::dropout_forward(y, x, -0.1f, 1, 0),
                    Contains("dropout_forward") && Contains("p = -0.1") && Contains("[0, 1)") &&
                        Contains("[4, 5]"));
  CHECK_THROWS_WITH(kiln::dropout_forward(y, x, 1.f, 1, 0),
                    Contains("dropout_forward") && Contains("p = 1 "));
  CHECK_THROWS_WITH(kiln::dropout_forward(y, x, NAN, 1, 0),
                    Contains("dropout_forward") && Contains("[0, 1)"));
  Tensor dx = Tensor::zeros({4, 5});
  CHECK_THROWS_WITH(kiln::dropout_backward(dx, x, 1.5f, 1, 0),
                    Contains("dropout_backward") && Contains("p = 1.5"));
  Tensor y_bad = Tensor::zeros({4, 6});
  CHECK_THROWS_WITH(kiln::dropout_forward(y_bad, x, 0.5f, 1, 0),
                    Contains("dropout_forward") && Contains("y [4, 6]") && Contains("[4, 5]"));
  Tensor y64 = Tensor::zeros({4, 5}, DType::f64);
  CHECK_THROWS_WITH(kiln::dropout_forward(y64, x, 0.5f, 1, 0),
                    Contains("dropout_forward") && Contains("f64") && Contains("f32"));
  const Tensor xi = Tensor::zeros({4, 5}, DType::i32);
  Tensor yi = Tensor::zeros({4, 5}, DType::i32);
  CHECK_THROWS_WITH(kiln::dropout_forward(yi, xi, 0.5f, 1, 0),
                    Contains("dropout_forward") && Contains("i32"));
  if (kiln::cuda_available()) {
    Tensor y_cuda = Tensor::zeros({4, 5}, DType::f32, kiln::Device::cuda);
    CHECK_THROWS_WITH(kiln::dropout_forward(y_cuda, x, 0.5f, 1, 0),
                      Contains("dropout_forward") && Contains("cuda") && Contains("cpu"));
  }
}
