// tests/layers/test_fused_sequential.cpp — Sequential's fused blocks (layers/fused_block.h): a
// network with them on and the same network with set_fused_blocks(false) give the same outputs,
// parameter gradients, dx, running statistics, num_batches_tracked and dropout counters, bit for
// bit, over two training steps (the dropout offsets advance), on the CPU (float and double) and on
// the emulated CUDA device; forward_to/backward_from inside a block run it unfused; a backward
// from inside a block that ran fused is refused with a message naming the fix. With the
// statistics gathered in the convolution's epilogue (the CUDA default) the network agrees with the
// unfused one within a tolerance instead (kernels/fused_block.h; the op-level bound is
// tests/parity/test_conv_batch_stats_parity.cpp); the eager step of fer_cnn x0.125 at batch 14
// then runs 35 launches fewer (45 in all) and holds at least 40% less memory.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/memory.h"
#if KILN_WITH_CUDA
#include "core/simt/schedule.h"

#include "data/loader.h"
#include "optim/optimizer.h"
#include "optim/schedule.h"
#include "train/eager_step.h"
#include "train/trainer.h"
#endif
#include "layers/fer_cnn.h"
#include "layers/sequential.h"
#include "tests/support/random.h"

namespace {

using kiln::BackwardOptions;
using kiln::Device;
using kiln::DType;
using kiln::Mode;
using kiln::Sequential;
using kiln::Tensor;

std::unique_ptr<Sequential> small_net(Device device, DType dtype) {
  kiln::FerCnnConfig cfg;
  cfg.height = cfg.width = 32;
  cfg.width_multiplier = 0.0625;  // 4, 8, 16, 32, 32 channels: vector and scalar paths alike
  cfg.dropout = 0.25;
  auto net = kiln::make_fer_cnn(cfg, 11);
  net->to(dtype);
  net->to(device);
  return net;
}

template <typename T>
std::vector<double> bits(const Tensor& t) {
  const std::vector<T> v = t.to_vector<T>();
  return {v.begin(), v.end()};
}

// Everything a step leaves behind, on the host.
template <typename T>
std::vector<std::vector<double>> state(Sequential& net, const Tensor& out, const Tensor& dx) {
  std::vector<std::vector<double>> s{bits<T>(out), bits<T>(dx), bits<T>(net.flat_grads()),
                                     bits<T>(net.flat_params())};
  for (auto& b : net.buffers())
    s.push_back(b.tensor ? bits<T>(*b.tensor) : std::vector<double>{double(*b.scalar)});
  for (auto& c : net.counters()) s.push_back({double(*c.value)});
  return s;
}

// conv_stats: the CUDA blocks take their statistics from the convolution's epilogue, so the
// results agree within `rel`·max|unfused| per item instead of bit for bit.
template <typename T>
void check_fused_equals_unfused(Device device, bool conv_stats = false, double rel = 0,
                                kiln::Precision precision = kiln::Precision::fp32) {
  auto fused = small_net(device, kiln::dtype_of<T>());
  auto plain = small_net(device, kiln::dtype_of<T>());
  fused->set_precision({precision});
  plain->set_precision({precision});
  fused->set_fused_blocks(true);  // also on the CPU, where the default runs blocks unfused
  fused->set_fused_conv_stats(conv_stats);
  plain->set_fused_blocks(false);
  REQUIRE(fused->fusable_blocks() == 5);
  REQUIRE(fused->fused_blocks(Device::cpu));
  for (int step = 0; step < 2; ++step) {
    INFO("step " << step);
    const Tensor x = kiln::test::random_tensor<T>({3, 32, 32, 1}, 20 + step, device);
    const Tensor dy = kiln::test::random_tensor<T>({3, 7}, 30 + step, device);
    std::vector<std::vector<double>> got[2];
    Sequential* nets[2] = {fused.get(), plain.get()};
    for (int i = 0; i < 2; ++i) {
      const Tensor& out = nets[i]->forward(x, Mode::train);
      const Tensor& dx = nets[i]->backward(dy);
      got[i] = state<T>(*nets[i], out, dx);
    }
    REQUIRE(got[0].size() == got[1].size());
    for (size_t k = 0; k < got[0].size(); ++k) {
      INFO("item " << k);
      if (rel == 0) {
        CHECK(got[0][k] == got[1][k]);
        continue;
      }
      REQUIRE(got[0][k].size() == got[1][k].size());
      double scale = 0, worst = 0;
      for (size_t i = 0; i < got[1][k].size(); ++i) {
        scale = std::max(scale, std::fabs(got[1][k][i]));
        worst = std::max(worst, std::fabs(got[0][k][i] - got[1][k][i]));
      }
      CHECK(worst <= rel * scale);
    }
  }
}

TEST_CASE("Sequential: fused blocks equal the unfused layers bit for bit", "[cpu][layers]") {
  check_fused_equals_unfused<double>(Device::cpu);
  check_fused_equals_unfused<float>(Device::cpu);
}

TEST_CASE("Sequential: fused blocks equal the unfused layers on the emulated device",
          "[simt][layers]") {
  check_fused_equals_unfused<float>(Device::cuda);
}

// The statistics from the convolution's epilogue differ from the separate pass by a few float
// roundings (|Δmean| <= 152·2⁻²⁴·max|y| per channel, the parity test's bound); through two training
// steps of the network that stays below 1e-4 of each tensor's largest value (outputs, dx,
// gradients, weights, running statistics; the counters exactly).
TEST_CASE(
    "Sequential: fused blocks with the convolution's statistics agree with the unfused layers",
    "[simt][layers]") {
  check_fused_equals_unfused<float>(Device::cuda, true, 1e-4);
}

// The same in tf32 (the CUDA default): the statistics from the tensor-core convolution's epilogue
// (and the first layer's fp32 kernel on TF32-rounded operands) against the separate pass. The
// statistics differ by float roundings as above, but the next layer rounds its input to TF32: a
// value that moves by its last float bits can round to the neighbouring TF32 value, one TF32
// spacing (2⁻¹⁰ relative) away, so the two runs agree within 2⁻¹⁰ of each tensor's largest value
// rather than 1e-4 (observed: 3.1e-4 at most).
TEST_CASE(
    "Sequential: fused blocks with the tf32 convolution's statistics agree with the unfused layers",
    "[simt][layers]") {
  check_fused_equals_unfused<float>(Device::cuda, true, std::ldexp(1.0, -10),
                                    kiln::Precision::tf32);
}

TEST_CASE("Sequential: forward_to and backward_from inside a block run it unfused",
          "[cpu][layers]") {
  auto fused = small_net(Device::cpu, DType::f32);
  auto plain = small_net(Device::cpu, DType::f32);
  fused->set_fused_blocks(true);
  plain->set_fused_blocks(false);
  const Tensor x = kiln::test::random_tensor<float>({2, 32, 32, 1}, 5);
  for (int k : {1, 2, 3, 6}) {  // BatchNorm2d, LeakyReLU, MaxPool2d of block 1; inside block 2
    INFO("layer " << k);
    const std::vector<float> a = fused->forward_to(x, k, Mode::train).to_vector<float>();
    const std::vector<float> b = plain->forward_to(x, k, Mode::train).to_vector<float>();
    CHECK(a == b);
    const Tensor d = kiln::test::random_tensor<float>((*fused)[k].output().shape(), 6);
    const BackwardOptions o{true, false};
    CHECK(fused->backward_from(k, d, o).to_vector<float>() ==
          plain->backward_from(k, d, o).to_vector<float>());
  }
  // After a whole (fused) forward, layer 2 has no activation of its own: refused, with the fix.
  fused->forward(x, Mode::train);
  const Tensor d2 = kiln::test::random_tensor<float>({2, 32, 32, 4}, 7);
  CHECK_THROWS_WITH(fused->backward_from(2, d2), Catch::Contains("ran fused") &&
                                                     Catch::Contains("forward_to(x, 2)") &&
                                                     Catch::Contains("set_fused_blocks(false)"));
}

}  // namespace

