// tests/cpu/test_linear.cpp — linear: a hand-computed answer, the double reference against central
// differences, gradient semantics with sentinels, the float fast path against the double oracle,
// and argument checks of the functional API.
//
// Fast-path error bound, per output element, with Σ|terms| the sum of the absolute values of the
// products (and bias) that make it up and K their count:
//     |fast − oracle| ≤ (2·√K + 1) · 2⁻²⁴ · Σ|terms|
// (the probabilistic bound on float summation with a safety factor of 2, plus one rounding of the
// result; measured worst: 0.62 of it. A wrong index or a missing term is off by O(|term|), far
// above it).
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <sstream>
#include <vector>

#include "core/error.h"
#include "core/memory.h"
#include "kernels/linear.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"
#include "tests/support/random.h"
#include "tests/support/tensors.h"

using kiln::DType;
using kiln::LinearShape;
using kiln::Tensor;
using namespace kiln::test;

namespace {

std::vector<double> absolute(const std::vector<double>& v) {
  std::vector<double> a(v.size());
  for (size_t i = 0; i < v.size(); ++i) a[i] = std::fabs(v[i]);
  return a;
}

// |got − ref| ≤ (2·√K + 1)·2⁻²⁴·abs_sum per element; prints the first offenders and the
// worst ratio.
void expect_within_sum_bound(const std::string& name, const std::vector<double>& got,
                             const std::vector<double>& ref, const std::vector<double>& abs_sum,
                             int k) {
  REQUIRE(got.size() == ref.size());
  const double unit = std::ldexp(1.0, -24);
  int64_t bad = 0;
  double worst = 0;
  std::ostringstream os;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(got[i] - ref[i]);
    const double bound = (2 * std::sqrt(double(k)) + 1) * unit * abs_sum[i] + 1e-30;
    worst = std::fmax(worst, err / bound);
    if (!(err <= bound)) {
      if (bad < 8) os << "  [" << i << "] got " << got[i] << " expected " << ref[i] << "\n";
      ++bad;
    }
  }
  INFO(name << ": " << bad << " of " << got.size() << " outside the bound (worst err/bound "
            << worst << ")\n"
            << os.str());
  CHECK(bad == 0);
}

}  // namespace

TEST_CASE("linear: hand-computed forward and backward", "[cpu]") {
  // x = [1, 2]; w = [[1, 0], [0, 1], [1, 1]]; b = [0.5, -1, 0]  →  y = [1.5, 1, 3].
  // dy = [1, 2, 3]: dx = dy · w = [4, 5]; dw = dyᵀ · x = [[1, 2], [2, 4], [3, 6]]; db = dy.
  for (DType dtype : {DType::f64, DType::f32}) {
    INFO("dtype " << kiln::dtype_name(dtype));
    const Tensor x = make_tensor({1, 2}, {1, 2}, dtype),
                 w = make_tensor({3, 2}, {1, 0, 0, 1, 1, 1}, dtype);
    const Tensor b = make_tensor({3}, {0.5, -1, 0}, dtype),
                 dy = make_tensor({1, 3}, {1, 2, 3}, dtype);
    Tensor y = Tensor::full({1, 3}, NAN, dtype), dx = Tensor::full({1, 2}, NAN, dtype);
    Tensor dw = Tensor::zeros({3, 2}, dtype), db = Tensor::zeros({3}, dtype);
    kiln::linear_forward(y, x, w, &b);
    kiln::linear_backward_data(dx, dy, w);
    kiln::linear_backward_weight(dw, &db, dy, x);
    kiln::test::expect_close("y", values(y), std::vector<double>{1.5, 1, 3}, 0, 0);
    kiln::test::expect_close("dx", values(dx), std::vector<double>{4, 5}, 0, 0);
    kiln::test::expect_close("dw", values(dw), std::vector<double>{1, 2, 2, 4, 3, 6}, 0, 0);
    kiln::test::expect_close("db", values(db), std::vector<double>{1, 2, 3}, 0, 0);
    // Without a bias the forward is x · wᵀ alone.
    kiln::linear_forward(y, x, w, nullptr);
    kiln::test::expect_close("y without bias", values(y), std::vector<double>{1, 2, 3}, 0, 0);
  }
}

