// tests/layers/test_gradcheck.cpp — finite-difference gradient check of the whole flagship network
// (docs/design.md §8): the report's architecture at 1/32 width on 1x32x32 inputs (five poolings
// leave 1x1), in double on the CPU reference, training mode (batch statistics, dropout reseeded
// before every forward), loss = a fixed random projection of the logits. 16 random coordinates of
// every parameter tensor and of the input are checked.
#include <catch2/catch.hpp>

#include "layers/dropout.h"
#include "layers/fer_cnn.h"
#include "tests/support/gradcheck.h"
#include "tests/support/random.h"

using namespace kiln;

TEST_CASE("whole flagship network: analytic gradients match central differences",
          "[cpu][gradcheck]") {
  auto net = make_fer_cnn(1, 32, 32, 7, 1.0 / 32, 5);
  net->to(DType::f64);
  // Dropout at p = 0.25 stays on: the check reseeds it so every evaluation drops the same units.
  std::vector<CounterRef> counters = net->counters();
  std::vector<uint64_t> saved;
  for (CounterRef& c : counters) saved.push_back(*c.value);
  auto reseed = [&] {
    for (size_t i = 0; i < counters.size(); ++i) *counters[i].value = saved[i];
  };

  const int n = 4;
  Tensor x = kiln::test::random_tensor<double>({n, 32, 32, 1}, 21, Device::cpu, 0.0, 1.0);
  const std::vector<double> r = kiln::test::random_vector<double>(n * 7, 22);
  Tensor dy = Tensor::from_vector<double>({n, 7}, r);
  auto loss = [&]() {
    reseed();
    const Tensor& y = net->forward(x, Mode::train);
    const double* p = y.data<double>();
    double s = 0;
    for (int i = 0; i < n * 7; ++i) s += r[i] * p[i];
    return s;
  };

  loss();
  net->zero_grad();
  const Tensor& dx = net->backward(dy);
  std::vector<double> dx_host = dx.to_vector<double>();

  uint64_t seed = 100;
  for (ParamRef& p : net->params()) {
    std::vector<int64_t> idx = kiln::test::sample_indices(p.value->numel(), 16, seed++);
    kiln::test::expect_gradient_close(p.name, p.value->data<double>(), p.value->numel(),
                                      p.grad->data<double>(), loss, 1e-5, idx);
  }
  std::vector<int64_t> idx = kiln::test::sample_indices(x.numel(), 16, seed++);
  kiln::test::expect_gradient_close("input", x.data<double>(), x.numel(), dx_host.data(), loss,
                                    1e-5, idx);
}
