// tests/cpu/test_optimizer.cpp — SGD (momentum, Nesterov, dampening, weight decay) and Adam / AdamW
// (docs/math.md §5): steps worked by hand with hyper-parameters exact in binary, three-step
// trajectories recorded from PyTorch 1.13 (torch.optim.SGD / Adam / AdamW, float64, foreach=False,
// the hyper-parameters rounded to float as Kiln stores them), the float path against the double
// oracle, and argument checks of the functional API.
//
// Float-path error bound against the double oracle over three steps on random data:
//   |Δparam| ≤ 1e-6 · (1 + |ref|)
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "core/memory.h"
#include "kernels/optimizer.h"
#include "tests/support/compare.h"
#include "tests/support/random.h"
#include "tests/support/tensors.h"

using kiln::AdamParams;
using kiln::DType;
using kiln::SgdParams;
using kiln::Tensor;
using namespace kiln::test;

namespace {

// The PyTorch reference run: p0 and one gradient per step.
const std::vector<double> kP0{1.0, -2.0, 0.5, 3.0};
const std::vector<std::vector<double>> kGrads{
    {0.5, 0.1, -0.3, 0.0}, {0.2, -0.4, 0.3, 1.0}, {-0.1, 0.25, 0.0, -2.0}};

// Runs three SGD steps through the functional API; returns the parameters after each.
std::vector<std::vector<double>> run_sgd(SgdParams p, DType dtype) {
  Tensor param = make_tensor({4}, kP0, dtype), buf = Tensor::full({4}, NAN, dtype);
  std::vector<std::vector<double>> out;
  for (size_t s = 0; s < kGrads.size(); ++s) {
    p.step = static_cast<int64_t>(s) + 1;
    kiln::sgd_update(param, &buf, make_tensor({4}, kGrads[s], dtype), p);
    out.push_back(values(param));
  }
  return out;
}

std::vector<std::vector<double>> run_adam(AdamParams p, DType dtype) {
  Tensor param = make_tensor({4}, kP0, dtype), m = Tensor::zeros({4}, dtype),
         v = Tensor::zeros({4}, dtype);
  std::vector<std::vector<double>> out;
  for (size_t s = 0; s < kGrads.size(); ++s) {
    p.step = static_cast<int64_t>(s) + 1;
    kiln::adam_update(param, m, v, make_tensor({4}, kGrads[s], dtype), p);
    out.push_back(values(param));
  }
  return out;
}

void expect_trajectory(const std::vector<std::vector<double>>& got,
                       const std::vector<std::vector<double>>& want, DType dtype) {
  const double tol = dtype == DType::f64 ? 1e-14 : 1e-6;
  for (size_t s = 0; s < want.size(); ++s)
    kiln::test::expect_close("param after step " + std::to_string(s + 1), got[s], want[s], tol,
                             tol);
}

}  // namespace

TEST_CASE("optimizer: SGD, two steps by hand with momentum, Nesterov and weight decay", "[cpu]") {
  // p = 1, grad = 0.5 on both steps, lr = 1/8, momentum = 3/4, weight decay = 1/4 (exact in
  // binary, so the arithmetic below is exact).
  //   step 1: g = 0.5 + 0.25·1 = 0.75; buf = g = 0.75 (first step: the buffer is not read)
  //           plain momentum: p = 1 − 0.125·0.75 = 0.90625
  //           Nesterov: g + 0.75·buf = 1.3125;  p = 1 − 0.125·1.3125 = 0.8359375
  //   step 2 (momentum): g = 0.5 + 0.25·0.90625 = 0.7265625; buf = 0.75·0.75 + g = 1.2890625;
  //           p = 0.90625 − 0.125·1.2890625 = 0.7451171875
  //   step 2 (Nesterov): g = 0.5 + 0.25·0.8359375 = 0.708984375; buf = 0.5625 + g = 1.271484375;
  //           g + 0.75·buf = 1.66259765625;  p = 0.8359375 − 0.125·1.66259765625 = 0.62811279296875
  for (DType dtype : {DType::f64, DType::f32}) {
    for (bool nesterov : {false, true}) {
      INFO("dtype " << kiln::dtype_name(dtype) << (nesterov ? ", Nesterov" : ", momentum"));
      SgdParams p;
      p.lr = 0.125f;
      p.momentum = 0.75f;
      p.weight_decay = 0.25f;
      p.nesterov = nesterov;
      Tensor param = make_tensor({1}, {1.0}, dtype), buf = Tensor::full({1}, NAN, dtype);
      const Tensor grad = make_tensor({1}, {0.5}, dtype);
      p.step = 1;
      kiln::sgd_update(param, &buf, grad, p);
      CHECK(values(param)[0] == (nesterov ? 0.8359375 : 0.90625));
      CHECK(values(buf)[0] == 0.75);
      p.step = 2;
      kiln::sgd_update(param, &buf, grad, p);
      CHECK(values(param)[0] == (nesterov ? 0.62811279296875 : 0.7451171875));
      CHECK(values(buf)[0] == (nesterov ? 1.271484375 : 1.2890625));
    }
  }
  // Without momentum the buffer may be absent: p = 1 − 0.125·(0.5 + 0.25) = 0.90625.
  SgdParams plain;
  plain.lr = 0.125f;
  plain.weight_decay = 0.25f;
  Tensor param = make_tensor({1}, {1.0}, DType::f64);
  kiln::sgd_update(param, nullptr, make_tensor({1}, {0.5}, DType::f64), plain);
  CHECK(values(param)[0] == 0.90625);
}

