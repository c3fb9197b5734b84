// tests/layers/test_layers.cpp — the Layer contract on the CPU: gradient semantics (dx overwritten,
// parameter gradients accumulate, proven with sentinels), buffer reuse, shape checks, PyTorch's
// default initialisation, the flat parameter buffer, forward_to / backward_from.
#include <catch2/catch.hpp>

#include <cmath>
#include <memory>

#include "core/error.h"
#include "layers/activation.h"
#include "layers/batchnorm.h"
#include "layers/conv2d.h"
#include "layers/dropout.h"
#include "layers/fer_cnn.h"
#include "layers/linear.h"
#include "layers/loss.h"
#include "layers/pooling.h"
#include "layers/sequential.h"
#include "tests/support/compare.h"
#include "tests/support/random.h"
#include "tests/support/tensors.h"

using namespace kiln;
using namespace kiln::test;

namespace {

// One instance of every layer kind, with an input shape it accepts.
struct Case {
  std::unique_ptr<Layer> layer;
  Shape input;
};

std::vector<Case> every_layer() {
  std::vector<Case> cases;
  cases.push_back({std::make_unique<Conv2d>(3, 5, 3, 1, 1), {2, 7, 6, 3}});
  cases.push_back({std::make_unique<Conv2d>(2, 4, 3, 2, 0), {3, 9, 8, 2}});
  cases.push_back({std::make_unique<BatchNorm2d>(4), {2, 5, 3, 4}});
  cases.push_back({std::make_unique<LeakyReLU>(0.01), {2, 3, 3, 4}});
  cases.push_back({std::make_unique<MaxPool2d>(2), {2, 6, 4, 3}});
  cases.push_back({std::make_unique<Dropout>(0.25, 7), {2, 4, 4, 3}});
  cases.push_back({std::make_unique<Linear>(12, 5), {3, 12}});
  cases.push_back({std::make_unique<Flatten>(), {2, 3, 2, 2}});
  return cases;
}

}  // namespace

TEST_CASE("every layer overwrites dx and accumulates parameter gradients", "[cpu][layers]") {
  for (Case& c : every_layer()) {
    Layer& l = *c.layer;
    l.to(DType::f64);
    INFO(l.describe());
    Tensor x = random_tensor<double>(c.input, 1);
    if (auto* d = dynamic_cast<Dropout*>(&l)) d->set_rng(d->seed(), 0);
    const Tensor& y = l.forward(x, Mode::train);
    Tensor dy = random_tensor<double>(y.shape(), 2);
    // First backward from zeroed gradients; keep the results.
    l.zero_grad();
    std::vector<double> dx1 = values(l.backward(dy));
    std::vector<std::vector<double>> g1;
    for (ParamRef& p : l.params()) g1.push_back(values(*p.grad));

    // Sentinels: dx pre-filled with 1e30 must be overwritten; gradients pre-filled with 5 must
    // become 5 + g.
    if (l.kind() != "Flatten") {
      Tensor& dx_buf = const_cast<Tensor&>(l.input_grad());
      dx_buf.fill(1e30);
    }
    for (ParamRef& p : l.params()) p.grad->fill(5.0);
    if (auto* d = dynamic_cast<Dropout*>(&l)) d->set_rng(d->seed(), 0);  // the same mask again
    l.forward(x, Mode::train);
    std::vector<double> dx2 = values(l.backward(dy));
    kiln::test::expect_close(l.kind() + " dx", dx2, dx1, 1e-12, 1e-12);
    size_t k = 0;
    for (ParamRef& p : l.params()) {
      std::vector<double> expected = g1[k++];
      for (double& e : expected) e += 5.0;
      kiln::test::expect_close(l.kind() + " " + p.name, values(*p.grad), expected, 1e-12, 1e-12);
    }
  }
}

TEST_CASE("param_grads = false leaves parameter gradients untouched", "[cpu][layers]") {
  for (Case& c : every_layer()) {
    Layer& l = *c.layer;
    INFO(l.describe());
    Tensor x = random_tensor<float>(c.input, 3);
    const Tensor& y = l.forward(x, Mode::train);
    Tensor dy = random_tensor<float>(y.shape(), 4);
    for (ParamRef& p : l.params()) p.grad->fill(7.0);
    const Tensor& dx = l.backward(dy, {.need_dx = true, .param_grads = false});
    CHECK(dx.shape() == c.input);
    for (ParamRef& p : l.params())
      for (double g : values(*p.grad)) REQUIRE(g == 7.0);
    CHECK_FALSE(l.backward(dy, {.need_dx = false}).defined());
  }
}