TEST_CASE("linear: gradients of the double reference match central differences",
          "[cpu][gradcheck]") {
  const LinearShape s{3, 5, 4};
  std::vector<double> x = random_vector<double>(s.n * s.in, 1);
  std::vector<double> w = random_vector<double>(s.out * s.in, 2);
  std::vector<double> b = random_vector<double>(s.out, 3);
  const std::vector<double> projection = random_vector<double>(s.n * s.out, 4);
  std::vector<double> y(s.n * s.out);
  auto forward = [&] { kiln::cpu::linear_forward(y.data(), x.data(), w.data(), b.data(), s); };

  // Two objectives: ½Σy² (dy = y) and a fixed random projection Σ r·y (dy = r).
  for (bool use_projection : {false, true}) {
    INFO((use_projection ? "loss = Σ r·y" : "loss = ½Σy²"));
    auto loss = [&] {
      forward();
      double l = 0;
      for (size_t i = 0; i < y.size(); ++i)
        l += use_projection ? projection[i] * y[i] : 0.5 * y[i] * y[i];
      return l;
    };
    forward();
    const std::vector<double> dy = use_projection ? projection : y;
    std::vector<double> dx(x.size()), dw(w.size(), 0.0), db(b.size(), 0.0);
    kiln::cpu::linear_backward_data(dx.data(), dy.data(), w.data(), s);
    kiln::cpu::linear_backward_weight(dw.data(), db.data(), dy.data(), x.data(), s);
    kiln::test::expect_gradient_close("x", x.data(), x.size(), dx.data(), loss);
    kiln::test::expect_gradient_close("w", w.data(), w.size(), dw.data(), loss);
    kiln::test::expect_gradient_close("b", b.data(), b.size(), db.data(), loss);
  }
}

TEST_CASE("linear: dx is overwritten, dw and db accumulate", "[cpu]") {
  const int n = 4, in = 6, out = 3;
  for (DType dtype : {DType::f64, DType::f32}) {
    INFO("dtype " << kiln::dtype_name(dtype));
    const std::vector<double> xv = random_vector<double>(n * in, 11, -1, 1);
    const std::vector<double> wv = random_vector<double>(out * in, 12, -1, 1);
    const std::vector<double> dyv = random_vector<double>(n * out, 13, -1, 1);
    const Tensor x = make_tensor({n, in}, xv, dtype), w = make_tensor({out, in}, wv, dtype),
                 dy = make_tensor({n, out}, dyv, dtype);
    // The gradients from zeroed buffers, then from sentinel-filled ones.
    Tensor dx0 = Tensor::zeros({n, in}, dtype), dw0 = Tensor::zeros({out, in}, dtype),
           db0 = Tensor::zeros({out}, dtype);
    kiln::linear_backward_data(dx0, dy, w);
    kiln::linear_backward_weight(dw0, &db0, dy, x);
    const double sentinel_w = 0.25, sentinel_b = -0.5;
    Tensor dx = Tensor::full({n, in}, NAN, dtype), dw = Tensor::full({out, in}, sentinel_w, dtype),
           db = Tensor::full({out}, sentinel_b, dtype);
    kiln::linear_backward_data(dx, dy, w);
    kiln::linear_backward_weight(dw, &db, dy, x);
    kiln::linear_backward_weight(dw, &db, dy, x);  // twice: sentinel + 2·grad
    const double tol = dtype == DType::f64 ? 1e-14 : 1e-6;
    std::vector<double> want_dw = values(dw0), want_db = values(db0);
    for (double& v : want_dw) v = sentinel_w + 2 * v;
    for (double& v : want_db) v = sentinel_b + 2 * v;
    kiln::test::expect_close("dx (NaN-filled before)", values(dx), values(dx0), 0, 0);
    kiln::test::expect_close("dw (0.25 + 2 grad)", values(dw), want_dw, tol, tol);
    kiln::test::expect_close("db (-0.5 + 2 grad)", values(db), want_db, tol, tol);
  }
}

