// tests/cpu/test_batchnorm.cpp — batch normalisation: finite-difference gradient checks of the
// double oracle (training: x, γ, β; eval: x), the backward checked term by term against the
// Ioffe–Szegedy derivation of docs/math.md §2, PyTorch's running-statistics update on a hand case,
// the float path against the oracle, and the gradient semantics proven with sentinels.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "kernels/batchnorm.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"
#include "tests/support/random.h"
#include "tests/support/tensors.h"

using kiln::BatchNormShape;
using kiln::DType;
using kiln::Tensor;
using namespace kiln::test;

namespace {

constexpr double kEps = 1e-5;

// The training forward of the oracle as a function of (x, γ, β); running statistics go to scratch.
struct TrainForward {
  BatchNormShape s;
  std::vector<double> y, mean, invstd, running_mean, running_var;
  explicit TrainForward(BatchNormShape shape)
      : s(shape),
        y(shape.m * shape.c),
        mean(shape.c),
        invstd(shape.c),
        running_mean(shape.c),
        running_var(shape.c) {}
  void operator()(const std::vector<double>& x, const std::vector<double>& gamma,
                  const std::vector<double>& beta) {
    kiln::cpu::batchnorm_forward_train(y.data(), mean.data(), invstd.data(), running_mean.data(),
                                       running_var.data(), x.data(), gamma.data(), beta.data(), s,
                                       kEps, 0.1);
  }
};

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d += a[i] * b[i];
  return d;
}

// docs/math.md §2, line by line, in a test-local double implementation (the library uses the
// one-pass form instead): for each channel, with m = M values,
//   ∂l/∂x̂ᵢ = ∂l/∂yᵢ·γ
//   ∂l/∂σ² = Σᵢ ∂l/∂x̂ᵢ·(xᵢ − μ)·(−½)(σ² + ε)^(−3/2)
//   ∂l/∂μ  = Σᵢ ∂l/∂x̂ᵢ·(−1/√(σ² + ε)) + ∂l/∂σ²·Σᵢ −2(xᵢ − μ)/m
//   ∂l/∂xᵢ = ∂l/∂x̂ᵢ/√(σ² + ε) + ∂l/∂σ²·2(xᵢ − μ)/m + ∂l/∂μ/m
struct Derivation {
  std::vector<double> mu, var, dxhat, dvar, dmu, dx;
};
Derivation derive(const std::vector<double>& x, const std::vector<double>& dy,
                  const std::vector<double>& gamma, BatchNormShape s) {
  const int64_t M = s.m;
  const int C = s.c;
  Derivation d{std::vector<double>(C, 0.0), std::vector<double>(C, 0.0),
               std::vector<double>(M * C),  std::vector<double>(C, 0.0),
               std::vector<double>(C, 0.0), std::vector<double>(M * C)};
  for (int c = 0; c < C; ++c) {
    for (int64_t m = 0; m < M; ++m) d.mu[c] += x[m * C + c] / M;
    for (int64_t m = 0; m < M; ++m) d.var[c] += std::pow(x[m * C + c] - d.mu[c], 2) / M;
    double sum_dev = 0, sum_dxhat = 0;
    for (int64_t m = 0; m < M; ++m) {
      d.dxhat[m * C + c] = dy[m * C + c] * gamma[c];
      d.dvar[c] +=
          d.dxhat[m * C + c] * (x[m * C + c] - d.mu[c]) * -0.5 * std::pow(d.var[c] + kEps, -1.5);
      sum_dev += -2 * (x[m * C + c] - d.mu[c]) / M;
      sum_dxhat += d.dxhat[m * C + c] * (-1 / std::sqrt(d.var[c] + kEps));
    }
    d.dmu[c] = sum_dxhat + d.dvar[c] * sum_dev;
    for (int64_t m = 0; m < M; ++m)
      d.dx[m * C + c] = d.dxhat[m * C + c] / std::sqrt(d.var[c] + kEps) +
                        d.dvar[c] * 2 * (x[m * C + c] - d.mu[c]) / M + d.dmu[c] / M;
  }
  return d;
}

}  // namespace

