// tests/precision/test_precision_model.cpp — the precision policy through the layer API: which
// precision each layer takes, a bf16 network step against the same step computed op by op, fp32
// master weights, the CUDA switch, and a tiny training run whose bf16 and tf32 per-epoch losses
// stay within the stated band of fp32's.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/precision.h"
#include "core/rounding.h"
#include "data/loader.h"
#include "data/synthetic.h"
#include "kernels/conv2d.h"
#include "kernels/linear.h"
#include "kernels/precision.h"
#include "layers/activation.h"
#include "layers/batchnorm.h"
#include "layers/conv2d.h"
#include "layers/dropout.h"
#include "layers/pooling.h"
#include "layers/linear.h"
#include "layers/sequential.h"
#include "optim/optimizer.h"
#include "optim/schedule.h"
#include "tests/support/models.h"
#include "tests/support/random.h"
#include "train/eager_step.h"
#include "train/trainer.h"

using kiln::Precision;
using kiln::PrecisionPolicy;
using kiln::Tensor;

namespace {

// The precision of every Conv2d and Linear of `net`, in order: "c:bf16 l:bf16 ...".
std::string layer_precisions(kiln::Sequential& net) {
  std::string s;
  for (int i = 0; i < net.size(); ++i) {
    if (auto* c = dynamic_cast<kiln::Conv2d*>(&net[i]))
      s += std::string(s.empty() ? "" : " ") + "c:" + kiln::precision_name(c->precision());
    if (auto* l = dynamic_cast<kiln::Linear*>(&net[i]))
      s += std::string(s.empty() ? "" : " ") + "l:" + kiln::precision_name(l->precision());
  }
  return s;
}

}  // namespace

TEST_CASE("precision: a Sequential gives each layer its policy's precision", "[cpu][precision]") {
  auto net = kiln::test::small_cnn(1, 6, 6, kiln::DType::f32, 1);  // conv, conv, linear
  CHECK(layer_precisions(*net) == "c:fp32 c:fp32 l:fp32");
  net->set_precision({Precision::tf32});
  CHECK(layer_precisions(*net) == "c:tf32 c:tf32 l:fp32");  // PyTorch: matmuls stay fp32
  net->set_precision({Precision::tf32, /*tf32_linear=*/true});
  CHECK(layer_precisions(*net) == "c:tf32 c:tf32 l:tf32");
  net->set_precision({Precision::bf16});
  CHECK(layer_precisions(*net) == "c:bf16 c:bf16 l:bf16");
  net->emplace<kiln::Linear>(3, 2);  // added later: takes the policy too
  CHECK(layer_precisions(*net) == "c:bf16 c:bf16 l:bf16 l:bf16");
  CHECK(net->precision().precision == Precision::bf16);
}