TEST_CASE("linear: the float fast path matches the double oracle", "[cpu]") {
  // {n, in, out}: batch 1, in = 1, out = 1 and 7, odd sizes, a large fan-in, a layer-sized case.
  const std::vector<LinearShape> shapes{{1, 1, 1},     {1, 1, 7},     {5, 1, 3},
                                        {1, 2048, 7},  {3, 5, 7},     {17, 33, 9},
                                        {8, 2048, 10}, {129, 65, 31}, {64, 300, 128}};
  uint64_t seed = 100;
  for (const LinearShape& s : shapes) {
    INFO("n " << s.n << " in " << s.in << " out " << s.out);
    // Inputs are drawn in float so that both paths see the same numbers.
    auto draw = [&](int64_t count) {
      const std::vector<float> f = random_vector<float>(count, ++seed);
      return std::vector<double>(f.begin(), f.end());
    };
    const std::vector<double> x = draw(int64_t(s.n) * s.in), w = draw(int64_t(s.out) * s.in),
                              b = draw(s.out), dy = draw(int64_t(s.n) * s.out);
    const std::vector<double> dw_init = draw(int64_t(s.out) * s.in), db_init = draw(s.out);

    // Oracle: values and the sums of absolute terms (the same loops on |inputs|).
    std::vector<double> y(s.n * s.out), y_abs(y.size()), dx(s.n * s.in), dx_abs(dx.size());
    std::vector<double> dw = dw_init, db = db_init, dw_abs = absolute(dw_init),
                        db_abs = absolute(db_init);
    kiln::cpu::linear_forward(y.data(), x.data(), w.data(), b.data(), s);
    kiln::cpu::linear_forward(y_abs.data(), absolute(x).data(), absolute(w).data(),
                              absolute(b).data(), s);
    kiln::cpu::linear_backward_data(dx.data(), dy.data(), w.data(), s);
    kiln::cpu::linear_backward_data(dx_abs.data(), absolute(dy).data(), absolute(w).data(), s);
    kiln::cpu::linear_backward_weight(dw.data(), db.data(), dy.data(), x.data(), s);
    kiln::cpu::linear_backward_weight(dw_abs.data(), db_abs.data(), absolute(dy).data(),
                                      absolute(x).data(), s);

    // Fast path through the functional API, outputs pre-filled with NaN (dx, y) or the start
    // values (dw, db accumulate).
    const Tensor xt = make_tensor({s.n, s.in}, x, DType::f32),
                 wt = make_tensor({s.out, s.in}, w, DType::f32),
                 bt = make_tensor({s.out}, b, DType::f32),
                 dyt = make_tensor({s.n, s.out}, dy, DType::f32);
    Tensor yt = Tensor::full({s.n, s.out}, NAN), dxt = Tensor::full({s.n, s.in}, NAN);
    Tensor dwt = make_tensor({s.out, s.in}, dw_init, DType::f32),
           dbt = make_tensor({s.out}, db_init, DType::f32);
    kiln::linear_forward(yt, xt, wt, &bt);
    kiln::linear_backward_data(dxt, dyt, wt);
    kiln::linear_backward_weight(dwt, &dbt, dyt, xt);
    expect_within_sum_bound("y", values(yt), y, y_abs, s.in + 1);
    expect_within_sum_bound("dx", values(dxt), dx, dx_abs, s.out);
    expect_within_sum_bound("dw", values(dwt), dw, dw_abs, s.n + 1);
    expect_within_sum_bound("db", values(dbt), db, db_abs, s.n + 1);
  }
}

TEST_CASE("linear: the functional API rejects bad arguments", "[cpu]") {
  using Catch::Contains;
  Tensor x = Tensor::zeros({2, 3}), w = Tensor::zeros({4, 3}), b = Tensor::zeros({4});
  Tensor y = Tensor::zeros({2, 4});
  Tensor w_bad = Tensor::zeros({4, 5});
  CHECK_THROWS_WITH(kiln::linear_forward(y, x, w_bad, &b),
                    Contains("linear_forward") && Contains("[2, 3]") && Contains("[4, 5]"));
  Tensor y_bad = Tensor::zeros({2, 5});
  CHECK_THROWS_WITH(kiln::linear_forward(y_bad, x, w, &b),
                    Contains("linear_forward") && Contains("y [2, 5]") && Contains("[2, 4]"));
  Tensor b_bad = Tensor::zeros({3});
  CHECK_THROWS_WITH(kiln::linear_forward(y, x, w, &b_bad),
                    Contains("linear_forward") && Contains("b [3]"));
  Tensor x_rank3 = Tensor::zeros({2, 3, 1});
  CHECK_THROWS_WITH(kiln::linear_forward(y, x_rank3, w, &b),
                    Contains("linear_forward") && Contains("[2, 3, 1]"));
  Tensor x64 = Tensor::zeros({2, 3}, DType::f64);
  CHECK_THROWS_WITH(kiln::linear_forward(y, x64, w, &b), Contains("linear_forward") &&
                                                             Contains("f64") && Contains("f32") &&
                                                             Contains("[2, 3]"));
  Tensor xi = Tensor::zeros({2, 3}, DType::i32), yi = Tensor::zeros({2, 4}, DType::i32);
  CHECK_THROWS_WITH(kiln::linear_forward(yi, xi, w, &b),
                    Contains("linear_forward") && Contains("i32"));
  Tensor dx = Tensor::zeros({2, 3}), dy_bad = Tensor::zeros({3, 4});
  CHECK_THROWS_WITH(kiln::linear_backward_data(dx, dy_bad, w),
                    Contains("linear_backward_data") && Contains("dy [3, 4]"));
  Tensor dw = Tensor::zeros({4, 3}), db_bad = Tensor::zeros({5}), dy = Tensor::zeros({2, 4});
  CHECK_THROWS_WITH(kiln::linear_backward_weight(dw, &db_bad, dy, x),
                    Contains("linear_backward_weight") && Contains("db [5]"));
  Tensor dw_bad = Tensor::zeros({4, 2});
  CHECK_THROWS_WITH(kiln::linear_backward_weight(dw_bad, nullptr, dy, x),
                    Contains("linear_backward_weight") && Contains("[4, 2]") && Contains("[2, 3]"));
  if (kiln::cuda_available()) {
    Tensor w_cuda = Tensor::zeros({4, 3}, DType::f32, kiln::Device::cuda);
    CHECK_THROWS_WITH(kiln::linear_forward(y, x, w_cuda, &b),
                      Contains("linear_forward") && Contains("cuda") && Contains("cpu"));
  }
}