TEST_CASE("optimizer: Adam and AdamW, one step by hand", "[cpu]") {
  // p = 1, grad = 0.5, lr = 1/8, β1 = 3/4, β2 = 15/16, eps = 1/2, step 1 (eps is large so that
  // its position shows: it is added after the bias correction of √v).
  //   m = 0.25·0.5 = 0.125;  v = 0.0625·0.25 = 0.015625
  //   step size = lr/(1 − β1) = 0.5;  denom = √v/√(1 − β2) + eps = 0.125/0.25 + 0.5 = 1
  //   Adam:  p = 1 − 0.5·0.125/1 = 0.9375
  //   AdamW (wd = 1/4): p = 1·(1 − 0.125·0.25) = 0.96875, then − 0.0625 → 0.90625
  //   Adam with L2 (wd = 1/4): g = 0.75, m = 0.1875, v = 0.03515625, denom = 0.75 + 0.5 = 1.25,
  //                            p = 1 − 0.5·0.1875/1.25 = 0.925
  for (DType dtype : {DType::f64, DType::f32}) {
    INFO("dtype " << kiln::dtype_name(dtype));
    AdamParams p;
    p.lr = 0.125f;
    p.beta1 = 0.75f;
    p.beta2 = 0.9375f;
    p.eps = 0.5f;
    p.step = 1;
    auto step = [&](const AdamParams& params) {
      Tensor param = make_tensor({1}, {1.0}, dtype), m = Tensor::zeros({1}, dtype),
             v = Tensor::zeros({1}, dtype);
      kiln::adam_update(param, m, v, make_tensor({1}, {0.5}, dtype), params);
      return std::vector<double>{values(param)[0], values(m)[0], values(v)[0]};
    };
    const std::vector<double> adam = step(p);
    CHECK(adam == std::vector<double>{0.9375, 0.125, 0.015625});
    AdamParams adamw = p;
    adamw.weight_decay = 0.25f;
    adamw.decoupled_weight_decay = true;
    CHECK(step(adamw) == std::vector<double>{0.90625, 0.125, 0.015625});
    AdamParams l2 = p;
    l2.weight_decay = 0.25f;
    const std::vector<double> got = step(l2);
    CHECK(got[0] == Approx(0.925).epsilon(1e-7));
    CHECK(got[1] == 0.1875);
    CHECK(got[2] == 0.03515625);
  }
}