TEST_CASE("batchnorm training gradient check of the double oracle (x, gamma, beta)",
          "[cpu][gradcheck]") {
  // Rank 4 (a convolution's output, M = N·H·W) and rank 2 (after a linear layer).
  for (BatchNormShape s : {BatchNormShape{2 * 3 * 3, 4}, BatchNormShape{5, 3}}) {
    INFO("M " << s.m << ", C " << s.c);
    std::vector<double> x = random_vector<double>(s.m * s.c, 11, -2, 3);
    std::vector<double> gamma = random_vector<double>(s.c, 12, 0.5, 1.5);
    std::vector<double> beta = random_vector<double>(s.c, 13);
    // Σy does not depend on x (each channel's x̂ sums to 0), so the loss is a fixed random
    // projection of y: L = Σ r·y, dL/dy = r.
    const std::vector<double> r = random_vector<double>(s.m * s.c, 14);
    TrainForward f(s);
    auto loss = [&] {
      f(x, gamma, beta);
      return dot(r, f.y);
    };
    loss();
    std::vector<double> dx(s.m * s.c), dgamma(s.c, 0.0), dbeta(s.c, 0.0);
    kiln::cpu::batchnorm_backward(dx.data(), dgamma.data(), dbeta.data(), r.data(), x.data(),
                                  gamma.data(), f.mean.data(), f.invstd.data(), s);
    expect_gradient_close("x", x.data(), s.m * s.c, dx.data(), loss, 1e-6);
    expect_gradient_close("gamma", gamma.data(), s.c, dgamma.data(), loss, 1e-6);
    expect_gradient_close("beta", beta.data(), s.c, dbeta.data(), loss, 1e-6);
  }
}

TEST_CASE("batchnorm eval gradient check of the double oracle (x)", "[cpu][gradcheck]") {
  const BatchNormShape s{12, 5};
  std::vector<double> x = random_vector<double>(s.m * s.c, 21, -2, 2);
  const std::vector<double> gamma = random_vector<double>(s.c, 22, 0.5, 1.5);
  const std::vector<double> beta = random_vector<double>(s.c, 23);
  const std::vector<double> rmean = random_vector<double>(s.c, 24);
  const std::vector<double> rvar = random_vector<double>(s.c, 25, 0.2, 2);
  const std::vector<double> r = random_vector<double>(s.m * s.c, 26);
  std::vector<double> y(s.m * s.c);
  auto loss = [&] {
    kiln::cpu::batchnorm_forward_eval(y.data(), x.data(), gamma.data(), beta.data(), rmean.data(),
                                      rvar.data(), s, kEps);
    return dot(r, y);
  };
  std::vector<double> dx(s.m * s.c);
  kiln::cpu::batchnorm_backward_eval(dx.data(), r.data(), gamma.data(), rvar.data(), s, kEps);
  expect_gradient_close("x (eval)", x.data(), s.m * s.c, dx.data(), loss, 1e-6);
}

