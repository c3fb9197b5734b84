// tests/layers/test_device.cpp — every layer on the CUDA device (the SIMT emulator in tests)
// against the CPU, moving models between devices, and no device allocation in a steady-state
// training step; the loss getters after a device-side forward. In a build without the CUDA device
// the device halves of these tests only state that they did not run.
#include <catch2/catch.hpp>

#include <cmath>
#include <memory>
#include <vector>

#include "layers/activation.h"
#include "layers/batchnorm.h"
#include "layers/conv2d.h"
#include "layers/dropout.h"
#include "layers/fer_cnn.h"
#include "layers/linear.h"
#include "layers/loss.h"
#include "layers/pooling.h"
#include "optim/optimizer.h"
#include "tests/support/compare.h"
#include "tests/support/have_cuda.h"
#include "tests/support/random.h"
#include "tests/support/tensors.h"

using namespace kiln;
using kiln::test::have_cuda;
using kiln::test::values;

namespace {
// Runs forward (train and eval) and backward of `make()` on the CPU and on the device from the
// same parameters and inputs; compares outputs, dx and parameter gradients.
template <typename Make>
void compare_devices(const std::string& name, Make make, const Shape& input, double tol = 1e-5) {
  INFO(name);
  std::unique_ptr<Layer> cpu = make(), dev = make();
  dev->to(Device::cuda);
  for (Mode mode : {Mode::train, Mode::eval}) {
    Tensor x = kiln::test::random_tensor<float>(input, 31);
    Tensor xd = x.to(Device::cuda);
    const Tensor& yc = cpu->forward(x, mode);
    const Tensor& yd = dev->forward(xd, mode);
    kiln::test::expect_close(name + " y", values(yd), values(yc), tol, tol);
    Tensor dy = kiln::test::random_tensor<float>(yc.shape(), 32);
    Tensor dyd = dy.to(Device::cuda);
    cpu->zero_grad();
    dev->zero_grad();
    Tensor& dxd_buf = const_cast<Tensor&>(dev->backward(dyd));
    kiln::test::expect_close(name + " dx", values(dxd_buf), values(cpu->backward(dy)), tol, tol);
    std::vector<ParamRef> pc = cpu->params(), pd = dev->params();
    for (size_t i = 0; i < pc.size(); ++i)
      kiln::test::expect_close(name + " d" + pc[i].name, values(*pd[i].grad), values(*pc[i].grad),
                               tol, tol);
    std::vector<BufferRef> bc = cpu->buffers(), bd = dev->buffers();
    for (size_t i = 0; i < bc.size(); ++i)
      if (bc[i].tensor)
        kiln::test::expect_close(name + " " + bc[i].name, values(*bd[i].tensor),
                                 values(*bc[i].tensor), tol, tol);
  }
}
}  // namespace

TEST_CASE("every layer: the CUDA device matches the CPU", "[simt][layers]") {
  if (!have_cuda()) return;
  compare_devices("Conv2d", [] { return std::make_unique<Conv2d>(3, 5, 3, 1, 1); }, {2, 7, 6, 3});
  compare_devices("Conv2d stride 2", [] { return std::make_unique<Conv2d>(1, 4, 3, 2, 0); },
                  {1, 9, 8, 1});
  compare_devices("BatchNorm2d", [] { return std::make_unique<BatchNorm2d>(4); }, {2, 5, 3, 4});
  compare_devices("LeakyReLU", [] { return std::make_unique<LeakyReLU>(0.01); }, {2, 3, 3, 4});
  compare_devices("MaxPool2d", [] { return std::make_unique<MaxPool2d>(2); }, {2, 6, 5, 3});
  compare_devices("Dropout", [] { return std::make_unique<Dropout>(0.25, 9); }, {2, 4, 4, 3});
  compare_devices("Linear", [] { return std::make_unique<Linear>(12, 5); }, {3, 12});
  compare_devices("Flatten", [] { return std::make_unique<Flatten>(); }, {2, 3, 2, 2});
  compare_devices(
      "fer_cnn", [] { return std::unique_ptr<Layer>(make_fer_cnn(1, 32, 32, 7, 1.0 / 16, 4)); },
      {3, 32, 32, 1}, 2e-4);
}

TEST_CASE("a model moves between devices with its parameters, buffers and flat views",
          "[simt][layers]") {
  if (!have_cuda()) return;
  auto net = make_fer_cnn(1, 32, 32, 7, 1.0 / 16, 4);
  Tensor x = kiln::test::random_tensor<float>({2, 32, 32, 1}, 3);
  net->forward(x, Mode::train);  // moves the running statistics
  std::vector<double> p = values(net->flat_params());
  std::vector<double> y = values(net->forward(x, Mode::eval));
  net->to(Device::cuda);
  CHECK(net->flat_params().device() == Device::cuda);
  for (ParamRef& r : net->params()) CHECK(r.value->device() == Device::cuda);
  CHECK(values(net->flat_params()) == p);
  kiln::test::expect_close("eval on cuda", values(net->forward(x.to(Device::cuda), Mode::eval)), y,
                           1e-5, 1e-5);
  CHECK_THROWS_WITH(net->forward(x, Mode::eval),
                    Catch::Contains("is on cpu but the layer is on cuda"));
  net->to(Device::cpu);
  CHECK(values(net->flat_params()) == p);
}