TEST_CASE("precision: a bf16 network is its ops in bf16, parameters and gradients stay fp32",
          "[cpu][precision]") {
  // Conv2d -> Flatten -> Linear in bf16, forward and backward, against the functional ops called
  // by hand with the same precision, bit for bit; the master weights and gradients are fp32 tensors
  // holding values no bf16 rounding made (the optimizer updates them in fp32).
  kiln::Sequential net;
  net.emplace<kiln::Conv2d>(3, 5, 3, 1, 1);
  net.emplace<kiln::Flatten>();
  net.emplace<kiln::Linear>(5 * 4 * 4, 3);
  net.init(7);
  net.set_precision({Precision::bf16});
  const Tensor x = kiln::test::uniform_tensor({2, 4, 4, 3}, 3, kiln::Device::cpu);
  const Tensor dlogits = kiln::test::uniform_tensor({2, 3}, 4, kiln::Device::cpu);
  net.zero_grad();
  const Tensor logits = net.forward(x, kiln::Mode::train).clone();
  const Tensor dx_net = net.backward(dlogits, {.need_dx = true}).clone();
  auto& conv = static_cast<kiln::Conv2d&>(net[0]);
  auto& lin = static_cast<kiln::Linear&>(net[2]);

  Tensor y({2, 4, 4, 5}), want_logits({2, 3});
  kiln::conv2d_forward(y, x, conv.weight(), conv.bias(), {1, 1, 1, 1, Precision::bf16});
  const Tensor flat = y.view({2, 80});
  kiln::linear_forward(want_logits, flat, lin.weight(), lin.bias(), Precision::bf16);
  CHECK(logits.to_vector<float>() == want_logits.to_vector<float>());
  for (float v : logits.to_vector<float>()) CHECK(kiln::round_bf16(v) == v);  // stored as bf16

  Tensor dflat({2, 80}), dw_lin({3, 80}), db_lin({3});
  kiln::fill_tensor(dw_lin, 0.0);
  kiln::fill_tensor(db_lin, 0.0);
  kiln::linear_backward_weight(dw_lin, &db_lin, dlogits, flat, Precision::bf16);
  kiln::linear_backward_data(dflat, dlogits, lin.weight(), Precision::bf16);
  CHECK(net.params()[2].grad->to_vector<float>() == dw_lin.to_vector<float>());
  const Tensor dy = dflat.view({2, 4, 4, 5});
  Tensor dw_conv({5, 3, 3, 3}), dx({2, 4, 4, 3});
  kiln::fill_tensor(dw_conv, 0.0);
  kiln::conv2d_backward_filter(dw_conv, nullptr, dy, x, {1, 1, 1, 1, Precision::bf16});
  kiln::conv2d_backward_data(dx, dy, conv.weight(), {1, 1, 1, 1, Precision::bf16});
  CHECK(net.params()[0].grad->to_vector<float>() == dw_conv.to_vector<float>());
  CHECK(dx_net.to_vector<float>() == dx.to_vector<float>());

  // fp32 master weights and gradients: most values are not bf16 values.
  CHECK(net.flat_params().dtype() == kiln::DType::f32);
  CHECK(net.flat_grads().dtype() == kiln::DType::f32);
  auto non_bf16 = [](const Tensor& t) {
    int64_t k = 0;
    for (float v : t.to_vector<float>()) k += kiln::round_bf16(v) != v;
    return k;
  };
  CHECK(non_bf16(conv.weight()) > conv.weight().numel() / 2);
  CHECK(non_bf16(*net.params()[0].grad) > conv.weight().numel() / 2);
}

TEST_CASE("precision: CUDA tensors compute fp32, tf32 and bf16 (one switch)", "[cpu][precision]") {
  // One place says what the device computes (kiln::cuda_supports_precision): every precision, on
  // the tensor-core kernels. Each op on a CUDA tensor runs it, never a silent fp32: the results
  // equal the CPU's of the same precision up to accumulation order (tests/parity,
  // test_precision_dispatch_parity.cpp, bounds them) and differ from fp32's.
  for (Precision p : {Precision::fp32, Precision::tf32, Precision::bf16})
    CHECK(kiln::cuda_supports_precision(p));
  const kiln::Device gpu = kiln::Device::cuda;
  const Tensor x = kiln::test::uniform_tensor({1, 4, 4, 8}, 1, gpu);
  const Tensor w = kiln::test::uniform_tensor({3, 3, 3, 8}, 2, gpu);
  auto conv = [&](Precision p) {
    Tensor y({1, 4, 4, 3}, kiln::DType::f32, gpu);
    kiln::conv2d_forward(y, x, w, nullptr, {1, 1, 1, 1, p});
    return y.to_vector<float>();
  };
  const Tensor a = kiln::test::uniform_tensor({2, 5}, 3, gpu);
  const Tensor lw = kiln::test::uniform_tensor({4, 5}, 4, gpu);
  auto linear = [&](Precision p) {
    Tensor ly({2, 4}, kiln::DType::f32, gpu);
    kiln::linear_forward(ly, a, lw, nullptr, p);
    return ly.to_vector<float>();
  };
  auto cpu_conv = [&](Precision p) {
    Tensor y({1, 4, 4, 3});
    kiln::conv2d_forward(y, x.to(kiln::Device::cpu), w.to(kiln::Device::cpu), nullptr,
                         {1, 1, 1, 1, p});
    return y.to_vector<float>();
  };
  for (Precision p : {Precision::tf32, Precision::bf16}) {
    INFO(kiln::precision_name(p));
    CHECK(conv(p) != conv(Precision::fp32));
    CHECK(linear(p) != linear(Precision::fp32));
    // bf16 outputs are bf16 values, stored in fp32 as on the CPU.
    const std::vector<float> y = conv(p), c = cpu_conv(p);
    int64_t off = 0;
    for (size_t i = 0; i < y.size(); ++i)
      off += std::fabs(y[i] - c[i]) > std::ldexp(std::fabs(c[i]) + 1.f, -8);
    CHECK(off == 0);
    if (p == Precision::bf16)
      for (float v : y) CHECK(kiln::round_bf16(v) == v);
  }
}