TEST_CASE("batchnorm backward term by term against docs/math.md §2", "[cpu][gradcheck]") {
  const BatchNormShape s{7, 3};
  const int64_t M = s.m;
  const int C = s.c;
  std::vector<double> x = random_vector<double>(M * C, 31, -1, 2);
  const std::vector<double> gamma = random_vector<double>(C, 32, 0.5, 1.5);
  const std::vector<double> beta = random_vector<double>(C, 33);
  const std::vector<double> dy = random_vector<double>(M * C, 34);  // L = Σ dy·y
  const Derivation d = derive(x, dy, gamma, s);

  // Each intermediate derivative is itself a partial derivative of L, checked by central
  // differences on a small function of that one quantity.
  for (int c = 0; c < C; ++c) {
    INFO("channel " << c);
    // L as a function of μ and σ², x held fixed.
    auto loss_of = [&](double mu, double var) {
      double l = 0;
      for (int64_t m = 0; m < M; ++m)
        l += dy[m * C + c] * (gamma[c] * (x[m * C + c] - mu) / std::sqrt(var + kEps) + beta[c]);
      return l;
    };
    double mu = d.mu[c], var = d.var[c];
    // ∂l/∂σ² with μ fixed.
    const double dvar_num = numeric_partial(&var, [&] { return loss_of(d.mu[c], var); });
    CHECK(d.dvar[c] == Approx(dvar_num).epsilon(1e-6).margin(1e-8));
    // ∂l/∂μ in total: σ² = (1/m)Σ(x − μ)² moves with μ (the derivation's second term).
    auto var_of = [&](double m_) {
      double v = 0;
      for (int64_t m = 0; m < M; ++m) v += std::pow(x[m * C + c] - m_, 2) / M;
      return v;
    };
    const double dmu_num = numeric_partial(&mu, [&] { return loss_of(mu, var_of(mu)); });
    CHECK(d.dmu[c] == Approx(dmu_num).epsilon(1e-6).margin(1e-8));
    // ∂l/∂x̂ᵢ: L = Σ dy·(γ x̂ + β).
    for (int64_t m = 0; m < M; ++m) {
      double xhat = (x[m * C + c] - d.mu[c]) / std::sqrt(d.var[c] + kEps);
      const double num =
          numeric_partial(&xhat, [&] { return dy[m * C + c] * (gamma[c] * xhat + beta[c]); });
      CHECK(d.dxhat[m * C + c] == Approx(num).epsilon(1e-6).margin(1e-8));
    }
  }

  // ∂l/∂x: the derivation, the library (one-pass form) and finite differences all agree.
  TrainForward f(s);
  f(x, gamma, beta);
  for (int c = 0; c < C; ++c) {
    CHECK(f.mean[c] == Approx(d.mu[c]).epsilon(1e-14));
    CHECK(f.invstd[c] == Approx(1 / std::sqrt(d.var[c] + kEps)).epsilon(1e-14));
  }
  std::vector<double> dx(M * C, NAN), dgamma(C, 0.0), dbeta(C, 0.0);
  kiln::cpu::batchnorm_backward(dx.data(), dgamma.data(), dbeta.data(), dy.data(), x.data(),
                                gamma.data(), f.mean.data(), f.invstd.data(), s);
  expect_close("library dx vs the derivation", dx, d.dx, 1e-12 * max_abs(d.dx), 1e-10);
  auto loss = [&] {
    f(x, gamma, beta);
    return dot(dy, f.y);
  };
  expect_gradient_close("x (derivation)", x.data(), M * C, d.dx.data(), loss, 1e-6);
  // The one-pass form written out: dx = γ·invstd/M · (M·dy − Σdy − x̂·Σ(dy·x̂)).
  std::vector<double> one_pass(M * C);
  for (int c = 0; c < C; ++c) {
    const double invstd = 1 / std::sqrt(d.var[c] + kEps);
    double sum_dy = 0, sum_dy_xhat = 0;
    for (int64_t m = 0; m < M; ++m) {
      sum_dy += dy[m * C + c];
      sum_dy_xhat += dy[m * C + c] * (x[m * C + c] - d.mu[c]) * invstd;
    }
    CHECK(dbeta[c] == Approx(sum_dy).epsilon(1e-12));
    CHECK(dgamma[c] == Approx(sum_dy_xhat).epsilon(1e-12));
    for (int64_t m = 0; m < M; ++m) {
      const double xhat = (x[m * C + c] - d.mu[c]) * invstd;
      one_pass[m * C + c] =
          gamma[c] * invstd / M * (M * dy[m * C + c] - sum_dy - xhat * sum_dy_xhat);
    }
  }
  expect_close("one-pass form vs the derivation", one_pass, d.dx, 1e-12 * max_abs(d.dx), 1e-10);
}

