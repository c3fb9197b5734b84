// tests/layers/test_optim.cpp — optimizers over a flat buffer against PyTorch's update rules
// written out on the host, learning-rate schedules, gradient clipping, and a few training steps
// that must reduce the loss.
#include <catch2/catch.hpp>

#include <cmath>
#include <memory>
#include <utility>

#include "layers/fer_cnn.h"
#include "layers/loss.h"
#include "optim/optimizer.h"
#include "optim/schedule.h"
#include "tests/support/compare.h"
#include "tests/support/random.h"
#include "tests/support/tensors.h"

using namespace kiln;
using kiln::test::values;

namespace {
constexpr int kN = 37;

struct Flat {
  Tensor p = Tensor::from_vector<double>({kN}, kiln::test::random_vector<double>(kN, 1));
  Tensor g = Tensor::zeros({kN}, DType::f64);
};

void set_grad(Flat& f, uint64_t seed) {
  f.g.copy_from(Tensor::from_vector<double>({kN}, kiln::test::random_vector<double>(kN, seed)));
}
}  // namespace

TEST_CASE("SGD with momentum, Nesterov and weight decay follows PyTorch's rule", "[cpu][optim]") {
  for (bool nesterov : {false, true}) {
    Flat f;
    std::vector<double> p = values(f.p), buf(kN, 0.0);
    Sgd opt(f.p, f.g, {.lr = 0.1f, .momentum = 0.9f, .weight_decay = 0.01f, .nesterov = nesterov});
    for (int step = 1; step <= 3; ++step) {
      set_grad(f, 10 + step);
      std::vector<double> g = values(f.g);
      opt.step();
      for (int i = 0; i < kN; ++i) {
        double d = g[i] + double(0.01f) * p[i];
        buf[i] = step == 1 ? d : double(0.9f) * buf[i] + d;
        d = nesterov ? d + double(0.9f) * buf[i] : buf[i];
        p[i] -= double(0.1f) * d;
      }
    }
    kiln::test::expect_close("sgd", values(f.p), p, 1e-12, 1e-12);
    CHECK(opt.steps() == 3);
  }
}

TEST_CASE("Adam and AdamW follow PyTorch's rule", "[cpu][optim]") {
  for (bool decoupled : {false, true}) {
    Flat f;
    std::vector<double> p = values(f.p), m(kN, 0.0), v(kN, 0.0);
    const float lr = 0.01f, wd = 0.1f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
    Adam opt(f.p, f.g, {.lr = lr, .weight_decay = wd}, decoupled);
    CHECK(opt.kind() == (decoupled ? "adamw" : "adam"));
    for (int t = 1; t <= 3; ++t) {
      set_grad(f, 20 + t);
      std::vector<double> g = values(f.g);
      opt.step();
      for (int i = 0; i < kN; ++i) {
        double gi = g[i];
        if (decoupled)
          p[i] *= 1 - double(lr) * double(wd);
        else
          gi += double(wd) * p[i];
        m[i] = double(b1) * m[i] + (1 - double(b1)) * gi;
        v[i] = double(b2) * v[i] + (1 - double(b2)) * gi * gi;
        const double bc1 = 1 - std::pow(double(b1), t), bc2 = 1 - std::pow(double(b2), t);
        p[i] -= double(lr) / bc1 * m[i] / (std::sqrt(v[i]) / std::sqrt(bc2) + double(eps));
      }
    }
    kiln::test::expect_close(decoupled ? "adamw" : "adam", values(f.p), p, 1e-10, 1e-10);
  }
}

TEST_CASE("an optimizer keeps views: the caller's tensors may move", "[cpu][optim]") {
  // Two identical runs of three SGD steps; in the second the caller's tensors are moved away
  // (and the originals emptied) after the optimizer is built. The updates land in the same
  // storage either way.
  auto run = [](bool move_away) {
    auto f = std::make_unique<Flat>();
    Sgd opt(f->p, f->g, {.lr = 0.1f, .momentum = 0.9f});
    Tensor p = std::move(f->p), g = std::move(f->g);
    if (move_away) f.reset();
    for (int step = 1; step <= 3; ++step) {
      g.copy_from(Tensor::from_vector<double>({kN}, kiln::test::random_vector<double>(kN, step)));
      opt.step();
    }
    CHECK(values(opt.params()) == values(p));
    return values(p);
  };
  const std::vector<double> kept = run(false);
  CHECK(kept != values(Flat().p));  // the steps changed the parameters
  CHECK(run(true) == kept);
  // A read-only view cannot be updated: refused when the optimizer is built.
  Flat f;
  Tensor ro = std::as_const(f.p).view(f.p.shape());
  CHECK_THROWS_WITH(Sgd(ro, f.g), Catch::Contains("writable"));
}