TEST_CASE("a steady-state training step allocates no memory", "[cpu][simt][layers]") {
  for (Device device : {Device::cpu, Device::cuda}) {
    if (device == Device::cuda && !have_cuda()) continue;
    INFO(device_name(device));
    auto net = make_fer_cnn(1, 32, 32, 7, 1.0 / 16, 4);
    net->to(device);
    Adam opt(net->flat_params(), net->flat_grads());
    SoftmaxCrossEntropy xent;
    Tensor x = kiln::test::random_tensor<float>({8, 32, 32, 1}, 3).to(device);
    Tensor small = kiln::test::random_tensor<float>({5, 32, 32, 1}, 4).to(device);
    Tensor y = Tensor::from_vector<int32_t>({8}, {0, 1, 2, 3, 4, 5, 6, 0}).to(device);
    Tensor ys = Tensor::from_vector<int32_t>({5}, {0, 1, 2, 3, 4}).to(device);
    auto step = [&](const Tensor& xb, const Tensor& yb) {
      net->zero_grad();
      xent.forward(net->forward(xb, Mode::train), yb);
      net->backward(xent.backward(), {.need_dx = false});
      clip_grad_norm(net->flat_grads(), 5.0);
      opt.step();
    };
    step(x, y);  // the first batch allocates the buffers
    const AllocationStats before = allocation_stats();
    step(x, y);
    step(small, ys);  // the smaller last batch of an epoch
    step(x, y);
    const AllocationStats after = allocation_stats();
    CHECK(after.device_allocations == before.device_allocations);
    CHECK(after.host_allocations == before.host_allocations);
  }
}

TEST_CASE("a training step on a stream of its own gives the legacy stream's weights",
          "[simt][layers]") {
  if (!have_cuda()) return;
  // Trains one copy of the network on `stream` (nullptr: the legacy stream) for three steps;
  // returns its weights and the losses.
  auto train = [](Stream stream) {
    StreamGuard on(stream);
    auto net = make_fer_cnn(1, 32, 32, 7, 1.0 / 16, 4);
    net->to(Device::cuda);
    Adam opt(net->flat_params(), net->flat_grads());
    SoftmaxCrossEntropy xent;
    Tensor x = kiln::test::random_tensor<float>({8, 32, 32, 1}, 3).to(Device::cuda);
    Tensor y = Tensor::from_vector<int32_t>({8}, {0, 1, 2, 3, 4, 5, 6, 0}).to(Device::cuda);
    std::vector<double> out;
    for (int step = 0; step < 3; ++step) {
      net->zero_grad();
      xent.forward(net->forward(x, Mode::train), y);
      out.push_back(xent.loss());
      net->backward(xent.backward(), {.need_dx = false});
      clip_grad_norm(net->flat_grads(), 0.5);
      opt.step();
    }
    for (double w : values(net->flat_params())) out.push_back(w);
    return out;
  };
  reset_workspace();
  CudaStream stream;
  const std::vector<double> on_stream = train(stream.get());
  CHECK(workspace_bytes(nullptr) == 0);  // every op took its workspace from `stream`'s area
  CHECK(workspace_bytes(stream.get()) > 0);
  CHECK(current_stream() == nullptr);
  CHECK(on_stream == train(nullptr));
}

TEST_CASE("SoftmaxCrossEntropy: loss() and correct() answer for the last forward, of either kind",
          "[cpu][simt][layers]") {
  // Mean loss of 2 x 3 logits against their labels, in double.
  auto mean_loss = [](const std::vector<float>& z, const std::vector<int32_t>& labels) {
    double sum = 0;
    for (size_t n = 0; n < 2; ++n) {
      double denom = 0;
      for (size_t k = 0; k < 3; ++k) denom += std::exp(double(z[n * 3 + k]));
      sum += std::log(denom) - double(z[n * 3 + size_t(labels[n])]);
    }
    return sum / 2;
  };
  const std::vector<float> za = {1, 2, 3, 0, 0, 5}, zb = {3, 2, 1, 5, 0, 0};
  const std::vector<int32_t> la = {2, 0}, lb = {0, 0};  // a: 1 right, b: 2 right
  std::vector<Device> devices = {Device::cpu};
  if (have_cuda()) devices.push_back(Device::cuda);
  for (const Device device : devices) {
    INFO(device_name(device));
    SoftmaxCrossEntropy xent;
    CHECK_THROWS_WITH(xent.loss(), Catch::Contains("loss() or correct() before forward()"));
    const Tensor a = Tensor::from_vector<float>({2, 3}, za).to(device);
    const Tensor ya = Tensor::from_vector<int32_t>({2}, la).to(device);
    const Tensor b = Tensor::from_vector<float>({2, 3}, zb).to(device);
    const Tensor yb = Tensor::from_vector<int32_t>({2}, lb).to(device);
    CHECK(xent.forward(a, ya) == Approx(mean_loss(za, la)).epsilon(1e-6));
    CHECK(xent.loss() == Approx(mean_loss(za, la)).epsilon(1e-6));
    CHECK(xent.correct() == 1);
    // The device-side forward leaves nothing stale: the getters read the new values.
    xent.forward_on_device(b, yb);
    CHECK(xent.correct() == 2);
    CHECK(xent.loss() == Approx(mean_loss(zb, lb)).epsilon(1e-6));
    CHECK(xent.loss() == double(xent.loss_tensor().to_vector<float>()[0]));
    xent.forward_on_device(a, ya);
    CHECK(xent.loss() == Approx(mean_loss(za, la)).epsilon(1e-6));
    CHECK(xent.correct() == 1);
  }
}
