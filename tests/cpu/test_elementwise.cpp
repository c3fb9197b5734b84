// tests/cpu/test_elementwise.cpp — the small helpers: fill, copy, scale, bias add and the global
// L2 norm (for clipping): known answers, determinism, the float path against the double oracle,
// and argument checks of the functional API.
//
// Float-path error bound against the double oracle: scale and bias_add round once,
// |Δ| ≤ 2⁻²⁴·|ref|; l2_norm accumulates in double in the same order, so the float result is the
// oracle rounded once to float: |Δ| ≤ 2⁻²⁴·|ref|.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/memory.h"
#include "kernels/elementwise.h"
#include "tests/support/compare.h"
#include "tests/support/random.h"
#include "tests/support/tensors.h"

using kiln::DType;
using kiln::Tensor;
using namespace kiln::test;

namespace {

const double kUnit = std::ldexp(1.0, -24);

}  // namespace

TEST_CASE("elementwise: fill and copy write every element", "[cpu]") {
  std::vector<double> a(7, NAN);
  kiln::cpu::fill(a.data(), 7, 2.5);
  CHECK(a == std::vector<double>(7, 2.5));
  std::vector<float> src{1, -2, 3.5f}, dst(3, NAN);
  kiln::cpu::copy(dst.data(), src.data(), 3);
  CHECK(dst == src);
}

TEST_CASE("elementwise: scale and bias_add on known values", "[cpu]") {
  for (DType dtype : {DType::f64, DType::f32}) {
    INFO("dtype " << kiln::dtype_name(dtype));
    Tensor x = make_tensor({3}, {1, -2, 3}, dtype);
    kiln::scale(x, 0.5);
    CHECK(values(x) == std::vector<double>{0.5, -1, 1.5});
    // y [2][2][3] += b [3] along the last (channel) dimension, NHWC style.
    Tensor y = make_tensor({2, 2, 3}, {0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3}, dtype);
    kiln::bias_add(y, make_tensor({3}, {10, 20, 30}, dtype));
    CHECK(values(y) == std::vector<double>{10, 20, 30, 11, 21, 31, 12, 22, 32, 13, 23, 33});
    Tensor row = make_tensor({3}, {1, 2, 3}, dtype);
    kiln::bias_add(row, make_tensor({3}, {-1, -2, -3}, dtype));
    CHECK(values(row) == std::vector<double>{0, 0, 0});
  }
}

TEST_CASE("elementwise: l2_norm of known vectors", "[cpu]") {
  for (DType dtype : {DType::f64, DType::f32}) {
    INFO("dtype " << kiln::dtype_name(dtype));
    CHECK(kiln::l2_norm(make_tensor({2}, {3, 4}, dtype)) == 5.0);
    CHECK(kiln::l2_norm(make_tensor({2, 2}, {2, -3, 6, 0}, dtype)) == 7.0);  // √(4 + 9 + 36)
    CHECK(kiln::l2_norm(make_tensor({1}, {-0.25}, dtype)) == 0.25);
    // Squares that overflow (1e60) or underflow (1e-60) a float accumulator.
    CHECK(kiln::l2_norm(make_tensor({2}, {3e30, 4e30}, dtype)) == Approx(5e30).epsilon(1e-7));
    CHECK(kiln::l2_norm(make_tensor({2}, {3e-30, 4e-30}, dtype)) == Approx(5e-30).epsilon(1e-7));
  }
}

TEST_CASE("elementwise: l2_norm is deterministic", "[cpu]") {
  const Tensor x = Tensor::from_vector<float>({100001}, random_vector<float>(100001, 301));
  const double first = kiln::l2_norm(x);
  for (int i = 0; i < 3; ++i) CHECK(kiln::l2_norm(x) == first);
}

TEST_CASE("elementwise: the float path matches the double oracle", "[cpu]") {
  for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{1000}, int64_t{70001}}) {
    INFO("n " << n);
    const std::vector<float> xf = random_vector<float>(n, 310 + n, -3, 3);
    const std::vector<double> x(xf.begin(), xf.end());
    double norm = 0;
    kiln::cpu::l2_norm(&norm, x.data(), n);
    CHECK(std::fabs(kiln::l2_norm(Tensor::from_vector<float>({n}, xf)) - norm) <= kUnit * norm);

    std::vector<double> scaled = x;
    kiln::cpu::scale(scaled.data(), n, double(0.3f));
    Tensor xt = Tensor::from_vector<float>({n}, xf);
    kiln::scale(xt, 0.3f);
    kiln::test::expect_close("scale", values(xt), scaled, 0, kUnit);

    const int c = 7;
    const std::vector<float> bf = random_vector<float>(c, 320 + n);
    std::vector<double> y = x;
    y.resize(n * c);
    for (int64_t i = n; i < n * c; ++i) y[i] = x[i % n];
    std::vector<float> yf(y.begin(), y.end());
    kiln::cpu::bias_add(y.data(), std::vector<double>(bf.begin(), bf.end()).data(), n, c);
    Tensor yt = Tensor::from_vector<float>({n, c}, yf);
    kiln::bias_add(yt, Tensor::from_vector<float>({c}, bf));
    kiln::test::expect_close("bias_add", values(yt), y, 0, kUnit);
  }
}

TEST_CASE("elementwise: the functional API rejects bad arguments", "[cpu]") {
  using Catch::Contains;
  Tensor y = Tensor::zeros({2, 3});
  CHECK_THROWS_WITH(kiln::bias_add(y, Tensor::zeros({4})),
                    Contains("bias_add") && Contains("[4]") && Contains("[2, 3]"));
  CHECK_THROWS_WITH(kiln::bias_add(y, Tensor::zeros({1, 3})),
                    Contains("bias_add") && Contains("b [1, 3]"));
  CHECK_THROWS_WITH(kiln::bias_add(y, Tensor::zeros({3}, DType::f64)),
                    Contains("bias_add") && Contains("f64") && Contains("f32"));
  Tensor xi = Tensor::zeros({5}, DType::i32);
  CHECK_THROWS_WITH(kiln::scale(xi, 2.0), Contains("scale") && Contains("[5] i32"));
  CHECK_THROWS_WITH(kiln::l2_norm(xi), Contains("l2_norm") && Contains("[5] i32"));
  CHECK_THROWS_WITH(kiln::l2_norm(Tensor()), Contains("l2_norm") && Contains("undefined"));
  if (kiln::cuda_available()) {
    const Tensor b_cuda = Tensor::zeros({3}, DType::f32, kiln::Device::cuda);
    CHECK_THROWS_WITH(kiln::bias_add(y, b_cuda),
                      Contains("bias_add") && Contains("cuda") && Contains("cpu"));
  }
}