TEST_CASE("batchnorm running statistics follow PyTorch (hand-computed)", "[cpu]") {
  // x [2, 1, 2, 2]: M = 4 values per channel. Channel 0: 1, 2, 3, 4 (μ 2.5, biased σ² 1.25,
  // unbiased 5/3); channel 1: 2, 2, 2, 6 (μ 3, biased σ² 3, unbiased 4).
  for (DType dtype : {DType::f64, DType::f32}) {
    INFO("dtype " << kiln::dtype_name(dtype));
    auto make = [&](kiln::Shape shape, const std::vector<double>& v) {
      return make_tensor(shape, v, dtype);
    };
    Tensor x = make({2, 1, 2, 2}, {1, 2, 2, 2, 3, 2, 4, 6});
    Tensor gamma = make({2}, {2, 0.5}), beta = make({2}, {1, -1});
    Tensor rmean = make({2}, {0.5, -1}), rvar = make({2}, {1, 2});
    Tensor y = Tensor::full(x.shape(), NAN, dtype);
    Tensor mean = Tensor::full({2}, NAN, dtype), invstd = Tensor::full({2}, NAN, dtype);
    kiln::batchnorm_forward_train(y, mean, invstd, rmean, rvar, x, gamma, beta, 1e-5, 0.1);
    const double tol = dtype == DType::f64 ? 1e-12 : 1e-6;
    // running ← 0.9·running + 0.1·batch, with the unbiased variance for running_var.
    expect_close("running_mean", values(rmean),
                 std::vector<double>{0.9 * 0.5 + 0.1 * 2.5, 0.9 * -1 + 0.1 * 3}, tol, tol);
    expect_close("running_var", values(rvar),
                 std::vector<double>{0.9 * 1 + 0.1 * 5.0 / 3.0, 0.9 * 2 + 0.1 * 4}, tol, tol);
    expect_close("save_mean", values(mean), std::vector<double>{2.5, 3}, tol, tol);
    const double is0 = 1 / std::sqrt(1.25 + 1e-5), is1 = 1 / std::sqrt(3 + 1e-5);
    expect_close("save_invstd (biased variance)", values(invstd), std::vector<double>{is0, is1},
                 tol, tol);
    const std::vector<double> y_ref = {2 * -1.5 * is0 + 1, 0.5 * -1 * is1 - 1, 2 * -0.5 * is0 + 1,
                                       0.5 * -1 * is1 - 1, 2 * 0.5 * is0 + 1,  0.5 * -1 * is1 - 1,
                                       2 * 1.5 * is0 + 1,  0.5 * 3 * is1 - 1};
    expect_close("y", values(y), y_ref, tol, tol);
    // Eval mode then normalises with the running statistics.
    Tensor ye = Tensor::full(x.shape(), NAN, dtype);
    kiln::batchnorm_forward_eval(ye, x, gamma, beta, rmean, rvar, 1e-5);
    const double rm0 = 0.7, rv0 = 0.9 + 0.1 * 5.0 / 3.0;
    CHECK(values(ye)[0] == Approx(2 * (1 - rm0) / std::sqrt(rv0 + 1e-5) + 1).epsilon(tol));
    // Momentum 1 takes the batch statistics; momentum 0 keeps the running ones.
    kiln::batchnorm_forward_train(y, mean, invstd, rmean, rvar, x, gamma, beta, 1e-5, 1.0);
    expect_close("running_var, momentum 1", values(rvar), std::vector<double>{5.0 / 3.0, 4}, tol,
                 tol);
    kiln::batchnorm_forward_train(y, mean, invstd, rmean, rvar, x, gamma, beta, 1e-5, 0.0);
    expect_close("running_mean, momentum 0", values(rmean), std::vector<double>{2.5, 3}, tol, tol);
  }
}

// Error bound of the float path (plain loops in float, double accumulation) against the oracle,
// x uniform in [-2, 3]: |got − ref| ≤ 1e-5·max|ref| + 1e-5·|ref| for every output.
TEST_CASE("batchnorm float path matches the double oracle", "[cpu]") {
  const std::vector<std::vector<int64_t>> shapes = {{2, 3, 5, 1},  {1, 7, 5, 3}, {4, 6, 6, 16},
                                                    {3, 5, 7, 17}, {9, 3},       {64, 12, 12, 8}};
  uint64_t seed = 40;
  for (const auto& dims : shapes) {
    const kiln::Shape shape(dims);
    const int C = static_cast<int>(dims.back());
    const int64_t n = shape.numel();
    const BatchNormShape s{n / C, C};
    INFO("x " << shape.str());
    const std::vector<float> xf = random_vector<float>(n, seed++, -2, 3);
    const std::vector<float> gf = random_vector<float>(C, seed++, 0.5, 1.5);
    const std::vector<float> bf = random_vector<float>(C, seed++);
    const std::vector<float> dyf = random_vector<float>(n, seed++);
    const std::vector<float> rmf = random_vector<float>(C, seed++);
    const std::vector<float> rvf = random_vector<float>(C, seed++, 0.5, 2);
    auto d = [](const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); };

    // Oracle.
    std::vector<double> y(n), mean(C), invstd(C), rm = d(rmf), rv = d(rvf), ye(n), dx(n),
                                                  dg(C, 0.0), db(C, 0.0), dxe(n);
    kiln::cpu::batchnorm_forward_train(y.data(), mean.data(), invstd.data(), rm.data(), rv.data(),
                                       d(xf).data(), d(gf).data(), d(bf).data(), s, kEps, 0.1);
    kiln::cpu::batchnorm_forward_eval(ye.data(), d(xf).data(), d(gf).data(), d(bf).data(),
                                      d(rmf).data(), d(rvf).data(), s, kEps);
    kiln::cpu::batchnorm_backward(dx.data(), dg.data(), db.data(), d(dyf).data(), d(xf).data(),
                                  d(gf).data(), mean.data(), invstd.data(), s);
    kiln::cpu::batchnorm_backward_eval(dxe.data(), d(dyf).data(), d(gf).data(), d(rvf).data(), s,
                                       kEps);

    // Float path through the functional API, outputs pre-filled with NaN.
    Tensor x = Tensor::from_vector<float>(shape, xf), dyt = Tensor::from_vector<float>(shape, dyf);
    Tensor g = Tensor::from_vector<float>({C}, gf), b = Tensor::from_vector<float>({C}, bf);
    Tensor rmt = Tensor::from_vector<float>({C}, rmf), rvt = Tensor::from_vector<float>({C}, rvf);
    Tensor yt = Tensor::full(shape, NAN), yet = Tensor::full(shape, NAN);
    Tensor mt = Tensor::full({C}, NAN), ist = Tensor::full({C}, NAN);
    Tensor dxt = Tensor::full(shape, NAN), dxet = Tensor::full(shape, NAN);
    Tensor dgt = Tensor::zeros({C}), dbt = Tensor::zeros({C});
    kiln::batchnorm_forward_eval(yet, x, g, b, rmt, rvt);
    kiln::batchnorm_backward_eval(dxet, dyt, g, rvt);
    kiln::batchnorm_forward_train(yt, mt, ist, rmt, rvt, x, g, b);
    kiln::batchnorm_backward(dxt, dgt, dbt, dyt, x, g, mt, ist);

    auto check = [](const char* name, const Tensor& t, const std::vector<double>& ref) {
      expect_close(name, t.to_vector<float>(), ref, 1e-5 * max_abs(ref), 1e-5);
    };
    check("y", yt, y);
    check("save_mean", mt, mean);
    check("save_invstd", ist, invstd);
    check("running_mean", rmt, rm);
    check("running_var", rvt, rv);
    check("y (eval)", yet, ye);
    check("dx", dxt, dx);
    check("dgamma", dgt, dg);
    check("dbeta", dbt, db);
    check("dx (eval)", dxet, dxe);
  }
}