TEST_CASE("a network is not moved while an optimizer holds its flat buffers", "[cpu][optim]") {
  auto net = make_fer_cnn(1, 32, 32, 7, 1.0 / 16, 1);
  const std::vector<double> before = values(net->flat_params());
  {
    Adam opt(net->flat_params(), net->flat_grads());
    CHECK_THROWS_WITH(net->to(DType::f64), Catch::Contains("Sequential::to(f64)") &&
                                               Catch::Contains("optimizer") &&
                                               Catch::Contains("move the network first"));
    CHECK(net->dtype() == DType::f32);  // refused before anything moved
    CHECK(values(net->flat_params()) == before);
  }
  net->to(DType::f64);  // no optimizer left: the move goes ahead
  CHECK(values(net->flat_params()) == before);
  Adam opt(net->flat_params(), net->flat_grads());
  CHECK(opt.params().dtype() == DType::f64);
}

TEST_CASE("learning-rate schedules", "[cpu][optim]") {
  LrSchedule constant{.base_lr = 0.1};
  CHECK(constant.lr(0) == 0.1);
  CHECK(constant.lr(1000) == 0.1);
  LrSchedule step{.kind = LrSchedule::Kind::step, .base_lr = 1.0, .step_size = 10, .gamma = 0.5};
  CHECK(step.lr(9) == 1.0);
  CHECK(step.lr(10) == 0.5);
  CHECK(step.lr(25) == 0.25);
  LrSchedule cosine{
      .kind = LrSchedule::Kind::cosine, .base_lr = 1.0, .total_steps = 100, .min_lr = 0.1};
  CHECK(cosine.lr(0) == Approx(1.0));
  CHECK(cosine.lr(50) == Approx(0.55));
  CHECK(cosine.lr(100) == Approx(0.1));
  CHECK(cosine.lr(200) == Approx(0.1));
  LrSchedule warm{
      .kind = LrSchedule::Kind::cosine, .base_lr = 1.0, .warmup_steps = 4, .total_steps = 104};
  CHECK(warm.lr(0) == Approx(0.25));
  CHECK(warm.lr(3) == Approx(1.0));
  CHECK(warm.lr(4) == Approx(1.0));
  CHECK(warm.lr(54) == Approx(0.5));
  CHECK_THROWS_WITH(parse_schedule_kind("linear"), Catch::Contains("constant, step or cosine"));
}

TEST_CASE("clip_grad_norm scales to the maximum norm", "[cpu][optim]") {
  Tensor g = Tensor::from_vector<float>({4}, {3, 4, 0, 0});
  CHECK(clip_grad_norm(g, 10.0) == Approx(5.0));
  CHECK(values(g) == std::vector<double>{3, 4, 0, 0});
  CHECK(clip_grad_norm(g, 1.0) == Approx(5.0));
  CHECK(std::sqrt(values(g)[0] * values(g)[0] + values(g)[1] * values(g)[1]) ==
        Approx(1.0).epsilon(1e-5));
  Tensor bad = Tensor::from_vector<float>({2}, {NAN, 1});
  CHECK(std::isnan(clip_grad_norm(bad, 1.0)));
}

TEST_CASE("a few Adam steps on the flagship network reduce the loss", "[cpu][optim]") {
  auto net = make_fer_cnn(1, 32, 32, 7, 1.0 / 16, 1);
  Adam opt(net->flat_params(), net->flat_grads(), {.lr = 3e-3f});
  SoftmaxCrossEntropy xent;
  const int n = 14;
  // Learnable: the label is written into the image as a bright band at row 4 * label.
  std::vector<float> img(n * 32 * 32, 0.1f);
  std::vector<int32_t> lab(n);
  for (int i = 0; i < n; ++i) {
    lab[i] = i % 7;
    for (int r = 4 * lab[i]; r < 4 * lab[i] + 3; ++r)
      for (int c = 0; c < 32; ++c) img[(i * 32 + r) * 32 + c] = 0.9f;
  }
  Tensor x = Tensor::from_vector<float>({n, 32, 32, 1}, img);
  Tensor y = Tensor::from_vector<int32_t>({n}, lab);
  double first = 0, last = 0;
  for (int step = 0; step < 20; ++step) {
    net->zero_grad();
    const double loss = xent.forward(net->forward(x, Mode::train), y);
    net->backward(xent.backward(), {.need_dx = false});
    opt.step();
    if (step == 0) first = loss;
    last = loss;
    INFO("step " << step << " loss " << loss);
  }
  INFO("loss " << first << " -> " << last);
  CHECK(last < 0.75 * first);
}