TEST_CASE("layers reuse their buffers, a smaller batch allocates nothing", "[cpu][layers]") {
  Conv2d conv(3, 4, 3, 1, 1);
  Tensor x = random_tensor<float>({4, 8, 8, 3}, 5);
  const float* y_ptr = conv.forward(x, Mode::train).data<float>();
  Tensor dy = random_tensor<float>({4, 8, 8, 4}, 6);
  const float* dx_ptr = conv.backward(dy).data<float>();
  const uint64_t before = allocation_stats().host_allocations;
  Tensor small = random_tensor<float>({2, 8, 8, 3}, 7);
  Tensor dsmall = random_tensor<float>({2, 8, 8, 4}, 8);
  const uint64_t before2 = allocation_stats().host_allocations;
  CHECK(conv.forward(small, Mode::train).data<float>() == y_ptr);
  CHECK(conv.backward(dsmall).data<float>() == dx_ptr);
  CHECK(conv.forward(x, Mode::train).data<float>() == y_ptr);
  CHECK(allocation_stats().host_allocations == before2);
  (void)before;
}

TEST_CASE("forward and backward check shapes, dtypes and devices with clear messages",
          "[cpu][layers]") {
  Conv2d conv(3, 4, 3, 1, 1);
  Tensor wrong_c = Tensor::zeros({1, 8, 8, 2});
  CHECK_THROWS_WITH(conv.forward(wrong_c, Mode::train),
                    Catch::Contains("Conv2d(3, 4") && Catch::Contains("[1, 8, 8, 2]"));
  Tensor f64 = Tensor::zeros({1, 8, 8, 3}, DType::f64);
  CHECK_THROWS_WITH(conv.forward(f64, Mode::train), Catch::Contains("f64"));
  CHECK_THROWS_WITH(conv.backward(Tensor::zeros({1, 8, 8, 4})),
                    Catch::Contains("backward() before forward()"));
  Tensor x = Tensor::zeros({1, 8, 8, 3});
  conv.forward(x, Mode::train);
  CHECK_THROWS_WITH(conv.backward(Tensor::zeros({1, 8, 8, 5})),
                    Catch::Contains("does not match the output"));
  Linear lin(10, 3);
  CHECK_THROWS_WITH(lin.forward(Tensor::zeros({2, 11}), Mode::eval), Catch::Contains("[2, 11]"));
}

TEST_CASE("PyTorch's default initialisation", "[cpu][layers]") {
  Conv2d conv(4, 8, 3);
  const double bound = 1.0 / std::sqrt(4.0 * 9.0);
  double max_abs = 0, sum = 0;
  std::vector<double> w = values(conv.weight());
  for (double v : w) {
    max_abs = std::max(max_abs, std::fabs(v));
    sum += v;
  }
  CHECK(max_abs <= bound);
  CHECK(max_abs > 0.9 * bound);  // spread over the whole interval
  CHECK(std::fabs(sum / w.size()) < 0.2 * bound);
  for (double b : values(*conv.bias())) CHECK(std::fabs(b) <= bound);
  BatchNorm2d bn(5);
  for (ParamRef& p : bn.params())
    for (double v : values(*p.value)) CHECK(v == (p.name == "weight" ? 1.0 : 0.0));
  for (double v : values(bn.running_var())) CHECK(v == 1.0);
  // Deterministic from the seed, different for another seed.
  auto a = make_fer_cnn(1, 32, 32, 7, 0.125, 42), b = make_fer_cnn(1, 32, 32, 7, 0.125, 42),
       c = make_fer_cnn(1, 32, 32, 7, 0.125, 43);
  CHECK(values(a->flat_params()) == values(b->flat_params()));
  CHECK(values(a->flat_params()) != values(c->flat_params()));
}