TEST_CASE("batchnorm gradient semantics: dx overwritten, dgamma and dbeta accumulate", "[cpu]") {
  const BatchNormShape s{30, 4};
  const int64_t n = s.m * s.c;
  const std::vector<double> x = random_vector<double>(n, 51, -1, 2);
  const std::vector<double> gamma = random_vector<double>(s.c, 52, 0.5, 1.5);
  const std::vector<double> beta = random_vector<double>(s.c, 53);
  const std::vector<double> dy = random_vector<double>(n, 54);
  TrainForward f(s);
  f(x, gamma, beta);
  std::vector<double> dx_ref(n), dg_ref(s.c, 3.0), db_ref(s.c, 3.0);  // 3 + gradient
  kiln::cpu::batchnorm_backward(dx_ref.data(), dg_ref.data(), db_ref.data(), dy.data(), x.data(),
                                gamma.data(), f.mean.data(), f.invstd.data(), s);
  for (DType dtype : {DType::f64, DType::f32}) {
    for (double sentinel : {double(NAN), 1e30}) {
      INFO("dtype " << kiln::dtype_name(dtype) << ", dx pre-filled with " << sentinel);
      auto make = [&](kiln::Shape shape, const std::vector<double>& v) {
        return make_tensor(shape, v, dtype);
      };
      Tensor xt = make({5, 6, s.c}, x), dyt = make({5, 6, s.c}, dy), g = make({s.c}, gamma);
      Tensor mt = make({s.c}, f.mean), ist = make({s.c}, f.invstd);
      Tensor dxt = Tensor::full(xt.shape(), sentinel, dtype);
      Tensor dgt = Tensor::full({s.c}, 3.0, dtype), dbt = Tensor::full({s.c}, 3.0, dtype);
      kiln::batchnorm_backward(dxt, dgt, dbt, dyt, xt, g, mt, ist);
      expect_close("dx", values(dxt), dx_ref, 1e-5 * max_abs(dx_ref), 1e-5);
      expect_close("dgamma = 3 + gradient", values(dgt), dg_ref, 1e-5, 1e-5);
      expect_close("dbeta = 3 + gradient", values(dbt), db_ref, 1e-5, 1e-5);
      // backward_eval overwrites dx too.
      Tensor rv = Tensor::full({s.c}, 0.5, dtype);
      Tensor dxe = Tensor::full(xt.shape(), sentinel, dtype);
      kiln::batchnorm_backward_eval(dxe, dyt, g, rv);
      std::vector<double> dxe_ref(n);
      for (int64_t i = 0; i < n; ++i) dxe_ref[i] = dy[i] * gamma[i % s.c] / std::sqrt(0.5 + 1e-5);
      expect_close("dx (eval)", values(dxe), dxe_ref, 1e-6, 1e-6);
    }
  }
}