#if KILN_WITH_CUDA
// The whole eager step of `fer_cnn train --device cuda --width 0.125 --batch-size 14` (copy,
// zero_grad, forward, loss, backward, Adam), second step: after the convolution (whose epilogue
// takes the statistics) each fused block runs 1 launch forward instead of 5 (batchnorm 2,
// LeakyReLU, pooling, dropout) and 2 backward instead of 5, so five blocks take 35 launches out of
// the step, leaving 45 (the bias gradients come out of the weight-gradient GEMMs, zero_grad is a
// memset). The device
// memory the step leaves allocated beyond the parameters and the optimizer's state (activations,
// gradients, the batch, workspace) shrinks by more than 40%: the batchnorm and LeakyReLU outputs,
// the dropout output and three of the four dx buffers of each block are never allocated.
TEST_CASE("Sequential: fused blocks take 35 launches and 40% of the memory out of a step",
          "[simt][layers]") {
  kiln::data::Batch batch;
  batch.size = 14;
  batch.channels = 1;
  batch.height = batch.width = 48;
  batch.images = kiln::test::random_vector<float>(14 * 48 * 48, 4, 0.0, 1.0);
  for (int i = 0; i < 14; ++i) batch.labels.push_back(i % 7);
  // Runs: unfused fp32, fused fp32, fused tf32 (fer_cnn's CUDA default precision).
  std::uint64_t launches[3], bytes[3];
  for (int run = 0; run < 3; ++run) {
    const int fused = run >= 1 ? 1 : 0;
    auto net = kiln::make_fer_cnn(1, 48, 48, 7, 0.125, 3);
    net->to(Device::cuda);
    net->set_fused_blocks(fused == 1);
    if (run == 2) net->set_precision({kiln::Precision::tf32});
    kiln::Adam adam(net->flat_params(), net->flat_grads(), kiln::AdamOptions{});
    kiln::EagerStep step(*net, adam, kiln::LrSchedule{}, Device::cuda);
    kiln::Metrics metrics;
    const std::uint64_t held = kiln::allocation_stats().device_bytes_in_use;
    step.run(batch, metrics);  // warm-up: buffers allocated, first-use paths taken
    bytes[run] = kiln::allocation_stats().device_bytes_in_use - held;
    const std::uint64_t before = kiln::simt::counts().kernel_launches;
    step.run(batch, metrics);
    launches[run] = kiln::simt::counts().kernel_launches - before;
  }
  INFO("launches per step: unfused " << launches[0] << ", fused " << launches[1] << ", fused tf32 "
                                     << launches[2] << "; bytes: unfused " << bytes[0] << ", fused "
                                     << bytes[1]);
  CHECK(launches[0] - launches[1] == 35);
  CHECK(launches[1] == 45);
  // tf32: the same 45, plus the tensor-core backward-filter's bias sums as their own column-sum
  // launch in each of the five blocks and the first layer's TF32-rounded operand copy: 51.
  CHECK(launches[2] == 51);
  CHECK(bytes[1] * 10 <= bytes[0] * 6);
}
#endif
