// tests/cpu/test_activation.cpp — LeakyReLU: hand values (the kink takes the slope, as PyTorch),
// in-place use, the finite-difference gradient check of the double oracle (kinks skipped), the
// float path against the oracle, and dx overwritten (sentinels).
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "kernels/activation.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"
#include "tests/support/random.h"

using kiln::DType;
using kiln::Tensor;
using namespace kiln::test;

TEST_CASE("leaky_relu hand values, default slope 0.01, in place", "[cpu]") {
  Tensor x = Tensor::from_vector<double>({5}, {-2, -0.5, 0, 0.5, 3});
  Tensor y = Tensor::full({5}, NAN, DType::f64);
  kiln::leaky_relu_forward(y, x);
  CHECK(y.to_vector<double>() == std::vector<double>{-0.02, -0.005, 0, 0.5, 3});
  Tensor dy = Tensor::full({5}, 2.0, DType::f64);
  Tensor dx = Tensor::full({5}, NAN, DType::f64);
  kiln::leaky_relu_backward(dx, dy, x);
  CHECK(dx.to_vector<double>() == std::vector<double>{0.02, 0.02, 0.02, 2, 2});
  // The output has the sign of the input, so backward from y gives the same dx.
  Tensor dx2 = Tensor::full({5}, 1e30, DType::f64);
  kiln::leaky_relu_backward(dx2, dy, y);
  CHECK(dx2.to_vector<double>() == dx.to_vector<double>());
  // In place: y and x the same tensor; slope 0.2.
  Tensor inplace = Tensor::from_vector<float>({2, 2}, {-1, 2, -3, 4});
  kiln::leaky_relu_forward(inplace, inplace, 0.2);
  CHECK(inplace.to_vector<float>() == std::vector<float>{-0.2f, 2, -0.6f, 4});
}

TEST_CASE("leaky_relu gradient check of the double oracle (kinks skipped)", "[cpu][gradcheck]") {
  for (double slope : {0.01, 0.2, 0.0}) {
    INFO("slope " << slope);
    const int64_t n = 200;
    std::vector<double> x = random_vector<double>(n, 80);
    const std::vector<double> r = random_vector<double>(n, 81);
    std::vector<double> y(n);
    auto loss = [&] {  // L = Σ r·y + ½Σy²
      kiln::cpu::leaky_relu_forward(y.data(), x.data(), n, slope);
      return probe_loss(y, r);
    };
    loss();
    const std::vector<double> dy = probe_loss_grad(y, r);
    std::vector<double> dx(n);
    kiln::cpu::leaky_relu_backward(dx.data(), dy.data(), x.data(), n, slope);
    kiln::test::expect_gradient_close("x", x.data(), n, dx.data(), loss, 1e-6, {},
                                      [&](int64_t i) { return std::fabs(x[i]) < 1e-4; });
  }
}

// Error bound of the float path against the oracle: one rounding of slope·x, so
// |got − ref| ≤ 1e-7·max|ref| + 1e-6·|ref|; the sizes cross the OpenMP threshold.
TEST_CASE("leaky_relu float path matches the double oracle", "[cpu]") {
  for (int64_t n : {1, 7, 1000, 100003}) {
    for (double slope : {0.01, 0.3}) {
      INFO("n " << n << ", slope " << slope);
      const std::vector<float> xf = random_vector<float>(n, 90 + n),
                               dyf = random_vector<float>(n, 91 + n);
      const std::vector<double> x(xf.begin(), xf.end()), dy(dyf.begin(), dyf.end());
      std::vector<double> y(n), dx(n);
      kiln::cpu::leaky_relu_forward(y.data(), x.data(), n, slope);
      kiln::cpu::leaky_relu_backward(dx.data(), dy.data(), x.data(), n, slope);
      Tensor xt = Tensor::from_vector<float>({n}, xf), dyt = Tensor::from_vector<float>({n}, dyf);
      Tensor yt = Tensor::full({n}, NAN), dxt = Tensor::full({n}, NAN);
      kiln::leaky_relu_forward(yt, xt, slope);
      kiln::leaky_relu_backward(dxt, dyt, xt, slope);
      expect_close("y", yt.to_vector<float>(), y, 1e-7 * max_abs(y), 1e-6);
      expect_close("dx", dxt.to_vector<float>(), dx, 1e-7 * max_abs(dx), 1e-6);
    }
  }
}