TEST_CASE("the flagship network: layers, names, flat buffers", "[cpu][layers]") {
  auto net = make_fer_cnn(1, 48, 48, 7, 1.0);
  REQUIRE(net->size() == 31);
  CHECK((*net)[26].kind() == "Linear");
  CHECK((*net)[28].kind() == "Linear");
  CHECK((*net)[30].kind() == "Linear");
  std::vector<ParamRef> ps = net->params();
  std::vector<BufferRef> bs = net->buffers();
  CHECK(ps.size() + bs.size() == 41);
  CHECK(ps[0].name == "0.weight");
  CHECK(ps[0].value->shape() == Shape{64, 3, 3, 1});
  CHECK(bs[0].name == "1.running_mean");
  CHECK(bs[2].name == "1.num_batches_tracked");
  CHECK(ps.back().name == "30.bias");
  CHECK(dynamic_cast<Linear&>((*net)[26]).in_features() == 512);
  // Every parameter and gradient is a slice of the flat buffers, 64-byte aligned.
  const char* base = static_cast<const char*>(net->flat_params().raw());
  const char* gbase = static_cast<const char*>(net->flat_grads().raw());
  int64_t total = 0;
  for (ParamRef& p : ps) {
    const char* v = static_cast<const char*>(p.value->raw());
    const char* g = static_cast<const char*>(p.grad->raw());
    CHECK(v >= base);
    CHECK(v + p.value->bytes() <= base + net->flat_params().bytes());
    CHECK(g - gbase == v - base);
    CHECK((v - base) % 64 == 0);
    total += p.value->numel();
  }
  CHECK(total == net->num_params());
  // The report's 3x128x128 network flattens 512*4*4 features.
  auto report = make_fer_cnn(3, 128, 128, 7, 1.0);
  CHECK(dynamic_cast<Linear&>((*report)[26]).in_features() == 8192);
  CHECK_THROWS_WITH(make_fer_cnn(1, 16, 16, 7, 1.0), Catch::Contains("at least 32x32"));
}

TEST_CASE("forward_to / backward_from give the gradient of an inner activation", "[cpu][layers]") {
  auto net = make_fer_cnn(1, 32, 32, 7, 1.0 / 16, 3);
  net->to(DType::f64);
  Tensor x = random_tensor<double>({2, 32, 32, 1}, 9);
  const int k = 6;  // after the second convolution
  const Tensor& a = net->forward_to(x, k, Mode::eval);
  Tensor d = random_tensor<double>(a.shape(), 10);
  std::vector<double> av = values(a);
  net->zero_grad();
  std::vector<double> dx = values(net->backward_from(k, d, {.param_grads = false}));
  for (double g : values(net->flat_grads())) REQUIRE(g == 0.0);
  // Directional derivative check: <d, a(x + h v) - a(x - h v)> / 2h == <dx, v>.
  Tensor v = random_tensor<double>(x.shape(), 11);
  const std::vector<double> vv = values(v), xv = values(x), dv = values(d);
  auto inner = [&](double h) {
    std::vector<double> xp(xv.size());
    for (size_t i = 0; i < xv.size(); ++i) xp[i] = xv[i] + h * vv[i];
    Tensor xt = Tensor::from_vector(x.shape(), xp);
    std::vector<double> ap = values(net->forward_to(xt, k, Mode::eval));
    double s = 0;
    for (size_t i = 0; i < ap.size(); ++i) s += dv[i] * ap[i];
    return s;
  };
  const double numeric = (inner(1e-6) - inner(-1e-6)) / 2e-6;
  double analytic = 0;
  for (size_t i = 0; i < dx.size(); ++i) analytic += dx[i] * vv[i];
  CHECK(numeric == Approx(analytic).epsilon(1e-6));
  CHECK_THROWS_WITH(net->backward_from(k + 1, d),
                    Catch::Contains("the last forward ran layers 0..6"));
}

TEST_CASE("SoftmaxCrossEntropy: loss, gradient and accuracy", "[cpu][layers]") {
  SoftmaxCrossEntropy xent;
  Tensor logits = Tensor::from_vector<double>({2, 3}, {1, 2, 3, 0, 0, 5});
  Tensor labels = Tensor::from_vector<int32_t>({2}, {2, 0});
  const double loss = xent.forward(logits, labels);
  const double l0 = -std::log(std::exp(3.0) / (std::exp(1.0) + std::exp(2.0) + std::exp(3.0)));
  const double l1 = -std::log(1.0 / (2.0 + std::exp(5.0)));
  CHECK(loss == Approx((l0 + l1) / 2).epsilon(1e-12));
  CHECK(xent.correct() == 1);
  std::vector<double> d = values(xent.backward());
  CHECK(d[2] == Approx((std::exp(3.0) / (std::exp(1.0) + std::exp(2.0) + std::exp(3.0)) - 1) / 2));
}