TEST_CASE("optimizer: SGD, three steps match PyTorch", "[cpu]") {
  const float lr = 0.1f, momentum = 0.9f, wd = 0.01f;
  for (DType dtype : {DType::f64, DType::f32}) {
    INFO("dtype " << kiln::dtype_name(dtype));
    SgdParams plain;
    plain.lr = lr;
    plain.weight_decay = wd;
    expect_trajectory(
        run_sgd(plain, dtype),
        {{0.9489999992623925, -2.008000000163913, 0.5295000004507602, 2.997000000022352},
         {0.9280509989721775, -1.9659919995826634, 0.49897050000721965, 2.8940029985545426},
         {0.9371229481291314, -1.9890260079702575, 0.49847152951093004, 3.0911089985577824}},
        dtype);
    SgdParams mom = plain;
    mom.momentum = momentum;
    expect_trajectory(
        run_sgd(mom, dtype),
        {{0.9489999992623925, -2.008000000163913, 0.5295000004507602, 2.997000000022352},
         {0.8821509995242656, -1.97319199953945, 0.5255204997095689, 2.891302998646185},
         {0.8311047505098155, -1.9648916081950119, 0.5214134286415814, 2.9932843999307757}},
        dtype);
    SgdParams nesterov = mom;
    nesterov.nesterov = true;
    expect_trajectory(
        run_sgd(nesterov, dtype),
        {{0.9030999998144805, -2.0152000001206996, 0.5560500001531095, 2.9943000001139937},
         {0.8220741113509625, -1.9418511198076764, 0.5218885041389499, 2.7961808299273705},
         {0.7854016626936072, -1.9574612918539567, 0.5176520150728742, 3.0852557077719487}},
        dtype);
    SgdParams damp;
    damp.lr = lr;
    damp.momentum = momentum;
    damp.dampening = 0.1f;
    expect_trajectory(
        run_sgd(damp, dtype),
        {{0.9499999992549419, -2.0100000001490117, 0.5300000004470349, 3.0},
         {0.886999999538064, -1.9829999995678664, 0.5299999997764826, 2.909999998807907},
         {0.8393000014141202, -1.981199999986589, 0.5299999991729856, 3.0090000022649765}},
        dtype);
  }
}

TEST_CASE("optimizer: Adam, Adam with L2 and AdamW, three steps match PyTorch", "[cpu]") {
  for (DType dtype : {DType::f64, DType::f32}) {
    INFO("dtype " << kiln::dtype_name(dtype));
    AdamParams adam;  // PyTorch's defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8
    expect_trajectory(
        run_adam(adam, dtype),
        {{0.9989999999725026, -2.0009999999474974, 0.5010000000141641, 3.0},
         {0.9981014247561532, -2.0004404964331575, 0.5009473684212625, 2.9992558631398754},
         {0.9975352554878903, -2.0004020612654942, 0.5009066840484293, 2.999570149338037}},
        dtype);
    AdamParams l2;
    l2.lr = 0.1f;
    l2.weight_decay = 0.01f;
    expect_trajectory(
        run_adam(l2, dtype),
        {{0.9000000004706682, -2.0999999889901177, 0.5999999981002857, 2.900000031843207},
         {0.8097733261859894, -2.0393960340048616, 0.5929078089402852, 2.823666204708684},
         {0.7514955503656429, -2.0282892708883846, 0.5865343811181263, 2.8530024195029315}},
        dtype);
    AdamParams adamw = l2;
    adamw.decoupled_weight_decay = true;
    expect_trajectory(
        run_adam(adamw, dtype),
        {{0.8990000005173344, -2.0979999915050183, 0.5994999981605081, 2.997000000022352},
         {0.808243481817596, -2.0399516419189085, 0.5936373390482103, 2.919589316457815},
         {0.7508183133610175, -2.034068173651157, 0.5889752645628757, 2.94809834595479}},
        dtype);
  }
}

TEST_CASE("optimizer: the float path matches the double oracle", "[cpu]") {
  // 70001 elements cross the OpenMP threshold of the CPU loop.
  for (int64_t n : {int64_t{1}, int64_t{1001}, int64_t{70001}}) {
    INFO("n " << n);
    const std::vector<float> p0 = random_vector<float>(n, 90 + n, -2, 2);
    std::vector<std::vector<float>> grads;
    for (int s = 0; s < 3; ++s) grads.push_back(random_vector<float>(n, 95 + n + s));
    auto widen = [](const std::vector<float>& v) {
      return std::vector<double>(v.begin(), v.end());
    };

    SgdParams sgd;
    sgd.lr = 0.05f;
    sgd.momentum = 0.9f;
    sgd.weight_decay = 1e-3f;
    sgd.nesterov = true;
    AdamParams adam;
    adam.lr = 0.01f;
    adam.weight_decay = 1e-2f;
    for (int which = 0; which < 3; ++which) {
      INFO((which == 0 ? "SGD Nesterov" : which == 1 ? "Adam" : "AdamW"));
      adam.decoupled_weight_decay = which == 2;
      std::vector<double> p = widen(p0), m(n, 0.0), v(n, 0.0);
      Tensor pt = Tensor::from_vector<float>({n}, p0), mt = Tensor::zeros({n}),
             vt = Tensor::zeros({n});
      for (int s = 0; s < 3; ++s) {
        const std::vector<double> g = widen(grads[s]);
        const Tensor gt = Tensor::from_vector<float>({n}, grads[s]);
        sgd.step = adam.step = s + 1;
        if (which == 0) {
          kiln::cpu::sgd_update(p.data(), m.data(), g.data(), n, sgd);
          kiln::sgd_update(pt, &mt, gt, sgd);
        } else {
          kiln::cpu::adam_update(p.data(), m.data(), v.data(), g.data(), n, adam);
          kiln::adam_update(pt, mt, vt, gt, adam);
        }
      }
      kiln::test::expect_close("param", values(pt), p, 1e-6, 1e-6);
    }
  }
}