namespace {

// The training loss of every epoch of a tiny run at `policy`: the flagship's kinds of layers
// (conv, batchnorm, LeakyReLU, max-pool, dropout, linear) on 16×16 synthetic faces, 40 per class,
// batch 16, Adam 3e-3, no augmentation.
std::vector<double> tiny_run_losses(const PrecisionPolicy& policy, int epochs,
                                    uint64_t shuffle_seed = 9) {
  const kiln::data::ImageSpec spec{1, 16, 16};
  const kiln::data::Splits data = kiln::data::make_synthetic(
      {.spec = spec, .train_per_class = 40, .val_per_class = 1, .test_per_class = 1, .seed = 3});
  kiln::Sequential net_;
  auto* net = &net_;
  net->emplace<kiln::Conv2d>(1, 8, 3, 1, 1);
  net->emplace<kiln::BatchNorm2d>(8);
  net->emplace<kiln::LeakyReLU>(0.01);
  net->emplace<kiln::MaxPool2d>(2);
  net->emplace<kiln::Conv2d>(8, 12, 3, 1, 1);
  net->emplace<kiln::BatchNorm2d>(12);
  net->emplace<kiln::LeakyReLU>(0.01);
  net->emplace<kiln::MaxPool2d>(2);
  net->emplace<kiln::Flatten>();
  net->emplace<kiln::Dropout>(0.25);
  net->emplace<kiln::Linear>(12 * 4 * 4, 7);
  net->set_input_shape({1, 16, 16, 1});
  net->init(5);
  net->set_precision(policy);
  kiln::Adam adam(net->flat_params(), net->flat_grads(), kiln::AdamOptions{.lr = 3e-3f});
  kiln::data::LoaderOptions lo;
  lo.batch_size = 16;
  lo.seed = shuffle_seed;
  kiln::data::Loader loader(data.train, lo);
  kiln::LrSchedule schedule;
  schedule.base_lr = 3e-3;
  kiln::EagerStep step(*net, adam, schedule, kiln::Device::cpu);
  kiln::Trainer trainer(loader, step, {.epochs = epochs, .classes = 7});
  struct Quiet : kiln::ProgressHook {
    bool due(int64_t, int64_t) override { return false; }
    void show(const kiln::ProgressInfo&) override {}
  } quiet;
  trainer.progress = &quiet;
  trainer.run();
  std::vector<double> losses;
  for (const kiln::EpochRecord& r : trainer.history()) losses.push_back(r.train_loss);
  return losses;
}

}  // namespace

TEST_CASE("precision: a tiny run's bf16 and tf32 loss curves stay within 1% of fp32's",
          "[cpu][precision][learning]") {
  // The band of docs/tensor-cores.md ("Learning"): every epoch's mean training loss within 1%
  // (relative) of the fp32 run's. The curves must also differ (the rounding is really applied).
  const int epochs = 4;
  const std::vector<double> fp32 = tiny_run_losses({Precision::fp32}, epochs);
  REQUIRE(fp32.size() == size_t(epochs));
  CHECK(fp32.back() < 0.9 * fp32.front());  // it learns
  for (Precision p : {Precision::tf32, Precision::bf16}) {
    const std::vector<double> reduced = tiny_run_losses({p}, epochs);
    REQUIRE(reduced.size() == size_t(epochs));
    for (int e = 0; e < epochs; ++e) {
      INFO(kiln::precision_name(p) << " epoch " << e + 1 << ": loss " << reduced[size_t(e)]
                                   << ", fp32 " << fp32[size_t(e)]);
      CHECK(std::fabs(reduced[size_t(e)] - fp32[size_t(e)]) <= 0.01 * fp32[size_t(e)]);
    }
    CHECK(reduced != fp32);
  }
  // The control: the band is tighter than training noise. The same fp32 run with the batches in
  // another order leaves it at some epoch, so a precision path off by as much as a reshuffle fails.
  const std::vector<double> reshuffled = tiny_run_losses({Precision::fp32}, epochs, 10);
  bool outside = false;
  for (int e = 0; e < epochs; ++e)
    outside =
        outside || std::fabs(reshuffled[size_t(e)] - fp32[size_t(e)]) > 0.01 * fp32[size_t(e)];
  INFO("reshuffled fp32 losses: " << reshuffled[0] << " " << reshuffled[1] << " " << reshuffled[2]
                                  << " " << reshuffled[3]);
  CHECK(outside);
}