TEST_CASE("optimizer: the functional API rejects bad arguments", "[cpu]") {
  using Catch::Contains;
  Tensor param = Tensor::zeros({3, 4}), buf = Tensor::zeros({3, 4}), m = Tensor::zeros({3, 4}),
         v = Tensor::zeros({3, 4});
  const Tensor grad = Tensor::zeros({3, 4});
  SgdParams sgd;
  sgd.momentum = 0.9f;
  SgdParams bad = sgd;
  bad.lr = NAN;
  CHECK_THROWS_WITH(kiln::sgd_update(param, &buf, grad, bad),
                    Contains("sgd_update") && Contains("lr = nan"));
  bad = sgd;
  bad.lr = std::numeric_limits<float>::infinity();
  CHECK_THROWS_WITH(kiln::sgd_update(param, &buf, grad, bad),
                    Contains("sgd_update") && Contains("lr = inf"));
  CHECK_THROWS_WITH(kiln::sgd_update(param, nullptr, grad, sgd),
                    Contains("sgd_update") && Contains("momentum buffer") && Contains("[3, 4]"));
  bad = SgdParams{};
  bad.nesterov = true;
  CHECK_THROWS_WITH(kiln::sgd_update(param, nullptr, grad, bad),
                    Contains("sgd_update") && Contains("Nesterov"));
  bad = sgd;
  bad.step = 0;
  CHECK_THROWS_WITH(kiln::sgd_update(param, &buf, grad, bad),
                    Contains("sgd_update") && Contains("step = 0"));
  const Tensor grad_bad = Tensor::zeros({4, 3});
  CHECK_THROWS_WITH(kiln::sgd_update(param, &buf, grad_bad, sgd),
                    Contains("sgd_update") && Contains("grad [4, 3]") && Contains("[3, 4]"));
  Tensor buf_bad = Tensor::zeros({12});
  CHECK_THROWS_WITH(kiln::sgd_update(param, &buf_bad, grad, sgd),
                    Contains("sgd_update") && Contains("momentum_buf [12]"));
  const Tensor grad64 = Tensor::zeros({3, 4}, DType::f64);
  CHECK_THROWS_WITH(kiln::sgd_update(param, &buf, grad64, sgd),
                    Contains("sgd_update") && Contains("f64") && Contains("f32"));

  AdamParams adam;
  AdamParams bad_adam = adam;
  bad_adam.lr = -std::numeric_limits<float>::infinity();
  CHECK_THROWS_WITH(kiln::adam_update(param, m, v, grad, bad_adam),
                    Contains("adam_update") && Contains("lr = -inf"));
  bad_adam = adam;
  bad_adam.decoupled_weight_decay = true;
  bad_adam.lr = NAN;
  CHECK_THROWS_WITH(kiln::adam_update(param, m, v, grad, bad_adam),
                    Contains("adamw_update") && Contains("lr = nan"));
  bad_adam = adam;
  bad_adam.beta2 = 1.f;
  CHECK_THROWS_WITH(kiln::adam_update(param, m, v, grad, bad_adam),
                    Contains("adam_update") && Contains("betas"));
  Tensor v_bad = Tensor::zeros({3, 5});
  CHECK_THROWS_WITH(kiln::adam_update(param, m, v_bad, grad, adam),
                    Contains("adam_update") && Contains("v [3, 5]") && Contains("[3, 4]"));
  Tensor m64 = Tensor::zeros({3, 4}, DType::f64);
  CHECK_THROWS_WITH(kiln::adam_update(param, m64, v, grad, adam),
                    Contains("adam_update") && Contains("f64") && Contains("f32"));
  if (kiln::cuda_available()) {
    Tensor m_cuda = Tensor::zeros({3, 4}, DType::f32, kiln::Device::cuda);
    CHECK_THROWS_WITH(kiln::adam_update(param, m_cuda, v, grad, adam),
                      Contains("adam_update") && Contains("cuda") && Contains("cpu"));
  }
}
